package rowindex

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/source"
)

// maxPrefix bounds the part of one row the builder keeps while the row's
// line spans chunks: the indexed columns must lie within it.
const maxPrefix = 1 << 20

// Builder builds a table stream's row index from its chunks, in stream
// order, as the backup cuts them (repo.StreamIndexer). A row it cannot
// read makes the index fail (Finish returns the error): the stream is then
// stored without an index and read whole, never indexed wrongly.
type Builder struct {
	h    *Hasher
	sets [][]string
	pos  [][]int
	upto int
	dec  Decoder

	done []Chunk
	// open are the chunks whose filters are not final: the first is where
	// the row being read began (when one is open), the last the newest.
	open []*openChunk
	// carry is the start of the row being read (at most maxPrefix bytes);
	// inRow says a row is open, long that it outgrew carry.
	carry []byte
	inRow bool
	long  bool
	err   error
}

type openChunk struct {
	startsLine bool
	rows       int64
	hashes     map[uint64]struct{}
}

// NewBuilder returns a builder for table t indexing the column lists sets
// (each must name columns of t) under the row index key.
func NewBuilder(key []byte, t source.Table, sets [][]string) (*Builder, error) {
	if len(sets) == 0 || len(sets) > maxSets {
		return nil, fmt.Errorf("table %s: %d column lists to index", t.Name, len(sets))
	}
	dec, err := NewDecoder(t)
	if err != nil {
		return nil, err
	}
	b := &Builder{h: NewHasher(key), dec: dec}
	for _, s := range sets {
		if len(s) == 0 || len(s) > maxSetCols {
			return nil, fmt.Errorf("table %s: a column list of %d columns cannot be indexed", t.Name, len(s))
		}
		for _, c := range s {
			if len(c) == 0 || len(c) > maxColName {
				return nil, fmt.Errorf("table %s: column name of %d bytes cannot be indexed", t.Name, len(c))
			}
		}
		x := Index{Sets: b.sets}
		if x.Set(s) >= 0 {
			continue
		}
		pos, err := ColumnIndex(t, s)
		if err != nil {
			return nil, err
		}
		for _, p := range pos {
			b.upto = max(b.upto, p)
		}
		b.sets = append(b.sets, append([]string(nil), s...))
		b.pos = append(b.pos, pos)
	}
	return b, nil
}

// Chunk takes the stream's next chunk.
func (b *Builder) Chunk(data []byte) {
	if b.err != nil {
		return
	}
	b.open = append(b.open, &openChunk{startsLine: !b.inRow, hashes: map[uint64]struct{}{}})
	cur := len(b.open) - 1
	off := 0
	for off < len(data) {
		if !b.inRow {
			b.open[cur].rows++
			b.inRow = true
			// Chunks before this one can hold no more rows.
			b.finalize(cur)
			cur = len(b.open) - 1
		}
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			b.keep(data[off:])
			return
		}
		b.keep(data[off : off+i])
		b.row()
		off += i + 1
	}
}

// keep appends part of the open row to carry, up to maxPrefix.
func (b *Builder) keep(p []byte) {
	if room := maxPrefix - len(b.carry); len(p) > room {
		p, b.long = p[:room], true
	}
	b.carry = append(b.carry, p...)
}

// row indexes the row in carry in every open chunk.
func (b *Builder) row() {
	line := FieldPrefix(b.carry, b.upto+1)
	if b.long && len(line) == len(b.carry) {
		b.err = fmt.Errorf("a row's indexed columns lie beyond its first %d bytes", maxPrefix)
		return
	}
	b.carry, b.inRow, b.long = b.carry[:0], false, false
	row, err := b.dec(line)
	if err != nil {
		b.err = err
		return
	}
	if len(row) != b.upto+1 {
		b.err = fmt.Errorf("a row has %d fields, the index needs %d: %w", len(row), b.upto+1, ErrBadIndex)
		return
	}
	for s, pos := range b.pos {
		k, ok := TupleKey(row, pos)
		if !ok {
			continue
		}
		h := b.h.Hash(s, k)
		for _, c := range b.open {
			c.hashes[h] = struct{}{}
		}
	}
}

// finalize turns the open chunks before open[n] into filters.
func (b *Builder) finalize(n int) {
	for _, c := range b.open[:n] {
		fc := newChunk(c.hashes)
		fc.StartsLine, fc.Rows = c.startsLine, c.rows
		b.done = append(b.done, fc)
	}
	b.open = append(b.open[:0], b.open[n:]...)
}

// Finish returns the index of the stream whose blobs, in order, are ids.
func (b *Builder) Finish(ids []chunk.ID) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.inRow {
		return nil, errors.New("the stream's last row has no line feed")
	}
	b.finalize(len(b.open))
	if len(b.done) != len(ids) {
		return nil, fmt.Errorf("%d chunks indexed, the stream has %d", len(b.done), len(ids))
	}
	x := &Index{Sets: b.sets, Chunks: b.done}
	for i := range x.Chunks {
		x.Chunks[i].ID = ids[i]
	}
	return x.Encode(), nil
}
