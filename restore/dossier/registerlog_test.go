package dossier

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// signedLog appends n erasures to the register in dir, signing the
// checkpoint after each append as the appliance does, keeps the newest
// beside the log and returns every checkpoint (index i: the log of i+1
// lines) and the records anchoring each line.
func signedLog(t *testing.T, dir string, key ed25519.PrivateKey, ring *keyring.Ring, appliance string, n int) ([][]byte, []Record) {
	return signedLogOf(t, dir, key, ring, appliance, "t", n)
}

func signedLogOf(t *testing.T, dir string, key ed25519.PrivateKey, ring *keyring.Ring, appliance, tenant string, n int) ([][]byte, []Record) {
	t.Helper()
	var cps [][]byte
	var recs []Record
	for i := 0; i < n; i++ {
		es, err := AddErasure(dir, key, ring, Erasure{Tenant: tenant, ID: fmt.Sprint(i + 1), Time: time.Unix(int64(i), 0).UTC()})
		if err != nil {
			t.Fatal(err)
		}
		lines, _, err := LogLines(filepath.Join(dir, ErasureFileName), ring)
		if err != nil {
			t.Fatal(err)
		}
		tr, _ := Tree(lines)
		for _, e := range es {
			cp, err := SignCheckpoint(key, LogNameErasures, appliance, tr, int64(e.Seq))
			if err != nil {
				t.Fatal(err)
			}
			cps = append(cps, cp)
			_, b, err := NewCheckpointedRecord(LogNameErasures, key, e, cp)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseRecord(b, ring)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if err := WriteCheckpoint(dir, LogNameErasures, cps[len(cps)-1]); err != nil {
			t.Fatal(err)
		}
	}
	return cps, recs
}

func lines(b []byte) []string {
	out := strings.SplitAfter(string(b), "\n")
	return out[:len(out)-1]
}

// TestVerifyLogDetects: every change to a register log, to the checkpoint
// beside it, or a rollback behind a kept checkpoint is detected, with the
// reason.
func TestVerifyLogDetects(t *testing.T) {
	key := testKey()
	ring := keyring.New(key.Public().(ed25519.PublicKey))
	dir := t.TempDir()
	cps, recs := signedLog(t, dir, key, ring, "ams-1", 5)
	path := filepath.Join(dir, ErasureFileName)
	whole, _ := os.ReadFile(path)
	cpPath := filepath.Join(dir, CheckpointFileOf(LogNameErasures))
	newest, _ := os.ReadFile(cpPath)
	verify := func(held []byte) error {
		cp, err := ReadCheckpoint(dir, LogNameErasures)
		if err != nil {
			t.Fatal(err)
		}
		_, err = VerifyLog(path, LogNameErasures, ring, VerifyOptions{Appliance: "ams-1", Checkpoint: cp, Held: held, HeldName: "kept"})
		return err
	}
	if err := verify(cps[2]); err != nil {
		t.Fatalf("intact log: %v", err)
	}
	if err := CheckAnchored(dir, "ams-1", ring, recs); err != nil {
		t.Fatalf("intact log against its anchors: %v", err)
	}
	l := lines(whole)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	otherAppliance, _ := SignCheckpoint(key, LogNameErasures, "ams-2", mustTree(t, l), 5)
	otherKey, _ := SignCheckpoint(other, LogNameErasures, "ams-1", mustTree(t, l), 5)
	accessOrigin, _ := SignCheckpoint(key, LogNameAccess, "ams-1", mustTree(t, l), 5)
	edited := bytes.Replace(newest, []byte("\n5\n"), []byte("\n6\n"), 1)
	for _, c := range []struct {
		name       string
		log        []string
		checkpoint []byte // beside the log (nil: the newest)
		held       []byte
		want       error
		reason     string
	}{
		{"cut off at the end", l[:3], nil, nil, ErrInconsistent, "lines 4 to 5 were removed"},
		{"cut off at the start", l[2:], nil, nil, chain.ErrBroken, "sequence number 3, expected 1"},
		{"a line removed", append(append([]string{}, l[:2]...), l[3:]...), nil, nil, chain.ErrBroken, "removed, inserted or reordered"},
		{"two lines swapped", []string{l[0], l[2], l[1], l[3], l[4]}, nil, nil, chain.ErrBroken, "removed, inserted or reordered"},
		{"a line inserted", append(append([]string{}, l[:2]...), append([]string{l[1]}, l[2:]...)...), nil, nil, chain.ErrBroken, "removed, inserted or reordered"},
		{"the checkpoint edited", l, edited, nil, evidence.ErrCheckpoint, "signature does not verify"},
		{"a checkpoint of another appliance", l, otherAppliance, nil, evidence.ErrCheckpoint, `another log ("kluis-erasure-register/ams-2")`},
		{"a checkpoint signed by another key", l, otherKey, nil, evidence.ErrCheckpoint, "not signed by key"},
		{"the access log's checkpoint beside the register", l, accessOrigin, nil, evidence.ErrCheckpoint, "kluis-access-log/ams-1"},
		{"rolled back with its older checkpoint, a newer one kept", l[:3], cps[2], cps[4], ErrInconsistent, "checkpoint kept signs a log of 5 lines, but the log holds 3"},
		{"a kept checkpoint of another appliance", l, nil, otherAppliance, evidence.ErrCheckpoint, "ams-2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.WriteFile(path, []byte(strings.Join(c.log, "")), 0o600)
			cp := newest
			if c.checkpoint != nil {
				cp = c.checkpoint
			}
			os.WriteFile(cpPath, cp, 0o600)
			defer os.WriteFile(path, whole, 0o600)
			defer os.WriteFile(cpPath, newest, 0o600)
			err := verify(c.held)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("want %v with %q, got %v", c.want, c.reason, err)
			}
		})
	}

	// A log rolled back with its matching older checkpoint verifies by
	// itself; the anchors at the locations show the rollback.
	os.WriteFile(path, []byte(strings.Join(l[:3], "")), 0o600)
	os.WriteFile(cpPath, cps[2], 0o600)
	if err := verify(nil); err != nil {
		t.Fatalf("a consistent older state: %v", err)
	}
	if err := CheckAnchored(dir, "ams-1", ring, recs); !errors.Is(err, ErrUnanchored) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("rollback against the anchors: %v", err)
	}

	// Root rewrites the whole history with the key, and signs a matching
	// checkpoint: the log verifies alone; a kept checkpoint and the
	// anchors show the rewrite.
	forged := t.TempDir()
	signedLogOf(t, forged, key, ring, "ams-1", "forged", 6)
	fb, _ := os.ReadFile(filepath.Join(forged, ErasureFileName))
	fcp, _ := os.ReadFile(filepath.Join(forged, CheckpointFileOf(LogNameErasures)))
	os.WriteFile(path, fb, 0o600)
	os.WriteFile(cpPath, fcp, 0o600)
	for i := range lines(fb) {
		if lines(fb)[i] == l[i%5] {
			t.Fatal("the forged log shares a line with the original: the test proves nothing")
		}
	}
	if err := verify(nil); err != nil {
		t.Fatalf("a consistently forged log alone: %v", err)
	}
	if err := verify(cps[4]); !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), "not a prefix") {
		t.Fatalf("rewrite against a kept checkpoint: %v", err)
	}
	var v2 []Record
	for _, r := range recs {
		r.Head = chain.Hash(bytes.TrimSuffix([]byte(lines(fb)[r.Count-1]), []byte("\n"))) // only the checkpoints differ
		v2 = append(v2, r)
	}
	if err := CheckAnchored(dir, "ams-1", ring, v2); !errors.Is(err, ErrUnanchored) || !strings.Contains(err.Error(), "not a prefix") {
		t.Fatalf("rewrite against the anchored checkpoints: %v", err)
	}
}

