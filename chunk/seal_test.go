package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Fixed test keys; the golden vectors are sealed under them.
var (
	testDataKey = bytes.Repeat([]byte{0xd0}, KeySize)
	testIDKey   = bytes.Repeat([]byte{0x1d}, KeySize)
)

func newTestSealer(t testing.TB) *Sealer {
	t.Helper()
	s, err := NewSealer(testDataKey, testIDKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomBytes returns n deterministic incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes returns n deterministic bytes of redundant, database-like text.
func textBytes(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d\t%09d\tJansen\tde Vries\t1970-01-%02d\tconsult huisarts, controle bloeddruk\n", i, 100000000+i*7919, i%28+1)
	}
	return b.Bytes()[:n]
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	tests := []struct {
		name     string
		plain    []byte
		wantKind byte
	}{
		{"empty", nil, kindRaw},
		{"one byte", []byte{42}, kindRaw},
		{"random 1000", randomBytes(1, 1000), kindRaw},
		{"random 64KiB", randomBytes(2, 64<<10), kindRaw},
		{"compressible 64KiB", textBytes(64 << 10), kindZstd},
		{"zeros 1MiB", make([]byte, 1<<20), kindZstd},
		{"random max", randomBytes(3, MaxChunkSize), kindRaw},
		{"compressible max", textBytes(MaxChunkSize), kindZstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := s.ID(tt.plain)
			sealed, err := s.Seal(nil, id, tt.plain)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) > MaxSealedSize {
				t.Fatalf("sealed length %d > MaxSealedSize %d", len(sealed), MaxSealedSize)
			}
			if kind, payload := peekInner(t, s, id, sealed); kind != tt.wantKind {
				t.Errorf("kind = %d, want %d", kind, tt.wantKind)
			} else if want := nonceSize + tagSize + padme(innerHeader+payload); len(sealed) != want {
				t.Errorf("sealed length %d, want nonce+tag+padme(header+%d) = %d", len(sealed), payload, want)
			}
			got, err := s.Open(nil, id, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plain) {
				t.Fatalf("Open returned %d bytes, want the %d sealed", len(got), len(tt.plain))
			}
		})
	}
}

// peekInner decrypts a sealed blob and returns its kind and payload length.
func peekInner(t *testing.T, s *Sealer, id ID, sealed []byte) (kind byte, payload int) {
	t.Helper()
	inner, err := s.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], additionalData(id))
	if err != nil {
		t.Fatal(err)
	}
	return inner[0], int(binary.LittleEndian.Uint32(inner[1:5]))
}

