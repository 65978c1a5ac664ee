package evidence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// exportDir is a directory Export created itself and holds open: files
// are created relative to the open descriptor, never through a path that
// another user (or a symlink planted after the directory was made) could
// redirect (issue 15 §4).
type exportDir struct {
	path string
	fd   int
}

// afterExportDirOpen is a test hook: it runs once the directory is created,
// opened and found empty, before any file is written (a symlink planted
// then must not be followed).
var afterExportDirOpen func(dir string)

// createExportDir creates dir (mode 0700; it must not exist: an existing
// directory may be owned by anyone or hold planted links), opens it
// without following a symlink, and checks that what was opened is the
// empty directory this process owns.
func createExportDir(dir string) (*exportDir, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("export: %s exists (and is not empty, or may belong to someone else): export into a new directory, so no stale or planted file mixes in", dir)
		}
		return nil, fmt.Errorf("export: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("export: open %s: %w", dir, err)
	}
	d := &exportDir{path: dir, fd: fd}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.close()
		return nil, fmt.Errorf("export: %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		d.close()
		return nil, fmt.Errorf("export: %s was replaced after it was created (not a private directory of this user): refusing to write", dir)
	}
	// Read the entries through a duplicate: closing it leaves d.fd open.
	dup, err := unix.Dup(fd)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("export: %w", err)
	}
	df := os.NewFile(uintptr(dup), dir)
	names, err := df.Readdirnames(1)
	df.Close()
	if len(names) > 0 || err != nil && !errors.Is(err, io.EOF) {
		d.close()
		return nil, fmt.Errorf("export: %s is not empty after it was created: refusing to write", dir)
	}
	if afterExportDirOpen != nil {
		afterExportDirOpen(dir)
	}
	return d, nil
}

// write creates name in the directory (never replacing or following
// anything: O_EXCL|O_NOFOLLOW) and writes data durably.
func (d *exportDir) write(name string, data []byte) error {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("export: bad file name %q", name)
	}
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("export: create %s: %w (something was placed in the new directory while exporting: investigate)", filepath.Join(d.path, name), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, name))
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("export: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("export: %w", err)
	}
	return f.Close()
}

// sync fsyncs the directory.
func (d *exportDir) sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("export: fsync %s: %w", d.path, err)
	}
	return nil
}

func (d *exportDir) close() { unix.Close(d.fd) }

// subdir creates the directory name inside d (mode 0700, never following
// anything) and returns it open.
func (d *exportDir) subdir(name string) (*exportDir, error) {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("export: bad directory name %q", name)
	}
	if err := unix.Mkdirat(d.fd, name, 0o700); err != nil {
		return nil, fmt.Errorf("export: create %s: %w", filepath.Join(d.path, name), err)
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("export: open %s: %w", filepath.Join(d.path, name), err)
	}
	return &exportDir{path: filepath.Join(d.path, name), fd: fd}, nil
}
