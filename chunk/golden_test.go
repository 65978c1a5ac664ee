package chunk

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite the golden sealed blobs under testdata/golden")

// goldenBlobs are sealed once under testDataKey and testIDKey and kept in
// testdata/golden; a change to the sealed-blob format shows up as a failure
// here and, after -update, as a diff of those files.
var goldenBlobs = []struct {
	name  string
	plain []byte
	kind  byte
}{
	{"empty", nil, kindRaw},
	{"raw", []byte("Dossier 4711: geen bijzonderheden.\n"), kindRaw},
	{"zstd", []byte(strings.Repeat("4711\t123456782\tJansen\tde Vries\t1970-01-01\tcontrole bloeddruk\n", 60)), kindZstd},
}

type golden struct {
	name   string
	id     ID
	plain  []byte
	sealed []byte
}

// loadGolden reads the golden blobs. With -update it first reseals any that
// no longer open to their plaintext, so an unchanged format leaves the files
// (whose nonces are random) untouched.
func loadGolden(t testing.TB) []golden {
	t.Helper()
	s := newTestSealer(t)
	var out []golden
	for _, g := range goldenBlobs {
		blobPath := filepath.Join("testdata", "golden", g.name+".sealed")
		idPath := filepath.Join("testdata", "golden", g.name+".id")
		id := s.ID(g.plain)
		if *update {
			sealed, err := os.ReadFile(blobPath)
			if got, oerr := s.Open(nil, id, sealed); err != nil || oerr != nil || !bytes.Equal(got, g.plain) {
				if sealed, err = s.Seal(nil, id, g.plain); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(blobPath), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(blobPath, sealed, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(idPath, []byte(id.String()+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		sealed, err := os.ReadFile(blobPath)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		idText, err := os.ReadFile(idPath)
		if err != nil {
			t.Fatal(err)
		}
		goldenID, err := ParseID(strings.TrimSpace(string(idText)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, golden{name: g.name, id: goldenID, plain: g.plain, sealed: sealed})
	}
	return out
}

func TestGoldenBlobs(t *testing.T) {
	s := newTestSealer(t)
	for i, g := range loadGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			if id := s.ID(g.plain); id != g.id {
				t.Fatalf("blob ID changed: %s, golden %s", id, g.id)
			}
			got, err := s.Open(nil, g.id, g.sealed)
			if err != nil {
				t.Fatalf("golden blob no longer opens: %v", err)
			}
			if !bytes.Equal(got, g.plain) {
				t.Fatal("golden blob opens to another plaintext")
			}
			checkLayout(t, g.id, g.sealed, g.plain, goldenBlobs[i].kind)
		})
	}
}

// checkLayout decodes a sealed blob from first principles, as the format is
// specified (docs/format.md, "Sealed blob"), without using Open:
//
//	nonce (24) ‖ XChaCha20-Poly1305(data key, nonce,
//	    kind (1) ‖ payload length (uint32 LE) ‖ payload ‖ zero padding,
//	    AD = "kluis blob v1\x00" ‖ blob ID)
//
// with the inner plaintext padded to padme(5 + payload length).
func checkLayout(t *testing.T, id ID, sealed, plain []byte, kind byte) {
	t.Helper()
	aead, err := chacha20poly1305.NewX(testDataKey)
	if err != nil {
		t.Fatal(err)
	}
	ad := append([]byte("kluis blob v1\x00"), id[:]...)
	in, err := aead.Open(nil, sealed[:24], sealed[24:], ad)
	if err != nil {
		t.Fatalf("layout: does not decrypt: %v", err)
	}
	n := int(binary.LittleEndian.Uint32(in[1:5]))
	if in[0] != kind {
		t.Errorf("layout: kind %d, want %d", in[0], kind)
	}
	if len(in) != padme(5+n) {
		t.Errorf("layout: inner length %d, want padme(5+%d) = %d", len(in), n, padme(5+n))
	}
	if pad := in[5+n:]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Error("layout: padding is not zero")
	}
	if kind == kindRaw && !bytes.Equal(in[5:5+n], plain) {
		t.Error("layout: raw payload is not the plaintext")
	}
	if kind == kindZstd && !bytes.HasPrefix(in[5:], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Error("layout: zstd payload does not start with the zstd frame magic")
	}
}