func TestSealAppendsAndOpenAppends(t *testing.T) {
	s := newTestSealer(t)
	for _, plain := range [][]byte{randomBytes(4, 5000), textBytes(5000)} {
		id := s.ID(plain)
		prefix := []byte("prefix")
		sealed, err := s.Seal(bytes.Clone(prefix), id, plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(sealed, prefix) {
			t.Fatal("Seal did not keep dst")
		}
		sealed = sealed[len(prefix):]
		// Seal builds the blob in dst's spare capacity: old bytes there
		// must not leak into the padding.
		dirty := bytes.Repeat([]byte{0xa5}, 2*len(plain)+1024)
		again, err := s.Seal(dirty[:len(prefix)], id, plain)
		if err != nil {
			t.Fatal(err)
		}
		if kind, payload := peekInner(t, s, id, again[len(prefix):]); kind > kindZstd {
			t.Fatalf("kind %d", kind)
		} else if inner, _ := s.aead.Open(nil, again[len(prefix):][:nonceSize], again[len(prefix)+nonceSize:], additionalData(id)); !bytes.Equal(inner[innerHeader+payload:], make([]byte, len(inner)-innerHeader-payload)) {
			t.Fatal("padding of a blob sealed into used capacity is not zero")
		}
		// A destination longer than MaxChunkSize must not count against the
		// decompression limit; one with room decodes in place.
		roomy := make([]byte, len(prefix), len(prefix)+len(plain)+10)
		copy(roomy, prefix)
		for _, dst := range [][]byte{prefix, roomy, make([]byte, MaxChunkSize+10, MaxChunkSize+20)} {
			got, err := s.Open(bytes.Clone(dst), id, sealed)
			if err != nil {
				t.Fatalf("dst of %d bytes: %v", len(dst), err)
			}
			if !bytes.Equal(got[:len(dst)], dst) || !bytes.Equal(got[len(dst):], plain) {
				t.Fatalf("dst of %d bytes: Open did not append the plaintext", len(dst))
			}
		}
	}
}

func TestSealTooLarge(t *testing.T) {
	s := newTestSealer(t)
	plain := make([]byte, MaxChunkSize+1)
	if _, err := s.Seal(nil, s.ID(plain), plain); err == nil {
		t.Fatal("Seal accepted a plaintext larger than MaxChunkSize")
	}
}

func TestNewSealerKeySizes(t *testing.T) {
	tests := []struct {
		name           string
		dataKey, idKey []byte
		ok             bool
	}{
		{"both 32", make([]byte, 32), make([]byte, 32), true},
		{"short data key", make([]byte, 31), make([]byte, 32), false},
		{"long id key", make([]byte, 32), make([]byte, 33), false},
		{"nil keys", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSealer(tt.dataKey, tt.idKey)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestIDIsKeyedAndDeterministic(t *testing.T) {
	s := newTestSealer(t)
	other, err := NewSealer(testDataKey, bytes.Repeat([]byte{0x1e}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("BSN 123456782")
	if s.ID(plain) != s.ID(bytes.Clone(plain)) {
		t.Error("ID is not deterministic")
	}
	if s.ID(plain) == other.ID(plain) {
		t.Error("ID does not depend on the ID key")
	}
	if s.ID(plain) == s.ID([]byte("BSN 123456783")) {
		t.Error("different plaintexts share an ID")
	}
}

func TestOpenRejects(t *testing.T) {
	s := newTestSealer(t)
	plain := textBytes(300) // compressible: exercises the zstd path
	id := s.ID(plain)
	sealed, err := s.Seal(nil, id, plain)
	if err != nil {
		t.Fatal(err)
	}
	otherData, _ := NewSealer(bytes.Repeat([]byte{0xd1}, KeySize), testIDKey)
	otherID, _ := NewSealer(testDataKey, bytes.Repeat([]byte{0x1e}, KeySize))

	flipped := func(i int, bit uint) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1 << bit
		return b
	}
	type tc struct {
		name   string
		s      *Sealer
		id     ID
		sealed []byte
	}
	tests := []tc{
		{"wrong id", s, s.ID([]byte("other")), sealed},
		{"id one bit off", s, func() ID { x := id; x[31] ^= 1; return x }(), sealed},
		{"wrong data key", otherData, id, sealed},
		{"wrong id key", otherID, id, sealed},
		{"empty", s, id, nil},
		{"nonce only", s, id, sealed[:nonceSize]},
		{"one byte too long", s, id, append(bytes.Clone(sealed), 0)},
		{"beyond MaxSealedSize", s, id, make([]byte, MaxSealedSize+1)},
		{"zeros", s, id, make([]byte, len(sealed))},
	}
	for n := range len(sealed) {
		tests = append(tests, tc{fmt.Sprintf("truncated to %d", n), s, id, sealed[:n]})
	}
	for i := range len(sealed) {
		for bit := range uint(8) {
			tests = append(tests, tc{fmt.Sprintf("bit %d of byte %d flipped", bit, i), s, id, flipped(i, bit)})
		}
	}
	for _, tt := range tests {
		got, err := tt.s.Open(nil, tt.id, tt.sealed)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open = %d bytes, %v; want ErrCorrupt", tt.name, len(got), err)
		}
	}
	if _, err := s.Open(nil, id, sealed); err != nil {
		t.Fatalf("the original no longer opens: %v", err)
	}
}

// sealInner encrypts an arbitrary inner plaintext under s, as a key holder
// (or a bug) could: Open must reject what Seal would never produce.
func sealInner(s *Sealer, id ID, inner []byte) []byte {
	nonce := make([]byte, nonceSize)
	return s.aead.Seal(nonce, nonce, inner, additionalData(id))
}

func inner(kind byte, declared uint32, payload []byte, pad int) []byte {
	b := []byte{kind, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], declared)
	b = append(b, payload...)
	return append(b, make([]byte, pad)...)
}

func TestOpenRejectsAuthenticatedGarbage(t *testing.T) {
	s := newTestSealer(t)
	plain := []byte("hello, dossier")
	id := s.ID(plain)
	zplain := encoder.EncodeAll(plain, nil)
	bomb := encoder.EncodeAll(make([]byte, MaxChunkSize+1), nil)
	big := make([]byte, MaxChunkSize+1)
	noSizeBomb := func() []byte { // a frame that does not declare its size
		var b bytes.Buffer
		w, _ := zstd.NewWriter(&b, zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
		w.Write(make([]byte, MaxChunkSize+1))
		w.Close()
		return b.Bytes()
	}()
	tests := []struct {
		name  string
		id    ID
		inner []byte
		ok    bool
	}{
		{"valid raw", id, inner(kindRaw, uint32(len(plain)), plain, 3), true},
		{"valid zstd", id, inner(kindZstd, uint32(len(zplain)), zplain, 0), true},
		{"header only", s.ID(nil), inner(kindRaw, 0, nil, 0), true},
		{"shorter than header", id, []byte{kindRaw, 0, 0}, false},
		{"length beyond blob", id, inner(kindRaw, uint32(len(plain))+1, plain, 0), false},
		{"length 2^32-1", id, inner(kindRaw, 1<<32-1, plain, 0), false},
		{"unknown kind", id, inner(7, uint32(len(plain)), plain, 0), false},
		{"raw, wrong plaintext", id, inner(kindRaw, 5, []byte("hellx"), 0), false},
		{"zstd garbage", id, inner(kindZstd, uint32(len(plain)), plain, 0), false},
		{"zstd, truncated frame", id, inner(kindZstd, uint32(len(zplain)-1), zplain[:len(zplain)-1], 0), false},
		{"zstd bomb", s.ID(make([]byte, MaxChunkSize+1)), inner(kindZstd, uint32(len(bomb)), bomb, 0), false},
		{"zstd bomb, size unknown", s.ID(make([]byte, MaxChunkSize+1)), inner(kindZstd, uint32(len(noSizeBomb)), noSizeBomb, 0), false},
		{"raw above MaxChunkSize", s.ID(big), inner(kindRaw, uint32(len(big)), big, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := sealInner(s, tt.id, tt.inner)
			_, err := s.Open(nil, tt.id, sealed)
			if tt.ok && err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestSealerConcurrent(t *testing.T) {
	s := newTestSealer(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				var plain []byte
				if i%2 == 0 {
					plain = randomBytes(uint64(g*100+i), 1000+i*997)
				} else {
					plain = textBytes(1000 + i*997)
				}
				id := s.ID(plain)
				sealed, err := s.Seal(nil, id, plain)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := s.Open(nil, id, sealed)
				if err != nil || !bytes.Equal(got, plain) {
					t.Errorf("goroutine %d blob %d: round trip failed: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSealNonceIsFresh(t *testing.T) {
	s := newTestSealer(t)
	plain := []byte("same plaintext")
	id := s.ID(plain)
	a, _ := s.Seal(nil, id, plain)
	b, _ := s.Seal(nil, id, plain)
	if bytes.Equal(a[:nonceSize], b[:nonceSize]) {
		t.Fatal("two seals share a nonce")
	}
}

func TestParseID(t *testing.T) {
	s := newTestSealer(t)
	id := s.ID([]byte("x"))
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"lower hex", id.String(), true},
		{"upper hex", strings.ToUpper(id.String()), true},
		{"empty", "", false},
		{"short", id.String()[:63], false},
		{"long", id.String() + "0", false},
		{"not hex", "g" + id.String()[1:], false},
		{"huge", strings.Repeat("a", 1<<20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && got != id {
				t.Fatalf("ParseID = %s, want %s", got, id)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Fatalf("error message of %d bytes echoes the input", len(err.Error()))
			}
		})
	}
	var back ID
	text, _ := id.MarshalText()
	if err := back.UnmarshalText(text); err != nil || back != id {
		t.Fatalf("text round trip: %v, %s != %s", err, back, id)
	}
}

func TestPadme(t *testing.T) {
	prev := 0
	check := func(n int) {
		p := padme(n)
		if p < n {
			t.Fatalf("padme(%d) = %d < n", n, p)
		}
		if p < prev {
			t.Fatalf("padme(%d) = %d < padme(%d) = %d: not monotone", n, p, n-1, prev)
		}
		if n > 0 && float64(p-n)/float64(n) > 0.12 {
			t.Fatalf("padme(%d) = %d: overhead %.1f%% > 12%%", n, p, 100*float64(p-n)/float64(n))
		}
		if padme(p) != p {
			t.Fatalf("padme(padme(%d)) = %d != %d: not idempotent", n, padme(p), p)
		}
		prev = p
	}
	for n := range 1 << 20 {
		check(n)
	}
	// Above 1 MiB, check around every boundary up to the largest blob.
	for e := 20; e <= 24; e++ {
		for k := 1 << e; k < 1<<(e+1); k += 1 << (e - 6) {
			prev = padme(k - 2)
			for n := k - 1; n <= k+1; n++ {
				check(n)
			}
		}
	}
	tests := []struct{ n, want int }{
		{0, 0}, {1, 1}, {2, 2}, {3, 3}, {9, 10}, {255, 256},
		// e=16, s=5: multiples of 2^11.
		{64 << 10, 64 << 10}, {64<<10 + 1, 64<<10 + 2048},
		{MaxChunkSize + innerHeader, MaxChunkSize + 256<<10},
	}
	for _, tt := range tests {
		if got := padme(tt.n); got != tt.want {
			t.Errorf("padme(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
	if max := nonceSize + tagSize + padme(innerHeader+MaxChunkSize); max > MaxSealedSize {
		t.Errorf("largest sealed blob %d > MaxSealedSize %d", max, MaxSealedSize)
	}
}
