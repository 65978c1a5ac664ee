package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// registerGets counts the register records read from a location.
type registerGets struct {
	repo.Location
	n atomic.Int64
}

func (g *registerGets) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if strings.Contains(name, "/registers/") {
		g.n.Add(1)
	}
	return g.Location.Get(ctx, name, off, n)
}

// regFixture is a repository whose register records are counted as they
// are read, opened with a cache directory.
type regFixture struct {
	*fixture
	gets  []*registerGets
	cache string
	logs  bytes.Buffer
	mu    sync.Mutex
}

func newRegFixture(t *testing.T) *regFixture {
	f := &regFixture{fixture: newFixture(t), cache: filepath.Join(t.TempDir(), "cache")}
	f.init()
	for i, l := range f.locs {
		g := &registerGets{Location: l}
		f.gets = append(f.gets, g)
		f.locs[i] = g
	}
	return f
}

func (f *regFixture) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.Write(p)
}

func (f *regFixture) warnings() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.String()
}

// open opens the repository as a new command would (cache "" : none).
func (f *regFixture) open(t *testing.T, cache string) *repo.Repo {
	t.Helper()
	r, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master, CacheDir: cache, Logger: slog.New(slog.NewTextHandler(f, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *regFixture) reads() int64 {
	var n int64
	for _, g := range f.gets {
		n += g.n.Swap(0)
	}
	return n
}

// put writes records "rec-from-i" for i in [from, to) through r.
func putRecords(t *testing.T, r *repo.Repo, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := r.PutRegisterRecord(context.Background(), []byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// records reads the register through r and checks it holds exactly the
// records of want (indexes) and that reading it read n objects.
func (f *regFixture) records(t *testing.T, r *repo.Repo, want []int, n int64) {
	t.Helper()
	raw, err := r.RegisterRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range raw {
		got = append(got, string(b))
	}
	sort.Strings(got)
	var exp []string
	for _, i := range want {
		exp = append(exp, fmt.Sprintf("record %d", i))
	}
	sort.Strings(exp)
	if strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Fatalf("records:\n got %q\nwant %q", got, exp)
	}
	if r := f.reads(); r != n {
		t.Fatalf("read %d records from the locations, want %d", r, n)
	}
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// Issue 19: reading the register reads from the locations only the
// records this appliance has not seen: those written here are cached
// as they are written, those written elsewhere once.
func TestRegisterCacheReadsWhatIsNew(t *testing.T) {
	f := newRegFixture(t)
	putRecords(t, f.open(t, f.cache), 0, 20)
	f.reads()
	f.records(t, f.open(t, f.cache), upTo(20), 0)
	// Written by another appliance process without the cache.
	putRecords(t, f.open(t, ""), 20, 23)
	r := f.open(t, f.cache)
	f.records(t, r, upTo(23), 3)
	// The same Repo again (the second check of a dossier command), and
	// the next command.
	f.records(t, r, upTo(23), 0)
	f.records(t, f.open(t, f.cache), upTo(23), 0)
	// A cold cache reads every record once.
	cold := filepath.Join(t.TempDir(), "cold")
	f.records(t, f.open(t, cold), upTo(23), 23)
	f.records(t, f.open(t, cold), upTo(23), 0)
	// Without a cache directory every command reads them all.
	f.records(t, f.open(t, ""), upTo(23), 23)
	if w := f.warnings(); w != "" {
		t.Fatalf("warnings: %s", w)
	}
}

// The listing decides which records exist: one deleted at every
// location is not brought back from the cache.
func TestRegisterCacheDoesNotResurrect(t *testing.T) {
	f := newRegFixture(t)
	putRecords(t, f.open(t, f.cache), 0, 5)
	f.reads()
	gone := fmt.Sprintf("%x", sha256sumOfRecord(t, f, "record 3"))
	for _, m := range f.mems {
		m.Remove(f.tenant + "/registers/" + gone)
	}
	f.records(t, f.open(t, f.cache), []int{0, 1, 2, 4}, 0)
	// Deleted at one location only: still a record (the union).
	putRecords(t, f.open(t, f.cache), 5, 6)
	f.reads()
	h := fmt.Sprintf("%x", sha256sumOfRecord(t, f, "record 5"))
	f.mems[0].Remove(f.tenant + "/registers/" + h)
	f.records(t, f.open(t, f.cache), []int{0, 1, 2, 4, 5}, 0)
}

// sha256sumOfRecord is the name of the stored record whose plaintext is
// plain.
func sha256sumOfRecord(t *testing.T, f *regFixture, plain string) [32]byte {
	t.Helper()
	r := f.open(t, "")
	var names []string
	for _, m := range f.mems {
		m.List(context.Background(), f.tenant+"/registers/", func(oi repo.ObjectInfo) error {
			names = append(names, oi.Name)
			return nil
		})
	}
	raw, err := r.RegisterRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.reads()
	for _, n := range names {
		b, _ := f.mems[0].Bytes(n)
		if b == nil {
			b, _ = f.mems[1].Bytes(n)
		}
		if repo.OpenRegisterRecordForTest(r, b) == plain {
			return sha256.Sum256(b)
		}
	}
	t.Fatalf("no record %q among %d", plain, len(raw))
	return [32]byte{}
}

// cacheFile is the register record cache of the fixture's tenant.
func (f *regFixture) cacheFile() string {
	return filepath.Join(f.cache, "register-records-"+f.tenant)
}

// A cache file someone edited, reordered, padded, cut off or took from
// another tenant gives no record: what it no longer holds intact is read
// from the locations, and the file is rewritten.
func TestRegisterCacheTampered(t *testing.T) {
	frames := func(b []byte) [][]byte {
		const magic = "kluis register record cache v1\n"
		if !bytes.HasPrefix(b, []byte(magic)) {
			t.Fatal("no magic")
		}
		b = b[len(magic):]
		var out [][]byte
		for len(b) > 0 {
			n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			out = append(out, b[:4+n])
			b = b[4+n:]
		}
		return out
	}
	cases := []struct {
		name  string
		edit  func(t *testing.T, f *regFixture, b []byte) []byte
		reads int64
		// rewritten: the file is damaged (or mostly stale) and is
		// replaced by the 5 records; otherwise what is missing is
		// appended.
		rewritten bool
	}{
		{"a byte of a record flipped", func(t *testing.T, f *regFixture, b []byte) []byte {
			fr := frames(b)
			fr[2][40] ^= 1
			return join(fr)
		}, 1, false},
		{"a record's copy in place of another's", func(t *testing.T, f *regFixture, b []byte) []byte {
			fr := frames(b)
			fr[1] = fr[0]
			return join(fr)
		}, 1, false},
		{"cut off in a record", func(t *testing.T, f *regFixture, b []byte) []byte { return b[:len(b)-10] }, 1, true},
		{"a length beyond any record", func(t *testing.T, f *regFixture, b []byte) []byte {
			fr := frames(b)
			fr[3] = []byte{0xff, 0xff, 0xff, 0xff}
			return join(fr)
		}, 2, true},
		{"another file format", func(t *testing.T, f *regFixture, b []byte) []byte {
			return append([]byte("kluis register record cache v9\n"), b[31:]...)
		}, 5, true},
		{"another repository's cache (another key)", func(t *testing.T, f *regFixture, b []byte) []byte {
			other := newRegFixture(t)
			putRecords(t, other.open(t, other.cache), 0, 5)
			ob, err := os.ReadFile(other.cacheFile())
			if err != nil {
				t.Fatal(err)
			}
			return ob
		}, 5, false},
		{"padded with garbage", func(t *testing.T, f *regFixture, b []byte) []byte {
			for i := 0; i < 100; i++ {
				b = append(b, 0, 0, 0, 8, 'g', 'a', 'r', 'b', 'a', 'g', 'e', byte(i))
			}
			return b
		}, 0, true},
		{"a directory", func(t *testing.T, f *regFixture, b []byte) []byte { return nil }, 5, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newRegFixture(t)
			putRecords(t, f.open(t, f.cache), 0, 5)
			f.reads()
			b, err := os.ReadFile(f.cacheFile())
			if err != nil {
				t.Fatal(err)
			}
			if len(frames(b)) != 5 {
				t.Fatalf("%d records cached, want 5", len(frames(b)))
			}
			edited := c.edit(t, f, b)
			os.Remove(f.cacheFile())
			if edited == nil {
				if err := os.Mkdir(f.cacheFile(), 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(f.cacheFile(), edited, 0o600); err != nil {
				t.Fatal(err)
			}
			f.records(t, f.open(t, f.cache), upTo(5), c.reads)
			if edited == nil {
				return // not replaced: read every time, with a warning
			}
			// Rewritten (or appended to): the next command reads nothing.
			f.records(t, f.open(t, f.cache), upTo(5), 0)
			b, _ = os.ReadFile(f.cacheFile())
			if n := len(frames(b)); c.rewritten && n != 5 {
				t.Fatalf("the rewritten cache holds %d records, want 5", n)
			}
		})
	}
}

// A record that matches its listed name but does not open under the
// tenant's key (planted by a location) is an error whether or not the
// cache holds a copy of it: the cache never decides.
func TestRegisterCachePlantedRecord(t *testing.T) {
	f := newRegFixture(t)
	putRecords(t, f.open(t, f.cache), 0, 3)
	junk := []byte("sealed by nobody's key, long enough to look like a record")
	sum := sha256.Sum256(junk)
	for _, m := range f.mems {
		m.Put(context.Background(), f.tenant+"/registers/"+hex.EncodeToString(sum[:]), junk)
	}
	// Put the junk into the cache file, as someone who can write it.
	b, err := os.ReadFile(f.cacheFile())
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, 0, 0, 0, byte(len(junk)))
	b = append(b, junk...)
	if err := os.WriteFile(f.cacheFile(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []string{f.cache, ""} {
		if _, err := f.open(t, cache).RegisterRecords(context.Background()); err == nil || !strings.Contains(err.Error(), "does not open under the tenant key") {
			t.Fatalf("cache %q: a planted record: %v", cache, err)
		}
	}
}

// A cache directory that cannot be made or written costs the reads and
// a warning, never the command.
func TestRegisterCacheUnwritable(t *testing.T) {
	f := newRegFixture(t)
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "cache") // under a file: no directory can be made
	putRecords(t, f.open(t, bad), 0, 4)
	f.reads()
	f.records(t, f.open(t, bad), upTo(4), 4)
	f.records(t, f.open(t, bad), upTo(4), 4)
	if w := f.warnings(); !strings.Contains(w, "register record cache not written") {
		t.Fatalf("no warning: %q", w)
	}
}

// Commands running at once (the daemon's portal, a CLI command), each
// reading and writing records through its own Repo on one cache file,
// and goroutines sharing a Repo: every read is whole (run with -race).
func TestRegisterCacheConcurrent(t *testing.T) {
	f := newRegFixture(t)
	putRecords(t, f.open(t, f.cache), 0, 10)
	shared := f.open(t, f.cache)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.open(t, f.cache)
			for i := 0; i < 5; i++ {
				if _, err := r.PutRegisterRecord(context.Background(), []byte(fmt.Sprintf("record %d", 10+w*5+i))); err != nil {
					errs <- err
				}
				for _, rr := range []*repo.Repo{r, shared, f.open(t, f.cache)} {
					raw, err := rr.RegisterRecords(context.Background())
					if err != nil {
						errs <- err
					} else if len(raw) < 10 {
						errs <- fmt.Errorf("%d records", len(raw))
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.reads()
	f.records(t, f.open(t, f.cache), upTo(30), 0)
}

func join(fr [][]byte) []byte {
	out := []byte("kluis register record cache v1\n")
	for _, b := range fr {
		out = append(out, b...)
	}
	return out
}
