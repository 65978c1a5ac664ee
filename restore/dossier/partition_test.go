package dossier

import (
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source/postgres"
)

// TestPostgresPerPartitionForeignKeys (issue 16): a partitioned table
// whose foreign keys are declared on each monthly partition except the
// newest (as a public sample schema does). The newest partition's rows
// belong to the dossier too, and show says which reference made each
// table a member.
func TestPostgresPerPartitionForeignKeys(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testCtx(t)
	dsn := srv.CreateDB(t, "partition_fk")
	pgtest.ExecDSN(t, dsn, `
CREATE TABLE clients (id int PRIMARY KEY, name text);
CREATE TABLE visits (id int, client_id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE visits_2024_01 PARTITION OF visits FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE visits_2024_02 PARTITION OF visits FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE visits_2024_03 PARTITION OF visits FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
ALTER TABLE visits_2024_01 ADD CONSTRAINT visits_2024_01_client_fk FOREIGN KEY (client_id) REFERENCES clients (id);
ALTER TABLE visits_2024_02 ADD CONSTRAINT visits_2024_02_client_fk FOREIGN KEY (client_id) REFERENCES clients (id);
CREATE TABLE notes (id int PRIMARY KEY, visit_id int, visit_at date, body text);
INSERT INTO clients VALUES (1, 'Jansen'), (2, 'de Vries');
INSERT INTO visits VALUES (10, 1, '2024-01-05'), (11, 2, '2024-01-06'), (20, 1, '2024-02-07'), (30, 1, '2024-03-08'), (31, 1, '2024-03-09'), (32, 2, '2024-03-10');
INSERT INTO notes VALUES (1, 30, '2024-03-08', 'nieuwste maand'), (2, 32, '2024-03-10', 'ander');
`)
	r := newRepo(t, "praktijk-partities")
	snap, tables := snapshotOf(t, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}))
	profile := &config.Dossier{Root: "clients", Key: "id", Edges: []config.DossierEdge{{From: "notes.visit_id", To: "visits.id"}}}
	plan, err := NewPlan("postgres", tables, profile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Extract(ctx, r, snap.Manifest, plan, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TableCount{}
	for _, tc := range res.Tables {
		got[tc.Table] = tc
		t.Logf("%-28s %d  member by %s", tc.Table, tc.Rows, tc.Via)
	}
	want := map[string]int64{"public.clients": 1, "public.visits_2024_01": 1, "public.visits_2024_02": 1, "public.visits_2024_03": 2, "public.notes": 1}
	for name, n := range want {
		if got[name].Rows != n {
			t.Errorf("%s: %d dossier rows, want %d", name, got[name].Rows, n)
		}
	}
	if v := got["public.visits_2024_03"].Via; !strings.Contains(v, "foreign key visits_2024_01_client_fk") || !strings.Contains(v, "declared on public.visits_2024_01") {
		t.Errorf("show does not say which reference made visits_2024_03 a member: %q", v)
	}
	if v := got["public.clients"].Via; !strings.HasPrefix(v, "root") {
		t.Errorf("root: %q", v)
	}
	if v := got["public.notes"].Via; !strings.HasPrefix(v, "edges: entry (visit_id) -> public.visits (id)") {
		t.Errorf("notes: %q", v)
	}
}
