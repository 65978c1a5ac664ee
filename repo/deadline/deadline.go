// Package deadline is a repo.Location decorator that bounds every
// operation in time, so that a hung endpoint (one that accepts
// connections and then says nothing, like a SIGSTOPped server or a
// black-holed route) costs seconds instead of stalling every job that
// touches it.
//
// Each operation gets Timeout (a Put also gets a minute per MinRate of
// its size); a Get's body and a List's pages are watched for progress and
// cancelled after Timeout without any. When an operation runs out of time
// while its caller still waits, the location is marked hung for CoolOff:
// further operations fail at once with ErrHung, naming the location, so a
// backup commits at the healthy locations after one timeout instead of
// one per object. After CoolOff the next operation tries again.
//
// The package knows nothing of formats or keys; it only times calls.
package deadline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// ErrHung is returned (wrapped) for an operation that ran out of time, or
// that was not tried because the location hung moments before.
var ErrHung = errors.New("location hung: no answer within its deadline")

// MinRate is the slowest upload rate a Put is given time for, on top of
// Timeout.
const MinRate = 1 << 20 // bytes per second

// Options configure a Location.
type Options struct {
	// Timeout bounds one operation without progress (required).
	Timeout time.Duration
	// CoolOff is how long a hung location is skipped (default 5×Timeout).
	CoolOff time.Duration
	// State is shared by every Location decorating the same endpoint (the
	// daemon opens locations per job); nil: StateFor(name, name).
	State *State
}

// State is the hung/healthy state of one location, shared across the
// decorators of that location in a process.
type State struct {
	name      string
	mu        sync.Mutex
	hungUntil time.Time
	since     time.Time
	lastOp    string
}

// Hung reports whether the location is being skipped now, and since when.
func (s *State) Hung(now time.Time) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.hungUntil), s.since
}

func (s *State) mark(now time.Time, coolOff time.Duration, op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() || now.After(s.hungUntil) {
		s.since = now // a new hang, not the same one going on
	}
	s.hungUntil, s.lastOp = now.Add(coolOff), op
}

func (s *State) healthy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hungUntil, s.since = time.Time{}, time.Time{}
}

var (
	statesMu sync.Mutex
	states   = map[string]*State{}
)

// StateFor returns the process-wide state of the location named name;
// key tells apart locations of one name in different configs (tests run
// many appliances in one process).
func StateFor(key, name string) *State {
	statesMu.Lock()
	defer statesMu.Unlock()
	s := states[key]
	if s == nil {
		s = &State{name: name}
		states[key] = s
	}
	return s
}

// HungLocations returns, by location name, whether each location this
// process has used is hung now (for metrics and status).
func HungLocations() map[string]bool {
	statesMu.Lock()
	defer statesMu.Unlock()
	out := map[string]bool{}
	now := time.Now()
	for _, s := range states {
		hung, _ := s.Hung(now)
		out[s.name] = out[s.name] || hung
	}
	return out
}

// Location bounds an inner Location's operations in time.
type Location struct {
	inner repo.Location
	opts  Options
}

var _ repo.Location = (*Location)(nil)

// New decorates inner. A zero Timeout returns inner unchanged.
func New(inner repo.Location, opts Options) repo.Location {
	if opts.Timeout <= 0 {
		return inner
	}
	if opts.CoolOff <= 0 {
		opts.CoolOff = 5 * opts.Timeout
	}
	if opts.State == nil {
		opts.State = StateFor(inner.Name(), inner.Name())
	}
	return &Location{inner: inner, opts: opts}
}

// Unwrap returns the decorated location (repo.As reaches backend extras
// such as ExtendRetention through it).
func (l *Location) Unwrap() repo.Location { return l.inner }

// Name is the inner location's name.
func (l *Location) Name() string { return l.inner.Name() }

// enter fails fast while the location is hung.
func (l *Location) enter(op, name string) error {
	if hung, since := l.opts.State.Hung(time.Now()); hung {
		return fmt.Errorf("location %s: %s %s: %w since %s (no answer within %s); not tried again before the cool-off ends",
			l.Name(), op, name, ErrHung, since.UTC().Format(time.RFC3339), l.opts.Timeout)
	}
	return nil
}

