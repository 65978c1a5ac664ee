package keyring

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/evidence/chain"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

func writeSeeds(t testing.TB, target string, seeds ...[]byte) {
	if !*updateSeeds {
		return
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		b := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func seedKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

// FuzzParseRotation: a rotation body that parses names the id of the key
// it carries, never the new key itself, and round-trips.
func FuzzParseRotation(f *testing.F) {
	g, _ := json.Marshal(NewRotation(seedKey(1).Public().(ed25519.PublicKey), seedKey(2).Public().(ed25519.PublicKey)))
	seeds := [][]byte{g, []byte(`{"kind":"key-rotation"}`), []byte(`{"kind":"erasure"}`), bytes.Replace(g, []byte(`"key":"`), []byte(`"key":"0`), 1)}
	writeSeeds(f, "FuzzParseRotation", seeds...)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, prev, ok, err := ParseRotation(body)
		if !ok || err != nil {
			return
		}
		if ID(prev) != r.PreviousKey || r.Key == r.PreviousKey || r.Kind != KindRotation {
			t.Fatalf("inconsistent rotation accepted: %q", body)
		}
		b, _ := json.Marshal(r)
		again, _, ok, err := ParseRotation(b)
		if !ok || err != nil || again != r {
			t.Fatalf("does not round-trip: %v", err)
		}
	})
}

// FuzzVerify: a log Verify accepts has every line signed by the key
// Signers gives it, and that key is the ring's or one a rotation line
// names; a log of the seeds with a byte changed never verifies unless it
// is the seed.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "log")
	old, cur := seedKey(1), seedKey(2)
	for i := range 2 {
		if _, err := chain.Append(path, old, t0, map[string]any{"kind": "erasure", "i": i}); err != nil {
			f.Fatal(err)
		}
	}
	ring := New(cur.Public().(ed25519.PublicKey), old.Public().(ed25519.PublicKey))
	if _, err := ring.Append(path, cur, t0, map[string]any{"kind": "erasure", "i": 9}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	seeds := [][]byte{good, good[:len(good)/2], []byte("{}\n"), nil}
	writeSeeds(f, "FuzzVerify", seeds...)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := New(cur.Public().(ed25519.PublicKey)).Verify(bytes.NewReader(data))
		if err != nil {
			return
		}
		if h.Count > 0 && !bytes.HasPrefix(good, data) {
			t.Fatalf("a log nobody signed verifies: %q", data)
		}
	})
}
