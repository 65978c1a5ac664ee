package dossier

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

// smallChunks makes a tiny practice span many chunks, so that an index
// has something to leave out.
var smallChunks = chunk.Params{Min: 256, Avg: 1024, Max: 8 << 10}

func newRepoChunks(t testing.TB, tenant string, cp chunk.Params) *repo.Repo {
	t.Helper()
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	locs := []repo.Location{local.New("amsterdam", t.TempDir()), local.New("groningen", t.TempDir())}
	r, _, err := repo.Init(testCtx(t), tenant, locs, repo.Options{Master: mk, Chunker: cp, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fullScan hides a repository's row indexes: Extract reads every stream
// whole, as it did before the index.
type fullScan struct{ r *repo.Repo }

func (f fullScan) StreamReader(ctx context.Context, s *repo.Stream) io.ReadCloser {
	return f.r.StreamReader(ctx, s)
}

// indexedSnapshot backs up eng with the row index of profile and returns
// the newest snapshot and its plan.
func indexedSnapshot(t testing.TB, r *repo.Repo, eng source.Engine, engine string, profile *config.Dossier) (repo.SnapshotInfo, *Plan) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := backup.DatabaseIndexed(ctx, r, eng, repo.BackupOptions{}, IndexColumns(engine, profile)); err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := backup.Tables(snap.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(engine, tables, profile)
	if err != nil {
		t.Fatal(err)
	}
	return snap, plan
}

// sameDossier extracts dossier id from snap through the index and by a
// full scan and fails unless rows, counts and shared rows are equal. It
// returns the chunks read and the chunks of the member tables.
func sameDossier(t *testing.T, r *repo.Repo, snap repo.SnapshotInfo, plan *Plan, id string) (read, all int) {
	t.Helper()
	ctx := testCtx(t)
	var ci, cf collector
	ri, erri := Extract(ctx, r, snap.Manifest, plan, id, &ci)
	rf, errf := Extract(ctx, fullScan{r}, snap.Manifest, plan, id, &cf)
	if (erri == nil) != (errf == nil) || erri != nil && errors.Is(erri, ErrNotFound) != errors.Is(errf, ErrNotFound) {
		t.Fatalf("dossier %s: via the index: %v; by a full scan: %v", id, erri, errf)
	}
	if erri != nil {
		return 0, 0
	}
	if !reflect.DeepEqual(ci.sorted(), cf.sorted()) {
		t.Fatalf("dossier %s: rows via the index differ from a full scan's", id)
	}
	if ri.Rows != rf.Rows || !reflect.DeepEqual(ri.Shared, rf.Shared) || len(ri.Tables) != len(rf.Tables) {
		t.Fatalf("dossier %s: results differ: %d/%d rows, shared %v / %v", id, ri.Rows, rf.Rows, ri.Shared, rf.Shared)
	}
	for i, tc := range ri.Tables {
		if tc.Rows != rf.Tables[i].Rows {
			t.Fatalf("dossier %s: %s: %d rows via the index, %d by a full scan", id, tc.Table, tc.Rows, rf.Tables[i].Rows)
		}
		if tc.Read != "index" {
			t.Fatalf("dossier %s: %s read %s (%s)", id, tc.Table, tc.Read, tc.ReadReason)
		}
		if f := rf.Tables[i]; f.Read != "full" || f.ChunksRead != f.Chunks {
			t.Fatalf("full scan of %s reads %s, %d of %d chunks", f.Table, f.Read, f.ChunksRead, f.Chunks)
		}
		read += tc.ChunksRead
		all += tc.Chunks
	}
	return read, all
}

// TestIndexEqualsFullScanSQLite: over several nights of a working
// practice, every dossier of random clients (and ids that exist nowhere)
// is the same via the row index as by a full scan, and the index reads
// fewer chunks.
func TestIndexEqualsFullScanSQLite(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 11); err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, src)
	r := newRepoChunks(t, "praktijk", smallChunks)
	indexEqualsFullScan(t, r, db, synth.SQLite, practiceProfile(), func() source.Engine { return sqlite.New(src, r.FingerprintKey()) })
}

// TestIndexEqualsFullScanPostgres is the same on PostgreSQL.
func TestIndexEqualsFullScanPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := pgGenerate(t, srv, "idx_equal", 12)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := newRepoChunks(t, "praktijk", smallChunks)
	indexEqualsFullScan(t, r, db, synth.Postgres, practiceProfile(), func() source.Engine { return postgres.New(dsn, r.FingerprintKey(), postgres.Options{}) })
}

