package testenv

// The harness core: what internal/pgtest, internal/mariadbtest and
// internal/s3test share — a process started in a temporary directory, a
// free loopback port, a readiness wait, stop then kill, stale-directory
// cleanup, and one server per test binary with a fallback to the machine's
// shared server.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ownerFile names the file in a harness directory that holds the pid of
// the test process owning it.
const ownerFile = "owner.pid"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can take it before the server binds it: start through
// RetryPortClash.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ClosedPort returns a loopback port nothing listens on a moment ago whose
// number does not contain avoid: an error naming the port must not look
// like it leaks a test's secret that holds those digits (port 42175 did,
// for a password ending in 4217).
func ClosedPort(t testing.TB, avoid string) int {
	t.Helper()
	for {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strconv.Itoa(port), avoid) {
			return port
		}
	}
}

// RetryPortClash calls start up to three times while it fails because its
// port was taken between FreePort and the server's bind ("in use").
func RetryPortClash(start func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = start(); err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
	}
	return err
}

// RunAs returns the credential to run a server with: nil unless the tests
// run as root, then the first of users that exists and is not root (the
// database servers refuse to run as root, or should not).
func RunAs(users ...string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range users {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user (%s) to run the server as", strings.Join(users, ", "))
}

// OwnedTempDir creates a directory for a throwaway server under the
// system temporary directory, named prefix*, holding owner.pid, and owned
// by cred when set. It first removes the directories of earlier test
// processes that died without cleaning up, unless inUse (when not nil)
// reports that a server still runs in one.
func OwnedTempDir(prefix string, cred *syscall.Credential, inUse func(dir string) bool) (string, error) {
	removeStaleDirs(prefix, inUse)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func removeStaleDirs(prefix string, inUse func(dir string) bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if inUse != nil && inUse(d) {
			continue // a server still claims it; leave it alone
		}
		os.RemoveAll(d)
	}
}

// PidAlive reports whether the file at path holds the pid of a running
// process (a server's pid file).
func PidAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && syscall.Kill(pid, 0) == nil
}

// Command returns a command for a server program run in dir as cred (nil:
// as the tests), in its own process group, with LC_ALL=C and TZ=UTC, that
// receives deathSig when the test process dies.
func Command(ctx context.Context, dir string, cred *syscall.Credential, deathSig syscall.Signal, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: deathSig}
	return cmd
}

// Launch says how StartProcess runs a server and knows it is ready.
type Launch struct {
	Name     string              // the program, for errors ("postgres")
	LogPath  string              // stdout and stderr are appended here
	LogOwner *syscall.Credential // owner of the log file, when set
	// Ready reports nil once the server answers; it is polled every Poll
	// (default 50 ms) for at most Timeout (default 60 s).
	Ready   func(ctx context.Context) error
	Poll    time.Duration
	Timeout time.Duration
	// StopSignal asks the server to shut down (default SIGTERM); after
	// StopGrace (default 15 s) it is killed.
	StopSignal syscall.Signal
	StopGrace  time.Duration
}

// Process is a running server program.
type Process struct {
	l    Launch
	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
}

// StartProcess starts cmd (which must not be bound to a context that ends
// before the server should) and waits until l.Ready succeeds. When the
// server exits first, the error holds the end of its log; when it is not
// ready in time or ctx ends, it is stopped.
func StartProcess(ctx context.Context, cmd *exec.Cmd, l Launch) (*Process, error) {
	if l.Poll == 0 {
		l.Poll = 50 * time.Millisecond
	}
	if l.Timeout == 0 {
		l.Timeout = 60 * time.Second
	}
	if l.StopSignal == 0 {
		l.StopSignal = syscall.SIGTERM
	}
	if l.StopGrace == 0 {
		l.StopGrace = 15 * time.Second
	}
	logFile, err := os.OpenFile(l.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	if l.LogOwner != nil {
		os.Chown(l.LogPath, int(l.LogOwner.Uid), int(l.LogOwner.Gid))
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", l.Name, err)
	}
	p := &Process{l: l, cmd: cmd, exit: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exit) }()

	deadline := time.Now().Add(l.Timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.Ready(rctx)
		cancel()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.exit:
			return nil, fmt.Errorf("%s exited while starting: %s", l.Name, p.logTail())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(l.Poll):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s not ready after %v (%v): %s", l.Name, l.Timeout, err, p.logTail())
		}
	}
}

