package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrDaemonRunning is returned by LockStateDir when another daemon holds
// the state directory.
var ErrDaemonRunning = errors.New("another kluis daemon uses this state directory")

// StateLock is a daemon's hold on its state directory.
type StateLock struct{ f *os.File }

// LockStateDir takes the daemon's exclusive lock on a state directory (an
// flock(2) on daemon.lock, released by the kernel when the process dies):
// two daemons on one state directory would take duplicate backups and
// fork the evidence chain, so the second refuses to start. The holder's
// pid is written into the file for the error message.
func LockStateDir(dir string) (*StateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, "daemon.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b[:n]))
			if _, perr := strconv.Atoi(pid); perr != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%w (%s, pid %s): stop it first, or give this one its own appliance.state_dir", ErrDaemonRunning, dir, pid)
		}
		return nil, fmt.Errorf("state directory lock %s: %w", p, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateLock{f: f}, nil
}

// Unlock releases the lock.
func (l *StateLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
