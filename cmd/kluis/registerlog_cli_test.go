package main

import (
	"os"
	"strings"
	"testing"
)

// TestRegisterLogVerifyCLI: `kluis erasure verify` and `access-log
// verify` check the register logs as transparency logs: a kept checkpoint
// proves a later rollback (with its matching older checkpoint) or a cut
// end, the anchors at the locations catch the rollback without one, and
// an auditor verifies with the public key only, refusing another
// appliance's checkpoint.
func TestRegisterLogVerifyCLI(t *testing.T) {
	t.Parallel()
	e := newErasureEnv(t)
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", "3", "--reason", "AVG")
	reg, cpFile := e.path("state", "erasures.jsonl"), e.path("state", "erasures.checkpoint")
	oldLog, _ := os.ReadFile(reg)
	oldCP, _ := os.ReadFile(cpFile)
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", "4", "--reason", "AVG")
	kept := e.path("kept.checkpoint")
	b, _ := os.ReadFile(cpFile)
	os.WriteFile(kept, b, 0o600)

	var v struct {
		OK             bool   `json:"ok"`
		Records        int    `json:"records"`
		Origin         string `json:"origin"`
		CheckpointSize int    `json:"checkpoint_size"`
		HeldSize       int    `json:"held_checkpoint_size"`
	}
	e.mustJSON(0, &v, "erasure", "verify", "--checkpoint", kept, "--json")
	if !v.OK || v.Records != 2 || v.CheckpointSize != 2 || v.HeldSize != 2 || v.Origin != "kluis-erasure-register/ams-1" {
		t.Fatalf("erasure verify: %+v", v)
	}
	e.mustRun(0, "access-log", "verify")

	// An auditor, with the public key and the files only.
	pub := e.path("ams-1.pub")
	os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o600)
	e.mustRun(0, "erasure", "verify", "--public-key", pub, "--file", reg, "--appliance", "ams-1", "--checkpoint", kept)
	if r := e.run("erasure", "verify", "--public-key", pub, "--file", reg, "--appliance", "ams-2"); r.code != 1 || !strings.Contains(r.stderr, "another log") {
		t.Errorf("a checkpoint of another appliance: %v", r)
	}

	// Root rolls the register back, with its matching older checkpoint.
	whole, _ := os.ReadFile(reg)
	os.WriteFile(reg, oldLog, 0o600)
	os.WriteFile(cpFile, oldCP, 0o600)
	if r := e.run("erasure", "verify", "--public-key", pub, "--file", reg, "--checkpoint", kept); r.code != 1 || !strings.Contains(r.stderr, "lines 2 to 2 were removed") {
		t.Errorf("a rollback behind a kept checkpoint: %v", r)
	}
	if r := e.run("erasure", "verify"); r.code != 1 || !strings.Contains(r.stderr, "rolled back") {
		t.Errorf("a rollback against the anchors: %v", r)
	}
	// The log cut at its end, the checkpoint left: caught by the log's own
	// checkpoint.
	os.WriteFile(cpFile, b, 0o600)
	if r := e.run("erasure", "verify", "--public-key", pub, "--file", reg); r.code != 1 || !strings.Contains(r.stderr, "were removed") {
		t.Errorf("a log cut short of its checkpoint: %v", r)
	}
	os.WriteFile(reg, whole, 0o600)
	e.mustRun(0, "erasure", "verify")
}
