package local_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/locationtest"
)

func TestConformance(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) repo.Location {
		return local.New("dir", t.TempDir())
	})
}

// Temporary files of interrupted Puts are never listed, and their names
// cannot be read or written as objects.
func TestTempFilesHidden(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	l := local.New("dir", root)
	if err := l.Put(ctx, "t/data/ab/ab01", []byte("pack")); err != nil {
		t.Fatal(err)
	}
	// What a crash between write and link leaves behind.
	for _, p := range []string{"t/data/ab/.tmp-123", "t/.tmp-456", ".tmp-789"} {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(p)), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	if err := l.List(ctx, "", func(oi repo.ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "t/data/ab/ab01" {
		t.Errorf("List = %v, want only t/data/ab/ab01", names)
	}
	if _, err := l.Stat(ctx, "t/data/ab/.tmp-123"); err == nil {
		t.Error("Stat of a temporary file succeeded")
	}
	if err := l.Put(ctx, "t/.tmp-x", []byte("x")); err == nil {
		t.Error("Put of a temporary-file name succeeded")
	}
}

// A missing root is an unmounted disk: every operation fails, none
// reports ErrNotFound (which would read as "no repository here"), and
// nothing is created in its place.
func TestMissingRoot(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "mnt", "backup")
	l := local.New("dir", root)
	if err := l.Put(ctx, "t/config", []byte("c")); err == nil {
		t.Error("Put under a missing root succeeded")
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Put created the missing root (%v)", err)
	}
	if _, err := l.Get(ctx, "t/config", 0, -1); err == nil || errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get under a missing root = %v, want an error that is not ErrNotFound", err)
	}
	if _, err := l.Stat(ctx, "t/config"); err == nil || errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Stat under a missing root = %v, want an error that is not ErrNotFound", err)
	}
	if err := l.List(ctx, "t/", func(repo.ObjectInfo) error { return nil }); err == nil {
		t.Error("List under a missing root succeeded")
	}
	if err := l.Delete(ctx, "t/config"); err == nil {
		t.Error("Delete under a missing root succeeded")
	}
	if err := l.Create(); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "t/config", []byte("c")); err != nil {
		t.Errorf("Put after Create: %v", err)
	}
}

// Objects are files, read-only once written, and an invalid name never
// reaches outside the root.
func TestFilesOnDisk(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	l := local.New("dir", root)
	if err := l.Create(); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "t/data/ab/ab01", []byte("pack bytes")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "t", "data", "ab", "ab01"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("object mode %04o, want 0400", fi.Mode().Perm())
	}
	for _, name := range []string{"../escaped", "t/../../escaped"} {
		_ = l.Put(ctx, name, []byte("x"))
	}
	if _, err := os.Stat(filepath.Join(parent, "escaped")); err == nil {
		t.Error("a Put wrote outside the root")
	}
	rc, err := l.Get(ctx, "t/data/ab/ab01", 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "bytes" {
		t.Errorf("range = %q", b)
	}
}
