package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: each placement does what its name says, the mode is
// set, and no temporary file is left behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "obj")
	if err := WriteFile(p, []byte("one"), Options{Place: Link, Mode: 0o400, TempPrefix: ".tmp-x-"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), Options{Place: Link}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link over an existing file: %v, want fs.ErrExist", err)
	}
	if err := WriteFile(p, []byte("two"), Options{Place: LinkOrKeep}); err != nil {
		t.Errorf("LinkOrKeep over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Errorf("a link placement replaced the file: %q", b)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("mode: %v %v", fi, err)
	}
	q := filepath.Join(dir, "state")
	for _, s := range []string{"a", "b"} {
		if err := WriteFile(q, []byte(s), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(q); string(b) != "b" {
		t.Errorf("Rename did not replace: %q", b)
	}
	if fi, _ := os.Stat(q); fi.Mode().Perm() != 0o600 {
		t.Errorf("default mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "no", "such"), nil, Options{}); err == nil {
		t.Error("a missing directory is not an error")
	}
}
