package dossier

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

// TestAnchors: records anchor the logs; a deleted, truncated or replaced
// log fails CheckAnchored, Rebuild restores it exactly.
func TestAnchors(t *testing.T) {
	key := testKey()
	pub := keyring.New(key.Public().(ed25519.PublicKey))
	dir := t.TempDir()
	var recs []Record
	for i, id := range []string{"3", "5", "8"} {
		es, err := AddErasure(dir, key, pub, Erasure{Tenant: "t", ID: id, Time: time.Unix(int64(i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := NewRecord(LogNameErasures, key, es[0])
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseRecord(b, pub)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := CheckAnchored(dir, "ams-1", pub, recs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ErasureFileName)
	whole, _ := os.ReadFile(path)
	for name, damage := range map[string]func(){
		"deleted":   func() { os.Remove(path) },
		"truncated": func() { os.WriteFile(path, whole[:bytes.LastIndexByte(whole[:len(whole)-1], '\n')+1], 0o600) },
	} {
		damage()
		if err := CheckAnchored(dir, "ams-1", pub, recs); !errors.Is(err, ErrUnanchored) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := Rebuild(dir, "ams-1", pub, recs); err != nil {
			t.Fatalf("%s: rebuild: %v", name, err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, whole) {
			t.Fatalf("%s: rebuilt log differs", name)
		}
	}
	// A replaced log (same length, other content, properly signed).
	other := t.TempDir()
	for i := 0; i < 3; i++ {
		AddErasure(other, key, pub, Erasure{Tenant: "t", ID: "9", Time: time.Unix(int64(i), 0)})
	}
	b, _ := os.ReadFile(filepath.Join(other, ErasureFileName))
	os.WriteFile(path, b, 0o600)
	if err := CheckAnchored(dir, "ams-1", pub, recs); !errors.Is(err, ErrUnanchored) {
		t.Errorf("replaced: %v", err)
	}
	if _, err := Rebuild(dir, "ams-1", pub, recs); !errors.Is(err, ErrUnanchored) {
		t.Errorf("rebuild over a forked log: %v", err)
	}
	// A gap: the middle record is in no repository.
	os.Remove(path)
	if _, err := Rebuild(dir, "ams-1", pub, []Record{recs[0], recs[2]}); err == nil {
		t.Errorf("rebuild with a gap succeeded")
	}
	// A record signed by another key is refused.
	_, b2, _ := NewRecord(LogNameErasures, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)), chain.Entry{Seq: 1, Prev: chain.ZeroHash, Body: []byte(`{}`)})
	if _, err := ParseRecord(b2, pub); err == nil {
		t.Errorf("a record of another key parsed")
	}
}

func FuzzParseRecord(f *testing.F) {
	key := testKey()
	pub := key.Public().(ed25519.PublicKey)
	ring := keyring.New(pub)
	_, b, _ := NewRecord(LogNameAccess, key, chain.Entry{Seq: 1, Prev: chain.ZeroHash, Time: time.Unix(1, 0).UTC(), Body: []byte(`{"kind":"dossier-access"}`)})
	f.Add(b)
	f.Add([]byte(`{"v":1,"log":"erasures","count":1,"head":"","line":""}`))
	e := chain.Entry{Seq: 1, Prev: chain.ZeroHash, Time: time.Unix(1, 0).UTC(), Body: []byte(`{"kind":"dossier-access"}`)}
	raw, _ := chain.Sign(key, e)
	tr, _ := Tree([][]byte{raw})
	cp, _ := SignCheckpoint(key, LogNameAccess, "ams-1", tr, 1)
	_, b, _ = NewCheckpointedRecord(LogNameAccess, key, e, cp)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b, ring)
		if err != nil {
			return
		}
		l, err := chain.ParseLine([]byte(r.Line))
		if err != nil || !l.Verify(pub) || l.Entry.Seq != r.Count || chain.Hash(l.Raw) != r.Head {
			t.Fatalf("ParseRecord accepted an inconsistent record %q", b)
		}
		if r.Version == 2 {
			text, _, _ := strings.Cut(r.Checkpoint, "\n\n")
			c, perr := evidence.ParseCheckpointText(text + "\n")
			if perr != nil || c.Size != int64(r.Count) || !strings.HasPrefix(c.Origin, originPrefix(r.Log)) {
				t.Fatalf("ParseRecord accepted a record with a checkpoint of another log or size %q", b)
			}
			if _, _, err := evidence.OpenCheckpoint([]byte(r.Checkpoint), c.Origin, pub); err != nil {
				t.Fatalf("ParseRecord accepted a record whose checkpoint the key did not sign %q: %v", b, err)
			}
		}
	})
}
