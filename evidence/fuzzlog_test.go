package evidence

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// genuineLog is newGenuine's chain as a log: its tree, its checkpoint
// note cosigned by a test witness, and a proof of report 2.
type genuineLog struct {
	genuine
	note, cosigned, proof, tree []byte
	witnessKey                  string
}

func newGenuineLog(t testing.TB) genuineLog {
	g := genuineLog{genuine: newGenuine(t)}
	var recs []Record
	for _, f := range g.files {
		r, err := ParseRecord(f)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	tr, err := treeOf(recs)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := tr.Root(tr.Size())
	if g.note, err = SignLogCheckpoint(testKey(1), LogCheckpoint{Origin: Origin("ams-1"), Size: tr.Size(), Root: root}); err != nil {
		t.Fatal(err)
	}
	w, err := NewCosigner("witness.example/w1", testKey(21))
	if err != nil {
		t.Fatal(err)
	}
	w.Now = func() time.Time { return t0 }
	line, _ := w.Line(noteText(g.note))
	g.cosigned = append(append([]byte(nil), g.note...), line...)
	g.witnessKey = WitnessKey("witness.example/w1", testKey(21).Public().(ed25519.PublicKey))
	if g.proof, err = Prove(recs[1], tr, g.cosigned); err != nil {
		t.Fatal(err)
	}
	g.tree, _ = treeText(tr)
	return g
}

// FuzzOpenLogCheckpoint: a checkpoint note (and its cosignatures) never
// panics the decoder, and no bytes but the genuine notes open with the
// appliance's key and the witness's.
func FuzzOpenLogCheckpoint(f *testing.F) {
	g := newGenuineLog(f)
	wv, err := ParseWitnessKey(g.witnessKey)
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]any{{g.note}, {g.cosigned}, {[]byte("kluis-evidence/ams-1\n3\nAAAA\n\n— x AAAA\n")},
		{bytes.Replace(g.note, []byte("\n3\n"), []byte("\n4\n"), 1)}, {g.checkpoint}}
	writeSeeds(f, "FuzzOpenLogCheckpoint", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, cosigned, err := OpenLogCheckpoint(data, "ams-1", g.pub, wv)
		if err != nil {
			return
		}
		if string(noteText(data)) != string(noteText(g.note)) {
			t.Fatalf("a checkpoint no one signed opens: %q", data)
		}
		if len(cosigned) > 0 && !bytes.Contains(data, bytes.TrimPrefix(g.cosigned, g.note)) {
			t.Fatalf("a cosignature no witness made verifies: %q", data)
		}
		if c.Size != 3 {
			t.Fatalf("size %d", c.Size)
		}
	})
}

// FuzzVerifyProof: a proof file never panics the verifier, and only the
// genuine report verifies (as leaf 1 of the genuine root).
func FuzzVerifyProof(f *testing.F) {
	g := newGenuineLog(f)
	seeds := [][]any{{g.proof}, {[]byte(`{"schema":"kluis-evidence-proof/v1","leaf":1,"hashes":[],"report":"x","checkpoint":"y"}`)},
		{bytes.Replace(g.proof, []byte(`"leaf": 1`), []byte(`"leaf": 2`), 1)}, {g.files[0]}}
	writeSeeds(f, "FuzzVerifyProof", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := VerifyProof(data, g.pub)
		if err != nil {
			return
		}
		if !bytes.Equal(res.Record.Raw, g.files[res.Record.Seq-1]) {
			t.Fatalf("a report no one signed is proven: %q", data)
		}
	})
}

// FuzzParseTreeText: tree.txt decodes or is refused, never panics, and
// what decodes encodes back to the same bytes.
func FuzzParseTreeText(f *testing.F) {
	g := newGenuineLog(f)
	seeds := [][]any{{g.tree}, {[]byte("00\n")}, {bytes.ToUpper(g.tree)}}
	writeSeeds(f, "FuzzParseTreeText", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		leaves, err := ParseTreeText(data)
		if err != nil {
			return
		}
		tr, err := NewTree(leaves)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := treeText(tr)
		if !bytes.Equal(back, data) {
			t.Fatalf("tree.txt does not round-trip: %q", data)
		}
	})
}

// FuzzParseWitnessKey: a witness key decodes or is refused; what decodes
// prints back the same.
func FuzzParseWitnessKey(f *testing.F) {
	g := newGenuineLog(f)
	seeds := [][]any{{[]byte(g.witnessKey)}, {[]byte("a+00000000+AA==")}, {[]byte("++")}}
	writeSeeds(f, "FuzzParseWitnessKey", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseWitnessKey(string(data))
		if err != nil {
			return
		}
		cv := v.(cosigVerifier)
		if WitnessKey(cv.name, cv.pub) != string(bytes.TrimSpace(data)) {
			t.Fatalf("witness key does not round-trip: %q", data)
		}
	})
}

// FuzzParseAddCheckpoint: a witness request body decodes or is refused,
// never panics; what decodes encodes back to the same bytes.
func FuzzParseAddCheckpoint(f *testing.F) {
	g := newGenuineLog(f)
	seeds := [][]any{{AddCheckpointRequest(0, nil, g.note)}, {[]byte("old 2\nAAAA\n\n")}, {[]byte("old 01\n\n")},
		{AddCheckpointRequest(2, make([]tlog.Hash, 2), g.note)}}
	writeSeeds(f, "FuzzParseAddCheckpoint", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, proof, cp, err := ParseAddCheckpoint(data)
		if err != nil {
			return
		}
		if back := AddCheckpointRequest(n, proof, cp); !bytes.Equal(back, data) {
			t.Fatalf("request does not round-trip: %q", data)
		}
	})
}
