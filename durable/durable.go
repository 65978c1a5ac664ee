// Package durable holds the one file-system step every writer of kluis
// state needs after creating, linking or renaming a file: fsync of the
// directory, so the new name survives a crash.
package durable

import (
	"errors"
	"os"
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