// TestIndexEqualsFullScanMariaDB is the same on MariaDB without declared
// foreign keys: every reference is an edges: entry of the profile.
func TestIndexEqualsFullScanMariaDB(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := mariaPractice(t, srv, "idx_equal", synth.Tiny, 14, true)
	db := mariadbtest.OpenDSN(t, dsn)
	r := newRepoChunks(t, "praktijk", smallChunks)
	indexEqualsFullScan(t, r, db, synth.MariaDB, mariaProfile(), func() source.Engine { return mariadb.New(dsn, r.FingerprintKey(), mariadb.Options{}) })
}

func indexEqualsFullScan(t *testing.T, r *repo.Repo, db *sql.DB, d synth.Dialect, profile *config.Dossier, eng func() source.Engine) {
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(uint64(d), 19))
	var read, all int
	for night := range 4 {
		if night > 0 {
			if _, err := synth.WorkingDay(ctx, db, d, synth.Tiny, 11, night); err != nil {
				t.Fatal(err)
			}
		}
		snap, plan := indexedSnapshot(t, r, eng(), d.String(), profile)
		ids := []string{"1", strconv.Itoa(synth.Tiny.Clients), "999999", "-1"}
		for range 8 {
			ids = append(ids, strconv.Itoa(1+rng.IntN(synth.Tiny.Clients+5)))
		}
		for _, id := range ids {
			rd, a := sameDossier(t, r, snap, plan, id)
			read, all = read+rd, all+a
		}
	}
	t.Logf("read %d of %d chunks via the index", read, all)
	if read*2 > all {
		t.Errorf("the index read %d of %d chunks: it leaves out too little to be worth it", read, all)
	}
}

// TestProfileChangeFallsBack: a profile that follows a reference the
// snapshot's index does not cover reads that table whole, says so, and
// still gives the full scan's dossier; an older snapshot without any
// index too.
func TestProfileChangeFallsBack(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 13); err != nil {
		t.Fatal(err)
	}
	r := newRepoChunks(t, "praktijk", smallChunks)
	// Indexed for a profile that excludes reports.
	narrow := &config.Dossier{Root: "clients", Key: "id", Exclude: []string{"reports"}}
	snap, _ := indexedSnapshot(t, r, sqlite.New(src, r.FingerprintKey()), "sqlite", narrow)
	tables, _ := backup.Tables(snap.Manifest)
	plan, err := NewPlan("sqlite", tables, practiceProfile())
	if err != nil {
		t.Fatal(err)
	}
	var ci, cf collector
	ri, err := Extract(ctx, r, snap.Manifest, plan, "3", &ci)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, "3", &cf); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ci.sorted(), cf.sorted()) {
		t.Fatal("dossier after a profile change differs from the full scan's")
	}
	for _, tc := range ri.Tables {
		want := "index"
		if tc.Table == "reports" {
			want = "full"
		}
		if tc.Read != want || want == "full" && tc.ReadReason == "" {
			t.Errorf("%s: read %q (%s), want %s", tc.Table, tc.Read, tc.ReadReason, want)
		}
	}
	// A snapshot written without an index (older kluis).
	old, oldTables := snapshotOf(t, r, sqlite.New(src, r.FingerprintKey()))
	oplan, _ := NewPlan("sqlite", oldTables, practiceProfile())
	ro, err := Extract(ctx, r, old.Manifest, oplan, "3", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range ro.Tables {
		if tc.Read != "full" || tc.ReadReason != "the snapshot has no row index for this table" {
			t.Errorf("%s without an index: %s (%s)", tc.Table, tc.Read, tc.ReadReason)
		}
	}
	if ro.Rows != ri.Rows {
		t.Errorf("old snapshot: %d rows, indexed %d", ro.Rows, ri.Rows)
	}
}

