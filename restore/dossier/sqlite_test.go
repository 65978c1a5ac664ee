package dossier

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

func TestSQLiteDossierEqualsHandWrittenSQL(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, "praktijk")
	snap, tables := snapshotOf(t, r, sqlite.New(src, r.FingerprintKey()))
	plan, err := NewPlan("sqlite", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Tables(), ","); strings.Contains(got, "audit_log") || strings.Contains(got, "addresses") || strings.Contains(got, "staff") || !strings.HasPrefix(got, "clients,") {
		t.Fatalf("plan tables: %s", got)
	}
	db := openSQLite(t, src)
	emptySomewhere := 0
	for id := 1; id <= synth.Tiny.Clients; id++ {
		var c collector
		res, err := Extract(ctx, r, snap.Manifest, plan, strconv.Itoa(id), &c)
		if err != nil {
			t.Fatalf("client %d: %v", id, err)
		}
		got := c.sorted()
		for _, st := range plan.Steps {
			want := sqliteRows(t, db, st.Table, handWritten(st.Table.Name), id)
			if !reflect.DeepEqual(want, got[st.Table.Name]) && !(len(want) == 0 && len(got[st.Table.Name]) == 0) {
				t.Errorf("client %d, table %s: extracted %d rows, hand-written SQL selects %d", id, st.Table.Name, len(got[st.Table.Name]), len(want))
			}
			if len(want) == 0 {
				emptySomewhere++
			}
		}
		if id == 1 {
			t.Logf("client 1: %d rows in %d tables, shared %d", res.Rows, len(res.Tables), len(res.Shared))
		}
		if len(res.Shared) == 0 {
			t.Errorf("client %d: no shared rows (address, staff) reported", id)
		}
	}
	if emptySomewhere == 0 {
		t.Error("no client had an empty table: the test proves less than it claims")
	}
	if _, err := Extract(ctx, r, snap.Manifest, plan, "999999", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

// TestSQLiteRestoreInto deletes a dossier from a copy of the database (the
// erasure statements), restores it with --into semantics and checks the
// copy equals the original again; a second restore fails on conflict and
// rolls back, --on-conflict skip keeps the rows; an empty database lacks
// the shared rows and says which.
func TestSQLiteRestoreInto(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 11); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, "praktijk")
	snap, tables := snapshotOf(t, r, sqlite.New(src, r.FingerprintKey()))
	plan, err := NewPlan("sqlite", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	const id = "5"
	cp := filepath.Join(dir, "kopie.db")
	copyFile(t, src, cp)

	// Erase the dossier from the copy.
	tg, err := OpenTarget(ctx, "sqlite", cp, tables, ConflictFail)
	if err != nil {
		t.Fatal(err)
	}
	n, err := plan.Erase(ctx, tg, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	orig, cdb := openSQLite(t, src), openSQLite(t, cp)
	var total int
	for _, st := range plan.Steps {
		if got := sqliteRows(t, cdb, st.Table, handWritten(st.Table.Name), 5); len(got) != 0 {
			t.Fatalf("erase left %d rows in %s", len(got), st.Table.Name)
		}
		total += len(sqliteRows(t, orig, st.Table, handWritten(st.Table.Name), 5))
	}
	if n != int64(total) {
		t.Errorf("erase deleted %d rows, the dossier has %d", n, total)
	}

	restoreInto := func(oc OnConflict) (*IntoResult, error) {
		return RestoreInto(ctx, r, snap.Manifest, plan, id, cp, oc)
	}
	if _, err := restoreInto(ConflictFail); err != nil {
		t.Fatal(err)
	}
	for _, tm := range tables {
		if tm.Name == "audit_log" {
			continue // the reports trigger appends to it on every insert
		}
		if want, got := sqliteRows(t, orig, tm, "1"), sqliteRows(t, cdb, tm, "1"); !reflect.DeepEqual(want, got) {
			t.Errorf("table %s differs from the original after the restore (%d vs %d rows)", tm.Name, len(got), len(want))
		}
	}
	var fkProblems int
	if err := cdb.QueryRow("SELECT count(*) FROM pragma_foreign_key_check").Scan(&fkProblems); err != nil || fkProblems != 0 {
		t.Errorf("foreign key check: %d problems, %v", fkProblems, err)
	}

	before := len(sqliteRows(t, cdb, tables[0], "1"))
	if _, err := restoreInto(ConflictFail); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second restore with on-conflict fail: %v", err)
	}
	if after := len(sqliteRows(t, cdb, tables[0], "1")); after != before {
		t.Errorf("failed restore changed the target")
	}
	ir, err := restoreInto(ConflictSkip)
	if err != nil {
		t.Fatalf("on-conflict skip: %v", err)
	}
	if ir.Inserted != 0 || ir.Skipped != int64(total) {
		t.Errorf("skip: inserted %d, skipped %d of %d", ir.Inserted, ir.Skipped, total)
	}

	// An empty database with the schema lacks the shared rows.
	empty := filepath.Join(dir, "leeg.db")
	edb := openSQLite(t, empty)
	ddl, err := synth.DDL(synth.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ddl {
		if _, err := edb.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	pre, err := Extract(ctx, r, snap.Manifest, plan, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	etg, err := OpenTarget(ctx, "sqlite", empty, tables, ConflictFail)
	if err != nil {
		t.Fatal(err)
	}
	defer etg.Close()
	err = etg.CheckShared(ctx, pre.Shared)
	if !errors.Is(err, ErrSharedMissing) || !strings.Contains(err.Error(), "addresses") || !strings.Contains(err.Error(), "staff") {
		t.Errorf("missing shared rows: %v", err)
	}
	etg.Close()
	if _, err := RestoreInto(ctx, r, snap.Manifest, plan, id, empty, ConflictFail); !errors.Is(err, ErrSharedMissing) {
		t.Errorf("restore into a database without the shared rows: %v", err)
	}
	var left int
	edb.QueryRow(`SELECT count(*) FROM clients`).Scan(&left)
	if left != 0 {
		t.Errorf("a refused restore left %d clients", left)
	}
}

// TestSQLiteScriptAndJSON restores a dossier into a file and loads the SQL
// script into a copy without the dossier.
func TestSQLiteScriptAndJSON(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 3); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, "praktijk")
	snap, tables := snapshotOf(t, r, sqlite.New(src, r.FingerprintKey()))
	plan, err := NewPlan("sqlite", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	// A client whose text holds a CR: the case the sqlite3 shell mangles.
	var crID int64
	if err := openSQLite(t, src).QueryRow(`SELECT client_id FROM reports WHERE instr(body, char(13)) > 0 ORDER BY client_id LIMIT 1`).Scan(&crID); err != nil {
		t.Fatalf("no report with a CR in the synthetic data: %v", err)
	}
	id := strconv.FormatInt(crID, 10)
	var script bytes.Buffer
	w, err := NewSQLWriter(&script, "sqlite", []string{"test"}, ConflictFail)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(ctx, r, snap.Manifest, plan, id, w); err != nil {
		t.Fatal(err)
	}
	w.Finish()
	if !bytes.Contains(script.Bytes(), []byte(" AS TEXT)")) {
		t.Error("the script writes a CR raw")
	}
	cp := filepath.Join(dir, "kopie.db")
	copyFile(t, src, cp)
	tg, _ := OpenTarget(ctx, "sqlite", cp, tables, ConflictFail)
	plan.Erase(ctx, tg, id)
	tg.Commit(ctx)
	// The sqlite3 shell is what support staff use; it drops a CR before an
	// LF inside a literal, which the script must survive.
	if sh, err := exec.LookPath("sqlite3"); err == nil {
		cmd := exec.Command(sh, "-bail", cp)
		cmd.Stdin = bytes.NewReader(script.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v\n%s", err, out)
		}
	} else if _, err := openSQLite(t, cp).Exec(script.String()); err != nil {
		t.Fatalf("script does not load: %v", err)
	}
	cdb := openSQLite(t, cp)
	orig := openSQLite(t, src)
	for _, tm := range tables {
		if tm.Name == "audit_log" {
			continue
		}
		if want, got := sqliteRows(t, orig, tm, "1"), sqliteRows(t, cdb, tm, "1"); !reflect.DeepEqual(want, got) {
			t.Errorf("after the script, %s differs", tm.Name)
		}
	}
	var js bytes.Buffer
	jw, _ := NewJSONWriter(&js, map[string]string{"dossier_id": "2"})
	if _, err := Extract(ctx, r, snap.Manifest, plan, "2", jw); err != nil {
		t.Fatal(err)
	}
	jw.Finish()
	var doc struct {
		Tables []struct {
			Table string           `json:"table"`
			Rows  []map[string]any `json:"rows"`
		} `json:"tables"`
	}
	if err := jsonUnmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("JSON output: %v", err)
	}
	if len(doc.Tables) != len(plan.Steps) || doc.Tables[0].Table != "clients" || len(doc.Tables[0].Rows) != 1 || doc.Tables[0].Rows[0]["id"] != float64(2) {
		t.Errorf("JSON document: %+v", doc.Tables[0])
	}
}
