package evidence

import (
	"crypto/ed25519"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// startWitness runs a witness over HTTP that knows appliance ams-1's log.
func startWitness(t *testing.T, name string, seed byte) (*Witness, WitnessClient, note.Verifier) {
	t.Helper()
	c, v := testWitness(t, name, seed)
	lv, err := LogVerifier("ams-1", testKey(1).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWitness(t.TempDir(), c, []WitnessLog{{Origin: Origin("ams-1"), Verifier: lv}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return w, WitnessClient{URL: srv.URL, Verifier: v, Client: srv.Client()}, v
}

// TestWitnessCosignsOnlyExtensions: the witness cosigns the first
// checkpoint and every later one that a consistency proof shows extends
// it; a rewritten history (same key, same appliance), a replayed older
// checkpoint and a checkpoint of an unknown log are refused, and the
// appliance's status sees the checkpoint uncosigned.
func TestWitnessCosignsOnlyExtensions(t *testing.T) {
	ctx := t.Context()
	_, wc, wv := startWitness(t, "witness.example/auditor", 21)
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	appendN(t, s, 3)
	if res, err := s.Cosign(ctx, []WitnessClient{wc}); err != nil || !res[0].OK {
		t.Fatalf("first checkpoint: %+v %v", res, err)
	}
	_, first, _ := s.Checkpoint()
	appendN(t, s, 2)
	if missing, err := s.Uncosigned([]note.Verifier{wv}); err != nil || len(missing) != 1 {
		t.Fatalf("before cosigning the new checkpoint: %v %v", missing, err)
	}
	if res, err := s.Cosign(ctx, []WitnessClient{wc}); err != nil || !res[0].OK {
		t.Fatalf("extension: %+v %v", res, err)
	}
	if missing, err := s.Uncosigned([]note.Verifier{wv}); err != nil || len(missing) != 0 {
		t.Fatalf("after cosigning: %v %v", missing, err)
	}
	_, cp, _ := s.Checkpoint()
	if _, cos, err := OpenLogCheckpoint(cp, "ams-1", s.PublicKey(), wv); err != nil || len(cos) != 1 {
		t.Fatalf("cosigned checkpoint: %v %v", cos, err)
	}

	// Root rewrites the history with the appliance key: another chain of
	// 6 reports. The witness has seen size 5 with another root.
	forged := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	otherChainIn(t, forged, 6)
	res, err := forged.Cosign(ctx, []WitnessClient{wc})
	if err != nil || res[0].OK || !strings.Contains(res[0].Error, "HTTP 422") || !strings.Contains(res[0].Error, "history rewritten") {
		t.Fatalf("forged history: %+v %v", res, err)
	}
	if missing, _ := forged.Uncosigned([]note.Verifier{wv}); len(missing) != 1 {
		t.Fatalf("the forged checkpoint counts as cosigned: %v", missing)
	}
	// The same size with another root: a fork.
	fork := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	otherChainIn(t, fork, 5)
	if res, _ := fork.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "another root") {
		t.Fatalf("fork: %+v", res)
	}
	// A replayed older checkpoint.
	if _, err := wc.Cosign(ctx, nil, noteWithoutCosignatures(first), 5); err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "older than the one the witness has seen") {
		t.Fatalf("replayed checkpoint: %v", err)
	}
	// Another appliance's log.
	other := OpenStore(t.TempDir(), "ams-2", testKey(2), nil)
	appendNOf(t, other, "ams-2", 1)
	if res, _ := other.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "HTTP 404") {
		t.Fatalf("another appliance's log: %+v", res)
	}
}

// otherChainIn appends n reports of other content than appendN's.
func otherChainIn(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := range n {
		r := sampleReport("tandarts-zuid", "sqlite", i, "rpo")
		if _, _, err := s.Append(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
	}
}

func appendNOf(t *testing.T, s *Store, appliance string, n int) {
	t.Helper()
	for i := range n {
		r := sampleReport("praktijk-a", "sqlite", i, "")
		r.Appliance = appliance
		if _, _, err := s.Append(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
	}
}

// witnessAt runs a witness keeping its state in dir that accepts
// appliance ams-1's log under the key testKey(logKey).
func witnessAt(t *testing.T, dir string, logKey byte) WitnessClient {
	t.Helper()
	c, v := testWitness(t, "witness.example/auditor", 21)
	lv, err := LogVerifier("ams-1", testKey(logKey).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWitness(dir, c, []WitnessLog{{Origin: Origin("ams-1"), Verifier: lv}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return WitnessClient{URL: srv.URL, Verifier: v, Client: srv.Client()}
}

// TestWitnessKeyRotation: a witness's state file of the old layout (one
// a log) is still its state; once its operator accepts a log's new key
// (after a disaster recovery) the new key's log starts afresh beside the
// old key's last checkpoint, the old key gets no new cosignature, and a
// key the operator did not accept is refused.
func TestWitnessKeyRotation(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	old := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	appendN(t, old, 5)
	if res, err := old.Cosign(ctx, []WitnessClient{witnessAt(t, dir, 1)}); err != nil || !res[0].OK {
		t.Fatalf("old key: %+v %v", res, err)
	}
	// Migration: the state as a witness before key rotation kept it.
	files, _ := filepath.Glob(filepath.Join(dir, "*.checkpoint"))
	if len(files) != 1 {
		t.Fatalf("state files: %v", files)
	}
	legacy := filepath.Join(dir, strings.SplitN(filepath.Base(files[0]), "-", 2)[0]+".checkpoint")
	if err := os.Rename(files[0], legacy); err != nil {
		t.Fatal(err)
	}
	wc := witnessAt(t, dir, 1)
	fork := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	otherChainIn(t, fork, 5)
	if res, _ := fork.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "another root") {
		t.Fatalf("a fork after migration: %+v", res)
	}

	// The recovered appliance's new key, not (yet) accepted: refused.
	recovered := OpenStore(t.TempDir(), "ams-1", testKey(3), nil)
	appendN(t, recovered, 2)
	if res, _ := recovered.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "HTTP 403") {
		t.Fatalf("new key before the operator accepted it: %+v", res)
	}
	// The operator accepts the new key: its log starts at the witness.
	wc = witnessAt(t, dir, 3)
	if res, err := recovered.Cosign(ctx, []WitnessClient{wc}); err != nil || !res[0].OK {
		t.Fatalf("new key after the operator accepted it: %+v %v", res, err)
	}
	appendN(t, recovered, 1)
	if res, err := recovered.Cosign(ctx, []WitnessClient{wc}); err != nil || !res[0].OK {
		t.Fatalf("new key, extension: %+v %v", res, err)
	}
	// The old key's last checkpoint stays on record, untouched.
	if b, err := os.ReadFile(legacy); err != nil || !strings.Contains(string(b), "\n5\n") {
		t.Fatalf("old key's state: %q %v", b, err)
	}
	// The retired key (whoever holds a copy of it) gets nothing more.
	appendN(t, old, 1)
	if res, _ := old.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "HTTP 403") {
		t.Fatalf("retired key: %+v", res)
	}
	// An attacker's key under the same origin.
	evil := OpenStore(t.TempDir(), "ams-1", testKey(4), nil)
	appendN(t, evil, 1)
	if res, _ := evil.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "HTTP 403") {
		t.Fatalf("attacker's key: %+v", res)
	}
	// The new key's history is protected like any other.
	fork = OpenStore(t.TempDir(), "ams-1", testKey(3), nil)
	otherChainIn(t, fork, 3)
	if res, _ := fork.Cosign(ctx, []WitnessClient{wc}); res[0].OK || !strings.Contains(res[0].Error, "another root") {
		t.Fatalf("a fork of the new key's log: %+v", res)
	}
	// Two keys for one log at once are refused: rotation replaces.
	c, _ := testWitness(t, "witness.example/auditor", 21)
	v1, _ := LogVerifier("ams-1", testKey(1).Public().(ed25519.PublicKey))
	v3, _ := LogVerifier("ams-1", testKey(3).Public().(ed25519.PublicKey))
	if _, err := NewWitness(dir, c, []WitnessLog{{Origin("ams-1"), v1}, {Origin("ams-1"), v3}}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("two keys for one log: %v", err)
	}
}
