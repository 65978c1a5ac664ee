package rowdelta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Stats is what Diff measured.
type Stats struct {
	// Rows and Size are the fresh table's row count and stream bytes.
	Rows int64 `json:"rows"`
	Size int64 `json:"size"`
	// Inserted, Changed and Deleted count the records written.
	Inserted int64 `json:"inserted"`
	Changed  int64 `json:"changed"`
	Deleted  int64 `json:"deleted"`
	// DeltaSize is the bytes of records written.
	DeltaSize int64 `json:"delta_size"`
}

// ErrParent is wrapped when the parent's rows could not be read (a damaged
// or missing base): the caller stores a full table instead.
var ErrParent = errors.New("the parent table could not be read")

// Diff compares the parent table's rows with the fresh table's, both
// strictly ascending by k, and writes the kluis-row-delta-v1 records that
// turn the parent into the fresh table to w. Fresh rows out of order fail
// with ErrNotAscending, a parent that cannot be read with ErrParent; in
// both cases what was written is useless and fresh is not read to its end.
func Diff(k Key, parent, fresh io.Reader, w io.Writer) (Stats, error) {
	var st Stats
	if err := k.Validate(); err != nil {
		return st, err
	}
	pr, fr := newLineReader(parent), newLineReader(fresh)
	bw := bufio.NewWriterSize(w, 256<<10)
	var (
		pLine, fLine   []byte
		pKey, fKey     [][]byte
		prevF, prevP   [][]byte
		prevFB, prevPB []byte
		havePrevF      bool
		havePrevP      bool
		pEOF, fEOF     bool
		err            error
		// fIsP: the fresh row's key is the parent row's (an unchanged
		// row, the common case), so prevF is not copied: it is prevP
		// until the parent moves on alone.
		fIsP bool
		// same: the current rows are byte-equal (so their keys are).
		same bool
	)
	nextP := func() error {
		pLine, err = pr.next()
		if err == io.EOF {
			pEOF = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrParent, err)
		}
		if pKey, err = k.rowKey(pKey, pLine); err != nil {
			return fmt.Errorf("%w: row %d: %w", ErrParent, pr.n, err)
		}
		if havePrevP {
			c, err := k.compare(prevP, pKey)
			if err != nil {
				return fmt.Errorf("%w: row %d: %w", ErrParent, pr.n, err)
			}
			if c >= 0 {
				return fmt.Errorf("%w: row %d: %w", ErrParent, pr.n, ErrNotAscending)
			}
		}
		if fIsP {
			// prevP is about to move on: it becomes prevF (a swap, not a copy).
			prevF, prevP, prevFB, prevPB = prevP, prevF, prevPB, prevFB
			fIsP = false
		}
		prevP, prevPB = CopyKey(prevP, prevPB, pKey)
		havePrevP = true
		return nil
	}
	// nextF reads the next fresh row. After a row both sides had
	// (afterMatch), a fresh row byte-equal to the current parent row has
	// the parent row's key, which the parent's order check has found above
	// the previous one: it is not compared or copied again.
	nextF := func(afterMatch bool) error {
		same = false
		fLine, err = fr.next()
		if err == io.EOF {
			fEOF = true
			return nil
		}
		if err != nil {
			return err
		}
		st.Rows++
		st.Size += int64(len(fLine)) + 1
		if fKey, err = k.rowKey(fKey, fLine); err != nil {
			return fmt.Errorf("fresh row %d: %w", st.Rows, err)
		}
		if afterMatch && !pEOF && bytes.Equal(fLine, pLine) {
			fIsP, same, havePrevF = true, true, true
			return nil
		}
		if havePrevF {
			prev := prevF
			if fIsP {
				prev = prevP
			}
			c, err := k.compare(prev, fKey)
			if err != nil {
				return fmt.Errorf("fresh row %d: %w", st.Rows, err)
			}
			if c >= 0 {
				return fmt.Errorf("fresh row %d: %w", st.Rows, ErrNotAscending)
			}
		}
		prevF, prevFB = CopyKey(prevF, prevFB, fKey)
		fIsP = false
		havePrevF = true
		return nil
	}
	put := func(op byte, parts ...[]byte) {
		bw.WriteByte(op)
		n := 2
		for i, p := range parts {
			if i > 0 {
				bw.WriteByte('\t')
				n++
			}
			bw.Write(p)
			n += len(p)
		}
		bw.WriteByte('\n')
		st.DeltaSize += int64(n)
	}
	if err := nextP(); err != nil {
		return st, err
	}
	if err := nextF(false); err != nil {
		return st, err
	}
	for !pEOF || !fEOF {
		c := 0
		switch {
		case fEOF:
			c = 1
		case pEOF:
			c = -1
		case same:
		default:
			if c, err = k.compare(fKey, pKey); err != nil {
				return st, fmt.Errorf("fresh row %d: %w", st.Rows, err)
			}
		}
		switch {
		case c < 0: // a key the parent lacks
			put('+', fLine)
			st.Inserted++
			if err := nextF(false); err != nil {
				return st, err
			}
		case c > 0: // a parent key the fresh table lacks
			put('-', pKey...)
			st.Deleted++
			if err := nextP(); err != nil {
				return st, err
			}
		default:
			if !same && !bytes.Equal(fLine, pLine) {
				put('+', fLine)
				st.Changed++
			}
			// The parent first: nextF compares the fresh row with it.
			if err := nextP(); err != nil {
				return st, err
			}
			if err := nextF(true); err != nil {
				return st, err
			}
		}
	}
	return st, bw.Flush()
}
