// Package locationtest holds the repo.Location contract as one test suite,
// Run, which every Location implementation and every decorator calls from
// its own tests, and MemLocation, an in-memory Location for fast tests.
//
// The contract Run checks, beyond the repo.Location doc comment:
//
//   - Put of an existing name returns nil and leaves the first bytes; Puts
//     of one name racing each other leave exactly one of them, whole.
//   - Get(name, off, n) returns min(n, size-off) bytes; n < 0 reads to the
//     end; an offset at or beyond the end reads zero bytes without error;
//     a negative offset is an error.
//   - A missing object is repo.ErrNotFound from Get and Stat (errors.Is),
//     whether or not its directory exists; Delete of it returns nil.
//   - List matches the prefix as a string ("t1" lists "t10/…" too), walks
//     nested names (data/xx/…), never shows an incomplete Put, and stops
//     with fn's error (wrapped) when fn fails.
//   - Names that are absolute, empty, or contain "", "." or ".." parts or a
//     backslash are refused by every method (CheckName).
//   - Every method honours a cancelled context: it returns an error
//     wrapping context.Canceled and has no effect.
//
// It must not import any backend: backends import it, from tests only.
package locationtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// Run tests the Location contract. newLoc must return a new, empty
// location on every call; it is called once per subtest.
func Run(t *testing.T, newLoc func(t *testing.T) repo.Location) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l repo.Location)
	}{
		{"PutGet", testPutGet},
		{"Ranges", testRanges},
		{"NoOverwrite", testNoOverwrite},
		{"Stat", testStat},
		{"List", testList},
		{"ListStopsOnError", testListStopsOnError},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidNames", testInvalidNames},
		{"ConcurrentPutSameName", testConcurrentPutSameName},
		{"ListDuringPuts", testListDuringPuts},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newLoc(t))
		})
	}
}

var (
	dataMu    sync.Mutex
	dataCache = map[[2]uint64][]byte{}
)

// testData returns n deterministic pseudo-random bytes (cached: the race
// detector makes generating them slow). Callers must not modify them.
func testData(seed uint64, n int) []byte {
	dataMu.Lock()
	defer dataMu.Unlock()
	k := [2]uint64{seed, uint64(n)}
	if b, ok := dataCache[k]; ok {
		return b
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 7})
	b := make([]byte, n)
	_, _ = r.Read(b)
	dataCache[k] = b
	return b
}

func put(t *testing.T, l repo.Location, name string, data []byte) {
	t.Helper()
	if err := l.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, l repo.Location, name string, off, n int64) []byte {
	t.Helper()
	rc, err := l.Get(context.Background(), name, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): read: %v", name, off, n, err)
	}
	return b
}

