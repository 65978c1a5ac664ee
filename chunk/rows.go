package chunk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
)

// CutRows is Params.Cut for streams of one row per line (PostgreSQL's COPY
// text, where a newline inside a value is escaped): chunks end at row ends
// chosen by each row's own content, not by a rolling hash over every byte.
const CutRows = "rows"

// rowCutter cuts a stream at row ends (docs/format.md, "Chunk boundaries"):
// a chunk ends after the first row that ends at or beyond Params.Min and
// whose keyed 64-bit hash falls below len(row) × 2⁶⁴ / Params.Avg (so a
// cut comes on average every Avg bytes whatever the rows' lengths), or
// after Params.Max bytes, mid-row, when no row end was chosen before.
//
// A row's hash depends on the row alone, so an edited, inserted or deleted
// row moves at most the boundary at that row: the chunks around it are cut
// as before and deduplicate, as content-defined chunks do. Finding row ends
// (bytes.IndexByte) and hashing each row once costs a fraction of a
// rolling hash over every byte (BenchmarkChunkerTable: 1.8 GB/s against 0.47 GB/s).
//
// The hash is not cryptographic (nor is the rolling hash): its seed is
// derived from the tenant's secret chunker polynomial, so where chunks end
// cannot be predicted without the tenant's key file, but an attacker who
// can both insert chosen rows and see chunk sizes learns about the seed,
// as attacks on the rolling hash's polynomial do (docs/security.md, "Chunk
// boundaries"). Sealed blobs are padded and a pack's blob table is
// encrypted, so chunk sizes are not in what a location stores.
type rowCutter struct {
	r          io.Reader
	p          Params
	seed       uint64
	buf        []byte // read window: buf[start:end] is not yet cut
	start, end int
	err        error // the reader's error (io.EOF at the end)
}

func newRowCutter(r io.Reader, pol Pol, p Params) *rowCutter {
	return &rowCutter{r: r, p: p, seed: rowSeed(pol), buf: make([]byte, 4*p.Max)}
}

// rowSeed derives the row hash's seed from the tenant's polynomial, one
// way: a seed recovered from where chunks end does not give the polynomial.
func rowSeed(pol Pol) uint64 {
	var in [22]byte
	copy(in[:], "kluis row cut\x00")
	binary.LittleEndian.PutUint64(in[14:], uint64(pol))
	sum := sha256.Sum256(in[:])
	return binary.LittleEndian.Uint64(sum[:8])
}

// fill reads until at least Max bytes are waiting or the reader is done.
func (c *rowCutter) fill() {
	max := int(c.p.Max)
	if c.end-c.start >= max || c.err != nil {
		return
	}
	if len(c.buf)-c.start < max {
		// Move what is left to the front: at most Max bytes per 3×Max cut.
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for c.end-c.start < max && c.err == nil {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err != nil {
			c.err = err
		} else if n == 0 {
			c.err = io.ErrNoProgress
		}
	}
}

// next writes the next chunk into buf's storage (grown when short).
func (c *rowCutter) next(buf []byte) ([]byte, error) {
	c.fill()
	data := c.buf[c.start:c.end]
	if len(data) == 0 {
		if c.err == nil || errors.Is(c.err, io.EOF) {
			return nil, io.EOF
		}
		return nil, c.err
	}
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		return nil, c.err // never cut a chunk from a stream that failed
	}
	n := rowCut(data, c.seed, c.p)
	c.start += n
	return append(buf[:0], data[:n]...), nil
}

// rowCut returns the length of the chunk that starts data: data holds at
// least Max bytes, or the rest of the stream.
func rowCut(data []byte, seed uint64, p Params) int {
	limit := min(len(data), int(p.Max))
	min := int(p.Min)
	avgBits := uint(bits.TrailingZeros(p.Avg))
	for n := 0; n < limit; {
		i := bytes.IndexByte(data[n:limit], '\n')
		if i < 0 {
			break
		}
		end := n + i + 1
		if end >= min && rowChosen(seed, data[n:end], avgBits) {
			return end
		}
		n = end
	}
	return limit
}

// rowChosen reports whether a chunk ends after row: with probability
// len(row)/2^avgBits (always for a row of at least that length).
func rowChosen(seed uint64, row []byte, avgBits uint) bool {
	if uint64(len(row))>>avgBits != 0 {
		return true
	}
	return rowHash(seed, row) < uint64(len(row))<<(64-avgBits)
}

// rowHash is a fast keyed 64-bit hash of row (one multiply-rotate round per
// 8 bytes, xxHash's constants, MurmurHash3's finaliser).
func rowHash(seed uint64, row []byte) uint64 {
	const (
		p1 = 0x9e3779b185ebca87
		p2 = 0xc2b2ae3d27d4eb4f
	)
	h := seed ^ uint64(len(row))*p1
	for len(row) >= 8 {
		h ^= bits.RotateLeft64(binary.LittleEndian.Uint64(row)*p2, 31) * p1
		h = bits.RotateLeft64(h, 27)*p1 + p2
		row = row[8:]
	}
	var tail uint64
	for i, b := range row {
		tail |= uint64(b) << (8 * i)
	}
	h ^= bits.RotateLeft64(tail*p2, 31) * p1
	return fmix64(h)
}

// fmix64 is MurmurHash3's 64-bit finaliser: every input bit affects every
// output bit.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
