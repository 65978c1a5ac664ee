package main

import (
	"os"
	"strings"
	"testing"
)

// TestMisconfiguredLocationAdvice: a backup to a location whose bucket does
// not exist is degraded (exit 3) and says it is a configuration problem to
// fix and test with `config check --online`, not "run sync when the
// location is back" (issue 18.5).
func TestMisconfiguredLocationAdvice(t *testing.T) {
	t.Parallel()
	e, _ := newS3Env(t)
	e.keysInit()
	e.mustRun(0, "init", "--tenant", tenant)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The groningen location now names a bucket that does not exist.
	i := strings.Index(string(cfg), "name: s3-gro")
	fixed := string(cfg[:i]) + strings.Replace(string(cfg[i:]), "bucket: kluis", "bucket: kluis-typo", 1)
	if err := os.WriteFile(e.cfg, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 64<<10)
	r := e.mustRun(3, "backup", "--tenant", tenant, "--file", "db="+input)
	if !strings.Contains(r.stderr, "configuration problem") || !strings.Contains(r.stderr, "config check --online") || strings.Contains(r.stderr, "when the location is back") {
		t.Errorf("backup to a missing bucket: want configuration advice, got %v", r)
	}
}
