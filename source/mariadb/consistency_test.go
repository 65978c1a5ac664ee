package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/synth"
)

// TestConsistentUnderConcurrentWriters backs up while writers commit
// transfers (synth.Ledger: the total of the balances never changes) and
// journal entries (every entry bumps a counter in another table in the
// same transaction). Tables are read one after another with writes
// committing in between, so only a snapshot of one moment keeps both
// invariants in the restored copy.
func TestConsistentUnderConcurrentWriters(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	src := srv.CreateDB(t, "ledger")
	db := mariadbtest.OpenDSN(t, src)
	ledger, err := synth.CreateLedger(ctx, db, synth.MariaDB, 200)
	if err != nil {
		t.Fatal(err)
	}
	mariadbtest.ExecDSN(t, src,
		"CREATE TABLE journal (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE zcounter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO zcounter VALUES (1, 0)")

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var commits atomic.Int64
	var werr atomic.Value
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for wctx.Err() == nil {
				var err error
				if w%2 == 0 {
					err = ledger.Transfer(wctx, db, rng)
				} else {
					err = journalEntry(wctx, db, rng.IntN(100))
				}
				if err != nil && wctx.Err() == nil && !strings.Contains(err.Error(), "Deadlock") {
					werr.Store(err)
					return
				}
				commits.Add(1)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	waitFor(t, &commits, 200)

	snap, err := New(src, testKey, Options{}).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &backupData{tables: snap.Tables(), streams: map[string][]byte{}, results: map[string]source.TableResult{}}
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatal(err)
	}
	b.pre, b.post = pre.Bytes(), post.Bytes()
	for _, tb := range b.tables {
		before := commits.Load()
		waitFor(t, &commits, before+50) // writes commit between the tables' reads
		var buf bytes.Buffer
		res, err := snap.WriteTable(ctx, tb, &buf)
		if err != nil {
			t.Fatal(err)
		}
		b.results[tb.Name], b.streams[tb.Name] = res, buf.Bytes()
	}
	snap.Close()
	stop()
	wg.Wait()
	if err, _ := werr.Load().(error); err != nil {
		t.Fatal(err)
	}

	dst := srv.CreateDB(t, "ledger_restored")
	restoreInto(t, b, dst)
	rdb := mariadbtest.OpenDSN(t, dst)
	total, err := synth.LedgerTotal(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if total != ledger.ExpectedTotal() {
		t.Errorf("restored ledger total %d, want %d", total, ledger.ExpectedTotal())
	}
	var entries, counter, srcEntries int64
	if err := rdb.QueryRow("SELECT (SELECT COUNT(*) FROM journal), (SELECT n FROM zcounter)").Scan(&entries, &counter); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM journal").Scan(&srcEntries); err != nil {
		t.Fatal(err)
	}
	if entries != counter || entries == 0 || entries >= srcEntries {
		t.Errorf("restored journal holds %d entries, counter %d (the source has %d since)", entries, counter, srcEntries)
	}
}

func journalEntry(ctx context.Context, db *sql.DB, amount int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO journal (amount) VALUES (?)", amount); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE zcounter SET n = n + 1 WHERE id = 1"); err != nil {
		return err
	}
	return tx.Commit()
}

func waitFor(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("writers stuck at %d commits, want %d", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentDDL checks that DDL racing the start of a snapshot makes
// it fail with ErrConcurrentDDL, and that DDL after it waits until the
// snapshot is closed.
func TestConcurrentDDL(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	for _, c := range []struct{ name, ddl string }{
		{"create", "CREATE TABLE b_new (id INT PRIMARY KEY) ENGINE=InnoDB"},
		{"drop", "DROP TABLE a_table"},
		{"rebuild", "ALTER TABLE a_table FORCE"},
		{"truncate", "TRUNCATE TABLE a_table"},
		{"rename", "RENAME TABLE a_table TO c_table"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := srv.CreateDB(t, "ddl_"+c.name)
			mariadbtest.ExecDSN(t, dsn, "CREATE TABLE a_table (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO a_table VALUES (1), (2)")
			e := New(dsn, testKey, Options{afterStart: func() { mariadbtest.ExecDSN(t, dsn, c.ddl) }})
			snap, err := e.Snapshot(ctx)
			if err == nil {
				snap.Close()
			}
			if !errors.Is(err, ErrConcurrentDDL) {
				t.Fatalf("%s after the snapshot began: %v", c.ddl, err)
			}
		})
	}

	dsn := srv.CreateDB(t, "ddl_waits")
	mariadbtest.ExecDSN(t, dsn, "CREATE TABLE a_table (id INT PRIMARY KEY) ENGINE=InnoDB")
	snap, err := New(dsn, testKey, Options{}).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := mariadbtest.OpenDSN(t, dsn)
	other.SetMaxOpenConns(1)
	if _, err := other.Exec("SET SESSION lock_wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec("DROP TABLE a_table"); err == nil || !strings.Contains(err.Error(), "Lock wait timeout") {
		t.Errorf("DROP TABLE while the snapshot is open: %v", err)
	}
	snap.Close()
	if _, err := other.Exec("DROP TABLE a_table"); err != nil {
		t.Errorf("DROP TABLE after the snapshot: %v", err)
	}
}
