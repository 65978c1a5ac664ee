package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/s3"
)

// One hostile location (issue 14, points 1 and 2): an attacker who holds
// one location's credential, and no kluis key, deletes, plants, replays,
// overwrites and truncates objects there. Location 0 ("amsterdam") is the
// hostile one and is read first, the worst case; location 1 ("groningen")
// is untouched.

// dirFixture is a tenant repository at two local directories.
type dirFixture struct {
	t      testing.TB
	tenant string
	master repo.MasterKey
	dirs   []string
	locs   []repo.Location
}

func newDirFixture(t testing.TB, tenant string) *dirFixture {
	t.Helper()
	f := &dirFixture{t: t, tenant: tenant, master: testMaster(t)}
	for _, n := range []string{"amsterdam", "groningen"} {
		d := t.TempDir()
		f.dirs = append(f.dirs, d)
		f.locs = append(f.locs, local.New(n, d))
	}
	return f
}

// sharedDirFixture is another tenant at the same directories.
func (f *dirFixture) sharedDirFixture(tenant string) *dirFixture {
	g := *f
	g.tenant = tenant
	g.master = testMaster(f.t)
	return &g
}

func (f *dirFixture) opts() repo.Options {
	return repo.Options{Master: f.master, Chunker: testParams, PackSize: testPackSize}
}

func (f *dirFixture) init() *repo.Repo {
	f.t.Helper()
	r, res, err := repo.Init(context.Background(), f.tenant, f.locs, f.opts())
	if err != nil || countOK(res) != len(f.locs) {
		f.t.Fatalf("Init: %v %+v", err, res)
	}
	return r
}

// open opens the repository at the given locations (all when none).
func (f *dirFixture) open(locs ...int) *repo.Repo {
	f.t.Helper()
	var ls []repo.Location
	for _, i := range locs {
		ls = append(ls, f.locs[i])
	}
	if len(ls) == 0 {
		ls = f.locs
	}
	r, err := repo.Open(context.Background(), f.tenant, ls, f.opts())
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return r
}

func (f *dirFixture) path(i int, name string) string {
	return filepath.Join(f.dirs[i], filepath.FromSlash(name))
}