func list(t *testing.T, l repo.Location, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := l.List(context.Background(), prefix, func(oi repo.ObjectInfo) error {
		if _, dup := out[oi.Name]; dup {
			t.Errorf("List(%q) reported %q twice", prefix, oi.Name)
		}
		out[oi.Name] = oi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func testPutGet(t *testing.T, l repo.Location) {
	cases := []struct {
		name string
		data []byte
	}{
		{"t/empty", []byte{}},
		{"t/one", []byte{0x42}},
		{"t/small", testData(1, 1000)},
		{"t/data/ab/ab01", testData(2, 1<<20+17)},
	}
	for _, c := range cases {
		put(t, l, c.name, c.data)
	}
	for _, c := range cases {
		if got := get(t, l, c.name, 0, -1); !bytes.Equal(got, c.data) {
			t.Errorf("Get(%q) returned %d bytes that differ from the %d put", c.name, len(got), len(c.data))
		}
		// Repeating a Put is safe and changes nothing.
		put(t, l, c.name, c.data)
		if got := get(t, l, c.name, 0, -1); !bytes.Equal(got, c.data) {
			t.Errorf("Get(%q) after a repeated Put differs", c.name)
		}
	}
	// The caller may reuse its buffer after Put.
	buf := []byte("original")
	put(t, l, "t/reuse", buf)
	copy(buf, "CHANGED!")
	if got := get(t, l, "t/reuse", 0, -1); string(got) != "original" {
		t.Errorf("the object changed with the caller's buffer: %q", got)
	}
}

func testRanges(t *testing.T, l repo.Location) {
	data := testData(3, 1000)
	put(t, l, "t/r", data)
	cases := []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"whole", 0, -1, data},
		{"whole by length", 0, 1000, data},
		{"zero length", 10, 0, []byte{}},
		{"middle", 10, 20, data[10:30]},
		{"to the end", 990, -1, data[990:]},
		{"past the end clipped", 990, 100, data[990:]},
		{"last byte", 999, 1, data[999:]},
		{"offset at the end", 1000, -1, []byte{}},
		{"offset at the end with length", 1000, 10, []byte{}},
		{"offset beyond the end", 5000, -1, []byte{}},
		{"offset beyond the end with length", 5000, 10, []byte{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := get(t, l, "t/r", c.off, c.length)
			if !bytes.Equal(got, c.want) {
				t.Errorf("Get(off %d, len %d): %d bytes, want %d", c.off, c.length, len(got), len(c.want))
			}
		})
	}
	t.Run("negative offset", func(t *testing.T) {
		rc, err := l.Get(context.Background(), "t/r", -1, 10)
		if err == nil {
			rc.Close()
			t.Fatal("Get with a negative offset succeeded")
		}
	})
}

func testNoOverwrite(t *testing.T, l repo.Location) {
	first, second := testData(4, 500), testData(5, 700)
	put(t, l, "t/config", first)
	if err := l.Put(context.Background(), "t/config", second); err != nil {
		t.Fatalf("second Put of an existing name: %v (want nil)", err)
	}
	if got := get(t, l, "t/config", 0, -1); !bytes.Equal(got, first) {
		t.Fatalf("second Put replaced the object (%d bytes, first had %d)", len(got), len(first))
	}
	oi, err := l.Stat(context.Background(), "t/config")
	if err != nil || oi.Size != int64(len(first)) {
		t.Fatalf("Stat after second Put: %+v, %v; want size %d", oi, err, len(first))
	}
}

func testStat(t *testing.T, l repo.Location) {
	before := time.Now().Add(-time.Minute)
	put(t, l, "t/data/ab/ab01", testData(6, 12345))
	put(t, l, "t/empty", nil)
	oi, err := l.Stat(context.Background(), "t/data/ab/ab01")
	if err != nil {
		t.Fatal(err)
	}
	if oi.Name != "t/data/ab/ab01" || oi.Size != 12345 {
		t.Errorf("Stat = %+v, want name t/data/ab/ab01 size 12345", oi)
	}
	if oi.ModTime.Before(before) || oi.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat ModTime %v is not about now", oi.ModTime)
	}
	oi, err = l.Stat(context.Background(), "t/empty")
	if err != nil || oi.Size != 0 {
		t.Errorf("Stat(empty object) = %+v, %v", oi, err)
	}
}

