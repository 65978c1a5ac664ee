package restore

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

// TestReapplyErasures: a full restore of a snapshot re-applies every
// erasure of the tenant in the register, whatever its date (issue 15 §3:
// an erasure dated the snapshot's day, or before it, was skipped and the
// dossier came back), ids compared as the key column holds them, and
// never another tenant's.
func TestReapplyErasures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 9); err != nil {
		t.Fatal(err)
	}
	mk, _ := repo.GenerateMasterKey()
	r, _, err := repo.Init(ctx, "praktijk", []repo.Location{local.New("a", t.TempDir()), local.New("b", t.TempDir())}, repo.Options{Master: mk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Database(ctx, r, sqlite.New(src, r.FingerprintKey()), repo.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	started := snap.Manifest.Started
	erasures := []dossier.Erasure{
		{Tenant: "praktijk", ID: "4", Time: started.Add(-24 * time.Hour)}, // dated before the snapshot: still removed
		{Tenant: "praktijk", ID: "006", Time: started.Add(time.Hour)},     // an integer key spelt with zeros
		{Tenant: "praktijk", ID: "6", Time: started.Add(2 * time.Hour)},   // the same dossier again
		{Tenant: "praktijk", ID: "8", Time: started.Add(48 * time.Hour)},
		{Tenant: "other", ID: "10", Time: started.Add(time.Hour)},
	}
	profile := &config.Dossier{Root: "clients", Key: "id"}

	dst := filepath.Join(dir, "full.db")
	target, err := sqlite.NewTarget(dst, r.FingerprintKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ToDatabase(ctx, r, snap, target, DBOptions{}); err != nil {
		t.Fatal(err)
	}
	target.Close()
	if _, err := ReapplyErasures(ctx, snap, nil, erasures, dst); err == nil || !strings.Contains(err.Error(), "no dossier profile") {
		t.Errorf("without a profile: %v", err)
	}
	res, err := ReapplyErasures(ctx, snap, profile, erasures, dst)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 3 || res.Rows < 3 {
		t.Errorf("re-applied %d erasures, %d rows; want 3", res.Applied, res.Rows)
	}
	db, _ := sql.Open("sqlite", dst)
	defer db.Close()
	for id, want := range map[int]int{4: 0, 5: 1, 6: 0, 8: 0, 10: 1} {
		var n, inv int
		db.QueryRow(`SELECT count(*) FROM clients WHERE id = ?`, id).Scan(&n)
		db.QueryRow(`SELECT count(*) FROM invoice_lines WHERE invoice_id IN (SELECT id FROM invoices WHERE client_id = ?)`, id).Scan(&inv)
		if n != want || (want == 0 && inv != 0) {
			t.Errorf("client %d: %d rows (invoice lines %d), want %d", id, n, inv, want)
		}
	}
}
