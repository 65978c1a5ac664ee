package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

func readRange(t *testing.T, l *Location, name string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := l.Get(context.Background(), name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	_, err = io.ReadFull(rc, buf)
	return buf, err
}

func cached(l *Location) int {
	l.open.mu.Lock()
	defer l.open.mu.Unlock()
	return len(l.open.m)
}

// TestRangedReadsShareHandles: ranged reads go through a few cached
// handles, see what Replace and Delete did at once, and see a file
// replaced behind the Location's back once the handle expires.
func TestRangedReadsShareHandles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	l := New("dir", root)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := l.Put(ctx, "t/data/aa/pack", data); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				off := int64((i*50 + j) * 13 % 9000)
				got, err := readRange(t, l, "t/data/aa/pack", off, 100)
				if err != nil || !bytes.Equal(got, data[off:off+100]) {
					t.Errorf("range at %d: %v", off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := cached(l); n > 1 {
		t.Fatalf("%d cached handles for one object", n)
	}
	// Past the end: a short read.
	if _, err := readRange(t, l, "t/data/aa/pack", 9990, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("range past the end: %v", err)
	}
	// Replace is seen by the next read.
	other := bytes.Repeat([]byte("abcdefghij"), 1000)
	if err := l.Replace(ctx, "t/data/aa/pack", other); err != nil {
		t.Fatal(err)
	}
	if got, err := readRange(t, l, "t/data/aa/pack", 0, 10); err != nil || string(got) != "abcdefghij" {
		t.Fatalf("after Replace: %q, %v", got, err)
	}
	// A rename over the file by someone else is seen after handleTTL.
	tmp := filepath.Join(root, "t", "data", "aa", "x")
	os.WriteFile(tmp, bytes.Repeat([]byte("ABCDEFGHIJ"), 1000), 0o600)
	if err := os.Rename(tmp, filepath.Join(root, "t", "data", "aa", "pack")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(handleTTL + 10*time.Millisecond)
	if got, err := readRange(t, l, "t/data/aa/pack", 0, 10); err != nil || string(got) != "ABCDEFGHIJ" {
		t.Fatalf("after a rename and handleTTL: %q, %v", got, err)
	}
	// Delete is seen by the next read.
	if err := l.Delete(ctx, "t/data/aa/pack"); err != nil {
		t.Fatal(err)
	}
	if _, err := readRange(t, l, "t/data/aa/pack", 0, 10); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	// Many objects: at most maxHandles stay open.
	for i := range 3 * maxHandles {
		name := fmt.Sprintf("t/data/bb/p%d", i)
		if err := l.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		if _, err := readRange(t, l, name, 5, 5); err != nil {
			t.Fatal(err)
		}
	}
	if n := cached(l); n > maxHandles {
		t.Fatalf("%d handles cached, at most %d", n, maxHandles)
	}
	// Idle handles are closed after handleTTL without any further use.
	time.Sleep(handleTTL + 100*time.Millisecond)
	if n := cached(l); n != 0 {
		t.Fatalf("%d handles still open after handleTTL", n)
	}
}
