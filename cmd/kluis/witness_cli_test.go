package main

import (
	"bufio"
	"context"
	"filippo.io/age"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWitnessCLI runs `kluis witness serve` as a real process: the
// appliance's `evidence cosign` gets the newest checkpoint cosigned, an
// export carries the cosignature, `verify --witness-key` requires it, and
// `evidence prove` gives one report that verifies alone. A forged history
// signed with the same key is refused by the witness.
func TestWitnessCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	day1 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	e.appendEvidence(3, day1)

	r := e.mustRun(0, "witness", "init", "--key", e.path("witness.key"), "--name", "witness.example/auditor")
	wkey := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(wkey, "witness.example/auditor+") {
		t.Fatalf("witness init: %q", r.stdout)
	}
	pub := e.path("appliance.pub")
	if err := os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, kluisBin, "witness", "serve", "--key", e.path("witness.key"), "--name", "witness.example/auditor",
		"--state", e.path("witness-state"), "--listen", addr, "--log", "ams-1="+pub)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving on") {
		t.Fatalf("witness serve: %q %v", line, err)
	}

	auditor, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := e.path("auditor.age")
	if err := os.WriteFile(idFile, []byte(auditor.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.cfg)
	cfg = append(cfg, []byte("evidence:\n  auditor_recipient: "+auditor.Recipient().String()+"\n  witnesses:\n    - {url: \"http://"+addr+"/\", key: \""+wkey+"\"}\n")...)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("evidence", "cosign"); r.code != 0 || !strings.Contains(r.stdout, "witness.example/auditor: cosigned") {
		t.Fatalf("evidence cosign: %v", r)
	}
	export := e.path("export")
	r = e.mustRun(0, "evidence", "export", "--out", export)
	if !strings.Contains(r.stdout, "cosigned by witness.example/auditor") {
		t.Errorf("export: %v", r)
	}
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, "--witness-key", wkey, "--expect-last", "3", export)
	if r.code != 0 || !strings.Contains(r.stdout, "VERIFIED") || !strings.Contains(r.stdout, "cosigned by [witness.example/auditor]") {
		t.Errorf("verify --witness-key: %v", r)
	}
	if r := e.runNoConfig("evidence", "verify", "--public-key", pub, "--expect-last", "4", export); r.code != 1 || !strings.Contains(r.stdout, "you expected the reports to reach report 4") {
		t.Errorf("verify --expect-last 4: %v", r)
	}
	// The auditor verifies a location's copy (sealed to them) directly.
	e.mustRun(0, "init", "--tenant", tenant)
	e.mustRun(0, "sync")
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, "--identity", idFile, "--checkpoint", export+"/checkpoint.note", "--witness-key", wkey, e.path("loc-g"))
	if r.code != 0 || !strings.Contains(r.stdout, "VERIFIED") || !strings.Contains(r.stdout, "reports 1 to 3 of appliance ams-1") {
		t.Errorf("verify of a location copy: %v", r)
	}
	proof := e.path("report-2.proof")
	e.mustRun(0, "evidence", "prove", "2", "--out", proof)
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, "--witness-key", wkey, proof)
	if r.code != 0 || !strings.Contains(r.stdout, "report 2 of appliance ams-1") || !strings.Contains(r.stdout, "leaf 1 of the signed log of 3 reports") {
		t.Errorf("verify a proof: %v", r)
	}

	// Root rewrites the history in the state directory (another chain of
	// 3 reports, same key): the witness refuses, status would be red.
	os.RemoveAll(e.path("state", "evidence"))
	e.appendEvidence(3, day1.AddDate(0, 0, 1))
	if r := e.run("evidence", "cosign"); r.code != 1 || !strings.Contains(r.stdout, "NOT cosigned") || !strings.Contains(r.stdout, "another root") {
		t.Errorf("cosign of a rewritten history: %v", r)
	}
	cancel()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
