// Package faulty is a repo.Location decorator that injects faults, for
// tests of what the repository does when storage misbehaves: a location
// that fills up, goes down, returns damaged bytes, silently loses objects
// or answers slowly. Faults can be switched at runtime, from any
// goroutine, while the repository is using the location.
//
// It must not be used outside tests: it never repairs, only breaks.
package faulty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// ErrDown is the default error of a location that is down.
var ErrDown = errors.New("location unreachable (injected fault)")

// Options are the faults in force. The zero value injects none.
type Options struct {
	// PutBytes, when >= 0 with PutErr set, is how many more bytes Puts may
	// store: a Put that does not fit fails with PutErr and stores nothing,
	// as a full disk does (e.g. PutErr = syscall.ENOSPC).
	PutBytes int64
	// PutObjects, when >= 0 with PutErr set, is how many more objects Puts
	// may store.
	PutObjects int
	// PutErr is the error of a Put over budget.
	PutErr error

	// Down, when set, is returned by every operation.
	Down error

	// Corrupt, when set, selects objects whose bytes Get returns damaged:
	// one bit flipped in the middle of the range read. The stored object
	// is unchanged.
	Corrupt func(name string) bool

	// Drop, when set, selects objects that are silently lost: Put of them
	// returns nil without storing, and existing ones are hidden from Get,
	// Stat and List as if they were gone.
	Drop func(name string) bool

	// Delay is added before every operation (honouring the context).
	Delay time.Duration
}

// NoLimit disables the Put budgets.
const NoLimit = -1

// Location injects faults into an inner Location.
type Location struct {
	inner repo.Location

	mu   sync.Mutex
	opts Options
	// puts counts the Puts that reached the inner location.
	puts int
}

// New wraps inner. Budgets left at zero in opts are taken as NoLimit when
// opts.PutErr is nil.
func New(inner repo.Location, opts Options) *Location {
	l := &Location{inner: inner}
	l.Set(opts)
	return l
}

// Set replaces the faults in force.
func (l *Location) Set(opts Options) {
	if opts.PutErr == nil {
		opts.PutBytes, opts.PutObjects = NoLimit, NoLimit
	}
	l.mu.Lock()
	l.opts = opts
	l.mu.Unlock()
}

// Reset removes every fault.
func (l *Location) Reset() { l.Set(Options{}) }

// SetDown makes every operation fail with err (nil: ErrDown).
func (l *Location) SetDown(err error) {
	if err == nil {
		err = ErrDown
	}
	l.update(func(o *Options) { o.Down = err })
}

// SetUp ends a SetDown.
func (l *Location) SetUp() { l.update(func(o *Options) { o.Down = nil }) }

// FailPutsAfter lets Puts store at most bytes more bytes and objects more
// objects (NoLimit for either: unbounded), then fails them with err.
func (l *Location) FailPutsAfter(bytes int64, objects int, err error) {
	l.update(func(o *Options) { o.PutBytes, o.PutObjects, o.PutErr = bytes, objects, err })
}

// SetCorrupt damages the bytes Get returns for names match selects (nil:
// none).
func (l *Location) SetCorrupt(match func(name string) bool) {
	l.update(func(o *Options) { o.Corrupt = match })
}

// SetDrop silently loses the objects match selects (nil: none).
func (l *Location) SetDrop(match func(name string) bool) {
	l.update(func(o *Options) { o.Drop = match })
}

// SetDelay adds d before every operation.
func (l *Location) SetDelay(d time.Duration) { l.update(func(o *Options) { o.Delay = d }) }

// Puts returns how many Puts reached the inner location.
func (l *Location) Puts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.puts
}

// Inner returns the wrapped location.
func (l *Location) Inner() repo.Location { return l.inner }

// Contains returns a match function for names containing any of parts
// (e.g. "/data/", "/index/").
func Contains(parts ...string) func(string) bool {
	return func(name string) bool {
		for _, p := range parts {
			if strings.Contains(name, p) {
				return true
			}
		}
		return false
	}
}

