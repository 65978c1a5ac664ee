package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A server that dies while starting is reported with the end of its log,
// and a port clash is retried (three attempts) while other errors are not.
func TestStartProcessExitShowsLog(t *testing.T) {
	dir := t.TempDir()
	attempts := 0
	err := RetryPortClash(func() error {
		attempts++
		cmd := Command(context.Background(), dir, nil, syscall.SIGKILL, "/bin/sh", "-c", "echo 'could not bind: Address already in use' >&2; exit 1")
		_, err := StartProcess(context.Background(), cmd, Launch{
			Name: "fake", LogPath: filepath.Join(dir, "fake.log"),
			Ready: func(context.Context) error { return errors.New("not yet") },
		})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "fake exited while starting") || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("err = %v", err)
	}
	if attempts != 3 {
		t.Fatalf("%d attempts on a port clash, want 3", attempts)
	}
	attempts = 0
	RetryPortClash(func() error { attempts++; return errors.New("initdb failed") })
	if attempts != 1 {
		t.Fatalf("%d attempts on another error, want 1", attempts)
	}
}

// A server that ignores the stop signal is killed after the grace period,
// and Stop returns only once it is gone.
func TestStopKillsStubbornServer(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "stubborn.log")
	cmd := Command(context.Background(), dir, nil, syscall.SIGKILL, "/bin/sh", "-c", `trap "" TERM; echo ready; exec sleep 60`)
	p, err := StartProcess(context.Background(), cmd, Launch{
		Name: "stubborn", LogPath: logPath, StopGrace: 100 * time.Millisecond,
		Ready: func(context.Context) error {
			if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "ready") {
				return nil
			}
			return errors.New("no ready line yet")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	p.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("server %d still there after Stop: %v", pid, err)
	}
	p.Stop() // a second Stop does nothing
}

// Directories of dead test processes are removed unless a server still
// runs there; a live owner's directory stays.
func TestOwnedTempDirRemovesStale(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const prefix = "kluis-testenv-"
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, pid int) string {
		d := filepath.Join(os.TempDir(), prefix+name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk("stale", dead.Process.Pid)
	busy := mk("busy", dead.Process.Pid)
	live := mk("live", os.Getppid())
	dir, err := OwnedTempDir(prefix, nil, func(d string) bool { return d == busy })
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{stale: false, busy: true, live: true, dir: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(d), err == nil, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ownerFile)); string(b) != strconv.Itoa(os.Getpid()) {
		t.Errorf("owner.pid = %q", b)
	}
}

type fakeServer struct {
	name    string
	stopped *atomic.Int32
}

func (f *fakeServer) Stop() error { f.stopped.Add(1); return nil }

// Shared falls back to the machine's server when none starts, and names
// both causes when neither can be had.
func TestSharedFallback(t *testing.T) {
	var stopped atomic.Int32
	fail := func(msg string) func(context.Context) (*fakeServer, error) {
		return func(context.Context) (*fakeServer, error) { return nil, errors.New(msg) }
	}
	ok := func(name string) func(context.Context) (*fakeServer, error) {
		return func(context.Context) (*fakeServer, error) { return &fakeServer{name: name, stopped: &stopped}, nil }
	}
	describe := func(f *fakeServer) string { return f.name }
	for _, tc := range []struct {
		name           string
		start, fb      func(context.Context) (*fakeServer, error)
		want, wantSkip string
	}{
		{name: "throwaway", start: ok("own"), fb: ok("shared"), want: "own"},
		{name: "fallback", start: fail("no initdb"), fb: ok("shared"), want: "shared"},
		{name: "neither", start: fail("no initdb"), fb: fail("connection refused"), wantSkip: "throwaway server: no initdb; fallback server: connection refused"},
		{name: "no fallback", start: fail("no versitygw"), wantSkip: "no fake server for tests: no versitygw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, "")
			h := &Shared[*fakeServer]{What: "fake server", Harness: "fake", Start: tc.start, Describe: describe}
			if tc.fb != nil {
				h.Fallback = tc.fb
			}
			r := &recorder{TB: t}
			got := h.Get(r)
			if tc.wantSkip != "" {
				if got != nil || !strings.Contains(r.skipped, tc.wantSkip) {
					t.Fatalf("got %v, skipped %q", got, r.skipped)
				}
				return
			}
			if got == nil || got.name != tc.want {
				t.Fatalf("got %v, want %s (skipped %q)", got, tc.want, r.skipped)
			}
		})
	}
	if stopped.Load() != 2 {
		t.Fatalf("%d servers stopped at cleanup, want 2", stopped.Load())
	}
}

func TestUniqueName(t *testing.T) {
	var seq atomic.Int64
	pre := "kluis_" + strconv.Itoa(os.Getpid()) + "_"
	for _, tc := range []struct{ name, in, want string }{
		{name: "cleaned", in: "Hello World!", want: pre + "1_hello_world_"},
		{name: "runs collapse", in: `a;"b" cliënt`, want: pre + "2_a_b_cli_nt"},
		{name: "truncated", in: strings.Repeat("x", 100), want: (pre + "3_" + strings.Repeat("x", 100))[:20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := 63
			if tc.name == "truncated" {
				max = 20
			}
			if got := UniqueName(&seq, tc.in, max); got != tc.want {
				t.Fatalf("UniqueName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
