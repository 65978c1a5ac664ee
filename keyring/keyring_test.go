package keyring

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// appendRaw appends with chain.Append: no rotation rules (what a thief
// holding a key can write).
func appendRaw(t *testing.T, path string, key ed25519.PrivateKey, n int) {
	t.Helper()
	for i := range n {
		if _, err := chain.Append(path, key, t0.Add(time.Duration(i)*time.Minute), map[string]any{"kind": "erasure", "i": i}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRotationAcceptsPreviousKeyBeforeItOnly(t *testing.T) {
	oldPub, oldKey := newKey(t)
	newPub, newPriv := newKey(t)
	_, thief := newKey(t)
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendRaw(t, path, oldKey, 3)

	if _, err := New(newPub).VerifyFile(path); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("lines of an unknown previous key: want ErrUntrusted, got %v", err)
	}
	ring := New(newPub, oldPub)
	if h, err := ring.VerifyFile(path); err != nil || h.Count != 3 {
		t.Fatalf("previous key's log: %v (%d lines)", err, h.Count)
	}
	es, err := ring.Append(path, newPriv, t0.Add(time.Hour), map[string]any{"kind": "erasure", "i": 9})
	if err != nil || len(es) != 2 {
		t.Fatalf("append after a previous key: %v, %d entries (want a rotation line and the record)", err, len(es))
	}
	if _, _, ok, err := ParseRotation(es[0].Body); !ok || err != nil {
		t.Fatalf("first appended entry is not a rotation: %s %v", es[0].Body, err)
	}
	if es, err := ring.Append(path, newPriv, t0.Add(2*time.Hour), map[string]any{"kind": "erasure", "i": 10}); err != nil || len(es) != 1 {
		t.Fatalf("second append: %v, %d entries (want no second rotation)", err, len(es))
	}
	if h, err := ring.VerifyFile(path); err != nil || h.Count != 6 {
		t.Fatalf("rotated log: %v (%d lines)", err, h.Count)
	}
	// The rotation line vouches for the old key: an appliance that trusts
	// only the new key verifies the whole log.
	if _, err := New(newPub).VerifyFile(path); err != nil {
		t.Fatalf("rotated log with the current key only: %v", err)
	}
	good, _ := os.ReadFile(path)

	cases := []struct {
		name string
		key  ed25519.PrivateKey
	}{
		{"the lost key signs after the rotation", oldKey},
		{"an unknown key appends", thief},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log.jsonl")
			os.WriteFile(p, good, 0o600)
			appendRaw(t, p, c.key, 1)
			if _, err := ring.VerifyFile(p); !errors.Is(err, chain.ErrBroken) {
				t.Fatalf("want refused, got %v", err)
			}
		})
	}
	t.Run("new key without a rotation line", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "log.jsonl")
		appendRaw(t, p, oldKey, 2)
		appendRaw(t, p, newPriv, 1)
		if _, err := ring.VerifyFile(p); !errors.Is(err, chain.ErrBroken) {
			t.Fatalf("want refused, got %v", err)
		}
	})
	t.Run("rotation back to a retired key", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "log.jsonl")
		os.WriteFile(p, good, 0o600)
		if _, err := New(oldPub, newPub).Append(p, oldKey, t0.Add(3*time.Hour), map[string]any{"kind": "erasure"}); err != nil {
			t.Fatal(err)
		}
		if _, err := New(oldPub, newPub).VerifyFile(p); !errors.Is(err, chain.ErrBroken) {
			t.Fatalf("want refused, got %v", err)
		}
	})
}