// damaged serves a repository whose row indexes are replaced by fn's.
type damaged struct {
	*repo.Repo
	fn func([]byte) []byte
}

func (d damaged) RowIndex(ctx context.Context, s *repo.Stream) ([]byte, error) {
	b, err := d.Repo.RowIndex(ctx, s)
	if err != nil {
		return nil, err
	}
	return d.fn(append([]byte(nil), b...)), nil
}

// TestDamagedIndexNeverYieldsAWrongDossier: an index that does not decode
// or does not fit its stream is read around (the table read whole, the
// reason given); the index of another table, or one whose row counts lie,
// is refused — the dossier is never one with rows missing.
func TestDamagedIndexNeverYieldsAWrongDossier(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 17); err != nil {
		t.Fatal(err)
	}
	r := newRepoChunks(t, "praktijk", smallChunks)
	snap, plan := indexedSnapshot(t, r, sqlite.New(src, r.FingerprintKey()), "sqlite", practiceProfile())
	var want collector
	if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, "5", &want); err != nil {
		t.Fatal(err)
	}
	// The index of the biggest member table, served for every table.
	var big *repo.Stream
	for _, st := range plan.Steps {
		s, _ := snap.Manifest.Stream(backup.TableStream(st.Table.Name))
		if big == nil || len(s.Blobs) > len(big.Blobs) {
			big = s
		}
	}
	bigIndex, err := r.RowIndex(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func([]byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)/2] },
		"flipped magic": func(b []byte) []byte { b[0] ^= 1; return b },
		"flipped bit":   func(b []byte) []byte { b[len(b)/3] ^= 0x10; return b },
		"zeroed filter": func(b []byte) []byte { clear(b[len(b)-64:]); return b },
		"another table": func([]byte) []byte { return bigIndex },
	}
	for name, fn := range cases {
		var got collector
		res, err := Extract(ctx, damaged{r, fn}, snap.Manifest, plan, "5", &got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got.sorted(), want.sorted()) {
			t.Errorf("%s: a damaged index gave a different dossier", name)
		}
		for _, tc := range res.Tables {
			s, _ := snap.Manifest.Stream(backup.TableStream(tc.Table))
			if name == "another table" && s == big {
				continue
			}
			if tc.Read != "full" || !strings.HasPrefix(tc.ReadReason, "row index damaged: ") {
				t.Errorf("%s: %s read %s (%s)", name, tc.Table, tc.Read, tc.ReadReason)
			}
		}
	}
	// A missing index blob: the stream's index cannot be read.
	var got collector
	res, err := Extract(ctx, damaged{r, func([]byte) []byte { return nil }}, snap.Manifest, plan, "5", &got)
	if err != nil || !reflect.DeepEqual(got.sorted(), want.sorted()) || res.Tables[0].Read != "full" {
		t.Fatalf("empty index: %v", err)
	}
}

// TestTamperedIndexAtRestIsDetected: a byte of a sealed row index blob
// changed at every location does not authenticate: the dossier is either
// read without that index (and equal to a full scan's) or fails as
// corrupt — never a dossier with rows missing.
func TestTamperedIndexAtRestIsDetected(t *testing.T) {
	t.Run("head", func(t *testing.T) {
		tamperedIndexAtRest(t, func(ri *repo.RowIndexRef) []chunk.ID { return ri.Blobs[:1] })
	})
	t.Run("page", func(t *testing.T) {
		tamperedIndexAtRest(t, func(ri *repo.RowIndexRef) []chunk.ID { return ri.Pages })
	})
}