// names lists the objects of one kind at location i, sorted.
func (f *dirFixture) names(i int, kind string) []string {
	f.t.Helper()
	var out []string
	root := filepath.Join(f.dirs[i], f.tenant, kind)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp") {
			return err
		}
		rel, _ := filepath.Rel(f.dirs[i], p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func (f *dirFixture) read(i int, name string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.path(i, name))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// plant writes data under name at location i, replacing what is there.
func (f *dirFixture) plant(i int, name string, data []byte) {
	f.t.Helper()
	p := f.path(i, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		f.t.Fatal(err)
	}
	os.Remove(p) // stored objects are read-only files
	if err := os.WriteFile(p, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *dirFixture) remove(i int, name string) {
	f.t.Helper()
	if err := os.Remove(f.path(i, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.t.Fatal(err)
	}
}

func (f *dirFixture) has(i int, name string) bool {
	_, err := os.Stat(f.path(i, name))
	return err == nil
}

// selfNamed is the object name under which data is content-addressed.
func selfNamed(tenant, kind string, data []byte) string {
	h := sha256.Sum256(data)
	s := hex.EncodeToString(h[:])
	if kind == "data" {
		return tenant + "/data/" + s[:2] + "/" + s
	}
	return tenant + "/" + kind + "/" + s
}

// randomBytes is n bytes from a seeded generator.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0x5e})
	rng.Read(b)
	return b
}

// checkLocations runs Check with ReadData and returns it by location.
func checkLocations(t testing.TB, r *repo.Repo) map[string]repo.LocationCheck {
	t.Helper()
	cs, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	out := map[string]repo.LocationCheck{}
	for _, c := range cs {
		out[c.Location] = c
	}
	return out
}

// Point 1: an index object the attacker kept, put back after prune
// removed it and after the chunks it names were stored again in new
// packs, must not make prune delete the new packs (before the fix the
// in-memory index kept the first location seen per blob, in map order,
// so the attack worked about every second time: the test repeats it for
// four tenants). Afterwards every snapshot restores from the untouched
// location alone, byte for byte, the untouched location passes check, and
// check at the hostile location names the replayed index.
func TestReplayedIndexCannotMakePruneDeleteLiveData(t *testing.T) {
	ctx := context.Background()
	base := newDirFixture(t, "praktijk-0")
	for k := range 4 {
		f := base.sharedDirFixture("praktijk-" + string(rune('0'+k)))
		a := randomStream("a", uint64(10+k), 384<<10)
		b := textStream("b", loremParagraph, 128<<10)
		r := f.init()
		s1 := backup(t, r, a)
		kept := map[string][]byte{}
		for _, n := range f.names(0, "index") {
			kept[n] = f.read(0, n)
		}
		if _, err := r.Forget(ctx, []repo.Hash{s1.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		for n := range kept {
			if f.has(0, n) {
				t.Fatalf("prune left index %s", n)
			}
		}
		// The same chunks again, in new packs.
		s2 := backup(t, f.open(), a, b)
		if s2.Stats.New < 384<<10 {
			t.Fatalf("second backup stored %d new bytes: a was not stored again", s2.Stats.New)
		}
		// The attack: the old index put back at amsterdam.
		for n, data := range kept {
			f.plant(0, n, data)
		}
		if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
			t.Fatalf("prune after the replay: %v", err)
		}
		verifyRestore(t, f.open(1), s2.ID, a, b)
		verifyRestore(t, f.open(0), s2.ID, a, b)
		verifyRestore(t, f.open(), s2.ID, a, b)
		// A backup after the replay deduplicates against the live packs
		// only, and its snapshot restores from groningen alone too.
		s3 := backup(t, f.open(), b, a)
		verifyRestore(t, f.open(1), s3.ID, b, a)
		cs := checkLocations(t, f.open())
		if c := cs["groningen"]; !c.OK() {
			t.Errorf("check at groningen: %v", c.Errors)
		}
		for n := range kept {
			if f.has(0, n) {
				// the replayed index was superseded and prune removed it
				t.Errorf("replayed index %s still at amsterdam after prune", n)
			}
		}
	}
}

// The replayed index is named by check while it is there, and ignored by
// every reader: readers and prune see only live indexes.
func TestReplayedIndexNamedByCheck(t *testing.T) {
	ctx := context.Background()
	f := newDirFixture(t, testTenant)
	a := randomStream("a", 21, 512<<10)
	r := f.init()
	s1 := backup(t, r, a)
	old := f.names(0, "index")[0]
	data := f.read(0, old)
	if _, err := r.Forget(ctx, []repo.Hash{s1.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	s2 := backup(t, f.open(), a)
	f.plant(0, old, data)
	cs := checkLocations(t, f.open())
	if !strings.Contains(strings.Join(cs["amsterdam"].Warnings, "\n"), filepath.Base(old)[:8]) {
		t.Errorf("check at amsterdam does not name the replayed index %s: %+v", old, cs["amsterdam"])
	}
	for _, c := range cs {
		if !c.OK() {
			t.Errorf("check at %s: %v", c.Location, c.Errors)
		}
	}
	idx, err := f.open().Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.open().LoadManifest(ctx, s2.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range m.Streams[0].Blobs {
		for _, c := range idx.Candidates(id) {
			if !f.has(1, "praktijk-a/data/"+c.Pack.String()[:2]+"/"+c.Pack.String()) {
				t.Fatalf("blob %s has a candidate in pack %s, which is gone: the replayed index was loaded", id, c.Pack.Short())
			}
		}
	}
}

// Point 2: undecryptable objects at one location — random bytes named by
// their own SHA-256 (under snapshots, index, data and keys), garbage under
// a name that is not its hash, another tenant's genuine manifest and
// index, a big planted index — stop nothing: snapshots list, backups,
// restores, prune and sync work; none of it reaches the untouched
// location; check names every object at the hostile location only, and
// Damage() exposes them.
func TestUndecryptableObjectsAtOneLocation(t *testing.T) {
	ctx := context.Background()
	f := newDirFixture(t, testTenant)
	other := f.sharedDirFixture("praktijk-b")
	a, b := randomStream("a", 31, 512<<10), textStream("b", loremParagraph, 256<<10)
	r := f.init()
	s1 := backup(t, r, a)
	ro := other.init()
	backup(t, ro, b)

	planted := map[string][]byte{}
	plant := func(name string, data []byte) {
		f.plant(0, name, data)
		planted[name] = data
	}
	for i, kind := range []string{"snapshots", "index", "data", "keys"} {
		data := randomBytes(uint64(100+i), 4096)
		plant(selfNamed(f.tenant, kind, data), data)
	}
	// Garbage under a name that is not its hash (a damaged object).
	garbage := randomBytes(200, 2048)
	plant(f.tenant+"/snapshots/"+strings.Repeat("ab", 32), garbage)
	// The other tenant's genuine manifest and index, in this tenant's prefix.
	for _, kind := range []string{"snapshots", "index"} {
		for _, n := range other.names(0, kind) {
			data := other.read(0, n)
			plant(selfNamed(f.tenant, kind, data), data)
		}
	}

	snaps, err := f.open().Snapshots(ctx)
	if err != nil || len(snaps) != 1 || snaps[0].ID != s1.ID {
		t.Fatalf("Snapshots with planted objects: %v, %v; want only %s", snaps, err, s1.ID.Short())
	}
	verifyRestore(t, f.open(), s1.ID, a)
	s2 := backup(t, f.open(), a, b)
	verifyRestore(t, f.open(1), s2.ID, a, b)

	res, err := f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range planted {
		if f.has(1, name) {
			t.Errorf("sync copied planted %s to groningen", name)
		}
	}
	t.Logf("sync: %+v", res)
	if res[1].Refused < 5 {
		t.Errorf("sync at groningen refused %d objects, want the planted ones that match their names", res[1].Refused)
	}

	r = f.open()
	cs := checkLocations(t, r)
	if c := cs["groningen"]; !c.OK() {
		t.Errorf("check at groningen: %v", c.Errors)
	}
	errs := strings.Join(cs["amsterdam"].Errors, "\n")
	for name := range planted {
		if strings.HasSuffix(name, "/config") {
			continue
		}
		if !strings.Contains(errs, filepath.Base(name)) {
			t.Errorf("check at amsterdam does not name %s", name)
		}
	}
	var damaged []string
	for _, d := range r.Damage() {
		if d.Location != "amsterdam" {
			t.Errorf("damage reported at %s: %+v", d.Location, d)
		}
		damaged = append(damaged, d.Object)
	}
	for name := range planted {
		if !strings.Contains(name, "/keys/") && !containsStr(damaged, name) {
			t.Errorf("Damage() lacks %s: %v", name, damaged)
		}
	}

	// Prune deletes nothing while an object it cannot prove planted does
	// not open (the garbage under a foreign name), and names it.
	_, err = f.open().Prune(ctx, repo.PruneOptions{})
	if err == nil || !strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
		t.Fatalf("prune with an unopenable manifest = %v; want a refusal naming it", err)
	}
	f.remove(0, f.tenant+"/snapshots/"+strings.Repeat("ab", 32))
	if _, err := r.Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatalf("prune with only planted objects left: %v", err)
	}
	// A Repo kept across jobs stops reporting what an operator removed.
	for _, d := range r.Damage() {
		if strings.Contains(d.Object, strings.Repeat("ab", 32)) {
			t.Errorf("removed object still reported: %+v", d)
		}
	}
	verifyRestore(t, f.open(1), s1.ID, a)
	verifyRestore(t, f.open(1), s2.ID, a, b)
	verifyRestore(t, f.open(), s2.ID, a, b)
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A big planted index (64 MiB of random bytes named by their hash) costs a
// bounded amount of memory to skip: it is authenticated while streaming,
// never held. Before, loading it cost about three times its size.
func TestPlantedBigIndexIsCheap(t *testing.T) {
	ctx := context.Background()
	f := newDirFixture(t, testTenant)
	a := randomStream("a", 41, 256<<10)
	r := f.init()
	s1 := backup(t, r, a)
	big := randomBytes(42, 64<<20)
	name := selfNamed(f.tenant, "index", big)
	f.plant(0, name, big)
	big = nil
	r = f.open()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := r.ReloadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("loading the index with a 64 MiB planted index object allocated %d KiB", got>>10)
	if got > 16<<20 {
		t.Errorf("loading the index allocated %d MiB with a 64 MiB planted object; want under 16 MiB", got>>20)
	}
	found := false
	for _, d := range r.Damage() {
		found = found || (d.Object == name && d.Planted && d.Location == "amsterdam")
	}
	if !found {
		t.Errorf("the planted index is not reported: %+v", r.Damage())
	}
	verifyRestore(t, r, s1.ID, a)
}

// Point 1 under Object Lock, on the real S3 server: the attacker puts an
// old index back with a retention of its own, so prune cannot delete it.
// Before the fix that index stayed live (the in-memory index picked it or
// the current one per blob, in map order) until its retention ended, and
// prune deleted the packs that hold the data again; now it is superseded:
// ignored by every reader, prune keeps the live packs, every snapshot
// restores from the untouched bucket alone, and check names the index at
// the hostile bucket. Three tenants, so that the old behaviour fails the
// test with probability 7/8.
func TestS3ReplayedIndexUnderObjectLock(t *testing.T) {
	ctx := context.Background()
	f := newS3Fixture(t)
	// kluis's own locations write without retention first, so that prune
	// really deletes the first snapshot's packs and index (as it does once
	// their retention has ended).
	var plain []repo.Location
	for i, srv := range f.srv {
		plain = append(plain, srv.Location(t, f.locs[i].Name(), f.bucket, &s3.Options{Prefix: "backups/"}))
	}
	attacker := f.srv[0].Location(t, "attacker", f.bucket, &s3.Options{Prefix: "backups/", Lock: &s3.Lock{Mode: "governance", Days: 1}})
	for k := range 3 {
		tenant := "praktijk-" + string(rune('0'+k))
		opts := f.opts()
		openAt := func(locs ...repo.Location) *repo.Repo {
			t.Helper()
			r, err := repo.Open(ctx, tenant, locs, opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return r
		}
		if _, res, err := repo.Init(ctx, tenant, plain, opts); err != nil || countOK(res) != 2 {
			t.Fatalf("Init: %v %+v", err, res)
		}
		a := randomStream("a", uint64(50+k), 768<<10)
		b := textStream("b", loremParagraph, 128<<10)
		s1 := backup(t, openAt(plain...), a)
		kept := map[string][]byte{}
		err := plain[0].List(ctx, tenant+"/index/", func(oi repo.ObjectInfo) error {
			data, err := repo.ReadAll(ctx, plain[0], oi.Name, 1<<20)
			kept[oi.Name] = data
			return err
		})
		if err != nil || len(kept) == 0 {
			t.Fatalf("list indexes: %v (%d)", err, len(kept))
		}
		if _, err := openAt(plain...).Forget(ctx, []repo.Hash{s1.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := openAt(plain...).Prune(ctx, repo.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		s2 := backup(t, openAt(plain...), a, b)
		// The attack: the old index back, locked by the attacker.
		for name, data := range kept {
			if err := attacker.Put(ctx, name, data); err != nil {
				t.Fatal(err)
			}
		}
		// From now on kluis writes under Object Lock.
		pr, err := openAt(f.locs...).Prune(ctx, repo.PruneOptions{})
		if err != nil {
			t.Fatalf("prune after the replay: %v", err)
		}
		if pr.Retained == 0 {
			t.Errorf("prune %+v: the locked replayed index should be retained", pr)
		}
		verifyRestore(t, openAt(f.locs[1]), s2.ID, a, b)
		verifyRestore(t, openAt(f.locs...), s2.ID, a, b)
		s3 := backup(t, openAt(f.locs...), b, a)
		verifyRestore(t, openAt(f.locs[1]), s3.ID, b, a)
		cs, err := openAt(f.locs...).Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !c.OK() {
				t.Errorf("check at %s: %v", c.Location, c.Errors)
			}
			if c.Location == "s3-amsterdam" {
				named := false
				for name := range kept {
					named = named || strings.Contains(strings.Join(c.Warnings, "\n"), path.Base(name)[:8])
				}
				if !named {
					t.Errorf("check at s3-amsterdam does not name the replayed index: %v", c.Warnings)
				}
			}
		}
	}
}

// A repository written before index format version 2 (version 1 index
// objects and manifests, version 1 associated data) stays readable:
// snapshots list and restore, check passes, a backup deduplicates against
// it, and prune compacts it into a version 2 index that supersedes the old
// objects, after which a replayed old index is ignored.
func TestVersion1RepositoryStaysReadable(t *testing.T) {
	ctx := context.Background()
	f := newDirFixture(t, testTenant)
	a, b := randomStream("a", 61, 384<<10), textStream("b", loremParagraph, 128<<10)
	r := f.init()
	backup(t, r, a)
	backup(t, r, a, b)
	if err := f.open().DowngradeToV1(ctx); err != nil {
		t.Fatal(err)
	}
	oldIndexes := map[string][]byte{}
	for _, n := range f.names(0, "index") {
		oldIndexes[n] = f.read(0, n)
	}
	snaps, err := f.open().Snapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("version 1 snapshots: %d, %v", len(snaps), err)
	}
	verifyRestore(t, f.open(1), snaps[0].ID, a)
	verifyRestore(t, f.open(1), snaps[1].ID, a, b)
	for _, c := range checkLocations(t, f.open()) {
		if !c.OK() || len(c.Damaged) > 0 {
			t.Errorf("check of a version 1 repository at %s: %v", c.Location, c.Errors)
		}
	}
	s3 := backup(t, f.open(), b, a)
	if s3.Stats.New != 0 {
		t.Errorf("a backup over version 1 indexes stored %d new bytes, want 0", s3.Stats.New)
	}
	if _, err := f.open().Forget(ctx, []repo.Hash{snaps[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	for n, data := range oldIndexes {
		if f.has(0, n) {
			t.Errorf("prune left the version 1 index %s", n)
		}
		f.plant(0, n, data) // and the attacker puts it back
	}
	verifyRestore(t, f.open(), snaps[1].ID, a, b)
	verifyRestore(t, f.open(1), s3.ID, b, a)
	cs := checkLocations(t, f.open())
	if g := cs["groningen"]; !g.OK() {
		t.Errorf("check at groningen: %v", g.Errors)
	}
	if w := strings.Join(cs["amsterdam"].Warnings, "\n"); !strings.Contains(w, "superseded") {
		t.Errorf("check at amsterdam does not name the replayed version 1 index: %q", w)
	}
}
