package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRead (issue 15 §4): the checks look at the descriptor read, its
// owner, its directory, and refuse symbolic links; mode bits alone were
// checked before.
func TestRead(t *testing.T) {
	const secret = "host=h password=s3cret"
	mk := func(t *testing.T) (dir, path string) {
		dir = filepath.Join(t.TempDir(), "secrets")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(dir, "db.dsn")
		if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir, path
	}
	t.Run("private file reads", func(t *testing.T) {
		_, p := mk(t)
		if b, err := Read(p, 1024); err != nil || string(b) != secret {
			t.Fatalf("Read = %q, %v", b, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Read(filepath.Join(t.TempDir(), "nope"), 1024); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read: %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, path string) string
		want  string
	}{
		{"group readable", func(t *testing.T, dir, p string) string { os.Chmod(p, 0o640); return p }, "chmod 600"},
		{"symlink to a private file", func(t *testing.T, dir, p string) string {
			l := filepath.Join(dir, "link.dsn")
			os.Symlink(p, l)
			return l
		}, "symbolic link"},
		{"a directory", func(t *testing.T, dir, p string) string { return dir }, "not a regular file"},
		{"a FIFO", func(t *testing.T, dir, p string) string {
			f := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(f, 0o600); err != nil {
				t.Skip(err)
			}
			return f
		}, "not a regular file"},
		{"group-writable directory", func(t *testing.T, dir, p string) string { os.Chmod(dir, 0o770); return p }, "writable by group or others"},
		{"world-writable sticky directory", func(t *testing.T, dir, p string) string { os.Chmod(dir, 0o1777); return p }, "writable by group or others"},
		{"owned by another user", func(t *testing.T, dir, p string) string {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "belongs to uid 65534"},
		{"directory owned by another user", func(t *testing.T, dir, p string) string {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "neither the user kluis runs as nor root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, p := mk(t)
			p = tc.setup(t, dir, p)
			_, err := Read(p, 1024)
			if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the contents: %v", err)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, p := mk(t)
		if _, err := Read(p, 4); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("Read: %v", err)
		}
	})
}