func mustTree(t *testing.T, ls []string) *evidence.Tree {
	t.Helper()
	var raw [][]byte
	for _, l := range ls {
		raw = append(raw, []byte(strings.TrimSuffix(l, "\n")))
	}
	tr, err := Tree(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestRegisterLogAcrossKeyRotation: the tree continues over every line
// of a log whose first segment a previous key signed; that key's
// checkpoints verify up to its last line, and a checkpoint it signs of a
// size in the new key's segment (its thief) is refused.
func TestRegisterLogAcrossKeyRotation(t *testing.T) {
	old := testKey()
	cur := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	dir := t.TempDir()
	oldRing := keyring.New(old.Public().(ed25519.PublicKey))
	oldCps, oldRecs := signedLog(t, dir, old, oldRing, "ams-1", 2)
	ring := keyring.New(cur.Public().(ed25519.PublicKey), old.Public().(ed25519.PublicKey))
	newCps, newRecs := signedLog(t, dir, cur, ring, "ams-1", 2) // a rotation line, then two erasures
	if len(newCps) != 3 {
		t.Fatalf("want a rotation line and two erasures, got %d checkpoints", len(newCps))
	}
	path := filepath.Join(dir, ErasureFileName)
	cp, _ := ReadCheckpoint(dir, LogNameErasures)
	v, err := VerifyLog(path, LogNameErasures, ring, VerifyOptions{Appliance: "ams-1", Checkpoint: cp, Held: oldCps[1], HeldName: "of the lost appliance"})
	if err != nil || v.Lines != 5 || v.CheckpointSize != 5 || v.HeldSize != 2 {
		t.Fatalf("verify across the rotation: %+v %v", v, err)
	}
	// The auditor holds only the new public key: rotation lines vouch.
	if _, err := VerifyLog(path, LogNameErasures, keyring.New(cur.Public().(ed25519.PublicKey)), VerifyOptions{Checkpoint: cp, Held: oldCps[1], HeldName: "old"}); err != nil {
		t.Fatalf("verify with the new public key only: %v", err)
	}
	if err := CheckAnchored(dir, "ams-1", ring, append(oldRecs, newRecs...)); err != nil {
		t.Fatalf("anchors across the rotation: %v", err)
	}
	lines, _, _ := LogLines(path, ring)
	tr, _ := Tree(lines)
	stolen, _ := SignCheckpoint(old, LogNameErasures, "ams-1", tr, 4)
	if _, err := VerifyLog(path, LogNameErasures, ring, VerifyOptions{Appliance: "ams-1", Checkpoint: cp, Held: stolen, HeldName: "stolen"}); !errors.Is(err, evidence.ErrCheckpoint) {
		t.Fatalf("a checkpoint the lost key signs after the rotation: %v", err)
	}
}

// FuzzCheckCheckpoint: whatever a checkpoint file holds, CheckCheckpoint
// does not panic, and accepts only a checkpoint the key signed of a
// prefix of the log.
func FuzzCheckCheckpoint(f *testing.F) {
	key := testKey()
	ring := keyring.New(key.Public().(ed25519.PublicKey))
	var raw [][]byte
	var signers []ed25519.PublicKey
	for i := uint64(1); i <= 3; i++ {
		prev := chain.ZeroHash
		if i > 1 {
			prev = chain.Hash(raw[i-2])
		}
		l, _ := chain.Sign(key, chain.Entry{Seq: i, Prev: prev, Time: time.Unix(1, 0).UTC(), Body: []byte(`{}`)})
		raw = append(raw, l)
		signers = append(signers, ring.Current())
	}
	tr, _ := Tree(raw)
	for n := int64(0); n <= 3; n++ {
		cp, _ := SignCheckpoint(key, LogNameAccess, "ams-1", tr, n)
		f.Add(cp)
	}
	f.Add([]byte("kluis-access-log/ams-1\n4\nAAAA\n\n— x y\n"))
	origin := Origin(LogNameAccess, "ams-1")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _, err := CheckCheckpoint(b, "fuzz", origin, ring, signers, tr)
		if err != nil {
			return
		}
		if c.Origin != origin || c.Size > tr.Size() {
			t.Fatalf("accepted %q", b)
		}
		if root, _ := tr.Root(c.Size); root != c.Root {
			t.Fatalf("accepted a checkpoint of another tree: %q", b)
		}
	})
}
