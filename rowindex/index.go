package rowindex

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/source"
)

// Index is the row index of one table stream (docs/format.md, "Row
// index"): for each of the stream's chunks, in stream order, a Bloom
// filter over keyed hashes of the values the chunk's rows hold in each of
// Sets. A row whose line spans chunks is in the filter of every chunk it
// touches, so a reader that takes every chunk whose filter may hold a key
// sees every row with that key whole.
type Index struct {
	// Sets are the indexed column lists.
	Sets [][]string
	// Chunks are the stream's chunks, in order.
	Chunks []Chunk
	// Records is set on the index of a row delta (version 2): the
	// stream's lines are kluis-row-delta-v1 records, a "+" record's row
	// is in the filters like a table row, and every record's primary key
	// (rowdelta.KeyForm of its key fields) is in them under set KeySet.
	Records bool
}

// KeySet is the set position a records index hashes primary keys under:
// one past the last set a column list can have.
const KeySet = maxSets

// Chunk is one chunk's entry.
type Chunk struct {
	// ID is the chunk's blob ID: the index belongs to the stream whose
	// blob list this is.
	ID chunk.ID
	// StartsLine is set when the chunk begins a row (the chunk before it
	// ends with a line feed, or it is the first).
	StartsLine bool
	// Rows counts the rows whose line begins in the chunk.
	Rows int64
	// K is the number of bit positions per key; Bits the filter.
	K    uint8
	Bits []byte
}

// Format bounds, checked by Decode.
const (
	magic = "kluis-row-index\n"
	// Version is the format version of a table stream's index.
	Version = 1
	// VersionRecords is the format version of a row delta's index.
	VersionRecords = 2
	maxSets        = 64
	maxSetCols     = 32
	maxColName     = 1024
	maxK           = 32
	maxFilter      = 16 << 20
	bitsPerKey     = 28
	hashesPerKy    = 19
	minFilter      = 8
)

// ErrBadIndex is wrapped by every decoding error.
var ErrBadIndex = errors.New("malformed row index")

// Set returns the position of the column list cols in x.Sets, or -1.
func (x *Index) Set(cols []string) int { return setPos(x.Sets, cols) }

// setPos is the position of cols in sets, or -1.
func setPos(sets [][]string, cols []string) int {
	for i, s := range sets {
		if equalCols(s, cols) {
			return i
		}
	}
	return -1
}