func testList(t *testing.T, l repo.Location) {
	objs := map[string]int64{
		"t1/config":           10,
		"t1/keys/k1":          11,
		"t1/data/ab/ab01":     12,
		"t1/data/ab/ab02":     13,
		"t1/data/cd/cd01":     14,
		"t1/index/i1":         15,
		"t1/snapshots/s1":     16,
		"t10/config":          17,
		"t2/data/ab/ab01":     18,
		"t2/data/ab/ab01-not": 19,
	}
	for name, size := range objs {
		put(t, l, name, testData(uint64(size), int(size)))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", sortedKeys(objs)},
		{"t1/", []string{"t1/config", "t1/data/ab/ab01", "t1/data/ab/ab02", "t1/data/cd/cd01", "t1/index/i1", "t1/keys/k1", "t1/snapshots/s1"}},
		{"t1", []string{"t1/config", "t1/data/ab/ab01", "t1/data/ab/ab02", "t1/data/cd/cd01", "t1/index/i1", "t1/keys/k1", "t1/snapshots/s1", "t10/config"}},
		{"t1/data/", []string{"t1/data/ab/ab01", "t1/data/ab/ab02", "t1/data/cd/cd01"}},
		{"t1/data/ab/", []string{"t1/data/ab/ab01", "t1/data/ab/ab02"}},
		{"t1/data/a", []string{"t1/data/ab/ab01", "t1/data/ab/ab02"}},
		{"t1/data/ab/ab0", []string{"t1/data/ab/ab01", "t1/data/ab/ab02"}},
		{"t1/config", []string{"t1/config"}},
		{"t1/config/", nil},
		{"t2/data/ab/ab01", []string{"t2/data/ab/ab01", "t2/data/ab/ab01-not"}},
		{"t3/", nil},
		{"t1/nothing/", nil},
	}
	for _, c := range cases {
		got := list(t, l, c.prefix)
		if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, sortedKeys(got), c.want)
		}
		for name, size := range got {
			if size != objs[name] {
				t.Errorf("List(%q): %s has size %d, want %d", c.prefix, name, size, objs[name])
			}
		}
	}
}

func testListStopsOnError(t *testing.T, l repo.Location) {
	for i := range 5 {
		put(t, l, fmt.Sprintf("t/index/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	calls := 0
	err := l.List(context.Background(), "t/", func(repo.ObjectInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List returned %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want 1", calls)
	}
}

func testDelete(t *testing.T, l repo.Location) {
	ctx := context.Background()
	put(t, l, "t/data/ab/ab01", []byte("pack 1"))
	put(t, l, "t/data/ab/ab02", []byte("pack 2"))
	if err := l.Delete(ctx, "t/data/ab/ab01"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stat(ctx, "t/data/ab/ab01"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if got := list(t, l, "t/"); fmt.Sprint(sortedKeys(got)) != "[t/data/ab/ab02]" {
		t.Errorf("List after Delete = %v", sortedKeys(got))
	}
	// Missing objects, and prefixes of names (directories, to a file
	// system), which are not objects either.
	for _, name := range []string{"t/data/ab/ab01", "t/data/zz/zz01", "nope/at/all", "t/data/ab", "t/data", "t"} {
		if err := l.Delete(ctx, name); err != nil {
			t.Errorf("Delete(missing %q) = %v, want nil", name, err)
		}
	}
	if got := list(t, l, "t/"); fmt.Sprint(sortedKeys(got)) != "[t/data/ab/ab02]" {
		t.Errorf("List after deleting prefixes = %v", sortedKeys(got))
	}
	// A deleted name can be written again.
	put(t, l, "t/data/ab/ab01", []byte("new"))
	if got := get(t, l, "t/data/ab/ab01", 0, -1); string(got) != "new" {
		t.Errorf("Get after Delete and Put = %q", got)
	}
}

func testNotFound(t *testing.T, l repo.Location) {
	ctx := context.Background()
	put(t, l, "t/data/ab/ab01", []byte("x"))
	// "t/data" and "t/data/ab" are prefixes (directories, to a file
	// system), not objects.
	for _, name := range []string{"t/data/ab/ab02", "t/data/zz/zz01", "other/config", "t/config", "t/data", "t/data/ab", "t"} {
		rc, err := l.Get(ctx, name, 0, -1)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Get(missing %q) = %v, want ErrNotFound", name, err)
		}
		if _, err := l.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Stat(missing %q) = %v, want ErrNotFound", name, err)
		}
	}
}

// InvalidNames lists names every Location refuses.
var InvalidNames = []string{"", "../x", "t/../../x", "/abs", "/etc/passwd", "a//b", "a/", "./a", "a/./b", "a/..", `a\b`, `..\x`}

func testInvalidNames(t *testing.T, l repo.Location) {
	ctx := context.Background()
	for _, name := range InvalidNames {
		if err := l.Put(ctx, name, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
		if rc, err := l.Get(ctx, name, 0, -1); err == nil {
			rc.Close()
			t.Errorf("Get(%q) succeeded", name)
		}
		if _, err := l.Stat(ctx, name); err == nil {
			t.Errorf("Stat(%q) succeeded", name)
		}
		if err := l.Delete(ctx, name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
	}
	if got := list(t, l, ""); len(got) != 0 {
		t.Errorf("invalid Puts left objects: %v", sortedKeys(got))
	}
}

func testConcurrentPutSameName(t *testing.T, l repo.Location) {
	const n = 8
	ctx := context.Background()
	datas := make([][]byte, n)
	for i := range datas {
		datas[i] = testData(uint64(100+i), 256<<10)
	}
	t.Run("same bytes", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = l.Put(ctx, "t/data/ab/same", datas[0])
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Put %d: %v", i, err)
			}
		}
		if got := get(t, l, "t/data/ab/same", 0, -1); !bytes.Equal(got, datas[0]) {
			t.Errorf("object differs after concurrent Puts of the same bytes")
		}
	})
	t.Run("different bytes", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = l.Put(ctx, "t/data/ab/race", datas[i])
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Put %d: %v", i, err)
			}
		}
		got := get(t, l, "t/data/ab/race", 0, -1)
		winner := -1
		for i, d := range datas {
			if bytes.Equal(got, d) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("object (%d bytes) is none of the Puts: a mix or a partial write", len(got))
		}
		// The winner stays.
		put(t, l, "t/data/ab/race", datas[(winner+1)%n])
		if got := get(t, l, "t/data/ab/race", 0, -1); !bytes.Equal(got, datas[winner]) {
			t.Errorf("a later Put replaced the object")
		}
	})
}