// tamperedIndexAtRest changes, at every location, a byte of each blob
// pick names in the last member table's row index.
func tamperedIndexAtRest(t *testing.T, pick func(*repo.RowIndexRef) []chunk.ID) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 23); err != nil {
		t.Fatal(err)
	}
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	open := func() *repo.Repo {
		locs := []repo.Location{local.New("amsterdam", dirs[0]), local.New("groningen", dirs[1])}
		r, err := repo.Open(ctx, "praktijk", locs, repo.Options{Master: mk})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	locs := []repo.Location{local.New("amsterdam", dirs[0]), local.New("groningen", dirs[1])}
	r, _, err := repo.Init(ctx, "praktijk", locs, repo.Options{Master: mk, Chunker: smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	snap, plan := indexedSnapshot(t, r, sqlite.New(src, r.FingerprintKey()), "sqlite", practiceProfile())
	var want collector
	if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, "4", &want); err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := snap.Manifest.Stream(backup.TableStream(plan.Steps[len(plan.Steps)-1].Table.Name))
	for _, id := range pick(s.RowIndex) {
		bl, ok := idx.Lookup(id)
		if !ok {
			t.Fatal("index blob not in the index")
		}
		h := bl.Pack.String()
		for _, d := range dirs {
			p := filepath.Join(d, "praktijk", "data", h[:2], h)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[bl.Offset+bl.Length/2] ^= 0x40
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got collector
	res, err := Extract(ctx, open(), snap.Manifest, plan, "4", &got)
	if err != nil {
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("tampered index: %v, not reported as corrupt", err)
		}
		t.Logf("tampered pack: %v", err)
		return
	}
	if !reflect.DeepEqual(got.sorted(), want.sorted()) {
		t.Fatal("a tampered index gave a different dossier")
	}
	last := res.Tables[len(res.Tables)-1]
	if last.Read != "full" || !strings.HasPrefix(last.ReadReason, "row index unreadable") {
		t.Fatalf("%s: read %s (%s)", last.Table, last.Read, last.ReadReason)
	}
}

// pageServer serves a repository whose row index pages pass through fn (nil:
// as stored), counting the page reads per index.
type pageServer struct {
	*repo.Repo
	fn    func(ri *repo.RowIndexRef, n int, b []byte, err error) ([]byte, error)
	mu    sync.Mutex
	reads map[*repo.RowIndexRef]int
	bytes int // plaintext bytes of the pages read
}

func (p *pageServer) RowIndexPage(ctx context.Context, ri *repo.RowIndexRef, n int) ([]byte, error) {
	b, err := p.Repo.RowIndexPage(ctx, ri, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reads == nil {
		p.reads = map[*repo.RowIndexRef]int{}
	}
	p.reads[ri]++
	p.bytes += len(b)
	if p.fn != nil {
		return p.fn(ri, n, b, err)
	}
	return b, err
}

// TestDossierReadsOnlyItsPages: a dossier reads, of each member table's
// paged index, the pages its keys fall in — the root table's (one key)
// exactly one — and of all the member tables' pages fewer than all. A key
// falls in a page by its keyed hash, random per repository, and a member
// table here has two or three pages: a dossier with many rows can fall in
// every one of them (dossier 201 did in about one run in ten), so only
// two of the three dossiers must read fewer than all pages.
func TestDossierReadsOnlyItsPages(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	sc := synth.ScaleForBytes(3 << 20)
	if err := synth.GenerateSQLiteFile(ctx, src, sc, 29); err != nil {
		t.Fatal(err)
	}
	r := newRepoChunks(t, "praktijk", smallChunks)
	snap, plan := indexedSnapshot(t, r, sqlite.New(src, r.FingerprintKey()), "sqlite", practiceProfile())
	total, multi, root := 0, 0, ""
	for _, st := range plan.Steps {
		if st.Root {
			root = st.Table.Name
		}
		s, _ := snap.Manifest.Stream(backup.TableStream(st.Table.Name))
		if s.RowIndex == nil || len(s.RowIndex.Pages) == 0 {
			t.Fatalf("%s has no paged index", st.Table.Name)
		}
		total += len(s.RowIndex.Pages)
		if len(s.RowIndex.Pages) > 1 {
			multi++
		}
	}
	if multi < 2 {
		t.Fatalf("only %d member tables have more than one page: the test proves nothing", multi)
	}
	fewer := 0
	for _, id := range []string{"1", "17", strconv.Itoa(sc.Clients)} {
		var want, got collector
		if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, id, &want); err != nil {
			t.Fatal(err)
		}
		p := &pageServer{Repo: r}
		res, err := Extract(ctx, p, snap.Manifest, plan, id, &got)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.sorted(), want.sorted()) {
			t.Fatalf("dossier %s differs from the full scan's", id)
		}
		read := 0
		for _, tc := range res.Tables {
			s, _ := snap.Manifest.Stream(backup.TableStream(tc.Table))
			n := p.reads[s.RowIndex]
			read += n
			if tc.Read != "index" || n > len(s.RowIndex.Pages) {
				t.Fatalf("%s: read %s, %d of %d pages", tc.Table, tc.Read, n, len(s.RowIndex.Pages))
			}
			if tc.Table == root && n != 1 {
				t.Errorf("root table %s: %d pages read for one key", tc.Table, n)
			}
		}
		t.Logf("dossier %s: %d of %d pages read", id, read, total)
		if read < total {
			fewer++
		}
	}
	if fewer < 2 {
		t.Errorf("%d of 3 dossiers read fewer than all %d pages, want at least 2", fewer, total)
	}
}

// TestDamagedPageNeverYieldsAWrongDossier: a page that is missing, not
// the one asked for (another table's), truncated or damaged is read
// around: the table read whole, the reason given, the dossier the full
// scan's.
func TestDamagedPageNeverYieldsAWrongDossier(t *testing.T) {
	ctx := testCtx(t)
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 31); err != nil {
		t.Fatal(err)
	}
	r := newRepoChunks(t, "praktijk", smallChunks)
	snap, plan := indexedSnapshot(t, r, sqlite.New(src, r.FingerprintKey()), "sqlite", practiceProfile())
	var want collector
	if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, "5", &want); err != nil {
		t.Fatal(err)
	}
	var root *repo.Stream
	for _, st := range plan.Steps {
		if st.Root {
			root, _ = snap.Manifest.Stream(backup.TableStream(st.Table.Name))
		}
	}
	rootPage, err := r.RowIndexPage(ctx, root.RowIndex, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		fn     func(ri *repo.RowIndexRef, n int, b []byte, err error) ([]byte, error)
		reason string
	}{
		"missing": {func(*repo.RowIndexRef, int, []byte, error) ([]byte, error) {
			return nil, repo.ErrNotFound
		}, "row index unreadable: "},
		"another table's": {func(ri *repo.RowIndexRef, _ int, b []byte, _ error) ([]byte, error) {
			if ri == root.RowIndex {
				return b, nil
			}
			return rootPage, nil
		}, "row index damaged: "},
		"truncated": {func(_ *repo.RowIndexRef, _ int, b []byte, _ error) ([]byte, error) {
			return b[:len(b)-1], nil
		}, "row index damaged: "},
		"flipped byte": {func(_ *repo.RowIndexRef, _ int, b []byte, _ error) ([]byte, error) {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 8
			return b, nil
		}, "row index damaged: "},
	}
	for name, c := range cases {
		var got collector
		res, err := Extract(ctx, &pageServer{Repo: r, fn: c.fn}, snap.Manifest, plan, "5", &got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got.sorted(), want.sorted()) {
			t.Errorf("%s: a damaged page gave a different dossier", name)
		}
		for _, tc := range res.Tables {
			if name == "another table's" && backup.TableStream(tc.Table) == root.Name {
				continue
			}
			if tc.Read != "full" || !strings.HasPrefix(tc.ReadReason, c.reason) {
				t.Errorf("%s: %s read %s (%s)", name, tc.Table, tc.Read, tc.ReadReason)
			}
		}
	}
}
