// Package secretfile reads the small files that hold kluis's secrets (the
// master key, the signing key, DSN files) and refuses one that anybody
// but the kluis user could have read or replaced.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafe is wrapped by every refusal of Read.
var ErrUnsafe = errors.New("unsafe secret file")

// Read returns the contents of the secret file at path, at most max bytes.
// It opens path without following a symbolic link (O_NOFOLLOW: a link is
// refused, so nobody can point it elsewhere later) and checks the opened
// descriptor itself (fstat), not the name, so what is checked is what is
// read: a regular file, owned by the effective user, with no group or
// other permission bits. The directory holding it must belong to the
// effective user or root and be writable by nobody else, or someone else
// could replace the file. A missing file wraps fs.ErrNotExist.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link: point the config at the file itself: %w", path, ErrUnsafe)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	if err := checkDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, too large for a secret file (at most %d)", path, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: too large for a secret file (at most %d bytes)", path, max)
	}
	return b, nil
}

func checkFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): %w", path, fi.Mode().Type(), ErrUnsafe)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is readable by group or others (mode %04o): run chmod 600 %s: %w", path, fi.Mode().Perm(), path, ErrUnsafe)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to the user kluis runs as (uid %d): chown it: %w", path, st.Uid, os.Geteuid(), ErrUnsafe)
	}
	return nil
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("directory %s belongs to uid %d, neither the user kluis runs as nor root: whoever owns it can replace the secret files in it: %w", dir, st.Uid, ErrUnsafe)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("directory %s is writable by group or others (mode %04o): anyone who can write it can replace the secret files in it; run chmod go-w %s: %w", dir, fi.Mode().Perm(), dir, ErrUnsafe)
	}
	return nil
}