// testListDuringPuts lists while large Puts run: every listed object must
// be complete (its listed size and its Stat size are the full size).
func testListDuringPuts(t *testing.T, l repo.Location) {
	const n, size = 16, 1 << 20
	ctx := context.Background()
	data := testData(7, size)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Put(ctx, fmt.Sprintf("t/data/%02x/%02x-pack", i%4, i), data); err != nil {
				t.Errorf("Put: %v", err)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		err := l.List(ctx, "t/", func(oi repo.ObjectInfo) error {
			if oi.Size != size {
				t.Errorf("List showed %s with %d of %d bytes: an incomplete Put", oi.Name, oi.Size, size)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List during Puts: %v", err)
		}
	}
	if got := list(t, l, "t/"); len(got) != n {
		t.Errorf("List after Puts: %d objects, want %d", len(got), n)
	}
}

func testContextCanceled(t *testing.T, l repo.Location) {
	put(t, l, "t/keep", []byte("keep"))
	for i := range 4 {
		put(t, l, fmt.Sprintf("t/index/%d", i), []byte{byte(i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Put(ctx, "t/new", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := l.Stat(context.Background(), "t/new"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("a Put with a cancelled context stored the object (Stat: %v)", err)
	}
	if rc, err := l.Get(ctx, "t/keep", 0, -1); !errors.Is(err, context.Canceled) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := l.Stat(ctx, "t/keep"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context = %v, want context.Canceled", err)
	}
	if err := l.Delete(ctx, "t/keep"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := l.Stat(context.Background(), "t/keep"); err != nil {
		t.Errorf("a Delete with a cancelled context removed the object (Stat: %v)", err)
	}
	for _, prefix := range []string{"t/", "missing/"} {
		if err := l.List(ctx, prefix, func(repo.ObjectInfo) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("List(%q) with a cancelled context = %v, want context.Canceled", prefix, err)
		}
	}
	// Cancelled while listing: List stops.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	calls := 0
	err := l.List(ctx2, "t/", func(repo.ObjectInfo) error {
		calls++
		cancel2()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List cancelled in fn = %v after %d calls, want context.Canceled", err, calls)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after the context was cancelled, want 1", calls)
	}
}