func (p *Process) logTail() string {
	b, _ := os.ReadFile(p.l.LogPath)
	return Tail(b)
}

// Stop asks the server to shut down, kills it after the grace period, and
// waits for it to exit. Stopping a stopped Process does nothing.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(p.l.StopSignal)
	select {
	case <-p.exit:
	case <-time.After(p.l.StopGrace):
		p.cmd.Process.Kill()
		<-p.exit
	}
	p.cmd = nil
}

// Shared is the one server a test binary shares across its tests: started
// on first use, falling back to the machine's shared server when none can
// be started, and stopped when the tests end (Main). Without Main every
// Get starts a server of its own, stopped at the test's cleanup.
type Shared[S interface {
	comparable
	Stop() error
}] struct {
	What     string                           // "PostgreSQL server", for messages
	Harness  string                           // "pgtest", for messages
	Start    func(context.Context) (S, error) // a throwaway server
	Fallback func(context.Context) (S, error) // the machine's shared server; nil: none
	Describe func(S) string                   // where the fallback is, for the notice

	main atomic.Bool
	once sync.Once
	s    S
	err  error
}

// Main runs the package's tests and stops the shared server afterwards.
func (h *Shared[S]) Main(m *testing.M) {
	h.main.Store(true)
	code := m.Run()
	var zero S
	if h.s != zero {
		if err := h.s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: stopping the test server: %v\n", h.Harness, err)
		}
	}
	os.Exit(code)
}

// Get returns the shared server (a server of the test's own without Main),
// or skips or fails the test (SkipOrFail) when none can be had.
func (h *Shared[S]) Get(t testing.TB) S {
	t.Helper()
	var zero S
	if !h.main.Load() {
		s, err := h.startOrFallback()
		if err != nil {
			SkipOrFail(t, "no %s for tests: %v", h.What, err)
			return zero
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("stopping the test server: %v", err)
			}
		})
		return s
	}
	h.once.Do(func() { h.s, h.err = h.startOrFallback() })
	if h.err != nil {
		SkipOrFail(t, "no %s for tests: %v", h.What, h.err)
		return zero
	}
	return h.s
}

func (h *Shared[S]) startOrFallback() (S, error) {
	var zero S
	s, err := h.Start(context.Background())
	if err == nil || h.Fallback == nil {
		return s, err
	}
	f, ferr := h.Fallback(context.Background())
	if ferr != nil {
		return zero, fmt.Errorf("throwaway server: %v; fallback server: %v", err, ferr)
	}
	fmt.Fprintf(os.Stderr, "%s: no throwaway server (%v); using the shared server at %s\n", h.Harness, err, h.Describe(f))
	return f, nil
}

// IsExecutable reports whether p is an executable file.
func IsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Tool returns the path of a client tool: name in binDir (when set), else
// on PATH; it skips or fails the test when there is none.
func Tool(t testing.TB, binDir, name string) string {
	t.Helper()
	if binDir != "" {
		if p := filepath.Join(binDir, name); IsExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	SkipOrFail(t, "no %s binary", name)
	return ""
}

// UniqueName returns a database name, unique on one server for this test
// process, derived from name: kluis_PID_SEQ_name, lower case, [a-z0-9_]
// only, at most max bytes.
func UniqueName(seq *atomic.Int64, name string, max int) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	db := fmt.Sprintf("kluis_%d_%d_%s", os.Getpid(), seq.Add(1), b.String())
	if len(db) > max {
		db = db[:max]
	}
	return db
}

// RandomHex returns n random bytes in lower-case hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Redact replaces every occurrence of secret in s (a server's error that
// may quote a connection string).
func Redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "xxxxx")
}

// Tail returns the last 2000 bytes of a log, trimmed.
func Tail(b []byte) string {
	const max = 2000
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}
