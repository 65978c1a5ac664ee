package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
	"github.com/kluis-nl/kluis/repo/locationtest"
)

// Without faults the decorator keeps the whole contract.
func TestConformance(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) repo.Location {
		return faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{})
	})
}

// With faults selecting nothing, and a budget too large to reach, too.
func TestConformanceIdleFaults(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) repo.Location {
		none := func(string) bool { return false }
		return faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{
			PutBytes: 1 << 40, PutObjects: 1 << 20, PutErr: syscall.ENOSPC,
			Corrupt: none, Drop: none,
		})
	})
}

func read(t *testing.T, l repo.Location, name string) ([]byte, error) {
	t.Helper()
	rc, err := l.Get(context.Background(), name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestPutBudgetBytes(t *testing.T) {
	ctx := context.Background()
	mem := locationtest.NewMemLocation("mem")
	l := faulty.New(mem, faulty.Options{})
	l.FailPutsAfter(250, faulty.NoLimit, syscall.ENOSPC)
	for i, name := range []string{"a", "b"} {
		if err := l.Put(ctx, name, make([]byte, 100)); err != nil {
			t.Fatalf("Put %d within budget: %v", i, err)
		}
	}
	// Repeating a stored object costs nothing.
	if err := l.Put(ctx, "a", make([]byte, 100)); err != nil {
		t.Fatalf("repeated Put: %v", err)
	}
	err := l.Put(ctx, "c", make([]byte, 100))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put over budget = %v, want ENOSPC", err)
	}
	if _, ok := mem.Bytes("c"); ok {
		t.Fatal("a Put over budget stored its object")
	}
	if err := l.Put(ctx, "d", make([]byte, 50)); err != nil {
		t.Fatalf("a Put that still fits: %v", err)
	}
	if err := l.Put(ctx, "e", []byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put with the budget spent = %v", err)
	}
	// Reads still work on a full disk.
	if _, err := read(t, l, "a"); err != nil {
		t.Fatal(err)
	}
	l.Reset()
	if err := l.Put(ctx, "c", make([]byte, 100)); err != nil {
		t.Fatalf("Put after Reset: %v", err)
	}
}

func TestPutBudgetObjects(t *testing.T) {
	ctx := context.Background()
	l := faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{})
	l.FailPutsAfter(faulty.NoLimit, 2, syscall.EDQUOT)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Put(ctx, string(rune('a'+i)), []byte{byte(i)})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, syscall.EDQUOT):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 2 || l.Puts() != 2 {
		t.Fatalf("%d concurrent Puts succeeded (%d reached the inner location), want 2", ok, l.Puts())
	}
}

