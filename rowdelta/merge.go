package rowdelta

import (
	"fmt"
	"io"
	"strconv"
)

// Source is one input of Merge: the base table stream (the first) or a
// delta's records, with a name for errors (e.g. "base written by
// snapshot 1a2b…").
type Source struct {
	Name string
	R    io.Reader
}

type head struct {
	name   string
	lr     *lineReader
	delta  bool
	line   []byte   // current line without LF (a row line, or a record)
	row    []byte   // the row of a row line or "+" record; nil for a deletion
	key    [][]byte // current key
	prev   [][]byte
	prevB  []byte
	hasPrv bool
	eof    bool
}

// Merger is the table stream of a base with deltas applied: an io.Reader
// that produces the rows, each with its LF, strictly ascending by key.
type Merger struct {
	k     Key
	heads []*head
	buf   []byte
	off   int
	err   error
	init  bool
	rows  int64
}

// Merge returns the table stream of sources[0] (a base: row lines) with
// sources[1:] (kluis-row-delta-v1 records, oldest first) applied. Every
// source must be strictly ascending by k; a violation, a malformed record
// or a read error ends the stream with an error naming the source.
func Merge(k Key, sources []Source) *Merger {
	m := &Merger{k: k}
	if err := k.Validate(); err != nil {
		m.err = err
		return m
	}
	if len(sources) == 0 {
		m.err = fmt.Errorf("rowdelta: nothing to merge")
		return m
	}
	for i, s := range sources {
		m.heads = append(m.heads, &head{name: s.Name, lr: newLineReader(s.R), delta: i > 0})
	}
	return m
}

// Rows returns the rows produced so far.
func (m *Merger) Rows() int64 { return m.rows }

func (m *Merger) advance(h *head) error {
	line, err := h.lr.next()
	if err == io.EOF {
		h.eof = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	h.line = line
	if h.row, h.key, err = m.k.ParseLine(h.key, line, h.delta); err != nil {
		return fmt.Errorf("%s: line %d: %w", h.name, h.lr.n, err)
	}
	if h.hasPrv {
		c, err := m.k.compare(h.prev, h.key)
		if err != nil {
			return fmt.Errorf("%s: line %d: %w", h.name, h.lr.n, err)
		}
		if c >= 0 {
			return fmt.Errorf("%s: line %d: %w", h.name, h.lr.n, ErrNotAscending)
		}
	} else if err := m.checkKey(h); err != nil {
		return err
	}
	h.prev, h.prevB = CopyKey(h.prev, h.prevB, h.key)
	h.hasPrv = true
	return nil
}

// checkKey validates a first key (compare validates the later ones).
func (m *Merger) checkKey(h *head) error {
	if _, err := m.k.compare(h.key, h.key); err != nil {
		return fmt.Errorf("%s: line %d: %w", h.name, h.lr.n, err)
	}
	return nil
}

// fill produces the next row into m.buf; io.EOF at the end.
func (m *Merger) fill() error {
	if !m.init {
		m.init = true
		for _, h := range m.heads {
			if err := m.advance(h); err != nil {
				return err
			}
		}
	}
	for {
		var minH *head
		win := -1
		for i, h := range m.heads {
			if h.eof {
				continue
			}
			if minH == nil {
				minH, win = h, i
				continue
			}
			c, err := m.k.compare(h.key, minH.key)
			if err != nil {
				return fmt.Errorf("%s: line %d: %w", h.name, h.lr.n, err)
			}
			if c <= 0 { // a later source with the same key wins
				minH, win = h, i
			}
		}
		if minH == nil {
			return io.EOF
		}
		emit := minH.row != nil
		if emit {
			m.buf = append(m.buf[:0], minH.row...)
			m.buf = append(m.buf, '\n')
			m.off = 0
		}
		// Advance every source at that key: the winner and the ones it
		// overrides.
		for i := 0; i <= win; i++ {
			h := m.heads[i]
			if h.eof {
				continue
			}
			if h != minH {
				c, err := m.k.compare(h.key, minH.key)
				if err != nil {
					return err
				}
				if c != 0 {
					continue
				}
			}
			if h == minH {
				continue
			}
			if err := m.advance(h); err != nil {
				return err
			}
		}
		if err := m.advance(minH); err != nil {
			return err
		}
		if emit {
			m.rows++
			return nil
		}
	}
}

// Read implements io.Reader.
func (m *Merger) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if m.off < len(m.buf) {
			c := copy(p[n:], m.buf[m.off:])
			m.off += c
			n += c
			continue
		}
		if m.err != nil {
			break
		}
		m.buf, m.off = m.buf[:0], 0
		if err := m.fill(); err != nil {
			m.err = err
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, m.err
}

// ParseLine splits a line of a merge source: of a base (delta false) a
// row line, which is also the row; of a delta a record, whose row is nil
// for a deletion. key holds the key fields (slices of line, reusing dst).
func (k Key) ParseLine(dst [][]byte, line []byte, delta bool) (row []byte, key [][]byte, err error) {
	switch {
	case !delta:
		row = line
		key, err = k.rowKey(dst, line)
	case len(line) > 0 && line[0] == '+':
		row = line[1:]
		key, err = k.rowKey(dst, row)
	case len(line) > 0 && line[0] == '-':
		key, err = k.recordKey(dst, line[1:])
	default:
		err = fmt.Errorf("%w: a record starts with neither + nor -", ErrBadRecord)
	}
	return row, key, err
}

// Compare compares two keys from ParseLine under k's orders; an int field
// that is not a canonical integer is an error (ErrBadRecord), so equal
// keys are equal bytes.
func (k Key) Compare(a, b [][]byte) (int, error) { return k.compare(a, b) }

// KeyForm appends to dst the comparable form of a key from ParseLine:
// each field as its length in decimal, ":", its bytes. Two keys have the
// same form exactly when they have the same fields.
func KeyForm(dst []byte, key [][]byte) []byte {
	for _, f := range key {
		dst = strconv.AppendInt(dst, int64(len(f)), 10)
		dst = append(dst, ':')
		dst = append(dst, f...)
	}
	return dst
}
