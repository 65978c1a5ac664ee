package mariadb_test

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/synth"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newRepo creates a tenant repository at two local locations.
func newRepo(t testing.TB, tenant string) *repo.Repo {
	t.Helper()
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	locs := []repo.Location{local.New("amsterdam", t.TempDir()), local.New("groningen", t.TempDir())}
	r, _, err := repo.Init(testCtx(t), tenant, locs, repo.Options{Master: mk, PackSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSynthPracticeThroughRepo generates a synthetic practice database
// (synth.MariaDB through database/sql), backs it up into a repository with
// backup.Database, restores it with restore.ToDatabase (which compares
// every table's fingerprint with the manifest) and compares the rows. A
// working day later, a second snapshot restores as well.
func TestSynthPracticeThroughRepo(t *testing.T) {
	ctx := testCtx(t)
	srv := mariadbtest.Start(t)
	src := srv.CreateDB(t, "practice")
	db := mariadbtest.OpenDSN(t, src)
	scale := synth.ScaleForBytes(2 << 20)
	if err := synth.Generate(ctx, db, synth.MariaDB, scale, 7); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, "praktijk-maria")
	dst := srv.CreateDB(t, "practice_restored")
	for day := 0; day < 2; day++ {
		if day > 0 {
			if _, err := synth.WorkingDay(ctx, db, synth.MariaDB, scale, 7, day); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := backup.Database(ctx, r, mariadb.New(src, r.FingerprintKey(), mariadb.Options{}), repo.BackupOptions{}); err != nil {
			t.Fatal(err)
		}
		snaps, err := r.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) != day+1 {
			t.Fatalf("%d snapshots after day %d", len(snaps), day)
		}
		snap := snaps[len(snaps)-1]
		if m := snap.Manifest; m.Engine != "mariadb" || !strings.HasPrefix(m.ServerVersion, "MariaDB ") {
			t.Errorf("manifest engine %q, server %q", m.Engine, m.ServerVersion)
		}
		// The second restore replaces the first: Force.
		tg, err := mariadb.NewTarget(ctx, dst, r.FingerprintKey(), mariadb.TargetOptions{Force: day > 0})
		if err != nil {
			t.Fatal(err)
		}
		got, err := restore.ToDatabase(ctx, r, snap, tg, restore.DBOptions{Parallel: 3})
		tg.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !got.OK || got.Rows < 1000 {
			t.Fatalf("restore: ok %v, %d rows", got.OK, got.Rows)
		}
		srcDB, dstDB := mariadbtest.OpenDSN(t, src), mariadbtest.OpenDSN(t, dst)
		for _, table := range append(synth.TableNames(), synth.ViewOpenInvoices) {
			if want, got := count(t, srcDB, table), count(t, dstDB, table); want != got {
				t.Errorf("day %d: %s: %d rows restored, %d original", day, table, got, want)
			}
		}
		if want, got := tableChecksums(t, srcDB), tableChecksums(t, dstDB); !reflect.DeepEqual(want, got) {
			t.Errorf("day %d: CHECKSUM TABLE differs:\n%v\n%v", day, want, got)
		}
	}
}

func count(t testing.TB, db *sql.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("SELECT COUNT(*) FROM " + quote(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func quote(id string) string { return mariadbtest.QuoteIdent(id) }

// tableChecksums returns CHECKSUM TABLE of every base table.
func tableChecksums(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range synth.TableNames() {
		var name string
		var sum sql.NullString
		if err := db.QueryRow("CHECKSUM TABLE "+quote(table)).Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		out[table] = sum.String
	}
	return out
}
