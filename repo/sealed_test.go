package repo

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sealedAds are the associated data FuzzSealedVerifier tries, in order.
var sealedAds = []string{boundAD(adIndexV2, fuzzTenant, fuzzRepoID), adIndex}

// streamVerify runs sealedVerifier over obj in pieces of step bytes after
// a head of at least the nonce and tag, as readSealedRaw does.
func streamVerify(ms *metaSealer, obj []byte, step int) (string, bool, [32]byte) {
	headLen := min(len(obj), max(40, step))
	v := newSealedVerifier(ms.key, sealedAds, obj[:headLen])
	for rest := obj[headLen:]; len(rest) > 0; {
		n := min(step, len(rest))
		v.write(rest[:n])
		rest = rest[n:]
	}
	var sum [32]byte
	copy(sum[:], v.sum())
	ad, ok := v.verify()
	return ad, ok, sum
}

// FuzzSealedVerifier: the streaming check of a sealed object (the hostile
// input of every large index or manifest) agrees with the AEAD itself on
// any bytes, genuine or not, fed in any piece size: it accepts exactly
// what Open accepts, under the same associated data, and hashes what it
// was fed.
func FuzzSealedVerifier(f *testing.F) {
	ms := fuzzMeta(f)
	for _, seed := range sealedSeeds(ms) {
		f.Add(seed.plain, seed.raw, seed.ad, seed.flip, seed.step)
	}
	f.Fuzz(func(t *testing.T, plain, raw []byte, adSel uint8, flip uint32, step uint16) {
		sealed := ms.seal(sealedAds[int(adSel)%len(sealedAds)], plain)
		if flip != 0 {
			sealed[int(flip)%len(sealed)] ^= byte(flip>>24) | 1
		}
		for _, obj := range [][]byte{sealed, raw} {
			s := int(step)%4096 + 1
			ad, ok, sum := streamVerify(ms, obj, s)
			if sum != sha256.Sum256(obj) {
				t.Fatal("the streaming hash differs from SHA-256 of the object")
			}
			wantAd, wantOK := "", false
			for _, a := range sealedAds {
				if _, err := ms.open(a, obj); err == nil {
					wantAd, wantOK = a, true
					break
				}
			}
			if ok != wantOK || ad != wantAd {
				t.Fatalf("streaming verification says %q/%v, the AEAD %q/%v (object of %d bytes, pieces of %d)", ad, ok, wantAd, wantOK, len(obj), s)
			}
		}
	})
}

type sealedSeed struct {
	plain, raw []byte
	ad         uint8
	flip       uint32
	step       uint16
}

func sealedSeeds(ms *metaSealer) []sealedSeed {
	long := bytes.Repeat([]byte("kluis index plaintext "), 500)
	return []sealedSeed{
		{plain: []byte{}, raw: []byte{}, step: 1},
		{plain: []byte("KLIX\x02"), raw: bytes.Repeat([]byte{0xaa}, 40), ad: 1, step: 7},
		{plain: long, raw: ms.seal(adIndex, long), step: 4095},
		{plain: long, raw: long, ad: 0, flip: 0x01000123, step: 16},
		{plain: long[:17], raw: ms.seal(adManifest, long[:33]), ad: 1, flip: 0xff000003, step: 15},
	}
}

// TestSealedVerifierSeeds writes the seed corpus (with -update) and checks
// that it is there.
func TestSealedVerifierSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzSealedVerifier")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range sealedSeeds(fuzzMeta(t)) {
			var b bytes.Buffer
			fmt.Fprintf(&b, "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nbyte(%d)\nuint32(%d)\nuint16(%d)\n", s.plain, s.raw, s.ad, s.flip, s.step)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) < 3 {
		t.Fatalf("%d seed files (%v), want at least 3 (run with -update)", len(files), err)
	}
}
