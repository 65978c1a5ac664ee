package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Job is a repeating piece of work for one tenant.
type Job struct {
	// Name is unique among the scheduler's jobs, e.g. "backup/praktijk_a".
	Name string
	// Tenant is the exclusivity key: never two jobs of one tenant at once.
	Tenant string
	// Kind says what the job does ("backup", "retention", …), for logs.
	Kind string
	Spec Spec
	Run  func(ctx context.Context) error
	// CatchUp runs the job as soon as it is set when LastSuccess is before
	// its last slot (or zero), or older than MaxAge.
	CatchUp     bool
	LastSuccess time.Time
	MaxAge      time.Duration
}

// Retry says how often a failed run is tried again: Attempts in all (1 =
// no retry), waiting Backoff, then twice that, and so on.
type Retry struct {
	Attempts int
	Backoff  time.Duration
}

// Options configure a Scheduler.
type Options struct {
	Clock       Clock
	Concurrency int
	Retry       Retry
	Log         *slog.Logger
	// OnDone, when set, is called after every run with its attempt number
	// and whether another attempt will follow. It is called with the
	// scheduler's lock held: it must not call the Scheduler.
	OnDone func(j Job, attempt int, err error, willRetry bool)
}

// ErrShutdown is returned by Run after Shutdown was called.
var ErrShutdown = errors.New("scheduler shut down")

// state is where an entry is in its life: every transition goes through
// Scheduler.queueRun (idle or waiting → queued), Scheduler.start (queued →
// running) and Scheduler.finish (running → idle or waiting), so a job is
// queued at most once and its attempt number has one owner.
type state int

const (
	idle    state = iota // nothing pending; next regular slot in entry.next
	waiting              // a failed attempt; retry at entry.retryAt
	queued               // in Scheduler.queue, exactly once
	running
)

func (st state) String() string {
	return [...]string{"idle", "waiting for retry", "queued", "running"}[st]
}

type entry struct {
	job      Job
	next     time.Time // next regular slot
	state    state
	retryAt  time.Time // when state == waiting
	attempt  int       // attempt number of the waiting, queued or running run (≥ 1); 0 when idle
	removed  bool
	lastDone time.Time
}

// Scheduler runs jobs when they are due.
type Scheduler struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	entries  map[string]*entry
	queue    []*entry
	busy     map[string]bool // tenants with a running job
	running  int
	parked   bool
	kicked   bool // a wake-up the loop has not seen yet
	stopping bool

	kick      chan struct{}
	wg        sync.WaitGroup
	jobCtx    context.Context
	cancelJob context.CancelFunc
}

// New returns a Scheduler with no jobs.
func New(opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.Retry.Attempts < 1 {
		opts.Retry.Attempts = 1
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{opts: opts, log: opts.Log, entries: map[string]*entry{}, busy: map[string]bool{},
		kick: make(chan struct{}, 1), jobCtx: ctx, cancelJob: cancel}
}

// SetJobs replaces the job set (at start and at a config reload). A job
// that keeps its name keeps running if it runs; a removed job finishes
// its current run and is not started again. Catch-up is decided here.
func (s *Scheduler) SetJobs(jobs []Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	seen := map[string]bool{}
	for _, j := range jobs {
		seen[j.Name] = true
		e := s.entries[j.Name]
		if e == nil {
			e = &entry{}
			s.entries[j.Name] = e
		}
		if e.job.LastSuccess.After(j.LastSuccess) {
			j.LastSuccess = e.job.LastSuccess
		}
		e.job, e.removed = j, false
		e.next = NextSlot(j.Spec, j.LastSuccess, now)
		if j.CatchUp && e.state == idle && s.missed(j, now) {
			s.log.Info("catching up a missed run", "job", j.Kind, "tenant", j.Tenant, "last_success", j.LastSuccess)
			s.queueRun(e)
		}
	}
	for name, e := range s.entries {
		if !seen[name] {
			e.removed = true
			if e.state != running {
				delete(s.entries, name)
			}
		}
	}
	q := s.queue[:0]
	for _, e := range s.queue {
		if !e.removed {
			q = append(q, e)
		} else {
			e.state, e.attempt = idle, 0
		}
	}
	s.queue = q
	s.wake()
}

func (s *Scheduler) missed(j Job, now time.Time) bool {
	if j.LastSuccess.IsZero() {
		return true
	}
	if j.MaxAge > 0 && now.Sub(j.LastSuccess) > j.MaxAge {
		return true
	}
	prev := Prev(j.Spec, now)
	return !prev.IsZero() && j.LastSuccess.Before(prev)
}

// SetLimits changes the concurrency limit and the retry policy (at a
// config reload). Running jobs are not affected.
func (s *Scheduler) SetLimits(concurrency int, retry Retry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Concurrency = max(concurrency, 1)
	s.opts.Retry = retry
	s.opts.Retry.Attempts = max(retry.Attempts, 1)
	s.wake()
}

// Trigger queues a job to run now unless it is queued or running. A job
// waiting for a retry runs its retry now (same attempt number).
func (s *Scheduler) Trigger(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil || e.removed || !s.queueRun(e) {
		return false
	}
	s.wake()
	return true
}

// State returns a job's state ("idle", "waiting for retry", "queued",
// "running") and the attempt number of a pending or running run, or "" for
// an unknown job.
func (s *Scheduler) State(name string) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return "", 0
	}
	return e.state.String(), e.attempt
}

