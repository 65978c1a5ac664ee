package dossier

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/source/sqlite"
)

// TestEdgesWithoutForeignKeys: a legacy schema declares no foreign keys;
// the profile's edges (every table with a pid column → patient_data.pid,
// one explicit column edge) make the dossier, and exclude keeps a table
// out even though it has a pid.
func TestEdgesWithoutForeignKeys(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "legacy.db")
	db := openSQLite(t, path)
	for _, s := range []string{
		`CREATE TABLE patient_data (pid TEXT PRIMARY KEY, name TEXT)`,
		`CREATE TABLE consults (id INTEGER PRIMARY KEY, pid TEXT, note TEXT)`,
		`CREATE TABLE prescriptions (id INTEGER PRIMARY KEY, consult_id INTEGER, drug TEXT)`,
		`CREATE TABLE lab (id INTEGER PRIMARY KEY, pid TEXT, result REAL)`,
		`CREATE TABLE "log ""x""" (pid TEXT, what TEXT)`,
		`INSERT INTO patient_data VALUES ('P1', 'Anna'), ('P2', 'Bert'), ('P10', 'Cor')`,
		`INSERT INTO consults VALUES (1, 'P1', 'a' || char(13) || char(10) || 'b'), (2, 'P2', 'x'), (3, 'P1', NULL), (4, 'P10', 'y')`,
		`INSERT INTO prescriptions VALUES (1, 1, 'paracetamol'), (2, 2, 'ibuprofen'), (3, 3, 'x'), (4, NULL, 'orphan')`,
		`INSERT INTO lab VALUES (1, 'P1', 3.0), (2, 'P2', 4.5)`,
		`INSERT INTO "log ""x""" VALUES ('P1', 'viewed'), ('P2', 'viewed')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	r := newRepo(t, "legacy")
	snap, tables := snapshotOf(t, r, sqlite.New(path, r.FingerprintKey()))
	for _, tm := range tables {
		if len(tm.ForeignKeys) > 0 {
			t.Fatalf("%s declares foreign keys", tm.Name)
		}
	}
	profile := &config.Dossier{Root: "patient_data", Key: "pid", Exclude: []string{"lab"}, Edges: []config.DossierEdge{
		{From: "*.pid", To: "patient_data.pid"},
		{From: "prescriptions.consult_id", To: "consults.id"},
	}}
	plan, err := NewPlan("sqlite", tables, profile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Tables(), ","); got != `patient_data,consults,prescriptions,log "x"` && got != `patient_data,consults,log "x",prescriptions` {
		t.Fatalf("plan: %s", got)
	}
	var c collector
	if _, err := Extract(ctx, r, snap.Manifest, plan, "P1", &c); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"patient_data":  {"tP1\ttAnna\n"},
		"consults":      {"i1\ttP1\tta\\r\\nb\n", "i3\ttP1\t\\N\n"},
		"prescriptions": {"i1\ti1\ttparacetamol\n", "i3\ti3\ttx\n"},
		`log "x"`:       {"tP1\ttviewed\n"},
	}
	if got := c.sorted(); !reflect.DeepEqual(got, want) {
		t.Errorf("dossier P1:\n got %q\nwant %q", got, want)
	}
}