// watch runs op under a watchdog that cancels it after timeout without a
// call to the returned kick; it reports whether the watchdog fired.
type watchdog struct {
	t     *time.Timer
	fired chan struct{}
	once  sync.Once
}

func newWatchdog(parent context.Context, timeout time.Duration) (context.Context, *watchdog, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	w := &watchdog{fired: make(chan struct{})}
	w.t = time.AfterFunc(timeout, func() {
		w.once.Do(func() { close(w.fired) })
		cancel()
	})
	return ctx, w, func() { w.t.Stop(); cancel() }
}

func (w *watchdog) kick(d time.Duration) { w.t.Reset(d) }

func (w *watchdog) didFire() bool {
	select {
	case <-w.fired:
		return true
	default:
		return false
	}
}

// result turns an operation's error into ErrHung when the watchdog fired
// while the caller still waited, and records the location's state.
func (l *Location) result(parent context.Context, w *watchdog, op, name string, err error) error {
	if err != nil && w.didFire() && parent.Err() == nil {
		l.opts.State.mark(time.Now(), l.opts.CoolOff, op)
		return fmt.Errorf("location %s: %s %s: %w (%s; policy.location_timeout): %v", l.Name(), op, name, ErrHung, l.opts.Timeout, err)
	}
	if err == nil || errors.Is(err, repo.ErrNotFound) {
		l.opts.State.healthy()
	}
	return err
}

// Put stores data, allowing Timeout plus a second per MinRate bytes.
func (l *Location) Put(ctx context.Context, name string, data []byte) error {
	if err := l.enter("put", name); err != nil {
		return err
	}
	budget := l.opts.Timeout + time.Duration(int64(len(data))/MinRate)*time.Second
	cctx, w, stop := newWatchdog(ctx, budget)
	defer stop()
	return l.result(ctx, w, "put", name, l.inner.Put(cctx, name, data))
}

// Get opens a range; its body is cancelled after Timeout without progress.
func (l *Location) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := l.enter("get", name); err != nil {
		return nil, err
	}
	cctx, w, stop := newWatchdog(ctx, l.opts.Timeout)
	rc, err := l.inner.Get(cctx, name, offset, length)
	if err != nil {
		stop()
		return nil, l.result(ctx, w, "get", name, err)
	}
	w.kick(l.opts.Timeout)
	return &body{rc: rc, l: l, parent: ctx, w: w, stop: stop, name: name}, nil
}

type body struct {
	rc     io.ReadCloser
	l      *Location
	parent context.Context
	w      *watchdog
	stop   context.CancelFunc
	name   string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.w.kick(b.l.opts.Timeout)
	}
	if err != nil && err != io.EOF {
		err = b.l.result(b.parent, b.w, "get", b.name, err)
	}
	return n, err
}

func (b *body) Close() error {
	b.stop()
	return b.rc.Close()
}

// Stat returns an object's size within Timeout.
func (l *Location) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := l.enter("stat", name); err != nil {
		return repo.ObjectInfo{}, err
	}
	cctx, w, stop := newWatchdog(ctx, l.opts.Timeout)
	defer stop()
	oi, err := l.inner.Stat(cctx, name)
	return oi, l.result(ctx, w, "stat", name, err)
}

// List lists prefix; it is cancelled after Timeout without a listed object.
func (l *Location) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := l.enter("list", prefix); err != nil {
		return err
	}
	cctx, w, stop := newWatchdog(ctx, l.opts.Timeout)
	defer stop()
	err := l.inner.List(cctx, prefix, func(oi repo.ObjectInfo) error {
		w.kick(l.opts.Timeout)
		return fn(oi)
	})
	return l.result(ctx, w, "list", prefix, err)
}

// Delete removes an object within Timeout.
func (l *Location) Delete(ctx context.Context, name string) error {
	if err := l.enter("delete", name); err != nil {
		return err
	}
	cctx, w, stop := newWatchdog(ctx, l.opts.Timeout)
	defer stop()
	return l.result(ctx, w, "delete", name, l.inner.Delete(cctx, name))
}