func TestEmptyLogRotatesFirst(t *testing.T) {
	oldPub, oldKey := newKey(t)
	newPub, newPriv := newKey(t)
	ring := New(newPub, oldPub)
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if es, err := ring.Append(path, newPriv, t0, nil); err != nil || len(es) != 1 {
		t.Fatalf("rotation of an empty log: %v %d", err, len(es))
	}
	if es, err := ring.Append(path, newPriv, t0, nil); err != nil || len(es) != 0 {
		t.Fatalf("second rotation: %v %d (want none)", err, len(es))
	}
	// A line of the old key can no longer start this log.
	p := filepath.Join(t.TempDir(), "log.jsonl")
	appendRaw(t, p, oldKey, 1)
	b, _ := os.ReadFile(path)
	forged, _ := os.ReadFile(p)
	if bytes.Equal(b, forged) {
		t.Fatal("same log")
	}
	if _, err := ring.VerifyFile(path); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, path, oldKey, 1)
	if _, err := ring.VerifyFile(path); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("old key after the rotation of an empty log: want refused, got %v", err)
	}
}

func TestVouched(t *testing.T) {
	aPub, aKey := newKey(t)
	bPub, bKey := newKey(t)
	cPub, _ := newKey(t)
	_, xKey := newKey(t)
	path := filepath.Join(t.TempDir(), "log.jsonl")
	appendRaw(t, path, aKey, 1)
	if _, err := New(bPub, aPub).Append(path, bKey, t0, map[string]any{"kind": "erasure"}); err != nil {
		t.Fatal(err)
	}
	// A rotation signed by an unknown key vouches for nothing.
	p2 := filepath.Join(t.TempDir(), "x.jsonl")
	xPub := xKey.Public().(ed25519.PublicKey)
	if _, err := New(xPub, cPub).Append(p2, xKey, t0, nil); err != nil {
		t.Fatal(err)
	}
	var lines []chain.Line
	for _, p := range []string{path, p2} {
		b, _ := os.ReadFile(p)
		for _, raw := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			l, err := chain.ParseLine(raw)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
	}
	v := New(cPub, bPub).Vouched(lines)
	if !v.has(aPub) || v.has(xPub) {
		t.Fatalf("vouched: a %v (want true), x %v (want false)", v.has(aPub), v.has(xPub))
	}
	if New(cPub).Vouched(lines).has(aPub) {
		t.Fatal("a rotation signed by an untrusted key vouched for its predecessor")
	}
}

func TestAddPreviousAndLoad(t *testing.T) {
	dir := t.TempDir()
	oldPub, _ := newKey(t)
	newPub, newPriv := newKey(t)
	if ok, err := AddPrevious(dir, newPriv, oldPub, t0); err != nil || !ok {
		t.Fatalf("add: %v %v", ok, err)
	}
	if ok, err := AddPrevious(dir, newPriv, oldPub, t0); err != nil || ok {
		t.Fatalf("second add: %v %v (want nothing to do)", ok, err)
	}
	if ok, _ := AddPrevious(dir, newPriv, newPub, t0); ok {
		t.Fatal("the current key added as a previous key")
	}
	r, err := Load(dir, newPub)
	if err != nil || len(r.Previous()) != 1 || !r.Previous()[0].Equal(oldPub) {
		t.Fatalf("load: %v %v", r, err)
	}
	// After another key change, the statements no longer verify.
	otherPub, _ := newKey(t)
	if _, err := Load(dir, otherPub); err == nil || !strings.Contains(err.Error(), "not signed by this appliance's signing key") {
		t.Fatalf("load with another current key: %v", err)
	}
	// A .pub dropped in without a statement is an error, not trusted.
	dropped, _ := newKey(t)
	id := ID(dropped)
	if err := os.WriteFile(filepath.Join(dir, PreviousDir, id+".pub"), mustPEM(t, dropped), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, newPub); err == nil {
		t.Fatal("a previous key without a rotation statement was loaded")
	}
	os.Remove(filepath.Join(dir, PreviousDir, id+".pub"))
	// An edited statement does not verify.
	rot := filepath.Join(dir, PreviousDir, ID(oldPub)+".rotation")
	s, _ := os.ReadFile(rot)
	os.WriteFile(rot, bytes.Replace(s, []byte("2026-12-02"), []byte("2026-12-03"), 1), 0o600)
	if _, err := Load(dir, newPub); err == nil {
		t.Fatal("an edited rotation statement was loaded")
	}
}

func mustPEM(t *testing.T, pub ed25519.PublicKey) []byte {
	t.Helper()
	b, err := repo.EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
