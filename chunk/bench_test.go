package chunk

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"io"
	"strconv"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// BenchmarkMAC compares candidate blob-ID MACs on chunk-sized input.
// Run: go test -run '^$' -bench BenchmarkMAC -count 3 ./chunk
func BenchmarkMAC(b *testing.B) {
	key := bytes.Repeat([]byte{7}, KeySize)
	macs := []struct {
		name string
		new  func() hash.Hash
	}{
		{"hmac-sha256", func() hash.Hash { return hmac.New(sha256.New, key) }},
		{"blake2b-256-keyed", func() hash.Hash { h, _ := blake2b.New256(key); return h }},
		{"sha256-unkeyed-baseline", sha256.New},
	}
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		data := randomBytes(50, size)
		for _, m := range macs {
			b.Run(m.name+"/"+sizeName(size), func(b *testing.B) {
				h := m.new()
				var sum [64]byte
				b.SetBytes(int64(size))
				for b.Loop() {
					h.Reset()
					h.Write(data)
					h.Sum(sum[:0])
				}
			})
		}
	}
	b.Run("Sealer.ID/"+sizeName(64<<10), func(b *testing.B) {
		s := newTestSealer(b)
		data := randomBytes(51, 64<<10)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			s.ID(data)
		}
	})
}

// BenchmarkChunker measures content-defined chunking alone.
func BenchmarkChunker(b *testing.B) {
	data := randomBytes(52, 32<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := NewChunker(bytes.NewReader(data), testPol, 0, DefaultParams)
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchInputs are one chunk of the default average size and one of 64 KiB,
// random (incompressible) and database-like text (redundant).
var benchInputs = []struct {
	name string
	data []byte
}{
	{"random/16KiB", randomBytes(53, 16<<10)},
	{"text/16KiB", tableStream(studySeed, 16<<10, false)[:16<<10]},
	{"random/64KiB", randomBytes(54, 64<<10)},
	{"text/64KiB", tableStream(studySeed, 64<<10, false)[:64<<10]},
}

// BenchmarkSeal measures Seal alone (the ID is computed beforehand).
func BenchmarkSeal(b *testing.B) {
	s := newTestSealer(b)
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			id := s.ID(in.data)
			buf := make([]byte, 0, MaxSealedSize)
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				if _, err := s.Seal(buf[:0], id, in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealParallel shows that sealing scales across goroutines (the
// shared zstd encoder must not serialise them).
func BenchmarkSealParallel(b *testing.B) {
	s := newTestSealer(b)
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			id := s.ID(in.data)
			b.SetBytes(int64(len(in.data)))
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, MaxSealedSize)
				for pb.Next() {
					if _, err := s.Seal(buf[:0], id, in.data); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkOpen measures Open, including the ID check.
func BenchmarkOpen(b *testing.B) {
	s := newTestSealer(b)
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			id := s.ID(in.data)
			sealed, err := s.Seal(nil, id, in.data)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, MaxChunkSize)
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				if _, err := s.Open(buf[:0], id, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPipeline is chunk + ID + seal over a database-like stream, the
// whole per-byte cost of a backup in this package, for DefaultParams.
func BenchmarkPipeline(b *testing.B) {
	s := newTestSealer(b)
	data := tableStream(studySeed, 32<<20, false)
	buf := make([]byte, 0, MaxSealedSize)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := NewChunker(bytes.NewReader(data), testPol, 0, DefaultParams)
		for {
			ch, err := c.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Seal(buf[:0], s.ID(ch), ch); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// BenchmarkSealParts splits Seal into its parts on a 16 KiB table-like
// chunk, for the breakdown in docs/benchmarks.md: zstd (the level Seal
// uses) and XChaCha20-Poly1305, each alone, and zstd decoding for Open.
func BenchmarkSealParts(b *testing.B) {
	data := tableStream(studySeed, 16<<10, false)[:16<<10]
	b.Run("zstd-encode", func(b *testing.B) {
		buf := make([]byte, 0, len(data))
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			encoder.EncodeAll(data, buf[:0])
		}
	})
	b.Run("zstd-decode", func(b *testing.B) {
		z := encoder.EncodeAll(data, nil)
		buf := make([]byte, 0, len(data))
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := decoder.DecodeAll(z, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("xchacha20poly1305", func(b *testing.B) {
		s := newTestSealer(b)
		nonce := make([]byte, nonceSize)
		buf := make([]byte, 0, len(data)+tagSize)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			s.aead.Seal(buf[:0], nonce, data, blobAD)
		}
	})
}

// BenchmarkChunkerTable compares the two ways of finding chunk ends on a
// database-like table stream, at the row-delta sizes: the rolling hash
// over every byte and row ends (CutRows).
func BenchmarkChunkerTable(b *testing.B) {
	data := tableStream(studySeed, 32<<20, false)
	for _, cut := range []string{"rolling", CutRows} {
		p := RowDeltaParams
		if cut == "rolling" {
			p.Cut = ""
		}
		b.Run(cut, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c := NewChunker(bytes.NewReader(data), testPol, 0, p)
				for {
					if _, err := c.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