func (l *Location) update(fn func(*Options)) {
	l.mu.Lock()
	fn(&l.opts)
	l.mu.Unlock()
}

func (l *Location) current() Options {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opts
}

// enter applies the delay and the down fault, and returns the options in
// force.
func (l *Location) enter(ctx context.Context, op, name string) (Options, error) {
	o := l.current()
	if o.Delay > 0 {
		t := time.NewTimer(o.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return o, ctx.Err()
		}
	}
	if o.Down != nil {
		return o, fmt.Errorf("location %s: %s %s: %w", l.inner.Name(), op, name, o.Down)
	}
	return o, nil
}

// Name returns the inner location's name.
func (l *Location) Name() string { return l.inner.Name() }

// Put stores data unless a fault says otherwise.
func (l *Location) Put(ctx context.Context, name string, data []byte) error {
	o, err := l.enter(ctx, "put", name)
	if err != nil {
		return err
	}
	if o.Drop != nil && o.Drop(name) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return nil
	}
	charged := false
	if o.PutErr != nil {
		// Take from the budget atomically, so concurrent Puts cannot
		// overspend it; an existing object costs nothing.
		if _, err := l.inner.Stat(ctx, name); err == nil {
			return nil
		}
		l.mu.Lock()
		cur := l.opts
		over := cur.PutErr != nil &&
			((cur.PutBytes >= 0 && int64(len(data)) > cur.PutBytes) || (cur.PutObjects >= 0 && cur.PutObjects < 1))
		if cur.PutErr != nil && !over {
			if cur.PutBytes >= 0 {
				l.opts.PutBytes -= int64(len(data))
			}
			if cur.PutObjects >= 0 {
				l.opts.PutObjects--
			}
		}
		l.mu.Unlock()
		if over {
			return fmt.Errorf("location %s: put %s: %w", l.inner.Name(), name, cur.PutErr)
		}
		charged = true
	}
	err = l.inner.Put(ctx, name, data)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.puts++
	case charged && l.opts.PutErr != nil:
		// Nothing was stored: give the budget back.
		if l.opts.PutBytes >= 0 {
			l.opts.PutBytes += int64(len(data))
		}
		if l.opts.PutObjects >= 0 {
			l.opts.PutObjects++
		}
	}
	return err
}

// Get reads from the inner location, damaging or hiding the object when a
// fault selects it.
func (l *Location) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	o, err := l.enter(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if o.Drop != nil && o.Drop(name) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("location %s: %s: %w", l.inner.Name(), name, repo.ErrNotFound)
	}
	rc, err := l.inner.Get(ctx, name, offset, length)
	if err != nil || o.Corrupt == nil || !o.Corrupt(name) {
		return rc, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		data[len(data)/2] ^= 0x10
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat reports on the inner object unless it is down or dropped.
func (l *Location) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	o, err := l.enter(ctx, "stat", name)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	if o.Drop != nil && o.Drop(name) {
		if err := ctx.Err(); err != nil {
			return repo.ObjectInfo{}, err
		}
		return repo.ObjectInfo{}, fmt.Errorf("location %s: %s: %w", l.inner.Name(), name, repo.ErrNotFound)
	}
	return l.inner.Stat(ctx, name)
}

// List lists the inner location, leaving out dropped objects.
func (l *Location) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	o, err := l.enter(ctx, "list", prefix)
	if err != nil {
		return err
	}
	return l.inner.List(ctx, prefix, func(oi repo.ObjectInfo) error {
		if o.Drop != nil && o.Drop(oi.Name) {
			return nil
		}
		return fn(oi)
	})
}

// Delete deletes from the inner location unless it is down.
func (l *Location) Delete(ctx context.Context, name string) error {
	if _, err := l.enter(ctx, "delete", name); err != nil {
		return err
	}
	return l.inner.Delete(ctx, name)
}
