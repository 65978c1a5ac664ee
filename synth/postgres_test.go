package synth

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// pgDatabase creates a uniquely named database on the package's throwaway
// PostgreSQL server (internal/pgtest) and returns a connection to it; the
// database is dropped when the test ends.
func pgDatabase(t *testing.T) *sql.DB {
	t.Helper()
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "kluis_synth")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPostgres(t *testing.T) {
	ctx := ctxT(t)
	db := pgDatabase(t)
	if err := Generate(ctx, db, Postgres, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	generated := dump(t, db, Postgres)
	for _, name := range TableNames() {
		if len(generated[name]) == 0 {
			t.Errorf("table %s is empty", name)
		}
	}

	t.Run("rows as in SQLite", func(t *testing.T) {
		lite := openSQLite(t)
		if err := Generate(ctx, lite, SQLite, Tiny, testSeed); err != nil {
			t.Fatal(err)
		}
		if a, b := countRows(generated), countRows(dump(t, lite, SQLite)); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("row counts differ:\npostgres %v\nsqlite   %v", a, b)
		}
		for _, q := range []string{
			`SELECT id, bsn, first_name, last_name, email FROM clients ORDER BY id`,
			`SELECT id, body FROM reports ORDER BY id`,
			`SELECT id, content FROM attachments ORDER BY id`,
			`SELECT id, kind, value FROM measurements ORDER BY id`,
		} {
			a, b := queryRows(t, db, q), queryRows(t, lite, q)
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("%s differs between PostgreSQL and SQLite", q)
			}
		}
	})

	t.Run("engine features", func(t *testing.T) {
		for _, y := range []int{2023, 2024, 2025} {
			if n := queryInt(t, db, `SELECT COUNT(*) FROM measurements_`+strconv.Itoa(y)); n == 0 {
				t.Errorf("partition %d is empty", y)
			}
		}
		if n := queryInt(t, db, `SELECT COUNT(*) FROM pg_partitioned_table`); n != 1 {
			t.Errorf("%d partitioned tables", n)
		}
		if n, m := queryInt(t, db, `SELECT COUNT(*) FROM reports`), queryInt(t, db, `SELECT COUNT(*) FROM audit_log WHERE actor = 'trigger'`); n != m {
			t.Errorf("%d reports, %d rows from the trigger", n, m)
		}
		if n, m := queryInt(t, db, `SELECT COUNT(*) FROM open_invoices`), queryInt(t, db, `SELECT COUNT(*) FROM invoices WHERE paid_at IS NULL`); n == 0 || n != m {
			t.Errorf("view has %d rows, %d unpaid invoices", n, m)
		}
		n := queryInt(t, db, `SELECT COUNT(*) FROM "Notities van de ""praktijk""; 2024" WHERE "Cliënt ID" IS NOT NULL AND "select" <> '' OR "Tab	Kolom" IS NULL`)
		if n == 0 {
			t.Error("hostile table unreadable")
		}
		if tz := queryRows(t, db, `SELECT to_char(at AT TIME ZONE 'Europe/Amsterdam', 'HH24:MI') FROM appointments ORDER BY id LIMIT 20`); len(tz) == 0 || tz[0] < `"08:00"` || tz[0] > `"17:45"` {
			t.Errorf("appointment times in Amsterdam: %v", tz)
		}
	})

	t.Run("working days deterministic", func(t *testing.T) {
		other := pgDatabase(t)
		if err := Generate(ctx, other, Postgres, Tiny, testSeed); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*sql.DB{db, other} {
			for day := range 2 {
				if _, err := WorkingDay(ctx, d, Postgres, Tiny, testSeed, day); err != nil {
					t.Fatalf("day %d: %v", day, err)
				}
			}
		}
		sameDump(t, "after 2 working days", dump(t, db, Postgres), dump(t, other, Postgres))
		// Sequences were moved past the explicit ids.
		for _, tb := range []string{"clients", "measurements", HostileTable} {
			max := queryInt(t, db, `SELECT MAX(id) FROM `+quoteWith(tb, '"'))
			next := queryInt(t, db, `SELECT nextval(pg_get_serial_sequence($1, 'id'))`, quoteWith(tb, '"'))
			if next != max+1 {
				t.Errorf("%s: next id %d after %d", tb, next, max)
			}
		}
		max := queryInt(t, db, `SELECT MAX(number) FROM invoices`)
		if next := queryInt(t, db, `SELECT nextval('invoice_number_seq')`); next != max+1 {
			t.Errorf("invoice_number_seq: next %d after %d", next, max)
		}
	})

	t.Run("script", func(t *testing.T) {
		var script strings.Builder
		if err := WriteSQL(ctx, &script, Postgres, Tiny, testSeed); err != nil {
			t.Fatal(err)
		}
		other := pgDatabase(t)
		if _, err := other.ExecContext(ctx, script.String()); err != nil {
			t.Fatal(err)
		}
		sameDump(t, "script vs Generate", generated, dump(t, other, Postgres))
	})

	t.Run("ledger under concurrent writers", func(t *testing.T) {
		l, err := CreateLedger(ctx, db, Postgres, 50)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for range 50 {
					if err := l.Transfer(ctx, db, rng); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for range 20 { // each snapshot sees a consistent total
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			total, err := LedgerTotal(ctx, tx)
			tx.Rollback()
			if err != nil || total != l.ExpectedTotal() {
				t.Errorf("snapshot total %d (%v), want %d", total, err, l.ExpectedTotal())
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if total, err := LedgerTotal(ctx, db); err != nil || total != l.ExpectedTotal() {
			t.Errorf("total %d (%v), want %d", total, err, l.ExpectedTotal())
		}
	})
}

// TestPostgresLoadSpeed measures Generate at KLUIS_TEST_PG_LOAD_MB
// megabytes (ScaleForBytes) and one working day.
func TestPostgresLoadSpeed(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_TEST_PG_LOAD_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_TEST_PG_LOAD_MB (and KLUIS_TEST_PG_DSN) to measure load speed")
	}
	db := pgDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s := ScaleForBytes(int64(mb) << 20)
	start := time.Now()
	if err := Generate(ctx, db, Postgres, s, testSeed); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var rows int64
	for _, name := range TableNames() {
		rows += queryInt(t, db, "SELECT COUNT(*) FROM "+quoteWith(name, '"'))
	}
	size := queryInt(t, db, "SELECT pg_database_size(current_database())")
	t.Logf("%d clients, %d rows, ~%d MB plain in %v: %.0f rows/s, %.1f MB/s plain; database size %d MB",
		s.Clients, rows, s.ApproxBytes()>>20, took.Round(time.Millisecond), float64(rows)/took.Seconds(),
		float64(s.ApproxBytes())/(1<<20)/took.Seconds(), size>>20)
	start = time.Now()
	c, err := WorkingDay(ctx, db, Postgres, s, testSeed, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("working day: %+v in %v", c, time.Since(start).Round(time.Millisecond))
}
