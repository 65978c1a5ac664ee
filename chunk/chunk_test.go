package chunk

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

// testPol is a fixed irreducible polynomial of degree 53 (restic's test
// polynomial), so chunk boundaries in tests are reproducible.
const testPol Pol = 0x3DA3358B4DC173

// otherPol is a second irreducible polynomial of degree 53.
const otherPol Pol = 0x2F0D5B8D6CB561

func TestTestPolynomials(t *testing.T) {
	for _, p := range []Pol{testPol, otherPol} {
		if p.Deg() != 53 || !p.Irreducible() {
			t.Errorf("%v: degree %d, irreducible %v", p, p.Deg(), p.Irreducible())
		}
	}
	p, err := RandomPol()
	if err != nil {
		t.Fatal(err)
	}
	if p.Deg() != 53 || !p.Irreducible() {
		t.Errorf("RandomPol %v: degree %d, irreducible %v", p, p.Deg(), p.Irreducible())
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		ok   bool
	}{
		{"default", DefaultParams, true},
		{"smallest", Params{Min: 64, Avg: 64, Max: 64}, true},
		{"largest", Params{Min: 64, Avg: MaxChunkSize, Max: MaxChunkSize}, true},
		{"restic-like", Params{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20}, true},
		{"zero", Params{}, false},
		{"avg not a power of two", Params{Min: 16 << 10, Avg: 60 << 10, Max: 512 << 10}, false},
		{"avg zero", Params{Min: 64, Avg: 0, Max: 512}, false},
		{"min below window", Params{Min: 63, Avg: 64 << 10, Max: 512 << 10}, false},
		{"min above avg", Params{Min: 128 << 10, Avg: 64 << 10, Max: 512 << 10}, false},
		{"max below avg", Params{Min: 16 << 10, Avg: 64 << 10, Max: 32 << 10}, false},
		{"max above MaxChunkSize", Params{Min: 16 << 10, Avg: 64 << 10, Max: MaxChunkSize + 1}, false},
		{"avg above MaxChunkSize", Params{Min: 16 << 10, Avg: 2 * MaxChunkSize, Max: 2 * MaxChunkSize}, false},
		{"huge max", Params{Min: 16 << 10, Avg: 64 << 10, Max: ^uint(0)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tt.p, err, tt.ok)
			}
		})
	}
}

// cut returns the chunk lengths of data, checking that the chunks
// concatenate back to data.
func cut(t *testing.T, data []byte, pol Pol, p Params) []int {
	t.Helper()
	c := NewChunker(bytes.NewReader(data), pol, 0, p)
	var lens []int
	var joined []byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lens = append(lens, len(ch))
		joined = append(joined, ch...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatalf("chunks do not reassemble the stream (%d of %d bytes)", len(joined), len(data))
	}
	if _, err := c.Next(); err != io.EOF {
		t.Fatalf("Next after the end = %v, want io.EOF", err)
	}
	return lens
}

func TestChunkBoundaries(t *testing.T) {
	small := Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	tests := []struct {
		name string
		data []byte
		p    Params
	}{
		{"random, small params", randomBytes(10, 4<<20), small},
		{"text, small params", textBytes(4 << 20), small},
		{"zeros hit max", make([]byte, 1<<20), small},
		{"random, default params", randomBytes(11, 8<<20), DefaultParams},
		{"shorter than min", randomBytes(12, 500), small},
		{"one byte", []byte{1}, small},
		{"tight params", randomBytes(13, 1<<20), Params{Min: 64, Avg: 64, Max: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lens := cut(t, tt.data, testPol, tt.p)
			for i, n := range lens {
				last := i == len(lens)-1
				if n > int(tt.p.Max) || n == 0 || (!last && n < int(tt.p.Min)) {
					t.Fatalf("chunk %d of %d has %d bytes, outside [%d, %d]", i, len(lens), n, tt.p.Min, tt.p.Max)
				}
			}
		})
	}
}

func TestChunkEmptyStream(t *testing.T) {
	if lens := cut(t, nil, testPol, DefaultParams); len(lens) != 0 {
		t.Fatalf("empty stream gave %d chunks", len(lens))
	}
}

func TestChunkDeterministic(t *testing.T) {
	data := randomBytes(20, 4<<20)
	p := Params{Min: 2 << 10, Avg: 8 << 10, Max: 64 << 10}
	a := cut(t, data, testPol, p)
	b := cut(t, data, testPol, p)
	if !slices.Equal(a, b) {
		t.Fatal("same polynomial, same data, different chunks")
	}
	if len(a) < 100 {
		t.Fatalf("only %d chunks; the test needs many", len(a))
	}
	if c := cut(t, data, otherPol, p); slices.Equal(a, c) {
		t.Fatal("another polynomial cut the same chunks")
	}
}

// TestChunkResync checks what deduplication relies on: an edit in the middle
// of a stream changes only the chunks around it.
func TestChunkResync(t *testing.T) {
	p := Params{Min: 2 << 10, Avg: 8 << 10, Max: 64 << 10}
	data := randomBytes(21, 2<<20)
	edited := bytes.Clone(data)
	copy(edited[1<<20:], "an edit in the middle of the stream")
	s := newTestSealer(t)
	ids := map[ID]bool{}
	c := NewChunker(bytes.NewReader(data), testPol, 0, p)
	for ch, err := c.Next(); err == nil; ch, err = c.Next() {
		ids[s.ID(ch)] = true
	}
	var fresh, total int
	c = NewChunker(bytes.NewReader(edited), testPol, 0, p)
	for ch, err := c.Next(); err == nil; ch, err = c.Next() {
		total++
		if !ids[s.ID(ch)] {
			fresh++
		}
	}
	if fresh < 1 || fresh > 3 {
		t.Fatalf("%d of %d chunks changed after one small edit; want 1 to 3", fresh, total)
	}
}

func TestChunkerInvalidParams(t *testing.T) {
	for _, p := range []Params{{}, {Min: 1, Avg: 64, Max: 1 << 20}, {Min: 64, Avg: 64, Max: 1 << 30}} {
		c := NewChunker(bytes.NewReader(make([]byte, 1<<20)), testPol, 0, p)
		if _, err := c.Next(); err == nil || err == io.EOF {
			t.Errorf("%+v: Next = %v, want the validation error", p, err)
		}
	}
}

func TestChunkerBadPolynomial(t *testing.T) {
	for _, pol := range []Pol{0, 1, 0xff, 1 << 60} {
		c := NewChunker(bytes.NewReader(make([]byte, 1<<16)), pol, 0, DefaultParams)
		if _, err := c.Next(); err == nil || err == io.EOF {
			t.Errorf("polynomial %v: Next = %v, want an error", pol, err)
		}
	}
}

func TestChunkerReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(randomBytes(30, 100<<10)), iotest.ErrReader(boom))
	c := NewChunker(r, testPol, 0, Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10})
	for {
		_, err := c.Next()
		if err == nil {
			continue
		}
		if !errors.Is(err, boom) {
			t.Fatalf("Next = %v, want the reader's error", err)
		}
		return
	}
}
