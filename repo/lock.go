package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock is a tenant lock on this appliance: backups and checks hold it
// shared, prune holds it exclusively, so a backup can never refer to a pack
// that a concurrent prune is deleting. It is an flock(2) on a file in the
// state directory, released by the kernel when the process dies, so a
// crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// ErrLocked is returned when the lock is held by another process and the
// context ended before it was released.
var ErrLocked = errors.New("tenant is locked by another kluis process")

// LockTenant takes the tenant's lock, waiting until ctx ends.
func LockTenant(ctx context.Context, stateDir, tenant string, exclusive bool) (*Lock, error) {
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, tenant+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock tenant %s: %w", tenant, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			mode := "shared"
			if exclusive {
				mode = "exclusive"
			}
			return nil, fmt.Errorf("%w: %s (waiting for a %s lock)", ErrLocked, tenant, mode)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
