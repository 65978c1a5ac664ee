package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStatusExitCodes: status exits 0 when every tenant's newest snapshot
// is fresh and at both locations, 1 when none exists or one location lost
// it (stale beyond rpo_target is covered with a fake clock in daemon).
func TestStatusExitCodes(t *testing.T) {
	e := newRepoEnv(t)
	r := e.mustRun(1, "status")
	if !strings.Contains(r.stdout, "no snapshot") {
		t.Errorf("status without snapshots: %v", r)
	}
	data := e.path("data.bin")
	if err := os.WriteFile(data, bytes.Repeat([]byte("kluis status\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	e.backup(0, data)
	r = e.mustRun(0, "status")
	if !strings.Contains(r.stdout, "amsterdam:1 groningen:1") || !strings.Contains(r.stdout, "never") {
		t.Errorf("status: %v", r)
	}
	e.mustRun(0, "status", "--json")
	os.RemoveAll(e.path("loc-g", tenant, "snapshots"))
	r = e.mustRun(1, "status")
	if !strings.Contains(r.stdout, "1 of 2 required locations") {
		t.Errorf("degraded status: %v", r)
	}
}

// TestDaemonSignals runs the real daemon process: it serves /metrics and
// /healthz, refuses a bad config on SIGHUP and keeps running, and exits 0
// on SIGTERM. Its logs are JSON.
func TestDaemonSignals(t *testing.T) {
	e := newRepoEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(string(cfg), "signing_key_file: ./secrets/signing.key}", `signing_key_file: ./secrets/signing.key, metrics_listen: "127.0.0.1:0"}`, 1)
	if err := os.WriteFile(e.cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, _ := e.command("daemon", "--log-level", "info", "--log-format", "json")
	var logs lockedBuffer
	c.Stdout, c.Stderr = io.Discard, &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	defer func() {
		c.Process.Kill()
	}()
	addrRE := regexp.MustCompile(`"msg":"serving metrics","addr":"([^"]+)"`)
	waitFor(t, "the metrics listener", func() bool { return addrRE.MatchString(logs.String()) })
	addr := addrRE.FindStringSubmatch(logs.String())[1]
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "kluis_tenants 0") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}

	if err := os.WriteFile(e.cfg, []byte(good+"\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload refusal", func() bool { return strings.Contains(logs.String(), "config reload refused") })
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz after a bad reload: %d", code)
	}

	c.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not a JSON log line: %s", line)
		}
	}
	if !strings.Contains(logs.String(), "daemon stopped") {
		t.Error("no clean stop logged")
	}
}
