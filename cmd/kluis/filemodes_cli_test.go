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

// TestSecretFileChecks (issue 15 §4): a key file or DSN file that is a
// symbolic link (to a private file), or sits in a directory others can
// write, is refused by the real process, not only a loose mode.
func TestSecretFileChecks(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, "", "")
	// The signing key moved elsewhere (still 0600), a symlink in its place.
	key := e.path("secrets", "signing.key")
	if err := os.Rename(key, e.path("signing.real")); err != nil {
		t.Fatal(err)
	}
	os.Symlink(e.path("signing.real"), key)
	if r := e.run("erasure", "list"); r.code == 0 || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("a symlinked signing key: %v", r)
	}
	os.Remove(key)
	os.Rename(e.path("signing.real"), key)
	e.mustRun(0, "erasure", "list")
	// The secrets directory made group-writable: anyone in the group could
	// swap the master key.
	os.Chmod(e.path("secrets"), 0o770)
	if r := e.run("snapshots", "--tenant", "praktijk-s"); r.code == 0 || !strings.Contains(r.stderr, "writable by group or others") {
		t.Errorf("a group-writable key directory: %v", r)
	}
	os.Chmod(e.path("secrets"), 0o700)
	// A DSN file given on the command line, as a symlink.
	os.WriteFile(e.path("t.dsn"), []byte("host=127.0.0.1 dbname=x"), 0o600)
	os.Symlink(e.path("t.dsn"), e.path("link.dsn"))
	if r := e.run("restore", "--tenant", "praktijk-s", "--target-dsn-file", e.path("link.dsn")); r.code == 0 || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("a symlinked DSN file: %v", r)
	}
}
