package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoAsANewUser runs `kluis demo --dir D` as a newcomer would (no
// config, no KLUIS_ variables, an empty working directory), then checks
// what it leaves with the same binary: a config that validates, every
// tenant's repository at both locations, an evidence export that verifies
// with only its public key and no config, the restored dossier, and a
// status that is all green. It checks structure, not timing.
func TestDemoAsANewUser(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "demo")
	kluis := func(want int, args ...string) string {
		t.Helper()
		c := exec.Command(kluisBin, args...)
		c.Dir = work
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "KLUIS_") {
				c.Env = append(c.Env, kv)
			}
		}
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("kluis %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return string(out)
	}
	out := kluis(0, "demo", "--dir", dir, "--size", "1000000")
	for _, want := range []string{"Restore tests", "PASS from amsterdam", "PASS from groningen", "verified: every signature", "Try next"} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's narrative lacks %q:\n%s", want, out)
		}
	}
	cfg := filepath.Join(dir, "kluis.yaml")
	kluis(0, "--config", cfg, "config", "check")

	var tenants []string
	for _, line := range strings.Split(kluis(0, "--config", cfg, "status", "--json"), "\n") {
		if i := strings.Index(line, `"tenant": "`); i >= 0 {
			tenants = append(tenants, strings.TrimSuffix(strings.TrimSpace(line[i+len(`"tenant": "`):]), `",`))
		}
	}
	if len(tenants) == 0 {
		t.Fatal("status --json names no tenant")
	}
	for _, loc := range []string{"amsterdam", "groningen"} {
		for _, tn := range tenants {
			for _, p := range []string{"config", "keys", "snapshots", "index", "data"} {
				if _, err := os.Stat(filepath.Join(dir, "locations", loc, tn, p)); err != nil {
					t.Errorf("repository of %s at %s: %v", tn, loc, err)
				}
			}
		}
		if reps, _ := filepath.Glob(filepath.Join(dir, "locations", loc, "_evidence", "*", "key-*", "leaf", "*")); len(reps) != 2*len(tenants) {
			t.Errorf("evidence at %s: %d reports, want %d (every tenant tested at both locations)", loc, len(reps), 2*len(tenants))
		}
	}

	// The auditor's view: the export and its public key, nothing else.
	export := filepath.Join(dir, "evidence-export")
	out = kluis(0, "evidence", "verify", "--public-key", filepath.Join(export, "kluis-evidence.pub"), export)
	if !strings.HasPrefix(out, "VERIFIED") {
		t.Errorf("evidence verify:\n%s", out)
	}
	html, err := os.ReadFile(filepath.Join(export, "index.html"))
	if err != nil || !strings.Contains(string(html), "PASS") {
		t.Errorf("the HTML summary: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "restored", "dossier-1.sql")); err != nil || !strings.Contains(string(b), "INSERT INTO") {
		t.Errorf("restored dossier: %v", err)
	}
	kluis(0, "--config", cfg, "access-log", "verify")
	kluis(0, "--config", cfg, "check", "--tenant", tenants[0], "--read-data")
}
