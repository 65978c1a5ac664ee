// Package durable holds the file-system steps every writer of kluis state
// needs: writing a file so that it is whole or absent after a crash
// (WriteFile), and fsync of a directory after creating, linking or
// renaming a file in it (SyncDir), so the new name survives a crash.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs a directory. File systems that cannot sync a directory
// (EINVAL) are not an error: there is nothing more to do on them.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Place says how WriteFile puts the finished file at its path.
type Place int

const (
	// Rename replaces whatever is at the path: it then holds the old or
	// the new bytes, never a mix.
	Rename Place = iota
	// Link never replaces: a file already at the path is an error
	// (fs.ErrExist) and stays as it is.
	Link
	// LinkOrKeep never replaces either, but a file already at the path is
	// success (content-addressed objects: it holds the same bytes).
	LinkOrKeep
)

// Options say how WriteFile writes.
type Options struct {
	// TempPrefix starts the name of the temporary file beside the path
	// (readers skip such names; default ".tmp-").
	TempPrefix string
	// Mode, when not zero, is set on the file before it is placed (e.g.
	// 0o400 for write-once objects); otherwise it keeps 0600.
	Mode os.FileMode
	// Place is how the file is put at the path (default Rename).
	Place Place
}

// WriteFile writes data to path durably: a temporary file in the same
// directory is written, fsynced and closed, given Mode, placed (Place) and
// the directory fsynced. The directory must exist. The temporary file is
// removed whatever happens.
func WriteFile(path string, data []byte, o Options) error {
	dir := filepath.Dir(path)
	prefix := o.TempPrefix
	if prefix == "" {
		prefix = ".tmp-"
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if o.Mode != 0 {
		if err := os.Chmod(tmp, o.Mode); err != nil {
			return err
		}
	}
	switch o.Place {
	case Link, LinkOrKeep:
		if err := os.Link(tmp, path); err != nil && !(o.Place == LinkOrKeep && errors.Is(err, fs.ErrExist)) {
			return err
		}
	default:
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return SyncDir(dir)
}
