package local

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// TestRedteamReplaceDuringOpenLeavesStaleHandle (found by the red-team
// review): a ranged read whose open(2) races with a Replace of the same
// object must not cache the old file's handle after Replace dropped the
// cache. get opens the file outside the lock; Replace's drop can run in
// between (here it runs inside open, which is exactly that interleaving).
// Before the fix, every ranged read for up to handleTTL after Replace
// returned still read the replaced (damaged) copy; now a handle opened
// while a drop ran is used once and not cached.
func TestRedteamReplaceDuringOpenLeavesStaleHandle(t *testing.T) {
	ctx := context.Background()
	l := New("dir", t.TempDir())
	const name = "t/data/aa/pack"
	old := bytes.Repeat([]byte("0123456789"), 100)
	fresh := bytes.Repeat([]byte("abcdefghij"), 100)
	if err := l.Put(ctx, name, old); err != nil {
		t.Fatal(err)
	}
	p, err := l.path(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.open.get(p, func() (*os.File, error) {
		f, err := l.openObject(name, p)
		if err != nil {
			return nil, err
		}
		// Another goroutine's Replace (a repair) completes here.
		if err := l.Replace(ctx, name, fresh); err != nil {
			t.Fatal(err)
		}
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.open.put(h)
	got, err := readRange(t, l, name, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "abcdefghij" {
		t.Fatalf("after Replace returned, a ranged read got %q: the replaced copy, from a handle cached after Replace dropped it", got)
	}
}