// Next returns the next time a job is due (a pending retry counts), or
// zero for an unknown job.
func (s *Scheduler) Next(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return time.Time{}
	}
	switch e.state {
	case queued, running:
		return s.opts.Clock.Now()
	case waiting:
		if e.retryAt.Before(e.next) {
			return e.retryAt
		}
	}
	return e.next
}

// NextWake returns the earliest time any job is due, or zero when none.
func (s *Scheduler) NextWake() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextWakeLocked()
}

func (s *Scheduler) nextWakeLocked() time.Time {
	var w time.Time
	for _, e := range s.entries {
		if e.removed {
			continue
		}
		ts := []time.Time{e.next}
		if e.state == waiting {
			ts = append(ts, e.retryAt)
		}
		for _, t := range ts {
			if !t.IsZero() && (w.IsZero() || t.Before(w)) {
				w = t
			}
		}
	}
	return w
}

// Running returns how many jobs are running.
func (s *Scheduler) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Settled reports whether the scheduler has nothing to do until a job
// falls due: its loop parked, no wake-up pending, no job running, and no
// slot or retry due now. Tests with a FakeClock wait for it before moving
// the clock.
func (s *Scheduler) Settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.parked || s.kicked || s.running != 0 {
		return false
	}
	now := s.opts.Clock.Now()
	for _, e := range s.entries {
		if e.removed {
			continue
		}
		if !e.next.After(now) || (e.state == waiting && !e.retryAt.After(now)) {
			return false
		}
	}
	return len(s.queue) == 0 || s.stopping
}

// queueRun moves an idle or waiting entry to the queue; it reports false
// (and changes nothing) for one already queued or running. A waiting
// entry keeps its attempt number; an idle one starts at attempt 1. Call it
// with the lock held.
func (s *Scheduler) queueRun(e *entry) bool {
	switch e.state {
	case queued, running:
		return false
	case idle:
		e.attempt = 1
	}
	e.state, e.retryAt = queued, time.Time{}
	s.queue = append(s.queue, e)
	return true
}

// wake makes the loop look again; call it with the lock held.
func (s *Scheduler) wake() {
	s.kicked = true
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run starts due jobs until ctx ends. It returns ctx's error; running jobs
// go on (see Shutdown).
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return ErrShutdown
		}
		s.kicked = false
		now := s.opts.Clock.Now()
		s.queueDue(now)
		s.dispatch()
		var d time.Duration = 24 * time.Hour
		if w := s.nextWakeLocked(); !w.IsZero() {
			d = w.Sub(now)
		}
		t := s.opts.Clock.NewTimer(d)
		s.parked = true
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			s.parked, s.stopping = false, true
			s.mu.Unlock()
			return ctx.Err()
		case <-t.C():
		case <-s.kick:
			t.Stop()
		}
		s.mu.Lock()
		s.parked = false
		s.mu.Unlock()
	}
}

