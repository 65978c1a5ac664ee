package dossier

import (
	"database/sql"
	"reflect"
	"strconv"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// TestPostgresDossierFromRowDeltas extracts dossiers from a snapshot whose
// tables are row deltas (a working day after the first night): they equal
// the hand-written SQL on the database as it was at that backup.
func TestPostgresDossierFromRowDeltas(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testCtx(t)
	src := pgGenerate(t, srv, "dossier_delta", 23)
	r := newRepo(t, "praktijk-pg-delta")
	snapshotOf(t, r, postgres.New(src, r.FingerprintKey(), postgres.Options{}))
	db, err := sql.Open("pgx", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := synth.WorkingDay(ctx, db, synth.Postgres, synth.Tiny, 23, 1); err != nil {
		t.Fatal(err)
	}
	snap, tables := snapshotOf(t, r, postgres.New(src, r.FingerprintKey(), postgres.Options{}))
	deltas := 0
	for _, s := range snap.Manifest.Streams {
		if s.IsDelta() {
			deltas++
		}
	}
	if deltas == 0 {
		t.Fatal("the second snapshot holds no row delta")
	}
	plan, err := NewPlan("postgres", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	conn := pgtest.ConnectDSN(t, src)
	for _, id := range []int{1, 2, 9, 17, 30} {
		var c collector
		if _, err := Extract(ctx, r, snap.Manifest, plan, strconv.Itoa(id), &c); err != nil {
			t.Fatalf("client %d: %v", id, err)
		}
		got := c.sorted()
		for _, st := range plan.Steps {
			want := pgRows(t, conn, st.Table, pgHandWritten(st.Table, id))
			if len(want)+len(got[st.Table.Name]) > 0 && !reflect.DeepEqual(want, got[st.Table.Name]) {
				t.Errorf("client %d, %s: extracted %d rows from the delta snapshot, hand-written SQL %d", id, st.Table.Name, len(got[st.Table.Name]), len(want))
			}
		}
	}
}
