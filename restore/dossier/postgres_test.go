package dossier

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const pgSettings = `SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';
SET extra_float_digits = 3; SET bytea_output = 'hex'; SET client_encoding = 'UTF8'; SET lc_monetary = 'C'`

// pgGenerate creates a database holding the synthetic practice.
func pgGenerate(t *testing.T, srv *pgtest.Server, name string, seed uint64) string {
	t.Helper()
	dsn := srv.CreateDB(t, name)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := synth.Generate(testCtx(t), db, synth.Postgres, synth.Tiny, seed); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// pgRows runs COPY (SELECT columns FROM table WHERE where) TO STDOUT under
// the backup's session settings and returns the rows as kluis-row-v1
// lines of text values, sorted: the same form the collector keeps.
func pgRows(t testing.TB, conn *pgx.Conn, tm source.TableMeta, where string) []string {
	t.Helper()
	ctx := testCtx(t)
	if _, err := conn.Exec(ctx, pgSettings); err != nil {
		t.Fatal(err)
	}
	cols, err := quoteList(columnNames(tm))
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := dialect{engine: "postgres"}.tableRef(tm.Table.Schema, tm.Table.Table)
	var buf bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT "+cols+" FROM ONLY "+tr+" WHERE "+where+") TO STDOUT"); err != nil {
		t.Fatalf("%s: %v", tm.Name, err)
	}
	var out []string
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l == "" {
			continue
		}
		fields, err := ParseCopyLine(nil, []byte(strings.TrimSuffix(l, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		row := make([]source.Value, len(fields))
		for i, f := range fields {
			if f == nil {
				row[i] = source.NullValue()
			} else {
				row[i] = source.TextValue(f)
			}
		}
		out = append(out, string(source.AppendRow(nil, row)))
	}
	sort.Strings(out)
	return out
}

func columnNames(tm source.TableMeta) []string {
	out := make([]string, len(tm.Columns))
	for i, c := range tm.Columns {
		out[i] = c.Name
	}
	return out
}

// pgHandWritten is the hand-written selection of client id's rows.
func pgHandWritten(tm source.TableMeta, id int) string {
	k := strconv.Itoa(id)
	name := tm.Table.Table
	if tm.PartitionOf != "" {
		name = strings.TrimPrefix(tm.PartitionOf, "public.")
	}
	switch name {
	case "clients":
		return `"id" = ` + k
	case "treatments", "appointments", "invoices", "attachments", "measurements":
		return `"client_id" = ` + k
	case "reports":
		return `"client_id" = ` + k + ` OR "treatment_id" IN (SELECT "id" FROM "public"."treatments" WHERE "client_id" = ` + k + `)`
	case "invoice_lines":
		return `"invoice_id" IN (SELECT "id" FROM "public"."invoices" WHERE "client_id" = ` + k + `)`
	case synth.HostileTable:
		return `"Cliënt ID" = ` + k
	}
	t := "unknown table " + name
	panic(t)
}

func TestPostgresDossier(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testCtx(t)
	src := pgGenerate(t, srv, "dossier_src", 21)
	r := newRepo(t, "praktijk-pg")
	snap, tables := snapshotOf(t, r, postgres.New(src, r.FingerprintKey(), postgres.Options{}))
	plan, err := NewPlan("postgres", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	partitions := 0
	for _, st := range plan.Steps {
		if st.Table.PartitionOf != "" {
			partitions++
		}
	}
	if plan.RootName != "public.clients" || partitions < 5 {
		t.Fatalf("plan: root %s, %d partitions, tables %v", plan.RootName, partitions, plan.Tables())
	}
	conn := pgtest.ConnectDSN(t, src)

	t.Run("equals hand-written SQL", func(t *testing.T) {
		empty := 0
		for _, id := range []int{1, 2, 9, 17, 30} {
			var c collector
			res, err := Extract(ctx, r, snap.Manifest, plan, strconv.Itoa(id), &c)
			if err != nil {
				t.Fatalf("client %d: %v", id, err)
			}
			got := c.sorted()
			for _, st := range plan.Steps {
				want := pgRows(t, conn, st.Table, pgHandWritten(st.Table, id))
				if len(want) == 0 {
					empty++
				}
				if len(want)+len(got[st.Table.Name]) > 0 && !reflect.DeepEqual(want, got[st.Table.Name]) {
					t.Errorf("client %d, %s: extracted %d rows, hand-written SQL %d", id, st.Table.Name, len(got[st.Table.Name]), len(want))
				}
			}
			if len(res.Shared) == 0 {
				t.Errorf("client %d: no shared rows reported", id)
			}
		}
		if empty == 0 {
			t.Error("no client with an empty table")
		}
	})

	t.Run("into a copy without the dossier", func(t *testing.T) {
		cp := pgGenerate(t, srv, "dossier_copy", 21) // same seed: the same database
		tg, err := OpenTarget(ctx, "postgres", cp, tables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Erase(ctx, tg, "9"); err != nil {
			t.Fatal(err)
		}
		if err := tg.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		cconn := pgtest.ConnectDSN(t, cp)
		for _, st := range plan.Steps {
			if n := len(pgRows(t, cconn, st.Table, pgHandWritten(st.Table, 9))); n != 0 {
				t.Fatalf("erase left %d rows in %s", n, st.Table.Name)
			}
		}
		into := func(oc OnConflict) (*IntoResult, error) {
			return RestoreInto(ctx, r, snap.Manifest, plan, "9", cp, oc)
		}
		if _, err := into(ConflictFail); err != nil {
			t.Fatal(err)
		}
		for _, tm := range tables {
			if tm.Table.Table == "audit_log" {
				continue // the reports trigger appends to it
			}
			if want, got := pgRows(t, conn, tm, "true"), pgRows(t, cconn, tm, "true"); !reflect.DeepEqual(want, got) {
				t.Errorf("%s differs from the original after the restore", tm.Name)
			}
		}
		if _, err := into(ConflictFail); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("second restore, on-conflict fail: %v", err)
		}
		ir, err := into(ConflictSkip)
		if err != nil {
			t.Fatal(err)
		}
		if ir.Inserted != 0 || ir.Skipped != ir.Rows {
			t.Errorf("skip: inserted %d, skipped %d of %d", ir.Inserted, ir.Skipped, ir.Rows)
		}
	})

	t.Run("missing shared rows", func(t *testing.T) {
		dsn := srv.CreateDB(t, "dossier_empty")
		ddl, err := synth.DDL(synth.Postgres)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.ExecDSN(t, dsn, strings.Join(ddl, ";\n"))
		pre, err := Extract(ctx, r, snap.Manifest, plan, "2", nil)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := OpenTarget(ctx, "postgres", dsn, tables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		err = tg.CheckShared(ctx, pre.Shared)
		if !errors.Is(err, ErrSharedMissing) || !strings.Contains(err.Error(), "public.addresses") || !strings.Contains(err.Error(), "public.staff") {
			t.Errorf("missing shared rows: %v", err)
		}
		tg.Close()
		// PostgreSQL checks foreign keys at each insert: the failed insert
		// is turned into the same clear message.
		if _, err := RestoreInto(ctx, r, snap.Manifest, plan, "2", dsn, ConflictFail); !errors.Is(err, ErrSharedMissing) || !strings.Contains(err.Error(), "public.addresses") {
			t.Errorf("restore into a database without the shared rows: %v", err)
		}
	})

	t.Run("SQL script loads with psql", func(t *testing.T) {
		cp := pgGenerate(t, srv, "dossier_psql", 21)
		tg, _ := OpenTarget(ctx, "postgres", cp, tables, ConflictFail)
		plan.Erase(ctx, tg, "17")
		tg.Commit(ctx)
		var script bytes.Buffer
		w, _ := NewSQLWriter(&script, "postgres", []string{"test"}, ConflictFail)
		if _, err := Extract(ctx, r, snap.Manifest, plan, "17", w); err != nil {
			t.Fatal(err)
		}
		w.Finish()
		file := filepath.Join(t.TempDir(), "dossier.sql")
		if err := os.WriteFile(file, script.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(srv.Tool(t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cp, "-f", file).CombinedOutput(); err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		cconn := pgtest.ConnectDSN(t, cp)
		for _, tm := range tables {
			if tm.Table.Table == "audit_log" {
				continue
			}
			if want, got := pgRows(t, conn, tm, "true"), pgRows(t, cconn, tm, "true"); !reflect.DeepEqual(want, got) {
				t.Errorf("%s differs after the script", tm.Name)
			}
		}
	})
}
