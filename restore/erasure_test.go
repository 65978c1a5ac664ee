package restore

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/source"
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
	r, snap := tinySnapshot(t, dir, 9, local.New("a", t.TempDir()), local.New("b", t.TempDir()))
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

// failingFingerprint is a target whose fingerprints fail: the restore
// fails after every table was loaded.
type failingFingerprint struct{ source.Target }

func (failingFingerprint) Fingerprint(context.Context, source.Table) (source.TableResult, error) {
	return source.TableResult{}, errors.New("injected: fingerprint failed")
}

// failingLoad fails every table load after the schema was applied.
type failingLoad struct{ source.Target }

func (f failingLoad) LoadTable(ctx context.Context, t source.Table, rows io.Reader) error {
	if t.Name == "invoice_lines" {
		return errors.New("injected: load failed")
	}
	return f.Target.LoadTable(ctx, t, rows)
}

// TestFailedRestoreHonoursErasures: a restore that fails after loading
// (issue 15 §3: it skipped the re-application and left the erased dossier
// in the target) still re-applies the register; when the register cannot
// be re-applied the target is discarded.
func TestFailedRestoreHonoursErasures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, snap := tinySnapshot(t, dir, 9)
	erasures := []dossier.Erasure{{Tenant: "praktijk", ID: "3", Time: snap.Manifest.Started.Add(-time.Hour)}}
	profile := &config.Dossier{Root: "clients", Key: "id"}
	count := func(path string) int {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		n := -1
		if err := db.QueryRow(`SELECT count(*) FROM clients WHERE id = 3`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name string
		wrap func(source.Target) source.Target
	}{
		{"fingerprints fail", func(t source.Target) source.Target { return failingFingerprint{t} }},
		{"one table fails to load", func(t source.Target) source.Target { return failingLoad{t} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "full.db")
			target, err := sqlite.NewTarget(dst, r.FingerprintKey(), false)
			if err != nil {
				t.Fatal(err)
			}
			discarded := false
			_, er, err := ToDatabaseErased(ctx, r, snap, tc.wrap(target), ErasedOptions{
				Profile: profile, Erasures: erasures, Where: dst,
				Discard: func(context.Context) error { discarded = true; return os.Remove(dst) },
			})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("restore: %v", err)
			}
			if discarded || er == nil || er.Applied != 1 {
				t.Fatalf("erasures: %+v, discarded %v", er, discarded)
			}
			if n := count(dst); n != 0 {
				t.Errorf("the failed restore left the erased dossier in the target (%d rows)", n)
			}
		})
	}
	t.Run("register cannot be re-applied", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "full.db")
		target, err := sqlite.NewTarget(dst, r.FingerprintKey(), false)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = ToDatabaseErased(ctx, r, snap, failingFingerprint{target}, ErasedOptions{
			Profile: nil, Erasures: erasures, Where: dst, // no profile: nothing can be re-applied
			Discard: func(context.Context) error { return os.Remove(dst) },
		})
		if err == nil || !strings.Contains(err.Error(), "the target was dropped") {
			t.Fatalf("restore: %v", err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the target holding an erased dossier is still there: %v", err)
		}
	})
}

// tinySnapshot backs up a tiny synthetic SQLite practice (seed), made in
// dir, to a new repository at locs (one local location when none) and
// returns its snapshot.
func tinySnapshot(t *testing.T, dir string, seed uint64, locs ...repo.Location) (*repo.Repo, repo.SnapshotInfo) {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(dir, "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, seed); err != nil {
		t.Fatal(err)
	}
	if len(locs) == 0 {
		locs = []repo.Location{local.New("a", t.TempDir())}
	}
	mk, _ := repo.GenerateMasterKey()
	r, _, err := repo.Init(ctx, "praktijk", locs, repo.Options{Master: mk})
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
	return r, snap
}