func equalCols(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MayContain reports whether chunk c may hold a row with the keyed hash h
// (Hasher.Hash); false is certain.
func (x *Index) MayContain(c int, h uint64) bool {
	return x.Chunks[c].mayContain(h)
}

func (c *Chunk) mayContain(h uint64) bool {
	m := uint64(len(c.Bits)) * 8
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(c.K) {
		p := (h1 + i*h2) % m
		if c.Bits[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

// newChunk builds the filter of a chunk holding the distinct keyed hashes.
func newChunk(hashes map[uint64]struct{}) Chunk {
	n := (len(hashes)*bitsPerKey + 63) / 64 * 8
	n = min(max(n, minFilter), maxFilter)
	c := Chunk{K: hashesPerKy, Bits: make([]byte, n)}
	m := uint64(n) * 8
	for h := range hashes {
		h1, h2 := h&0xffffffff, h>>32|1
		for i := range uint64(c.K) {
			p := (h1 + i*h2) % m
			c.Bits[p/8] |= 1 << (p % 8)
		}
	}
	return c
}

// Hasher computes the keyed hashes of key values: the first 8 bytes of
// HMAC-SHA256 under the tenant's row index key, over the set's position
// and the value's key form (TupleKey). Without the key, a filter says
// nothing about which values a chunk holds. It is not safe for concurrent
// use.
type Hasher struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// NewHasher returns a Hasher under key.
func NewHasher(key []byte) *Hasher {
	return &Hasher{mac: hmac.New(sha256.New, key)}
}

// Hash returns the keyed hash of the key form k in column list set.
func (h *Hasher) Hash(set int, k string) uint64 {
	h.buf = binary.AppendUvarint(h.buf[:0], uint64(set))
	h.buf = append(h.buf, k...)
	h.mac.Reset()
	h.mac.Write(h.buf)
	h.sum = h.mac.Sum(h.sum[:0])
	return binary.LittleEndian.Uint64(h.sum)
}

// Encode returns the index's bytes.
func (x *Index) Encode() []byte {
	out := []byte(magic)
	if x.Records {
		out = binary.AppendUvarint(out, VersionRecords)
	} else {
		out = binary.AppendUvarint(out, Version)
	}
	out = appendSets(out, x.Sets)
	out = binary.AppendUvarint(out, uint64(len(x.Chunks)))
	for _, c := range x.Chunks {
		out = append(out, c.ID[:]...)
		var flags byte
		if c.StartsLine {
			flags = 1
		}
		out = append(out, flags)
		out = binary.AppendUvarint(out, uint64(c.Rows))
		out = append(out, c.K)
		out = binary.AppendUvarint(out, uint64(len(c.Bits)))
		out = append(out, c.Bits...)
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// Decode parses an index written by Encode. It checks the trailing
// SHA-256 and the format's bounds; whether the index belongs to a stream is Verify's question.
func Decode(b []byte) (*Index, error) {
	body, v, err := checked(b)
	if err != nil {
		return nil, err
	}
	if v != Version && v != VersionRecords {
		return nil, fmt.Errorf("row index version %d is not a filter index: %w", v, ErrBadIndex)
	}
	d := decoder{b: body[len(magic):]}
	d.uvarint()
	x := &Index{Records: v == VersionRecords}
	x.Sets = d.sets()
	// Each chunk takes at least 32+1+1+1+1+8 bytes: the count cannot ask
	// for more entries than the input holds.
	nchunks := d.count(len(d.b) / 44)
	if d.err == nil {
		x.Chunks = make([]Chunk, 0, nchunks)
	}
	for range nchunks {
		if d.err != nil {
			break
		}
		var c Chunk
		copy(c.ID[:], d.bytes(len(c.ID)))
		flags := d.bytes(1)
		if d.err == nil && flags[0]&^1 != 0 {
			d.fail("unknown chunk flags")
		}
		c.StartsLine = d.err == nil && flags[0]&1 == 1
		rows := d.uvarint()
		if rows > 1<<40 {
			d.fail("row count out of range")
		}
		c.Rows = int64(rows)
		if k := d.bytes(1); d.err == nil {
			c.K = k[0]
		}
		if d.err == nil && (c.K == 0 || c.K > maxK) {
			d.fail("hash count out of range")
		}
		n := d.count(maxFilter)
		if d.err == nil && (n < minFilter || n%8 != 0) {
			d.fail("filter size out of range")
		}
		c.Bits = d.bytes(n)
		x.Chunks = append(x.Chunks, c)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return x, nil
}

// Verify checks that x is the index of the stream whose blobs are ids
// and that holds rows rows (lines: records of a delta); rows < 0 leaves
// the count unchecked (a chain's links do not record theirs: ReadRun
// still checks every run read).
func (x *Index) Verify(ids []chunk.ID, rows int64) error {
	if len(x.Chunks) != len(ids) {
		return fmt.Errorf("row index has %d chunks, the stream %d: %w", len(x.Chunks), len(ids), ErrBadIndex)
	}
	var n int64
	for i, c := range x.Chunks {
		if c.ID != ids[i] {
			return fmt.Errorf("row index chunk %d is not the stream's: %w", i, ErrBadIndex)
		}
		if i == 0 && !c.StartsLine && len(ids) > 0 {
			return fmt.Errorf("row index: the first chunk does not begin a row: %w", ErrBadIndex)
		}
		n += c.Rows
	}
	if rows >= 0 && n != rows {
		return fmt.Errorf("row index counts %d rows, the table %d: %w", n, rows, ErrBadIndex)
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, ErrBadIndex)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated")
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		// One value, one encoding: a last byte of 0 adds nothing.
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a uvarint that must be at most max.
func (d *decoder) count(max int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(max) {
		d.fail("count out of range")
	}
	if d.err != nil {
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// ReadRun reads the rows of the run of chunks a..b (the plaintext of
// exactly those chunks, from r) and calls fn with every row that lies
// wholly in the run: a row that began before a, or goes on after b,
// touches a chunk outside the run, whose filter would have brought it in
// had the row been wanted. It checks that the number of rows beginning in
// the run is what the index says, so an index that does not fit its
// stream fails rather than drops rows.
func (x *Index) ReadRun(r io.Reader, a, b int, fn func(line []byte) error) error {
	var want int64
	for _, c := range x.Chunks[a : b+1] {
		want += c.Rows
	}
	return readRun(r, !x.Chunks[a].StartsLine, b == len(x.Chunks)-1, want, a, b, fn)
}

// readRun reads the run a..b from r: skip says it begins inside a row,
// last that it ends the stream, want how many rows begin in it.
func readRun(r io.Reader, skip, last bool, want int64, a, b int, fn func(line []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var begun int64
	var long []byte
	partial := false // bytes read since the last line feed
	for {
		part, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			partial = true
			if !skip {
				long = append(long, part...)
				if len(long) > source.MaxRowLine {
					return fmt.Errorf("row longer than %d bytes: %w", source.MaxRowLine, ErrBadIndex)
				}
			}
			continue
		}
		if err == io.EOF {
			if partial || len(part) > 0 {
				if last {
					return fmt.Errorf("last row has no line feed: %w", ErrBadIndex)
				}
				if !skip {
					begun++ // goes on in the next chunk
				}
			}
			break
		}
		if err != nil {
			return err
		}
		partial = false
		if skip {
			skip, long = false, nil
			continue
		}
		begun++
		line := part[:len(part)-1]
		if long != nil {
			long = append(long, line...)
			line, long = long, nil
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	if begun != want {
		return fmt.Errorf("chunks %d..%d hold %d rows, the row index says %d: %w", a, b, begun, want, ErrBadIndex)
	}
	return nil
}