func TestDown(t *testing.T) {
	ctx := context.Background()
	l := faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{})
	if err := l.Put(ctx, "t/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	l.SetDown(nil)
	if err := l.Put(ctx, "t/y", []byte("y")); !errors.Is(err, faulty.ErrDown) {
		t.Errorf("Put while down = %v", err)
	}
	if _, err := read(t, l, "t/x"); !errors.Is(err, faulty.ErrDown) || errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get while down = %v, want ErrDown and not ErrNotFound", err)
	}
	if _, err := l.Stat(ctx, "t/x"); !errors.Is(err, faulty.ErrDown) {
		t.Errorf("Stat while down = %v", err)
	}
	if err := l.List(ctx, "t/", func(repo.ObjectInfo) error { return nil }); !errors.Is(err, faulty.ErrDown) {
		t.Errorf("List while down = %v", err)
	}
	if err := l.Delete(ctx, "t/x"); !errors.Is(err, faulty.ErrDown) {
		t.Errorf("Delete while down = %v", err)
	}
	l.SetUp()
	if b, err := read(t, l, "t/x"); err != nil || string(b) != "x" {
		t.Errorf("Get after SetUp = %q, %v", b, err)
	}
	refused := errors.New("connection refused")
	l.SetDown(refused)
	if _, err := l.Stat(ctx, "t/x"); !errors.Is(err, refused) {
		t.Errorf("Stat with a chosen error = %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	ctx := context.Background()
	mem := locationtest.NewMemLocation("mem")
	l := faulty.New(mem, faulty.Options{})
	data := bytes.Repeat([]byte("abcdefgh"), 100)
	for _, name := range []string{"t/data/ab/ab01", "t/index/i1"} {
		if err := l.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	l.SetCorrupt(faulty.Contains("/data/"))
	got, err := read(t, l, "t/data/ab/ab01")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, data) || len(got) != len(data) {
		t.Fatal("Get of a corrupted object returned it intact")
	}
	diff := 0
	for i := range got {
		if got[i] != data[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes differ, want 1", diff)
	}
	if stored, _ := mem.Bytes("t/data/ab/ab01"); !bytes.Equal(stored, data) {
		t.Error("corruption changed the stored object")
	}
	if got, _ := read(t, l, "t/index/i1"); !bytes.Equal(got, data) {
		t.Error("an unselected object was corrupted")
	}
	// Ranges are damaged too.
	rc, err := l.Get(ctx, "t/data/ab/ab01", 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	if bytes.Equal(part, data[8:24]) {
		t.Error("a range of a corrupted object was intact")
	}
	l.SetCorrupt(nil)
	if got, _ := read(t, l, "t/data/ab/ab01"); !bytes.Equal(got, data) {
		t.Error("still corrupt after SetCorrupt(nil)")
	}
}

func TestDrop(t *testing.T) {
	ctx := context.Background()
	mem := locationtest.NewMemLocation("mem")
	l := faulty.New(mem, faulty.Options{})
	if err := l.Put(ctx, "t/index/old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	l.SetDrop(faulty.Contains("/index/"))
	if err := l.Put(ctx, "t/index/new", []byte("new")); err != nil {
		t.Fatalf("dropped Put = %v, want nil (a silent loss)", err)
	}
	if _, ok := mem.Bytes("t/index/new"); ok {
		t.Error("a dropped Put was stored")
	}
	if _, err := read(t, l, "t/index/old"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get of a dropped object = %v, want ErrNotFound", err)
	}
	if _, err := l.Stat(ctx, "t/index/old"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Stat of a dropped object = %v, want ErrNotFound", err)
	}
	n := 0
	if err := l.List(ctx, "t/", func(repo.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List shows %d dropped objects (%v)", n, err)
	}
	if err := l.Put(ctx, "t/config", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, l, "t/config"); err != nil {
		t.Errorf("an unselected object was dropped: %v", err)
	}
}

func TestDelay(t *testing.T) {
	l := faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{})
	l.SetDelay(50 * time.Millisecond)
	start := time.Now()
	if err := l.Put(context.Background(), "t/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Put took %v, want at least the delay", d)
	}
	l.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Stat(ctx, "t/x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed Stat past its deadline = %v", err)
	}
}

// Switching faults while operations run is safe (run with -race).
func TestSwitchWhileRunning(t *testing.T) {
	ctx := context.Background()
	l := faulty.New(locationtest.NewMemLocation("mem"), faulty.Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := string(rune('a'+w)) + "/" + string(rune('a'+i%26))
				_ = l.Put(ctx, name, []byte{byte(i)})
				_, _ = read(t, l, name)
				_ = l.List(ctx, "", func(repo.ObjectInfo) error { return nil })
			}
		}()
	}
	for i := range 200 {
		switch i % 5 {
		case 0:
			l.SetDown(nil)
		case 1:
			l.SetUp()
		case 2:
			l.FailPutsAfter(10, 3, syscall.ENOSPC)
		case 3:
			l.SetCorrupt(faulty.Contains("a/"))
		case 4:
			l.Reset()
		}
	}
	close(stop)
	wg.Wait()
}
