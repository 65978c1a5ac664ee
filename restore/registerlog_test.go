package restore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// registerWithWitness is a register of appliance ams-1 anchored in a
// repository at two locations, whose checkpoints a witness (a real HTTP
// server keeping its state in a directory) cosigns.
func registerWithWitness(t *testing.T) (*repo.Repo, *Register, note.Verifier) {
	t.Helper()
	mk, _ := repo.GenerateMasterKey()
	r, _, err := repo.Init(context.Background(), "praktijk", []repo.Location{local.New("a", t.TempDir()), local.New("b", t.TempDir())}, repo.Options{Master: mk})
	if err != nil {
		t.Fatal(err)
	}
	g := &Register{StateDir: t.TempDir(), Key: newSigningKey(t), Appliance: "ams-1"}
	wkey := newSigningKey(t)
	c, err := evidence.NewCosigner("witness.example/auditor", wkey)
	if err != nil {
		t.Fatal(err)
	}
	var logs []evidence.WitnessLog
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		v, err := evidence.NoteVerifier(dossier.Origin(log, "ams-1"), g.Key.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, evidence.WitnessLog{Origin: dossier.Origin(log, "ams-1"), Verifier: v})
	}
	w, err := evidence.NewWitness(t.TempDir(), c, logs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	wv, _ := evidence.WitnessVerifier("witness.example/auditor", wkey.Public().(ed25519.PublicKey))
	g.Witnesses = []evidence.WitnessClient{{URL: srv.URL, Verifier: wv, Client: srv.Client()}}
	return r, g, wv
}

