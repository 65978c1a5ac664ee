// Package local is the local-directory Location: one file per object under
// a root directory. Writes go to a temporary file that is fsynced, linked
// into place (link fails if the name exists, so nothing is ever
// overwritten) and followed by an fsync of the directory, so a crash at any
// moment leaves either no object or the whole object.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/repo"
)

// tmpPrefix marks incomplete writes; List skips them and RemoveStale (run by
// prune) removes those older than its grace period.
const tmpPrefix = ".tmp-"

// Location stores objects in a directory.
type Location struct {
	name string
	root string
	open handles // files kept open for ranged reads (handles.go)
}

// New returns a Location rooted at dir. The directory must exist when the
// location is used (Create makes it): a missing root usually means an
// unmounted disk, and writing into the mount point would be worse than
// failing.
func New(name, dir string) *Location {
	return &Location{name: name, root: dir}
}

// Create makes the root directory if it does not exist.
func (l *Location) Create() error {
	if err := os.MkdirAll(l.root, 0o700); err != nil {
		return fmt.Errorf("location %s: %w", l.name, err)
	}
	return nil
}

// checkRoot fails when the root directory is missing.
func (l *Location) checkRoot() error {
	fi, err := os.Stat(l.root)
	if err != nil {
		return fmt.Errorf("location %s: root directory unavailable (not mounted?): %w", l.name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("location %s: root %s is not a directory", l.name, l.root)
	}
	return nil
}

// Name returns the location's name.
func (l *Location) Name() string { return l.name }

// Root returns the directory.
func (l *Location) Root() string { return l.root }

func (l *Location) path(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("location %s: invalid object name %q", l.name, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, tmpPrefix) {
			return "", fmt.Errorf("location %s: invalid object name %q", l.name, name)
		}
	}
	return filepath.Join(l.root, filepath.FromSlash(name)), nil
}

// Put writes data under name unless it exists.
func (l *Location) Put(ctx context.Context, name string, data []byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := l.checkRoot(); err != nil {
		return err
	}
	// Link, unlike rename, fails when the target exists: never overwrite.
	return l.writeDurable(name, p, data, durable.LinkOrKeep)
}

// Replace writes data as name even when an object of that name exists:
// the repair of a damaged copy (repo.Replacer). The new file is written and
// fsynced beside it and renamed over it, so name holds either the old or
// the new bytes, never a mix.
func (l *Location) Replace(ctx context.Context, name string, data []byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.checkRoot(); err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return l.wrap(name, fmt.Errorf("not a regular file (%s); remove it by hand", fi.Mode().Type()))
	}
	defer l.open.drop(p)
	return l.writeDurable(name, p, data, durable.Rename)
}

// writeDurable writes data to a read-only temp file beside p, fsynced, puts
// it in place (LinkOrKeep: never overwrite; Rename: replace) and fsyncs the
// directory (durable.WriteFile).
func (l *Location) writeDurable(name, p string, data []byte, place durable.Place) error {
	dir := filepath.Dir(p)
	if err := mkdirAllSync(dir, l.root); err != nil {
		return l.wrap(name, err)
	}
	return l.wrap(name, durable.WriteFile(p, data, durable.Options{TempPrefix: tmpPrefix, Mode: 0o400, Place: place}))
}

func (l *Location) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("location %s: %s: %w", l.name, name, err)
}

// Get opens a byte range of an object.
func (l *Location) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset >= 0 && length >= 0 {
		h, err := l.open.get(p, func() (*os.File, error) { return l.openObject(name, p) })
		if err != nil {
			return nil, err
		}
		return &rangeReader{hs: &l.open, h: h, off: offset, end: offset + length}, nil
	}
	f, err := l.openObject(name, p)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		f.Close()
		return nil, fmt.Errorf("location %s: %s: negative offset", l.name, name)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, l.wrap(name, err)
	}
	return f, nil
}

// openObject opens the file of object name at path p: ErrNotFound when
// there is none (or a directory: a prefix of names, not an object).
func (l *Location) openObject(name, p string) (*os.File, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.checkRoot(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("location %s: %s: %w", l.name, name, repo.ErrNotFound)
	}
	if err != nil {
		return nil, l.wrap(name, err)
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		// A directory is a prefix of names, not an object.
		f.Close()
		if err != nil {
			return nil, l.wrap(name, err)
		}
		return nil, fmt.Errorf("location %s: %s: %w", l.name, name, repo.ErrNotFound)
	}
	return f, nil
}

// Stat returns an object's size.
func (l *Location) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	p, err := l.path(name)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.checkRoot(); err != nil {
			return repo.ObjectInfo{}, err
		}
		return repo.ObjectInfo{}, fmt.Errorf("location %s: %s: %w", l.name, name, repo.ErrNotFound)
	}
	if err != nil {
		return repo.ObjectInfo{}, l.wrap(name, err)
	}
	if fi.IsDir() {
		return repo.ObjectInfo{}, fmt.Errorf("location %s: %s: %w", l.name, name, repo.ErrNotFound)
	}
	return repo.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the objects under prefix. A prefix is matched as a string, so
// "t/data/" lists the packs of tenant t.
func (l *Location) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	// Walk from the deepest directory the prefix names.
	dir := prefix
	if i := strings.LastIndex(dir, "/"); i >= 0 {
		dir = dir[:i]
	} else {
		dir = ""
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.checkRoot(); err != nil {
		return err
	}
	start := filepath.Join(l.root, filepath.FromSlash(dir))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if name != "." && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(repo.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("location %s: list %s: %w", l.name, prefix, err)
	}
	return nil
}

// Delete removes an object.
func (l *Location) Delete(ctx context.Context, name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a prefix of names, not an object: nothing to delete
	}
	l.open.drop(p)
	err = os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Missing, perhaps with its directory: nothing to do, unless the
		// whole root is gone (an unmounted disk is not "deleted").
		return l.checkRoot()
	}
	if err != nil {
		return l.wrap(name, err)
	}
	return l.wrap(name, syncDir(filepath.Dir(p)))
}

// mkdirAllSync creates dir and its missing parents below root, fsyncing
// each parent so the new directory entries are durable.
func mkdirAllSync(dir, root string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && len(parent) >= len(root) {
		if err := mkdirAllSync(parent, root); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory (package durable).
func syncDir(dir string) error { return durable.SyncDir(dir) }

// RemoveStale deletes temporary files of interrupted writes under prefix
// that are older than olderThan (a write in progress is younger), and
// returns how many it removed. Prune calls it.
func (l *Location) RemoveStale(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	if err := l.checkRoot(); err != nil {
		return 0, err
	}
	start := filepath.Join(l.root, filepath.FromSlash(strings.TrimSuffix(prefix, "/")))
	cutoff := time.Now().Add(-olderThan)
	n := 0
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("location %s: remove stale temporary files: %w", l.name, err)
	}
	return n, nil
}
