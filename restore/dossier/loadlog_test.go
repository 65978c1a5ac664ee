package dossier

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// editLast changes the dossier id of the last line of the log at path,
// keeping its length and its link: only its signature, the Merkle root
// and the anchors can tell.
func editLast(t *testing.T, path, from, to string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte(from))
	if i < 0 || i < bytes.LastIndexByte(b[:len(b)-1], '\n') {
		t.Fatalf("%s is not in the last line", from)
	}
	b = append(append(append([]byte(nil), b[:i]...), to...), b[i+len(from):]...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoadLogProvesByCheckpoint: the lines the checkpoint kept beside
// the log signs are proven by it, the later ones by their signatures.
func TestLoadLogProvesByCheckpoint(t *testing.T) {
	key := testKey()
	ring := keyring.New(key.Public().(ed25519.PublicKey))
	dir := t.TempDir()
	signedLog(t, dir, key, ring, "ams-1", 5)
	l, err := LoadLog(dir, LogNameErasures, "ams-1", ring)
	if err != nil || l.Proven != 5 || len(l.Signers) != 5 || l.Tree.Size() != 5 {
		t.Fatalf("LoadLog: %+v, %v; want 5 lines proven by the checkpoint", l, err)
	}
	// Two appends whose checkpoint was never kept (a crash after the
	// append): their signatures are checked.
	for _, id := range []string{"6", "7"} {
		if _, err := AddErasure(dir, key, ring, Erasure{Tenant: "t", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if l, err = LoadLog(dir, LogNameErasures, "ams-1", ring); err != nil || l.Proven != 5 || len(l.Signers) != 7 {
		t.Fatalf("LoadLog after two appends: %+v, %v", l, err)
	}
	// Another appliance id: its origin does not open the checkpoint, so
	// nothing is proven by it and every signature is checked.
	if l, err = LoadLog(dir, LogNameErasures, "other", ring); err != nil || l.Proven != 0 {
		t.Fatalf("LoadLog of another origin: %+v, %v; want every line checked", l, err)
	}
	// A wrong line after the checkpoint is caught by its signature.
	editLast(t, filepath.Join(dir, ErasureFileName), `"dossier_id":"7"`, `"dossier_id":"8"`)
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("a line after the checkpoint edited: %v, want ErrBroken", err)
	}
}

// TestLoadLogDetects: root on the appliance without its key edits a line
// the checkpoint kept beside the log signs, cuts the log off, removes or
// replaces the checkpoint: each is an error, never a log accepted
// unchecked.
func TestLoadLogDetects(t *testing.T) {
	key := testKey()
	ring := keyring.New(key.Public().(ed25519.PublicKey))
	dir := t.TempDir()
	_, recs := signedLog(t, dir, key, ring, "ams-1", 5)
	path := filepath.Join(dir, ErasureFileName)
	cpPath := filepath.Join(dir, CheckpointFileOf(LogNameErasures))
	whole, _ := os.ReadFile(path)
	cp, _ := os.ReadFile(cpPath)
	restore := func() {
		t.Helper()
		if err := os.WriteFile(path, whole, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cpPath, cp, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The last line edited (its link intact): the checkpoint's root.
	editLast(t, path, `"dossier_id":"5"`, `"dossier_id":"6"`)
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a line under the checkpoint edited: %v, want ErrInconsistent", err)
	}
	if err := CheckAnchored(dir, "ams-1", ring, recs); err == nil {
		t.Fatal("CheckAnchored accepted an edited line")
	}
	// ... and the checkpoint removed: every signature is checked.
	if err := os.Remove(cpPath); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("an edited line without its checkpoint: %v, want ErrBroken", err)
	}
	// ... or replaced by a checkpoint of the edited log signed with
	// another key (root's own): not the appliance's, so it proves
	// nothing and every signature is checked.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	lines := bytes.Split(bytes.TrimSuffix(mustRead(t, path), []byte("\n")), []byte("\n"))
	tr, _ := Tree(lines)
	forged, err := SignCheckpoint(other, LogNameErasures, "ams-1", tr, tr.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cpPath, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("an edited line under a forged checkpoint: %v, want ErrBroken", err)
	}
	// ... or by garbage.
	if err := os.WriteFile(cpPath, []byte("not a checkpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, chain.ErrBroken) {
		t.Fatalf("an edited line beside a garbage checkpoint: %v, want ErrBroken", err)
	}
	restore()

	// A garbage checkpoint beside an intact log: the lines verify one by
	// one, and the checkpoint itself fails CheckAnchored.
	if err := os.WriteFile(cpPath, []byte("not a checkpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := LoadLog(dir, LogNameErasures, "ams-1", ring); err != nil || l.Proven != 0 {
		t.Fatalf("a garbage checkpoint beside an intact log: %+v, %v", l, err)
	}
	if err := CheckAnchored(dir, "ams-1", ring, recs); err == nil {
		t.Fatal("CheckAnchored accepted a garbage checkpoint")
	}
	restore()

	// The last line cut off: the checkpoint signs more lines.
	ls := lines4(whole)
	if err := os.WriteFile(path, ls, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a log cut off behind its checkpoint: %v, want ErrInconsistent", err)
	}
	restore()
	if _, err := LoadLog(dir, LogNameErasures, "ams-1", ring); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lines4 is a log of 5 lines without its last.
func lines4(b []byte) []byte {
	i := bytes.LastIndexByte(b[:len(b)-1], '\n')
	return b[:i+1]
}
