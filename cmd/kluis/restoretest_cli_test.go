package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/synth"
)

const restoreTestConfig = `
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key%s}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - id: praktijk-s
    engine: sqlite
    path: ./praktijk.db
    probes:
      - {name: clients-present, sql: "SELECT count(*) FROM clients", min: 1}
policy:
  pack_size: 1MiB
%s
`

// newSQLiteEnv is an appliance with one synthetic sqlite practice, backed
// up once.
func newSQLiteEnv(t *testing.T, appliance, policy string) *env {
	t.Helper()
	e := newEnv(t)
	if err := os.WriteFile(e.cfg, []byte(strings.TrimLeft(fmt.Sprintf(restoreTestConfig, appliance, policy), "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := synth.GenerateSQLiteFile(ctx, e.path("praktijk.db"), synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")
	return e
}

// TestRestoreTestCLI: `kluis restore-test` exits 0 on PASS and 1 on FAIL,
// prints the check table, the verdict and the evidence record, alternates
// the location, and `kluis status` fails while the last test failed.
func TestRestoreTestCLI(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, "", "")

	r := e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	for _, want := range []string{"read from amsterdam", "CHECK", "fingerprints", "drop-scratch", "verdict: PASS", "signed report: evidence record 1", "copied to amsterdam, groningen"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q: %v", want, r)
		}
	}
	var out struct {
		Report   evidence.Report `json:"report"`
		Evidence struct {
			Seq uint64 `json:"seq"`
		} `json:"evidence"`
	}
	e.mustJSON(0, &out, "restore-test", "--tenant", "praktijk-s", "--json")
	if rep := out.Report; rep.Verdict != evidence.Pass || rep.Location.Name != "groningen" || len(rep.Checks) != 10 || out.Evidence.Seq != 2 {
		t.Errorf("second test (JSON): %+v", out)
	}
	if r := e.mustRun(0, "status"); !strings.Contains(r.stdout, "passed") || !strings.Contains(r.stdout, "@groningen") {
		t.Errorf("status after a pass: %v", r)
	}

	// A pack damaged at amsterdam: the test there fails naming fetch.
	packs, _ := filepath.Glob(e.path("loc-a", "praktijk-s", "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	sort.Strings(packs)
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	os.Chmod(packs[0], 0o600)
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.mustRun(1, "restore-test", "--tenant", "praktijk-s", "--location", "amsterdam")
	if !strings.Contains(r.stdout, "verdict: FAIL (fetch, restore, fingerprints, schema, probes, rto)") || !strings.Contains(r.stdout, "evidence record 3") {
		t.Errorf("failed test: %v", r)
	}
	if r := e.mustRun(1, "status"); !strings.Contains(r.stdout, "last restore test") || !strings.Contains(r.stdout, "fetch") {
		t.Errorf("status after a failed test: %v", r)
	}
	var st struct {
		OK      bool `json:"ok"`
		Tenants []struct {
			RestoreTest string `json:"restore_test"`
		} `json:"tenants"`
	}
	e.mustJSON(1, &st, "status", "--json")
	if st.OK || len(st.Tenants) != 1 || st.Tenants[0].RestoreTest != "failed" {
		t.Errorf("status --json: %+v", st)
	}
	// The default is the location least recently tested, whatever the
	// verdicts: groningen, still good (a pass there clears the status),
	// then the failing amsterdam again.
	if r := e.mustRun(0, "restore-test", "--tenant", "praktijk-s"); !strings.Contains(r.stdout, "read from groningen") {
		t.Errorf("after a failure at amsterdam: %v", r)
	}
	e.mustRun(0, "status")
	if r := e.mustRun(1, "restore-test", "--tenant", "praktijk-s"); !strings.Contains(r.stdout, "read from amsterdam") {
		t.Errorf("the failing location is not retried in its turn: %v", r)
	}
	e.mustRun(1, "status")

	hist, err := os.ReadFile(e.path("state", "history.jsonl"))
	if err != nil || strings.Count(string(hist), `"job":"restore-test"`) != 5 {
		t.Errorf("history: %v\n%s", err, hist)
	}
	recs, err := os.ReadDir(e.path("state", "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range recs {
		if strings.HasSuffix(f.Name(), ".json") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d evidence records, want 5", n)
	}
	if left, _ := os.ReadDir(e.path("state", "restore-test")); len(left) > 0 {
		t.Errorf("scratch files left: %v", left)
	}
}

// TestRestoreTestCLIUsage: usage and configuration errors exit 2 and run
// nothing.
func TestRestoreTestCLIUsage(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, "", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore-test"}, "--tenant is required"},
		{[]string{"restore-test", "--tenant", "nobody"}, `no tenant "nobody"`},
		{[]string{"restore-test", "--tenant", "praktijk-s", "--location", "rotterdam"}, `no location "rotterdam"`},
		{[]string{"restore-test", "--tenant", "praktijk-s", "stray"}, `unexpected argument "stray"`},
	} {
		if r := e.mustRun(2, tc.args...); !strings.Contains(r.stderr, tc.want) {
			t.Errorf("stderr lacks %q: %v", tc.want, r)
		}
	}
	if _, err := os.Stat(e.path("state", "evidence")); err == nil {
		if recs, _ := os.ReadDir(e.path("state", "evidence")); len(recs) > 0 {
			for _, r := range recs {
				if strings.HasSuffix(r.Name(), ".json") {
					t.Errorf("a refused test wrote evidence: %s", r.Name())
				}
			}
		}
	}
}

// TestRestoreTestDaemon: the daemon runs restore tests on the schedule,
// writes their evidence, and reports them in its metric and logs.
func TestRestoreTestDaemon(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, `, metrics_listen: "127.0.0.1:0"`, `  restore_test: {schedule: "@every 1s"}`)
	c, _, _ := e.command("daemon", "--log-level", "info", "--log-format", "json")
	var logs lockedBuffer
	c.Stdout, c.Stderr = io.Discard, &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	defer c.Process.Kill()
	waitFor(t, "two restore tests", func() bool { return strings.Count(logs.String(), `"msg":"restore test passed"`) >= 2 })
	addr := regexp.MustCompile(`"msg":"serving metrics","addr":"([^"]+)"`).FindStringSubmatch(logs.String())
	if addr == nil {
		t.Fatalf("no metrics address in the logs:\n%s", logs.String())
	}
	if body := httpGet(t, "http://"+addr[1]+"/metrics"); !strings.Contains(body, `kluis_restore_test_ok{tenant="praktijk-s"} 1`) {
		t.Errorf("/metrics lacks a passed restore test:\n%s", body)
	}
	c.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	var locs []string
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct {
			Msg      string `json:"msg"`
			Location string `json:"location"`
			Seq      uint64 `json:"evidence_seq"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "restore test passed" {
			if l.Seq == 0 {
				t.Errorf("no evidence record logged: %s", line)
			}
			locs = append(locs, l.Location)
		}
	}
	if len(locs) < 2 || locs[0] == locs[1] {
		t.Errorf("locations tested: %v, want alternation", locs)
	}
	e.mustRun(0, "status")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
