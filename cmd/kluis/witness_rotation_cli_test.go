package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/synth"
)

// serveWitness starts `kluis witness serve` for appliance ams-1's log
// under the public key in pub; the returned func stops it.
func serveWitness(t *testing.T, e *env, addr, pub string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, kluisBin, "witness", "serve", "--key", e.path("witness.key"), "--name", "witness.example/auditor",
		"--state", e.path("witness-state"), "--listen", addr, "--log", "ams-1="+pub)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving on") {
		cancel()
		srv.Wait()
		t.Fatalf("witness serve: %q %v", line, err)
	}
	stop := func() { cancel(); srv.Wait() }
	t.Cleanup(stop)
	return stop
}

// TestWitnessAfterRecoveryNewKey: an appliance cosigned by a witness is
// lost and recovered with a new signing key. The witness refuses the new
// key's checkpoints (status stays red) until its operator accepts the
// new key (witness serve --log ams-1=NEW.pem); then evidence cosign
// succeeds and status is no longer red about the witness.
func TestWitnessAfterRecoveryNewKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r := e.mustRun(0, "witness", "init", "--key", e.path("witness.key"), "--name", "witness.example/auditor")
	wkey := strings.TrimSpace(r.stdout)
	addr := freeAddr(t)
	cfg := drConfig(t, id) + "evidence:\n  witnesses:\n    - {url: \"http://" + addr + "/\", key: \"" + wkey + "\"}\n"
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.path("recovery.txt"), []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.secrets["recovery identity"] = id.String()
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	oldPub := e.path("old-signing.pub")
	if err := os.WriteFile(oldPub, []byte(e.mustRun(0, "keys", "public").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := serveWitness(t, e, addr, oldPub)
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", "3", "--reason", "AVG art. 17 request")
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	if r := e.run("evidence", "cosign"); r.code != 0 || !strings.Contains(r.stdout, "witness.example/auditor: cosigned") {
		t.Fatalf("evidence cosign before the disaster: %v", r)
	}

	drLose(t, e)
	e.keysInit()
	newPub := e.path("new-signing.pub")
	if err := os.WriteFile(newPub, []byte(e.mustRun(0, "keys", "public").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun(0, "keys", "recover", "--tenant", "praktijk-s", "--identity", e.path("recovery.txt"), "--signing-public-key", oldPub)
	e.mustRun(0, "erasure", "recover")
	e.mustRun(0, "evidence", "continue", "--identity", e.path("recovery.txt"))
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")

	// The witness still knows the old key only: it refuses.
	if r := e.run("evidence", "cosign"); r.code != 1 || !strings.Contains(r.stdout, "NOT cosigned") || !strings.Contains(r.stdout, "HTTP 403") {
		t.Errorf("evidence cosign before the witness operator accepted the new key: %v", r)
	}
	if ps, _ := drStatusProblems(t, e); !hasProblem(ps, "not cosigned by witness") {
		t.Errorf("status before the witness accepted the new key: %q", ps)
	}

	// The operator accepts the new key (out of band) and restarts the
	// witness on the same state directory.
	stop()
	serveWitness(t, e, addr, newPub)
	if r := e.run("evidence", "cosign"); r.code != 0 || !strings.Contains(r.stdout, "witness.example/auditor: cosigned") {
		t.Fatalf("evidence cosign after the witness accepted the new key: %v", r)
	}
	if ps, _ := drStatusProblems(t, e); hasProblem(ps, "cosigned by witness") {
		t.Errorf("status after the witness accepted the new key: %q", ps)
	}
	// And the next checkpoint extends the one it cosigned.
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	if r := e.run("evidence", "cosign"); r.code != 0 || !strings.Contains(r.stdout, "witness.example/auditor: cosigned") {
		t.Errorf("evidence cosign of the next checkpoint: %v", r)
	}
}