// queueDue queues every job whose slot or retry has come. A slot that
// comes while the job is queued, running or waiting for a retry is
// skipped: it is the same work.
func (s *Scheduler) queueDue(now time.Time) {
	for _, e := range s.entries {
		if e.removed {
			continue
		}
		if e.state == waiting && !e.retryAt.After(now) {
			s.queueRun(e)
		}
		if !e.next.After(now) {
			if e.state != idle {
				s.log.Debug("slot skipped: job still busy", "job", e.job.Kind, "tenant", e.job.Tenant, "state", e.state.String())
			} else {
				s.queueRun(e)
			}
			e.next = e.job.Spec.Next(now)
		}
	}
}

// dispatch starts queued jobs, oldest first, while there are free slots
// and their tenant is idle.
func (s *Scheduler) dispatch() {
	q := s.queue[:0]
	for _, e := range s.queue {
		if s.running < s.opts.Concurrency && !s.busy[e.job.Tenant] && !s.stopping {
			s.start(e)
			continue
		}
		q = append(q, e)
	}
	s.queue = q
}

func (s *Scheduler) start(e *entry) {
	e.state = running
	s.busy[e.job.Tenant] = true
	s.running++
	j, attempt := e.job, e.attempt
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		started := s.opts.Clock.Now()
		s.log.Info("job started", "job", j.Kind, "tenant", j.Tenant, "attempt", attempt)
		err := s.safeRun(j)
		s.finish(e, j, attempt, started, err)
	}()
}

func (s *Scheduler) safeRun(j Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("job panicked")
			s.log.Error("job panicked", "job", j.Kind, "tenant", j.Tenant, "panic", r)
		}
	}()
	return j.Run(s.jobCtx)
}

// MaxBackoff bounds the wait before a retry, whatever Retry.Backoff and
// the attempt number.
const MaxBackoff = 6 * time.Hour

// Backoff is the wait after failed attempt n (1-based): base, then twice
// that, and so on, never more than MaxBackoff (and never negative).
func Backoff(base time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// finish releases the slot and the tenant and moves the entry back to idle
// or waiting. Releasing comes first and cannot fail; a panic in the rest
// of the bookkeeping (or in OnDone) is logged and costs this job its retry,
// never the process or the other jobs.
func (s *Scheduler) finish(e *entry, j Job, attempt int, started time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.wake()
	s.running--
	delete(s.busy, j.Tenant)
	e.state, e.attempt, e.retryAt = idle, 0, time.Time{}
	if e.removed {
		delete(s.entries, j.Name)
	}
	defer func() {
		if r := recover(); r != nil {
			e.state, e.attempt, e.retryAt = idle, 0, time.Time{}
			s.log.Error("job bookkeeping panicked: the job waits for its next slot", "job", j.Kind, "tenant", j.Tenant, "panic", r)
		}
	}()
	now := s.opts.Clock.Now()
	e.lastDone = now
	willRetry := err != nil && attempt < s.opts.Retry.Attempts && !s.stopping && !e.removed
	switch {
	case err == nil:
		e.job.LastSuccess = now
		e.next = NextSlot(e.job.Spec, now, now)
		s.log.Info("job finished", "job", j.Kind, "tenant", j.Tenant, "attempt", attempt, "seconds", now.Sub(started).Seconds())
	case willRetry:
		backoff := Backoff(s.opts.Retry.Backoff, attempt)
		e.state, e.attempt, e.retryAt = waiting, attempt+1, now.Add(backoff)
		s.log.Warn("job failed, will retry", "job", j.Kind, "tenant", j.Tenant, "attempt", attempt, "retry_in", backoff.String(), "err", err)
	default:
		s.log.Error("job failed", "job", j.Kind, "tenant", j.Tenant, "attempt", attempt, "err", err)
	}
	if s.opts.OnDone != nil {
		s.opts.OnDone(j, attempt, err, willRetry)
	}
}

// Shutdown stops starting jobs, waits up to grace for running ones, then
// cancels them and waits for them to return. It reports whether any had to
// be cancelled. Call it after Run returned (or instead of Run).
func (s *Scheduler) Shutdown(grace time.Duration) (cancelled bool) {
	s.mu.Lock()
	s.stopping = true
	s.queue = nil
	s.wake()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := s.opts.Clock.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C():
	}
	s.log.Warn("shutdown grace period over: cancelling running jobs", "grace", grace.String(), "running", s.Running())
	s.cancelJob()
	<-done
	return true
}
