package rowindex

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/rowdelta"
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
	memo []map[string]uint64 // per set: recent key forms' hashes
	sets [][]string
	pos  [][]int
	upto int
	dec  Decoder
	// copyText: pg-copy-text rows are read field by field, unescaping
	// only the indexed ones (what ParseCopyLine gives for them).
	copyText bool
	need     []bool
	vals     []source.Value
	arena    []byte

	// done holds the finished chunks (without filters), pairs the
	// distinct keyed hashes of each.
	done  []Chunk
	pairs pairs
	// open are the chunks whose filters are not final: the first is where
	// the row being read began (when one is open), the last the newest.
	open []*openChunk
	// carry is the start of the row being read (at most maxPrefix bytes);
	// inRow says a row is open, long that it outgrew carry.
	carry []byte
	inRow bool
	long  bool
	err   error

	// records: the stream is a row delta's kluis-row-delta-v1 records,
	// keyed by rk (NewRecordsBuilder).
	records bool
	rk      rowdelta.Key
	rkey    [][]byte
	kform   []byte
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
		b.memo = append(b.memo, map[string]uint64{})
	}
	b.copyText = t.Encoding == "pg-copy-text"
	b.need = make([]bool, b.upto+1)
	for _, pos := range b.pos {
		for _, p := range pos {
			b.need[p] = true
		}
	}
	return b, nil
}

// NewRecordsBuilder returns a builder for the records of a row delta of
// table t (docs/format.md, "Row deltas") whose rows are keyed by key: a
// "+" record's row is indexed as NewBuilder indexes a row, and every
// record's key under KeySet, so that a dossier finds both the rows it
// wants and every later change or deletion of a row it holds.
func NewRecordsBuilder(key []byte, t source.Table, sets [][]string, rk rowdelta.Key) (*Builder, error) {
	if err := rk.Validate(); err != nil {
		return nil, err
	}
	b, err := NewBuilder(key, t, sets)
	if err != nil {
		return nil, err
	}
	b.records, b.rk = true, rk
	for _, f := range rk.Fields {
		if f >= len(t.Columns) {
			return nil, fmt.Errorf("table %s: key field %d of %d columns", t.Name, f, len(t.Columns))
		}
		b.upto = max(b.upto, f)
	}
	b.need = append(b.need, make([]bool, b.upto+1-len(b.need))...)
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
	line := b.carry
	if b.records {
		if len(line) == 0 || line[0] != '+' && line[0] != '-' {
			b.err = fmt.Errorf("a record starts with neither + nor -: %w", ErrBadIndex)
			return
		}
		line = line[1:]
	}
	prefix := FieldPrefix(line, b.upto+1)
	if b.long && len(prefix) == len(line) {
		b.err = fmt.Errorf("a row's indexed columns lie beyond its first %d bytes", maxPrefix)
		return
	}
	if b.records {
		del := b.carry[0] == '-'
		var err error
		// ParseLine wants the record: its sign, then the prefix.
		if _, b.rkey, err = b.rk.ParseLine(b.rkey, b.carry[:1+len(prefix)], true); err != nil {
			b.err = err
			return
		}
		b.kform = rowdelta.KeyForm(b.kform[:0], b.rkey)
		h := b.h.Hash(KeySet, string(b.kform))
		for _, c := range b.open {
			c.hashes[h] = struct{}{}
		}
		if del {
			b.carry, b.inRow, b.long = b.carry[:0], false, false
			return
		}
	}
	line = prefix
	b.carry, b.inRow, b.long = b.carry[:0], false, false
	var row []source.Value
	var err error
	if b.copyText {
		row, err = b.copyFields(line)
	} else {
		row, err = b.dec(line)
	}
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
		// Rows of one client sit together: most key forms repeat.
		h, ok := b.memo[s][k]
		if !ok {
			if len(b.memo[s]) >= 4096 {
				clear(b.memo[s])
			}
			h = b.h.Hash(s, k)
			b.memo[s][k] = h
		}
		for _, c := range b.open {
			c.hashes[h] = struct{}{}
		}
	}
}

// finalize closes the open chunks before open[n]: their rows and keyed
// hashes are final.
func (b *Builder) finalize(n int) {
	for _, c := range b.open[:n] {
		o := uint32(len(b.done))
		b.done = append(b.done, Chunk{StartsLine: c.startsLine, Rows: c.rows})
		for h := range c.hashes {
			b.pairs.add(h, o)
		}
	}
	b.open = append(b.open[:0], b.open[n:]...)
}

// finish closes the stream whose blobs, in order, are ids.
func (b *Builder) finish(ids []chunk.ID) error {
	if b.err != nil {
		return b.err
	}
	if b.inRow {
		return errors.New("the stream's last row has no line feed")
	}
	b.finalize(len(b.open))
	if len(b.done) != len(ids) {
		return fmt.Errorf("%d chunks indexed, the stream has %d", len(b.done), len(ids))
	}
	return nil
}

// Finish returns the paged index (version 3) of the stream whose blobs,
// in order, are ids: its head and its pages (repo.StreamIndexer).
func (b *Builder) Finish(ids []chunk.ID) (head []byte, pages [][]byte, err error) {
	if err := b.finish(ids); err != nil {
		return nil, nil, err
	}
	var rows int64
	for _, c := range b.done {
		rows += c.Rows
	}
	hd := &Head{Sets: b.sets, Records: b.records, Chunks: len(ids), Rows: rows, Stream: StreamSum(ids)}
	return paginate(hd, b.done, &b.pairs)
}

// copyFields returns the fields of a pg-copy-text line prefix, with the
// indexed ones decoded as ParseCopyLine decodes them and the others left
// empty. The values point into line or the builder's arena.
func (b *Builder) copyFields(line []byte) ([]source.Value, error) {
	b.vals, b.arena = b.vals[:0], b.arena[:0]
	for start := 0; ; {
		i := bytes.IndexByte(line[start:], '\t')
		end := len(line)
		if i >= 0 {
			end = start + i
		}
		f := line[start:end]
		switch n := len(b.vals); {
		case n >= len(b.need) || !b.need[n]:
			b.vals = append(b.vals, source.Value{})
		case len(f) == 2 && f[0] == '\\' && f[1] == 'N':
			b.vals = append(b.vals, source.NullValue())
		case bytes.IndexByte(f, '\\') < 0 && bytes.IndexByte(f, '\r') < 0:
			b.vals = append(b.vals, source.TextValue(f))
		default:
			off := len(b.arena)
			var err error
			if b.arena, err = unescapeCopy(b.arena, f); err != nil {
				return nil, err
			}
			b.vals = append(b.vals, source.TextValue(b.arena[off:len(b.arena):len(b.arena)]))
		}
		if i < 0 {
			return b.vals, nil
		}
		start = end + 1
	}
}
