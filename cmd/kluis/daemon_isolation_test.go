package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/synth"
)

// TestOneBadTenantDaemonStarts (issue 18 point 7): a DSN file with mode
// 0644 for one tenant fails that tenant — logged, shown by status and by
// config check — while the daemon starts and backs up the others; a second
// daemon on the same state directory refuses to start.
func TestOneBadTenantDaemonStarts(t *testing.T) {
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: praktijk-ok, engine: sqlite, path: ./praktijk.db}
  - {id: praktijk-pg, engine: postgres, dsn_file: ./secrets/pg.dsn}
policy: {pack_size: 1MiB}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 3); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	for _, d := range []string{"loc-a", "loc-g"} {
		if err := os.MkdirAll(e.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(e.path("secrets", "pg.dsn"), []byte("postgres://kluis@127.0.0.1:1/x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.path("secrets", "pg.dsn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.run("config", "check"); r.code != 2 || !strings.Contains(r.stdout+r.stderr, "tenants[1].dsn_file") {
		t.Errorf("config check with a 0644 dsn_file: %v", r)
	}

	c, _, _ := e.command("daemon", "--log-format", "json")
	var logs lockedBuffer
	c.Stdout, c.Stderr = io.Discard, &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	defer c.Process.Kill()
	waitFor(t, "the good tenant's backup and the bad one's failure", func() bool {
		l := logs.String()
		return strings.Contains(l, `"msg":"snapshot committed"`) && strings.Contains(l, `"msg":"job failed, will retry","job":"backup","tenant":"praktijk-pg"`)
	})
	t.Log(logs.String())
	if !strings.Contains(logs.String(), `"tenant":"praktijk-pg"`) || !strings.Contains(logs.String(), "readable by group or others") {
		t.Errorf("the bad tenant's problem is not logged:\n%s", logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("daemon exited: %v\n%s", err, logs.String())
	default:
	}

	// A second daemon on the same state directory refuses.
	r := e.run("daemon")
	if r.code == 0 || !strings.Contains(r.stderr, "another kluis daemon uses this state directory") {
		t.Errorf("second daemon: %v", r)
	}

	st := e.run("status")
	if st.code != 1 || !strings.Contains(st.stdout, "praktijk-pg") || !strings.Contains(st.stdout+st.stderr, "readable by group or others") {
		t.Errorf("status does not show the bad tenant's problem: %v", st)
	}
	c.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
	}
}