// TestRegisterCheckpointsAnchoredAndCosigned: every append signs a
// checkpoint, anchors it at both locations and gets the witness's
// cosignature; a log rolled back together with its checkpoint (root on
// the appliance) is caught by the anchored checkpoints, and the witness
// refuses to cosign a rewritten history.
func TestRegisterCheckpointsAnchoredAndCosigned(t *testing.T) {
	ctx := context.Background()
	r, g, wv := registerWithWitness(t)
	afterOne := t.TempDir()
	for i, id := range []string{"3", "5", "8"} {
		if _, err := g.AddErasure(ctx, r, dossier.Erasure{Tenant: "praktijk", ID: id, Time: time.Unix(int64(i), 0).UTC(), Reason: "AVG"}); err != nil {
			t.Fatal(err)
		}
		if err := g.LogAccess(ctx, r, dossier.Access{Time: time.Unix(int64(i), 0).UTC(), Tenant: "praktijk", ID: id, Action: "show", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			copyRegisterFiles(t, g.StateDir, afterOne)
		}
	}
	missing, err := g.Uncosigned([]note.Verifier{wv})
	if err != nil || len(missing) != 0 {
		t.Fatalf("uncosigned after appends with a reachable witness: %v %v", missing, err)
	}
	recs, err := g.Records(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	v2 := 0
	for _, rec := range recs {
		if rec.Version == 2 && strings.Contains(rec.Checkpoint, "— witness.example/auditor ") {
			v2++
		}
	}
	if v2 != 6 {
		t.Fatalf("%d of %d records anchor a cosigned checkpoint, want 6", v2, len(recs))
	}

	// Root rolls both logs and their checkpoints back to after the first
	// append: consistent by itself, refused against the anchors.
	ring, _ := g.Ring()
	copyRegisterFiles(t, afterOne, g.StateDir)
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		cp, _ := dossier.ReadCheckpoint(g.StateDir, log)
		if _, err := dossier.VerifyLog(filepath.Join(g.StateDir, dossier.FileOf(log)), log, ring, dossier.VerifyOptions{Appliance: "ams-1", Checkpoint: cp}); err != nil {
			t.Fatalf("the rolled-back %s log by itself: %v", log, err)
		}
	}
	if _, err := g.Erasures(ctx, r); !errors.Is(err, dossier.ErrUnanchored) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("rolled back: %v", err)
	}
	if err := g.LogAccess(ctx, r, dossier.Access{Time: time.Now().UTC(), Tenant: "praktijk", ID: "9", Action: "show", Result: "ok"}); err == nil {
		t.Fatal("an append to a rolled-back log succeeded")
	}
	// Without the repository's check (r nil), an append to the rolled-back
	// access log forks it: the witness, which cosigned the longer history,
	// refuses the fork's checkpoint.
	if err := g.LogAccess(ctx, nil, dossier.Access{Time: time.Now().UTC(), Tenant: "praktijk", ID: "9", Action: "show", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	missing, err = g.Uncosigned([]note.Verifier{wv})
	if err != nil || len(missing[dossier.LogNameAccess]) != 1 {
		t.Fatalf("the witness cosigned a forked access log: %v %v", missing, err)
	}
}

// copyRegisterFiles copies the register files of a state directory
// (logs and checkpoints).
func copyRegisterFiles(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		for _, f := range []string{dossier.FileOf(log), dossier.CheckpointFileOf(log)} {
			b, err := os.ReadFile(filepath.Join(from, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRegisterAppendDetectsEditedLine: root on the appliance (without
// its key) edits the newest line of the access log, which the kept
// checkpoint signs: an append refuses before it writes, with the
// checkpoint beside the log (its root) and without it (the line's
// signature, every line checked).
func TestRegisterAppendDetectsEditedLine(t *testing.T) {
	ctx := context.Background()
	r, g, _ := registerWithWitness(t)
	for i, id := range []string{"3", "5"} {
		if err := g.LogAccess(ctx, r, dossier.Access{Time: time.Unix(int64(i), 0).UTC(), Tenant: "praktijk", ID: id, Action: "show", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(g.StateDir, dossier.AccessLogFileName)
	b, _ := os.ReadFile(path)
	edited := bytes.Replace(b, []byte(`"dossier_id":"5"`), []byte(`"dossier_id":"6"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("nothing edited")
	}
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	next := dossier.Access{Time: time.Unix(9, 0).UTC(), Tenant: "praktijk", ID: "8", Action: "show", Result: "ok"}
	if err := g.LogAccess(ctx, r, next); !errors.Is(err, dossier.ErrInconsistent) {
		t.Fatalf("append after a line under the checkpoint was edited: %v, want ErrInconsistent", err)
	}
	if err := os.Remove(filepath.Join(g.StateDir, dossier.CheckpointFileOf(dossier.LogNameAccess))); err != nil {
		t.Fatal(err)
	}
	if err := g.LogAccess(ctx, r, next); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("append after an edited line and its checkpoint removed: %v, want ErrBroken", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, edited) {
		t.Fatal("a refused append wrote to the log")
	}
}

// TestGrownTreeIsTheLoadedOne: the tree an anchored append signs from
// the log its check loaded (Register.grown) is the tree of the log as
// loaded afresh, and none is made when another append came between.
func TestGrownTreeIsTheLoadedOne(t *testing.T) {
	g := &Register{StateDir: t.TempDir(), Key: newSigningKey(t), Appliance: "ams-1"}
	ring, err := g.Ring()
	if err != nil {
		t.Fatal(err)
	}
	a := dossier.Access{Time: time.Now().UTC(), Tenant: "praktijk", ID: "4", Action: "show", Result: "ok"}
	for range 3 {
		if err := g.LogAccess(context.Background(), nil, a); err != nil {
			t.Fatal(err)
		}
	}
	load := func() *dossier.LocalLog {
		l, err := dossier.LoadLog(g.StateDir, dossier.LogNameAccess, g.Appliance, ring)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	checked := load()
	ens, err := dossier.LogAccess(g.StateDir, g.Key, ring, a)
	if err != nil {
		t.Fatal(err)
	}
	grown := g.grown(checked, ens)
	fresh := load().Tree
	if grown == nil || grown.Size() != fresh.Size() {
		t.Fatalf("grown tree: %v, want %d leaves", grown, fresh.Size())
	}
	want, _ := fresh.Root(fresh.Size())
	if got, _ := grown.Root(grown.Size()); got != want {
		t.Fatal("the grown tree's root is not the log's")
	}
	// Another append between the check and this one: load again.
	checked = load()
	if _, err := dossier.LogAccess(g.StateDir, g.Key, ring, a); err != nil {
		t.Fatal(err)
	}
	ens, err = dossier.LogAccess(g.StateDir, g.Key, ring, a)
	if err != nil {
		t.Fatal(err)
	}
	if g.grown(checked, ens) != nil {
		t.Fatal("a tree grown over an append it did not see")
	}
}
