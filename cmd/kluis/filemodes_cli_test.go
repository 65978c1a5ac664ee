package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFilesArePrivate (issue 15 §4): every file and directory kluis
// writes — keys, state, location objects, a SQLite full restore, a
// directory restore, a dossier file, a restore test's evidence — is
// private to its user (no group or other bits), whatever the umask kluis
// was started with. A SQLite full restore used to create a 0644 database.
func TestFilesArePrivate(t *testing.T) {
	// Not parallel: the umask is the process's. 0022 is the most common
	// login umask; kluis must not depend on it.
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	e := newSQLiteEnv(t, "", "")
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("full.db"))
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--to-dir", e.path("dir"))
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	mine := map[string]bool{e.cfg: true, e.path("praktijk.db"): true}
	checked := 0
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || mine[p] || p == e.dir {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		checked++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no group or other access", strings.TrimPrefix(p, e.dir), fi.Mode().Perm())
		}
		return nil
	})
	if checked < 10 {
		t.Fatalf("checked only %d files", checked)
	}
	if fi, err := os.Stat(e.path("full.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored SQLite database: %v %v", fi.Mode(), err)
	}
}
