package source

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// Fingerprint is the order-independent digest of a table's rows: the sum,
// modulo 2^256, of HMAC-SHA256(key, row) over every row's canonical line
// (without its newline), as 64 hex digits. Together with the row count it
// identifies a table's contents without revealing them to whoever lacks the
// key (docs/format.md, "Fingerprints").
type Fingerprint string

// Fingerprinter accumulates a Fingerprint row by row.
type Fingerprinter struct {
	mac  hash.Hash
	rows int64
	sum  [4]uint64 // little-endian limbs of a 256-bit sum
	buf  [sha256.Size]byte
}

// NewFingerprinter returns a Fingerprinter keyed with key (the tenant's
// fingerprint key).
func NewFingerprinter(key []byte) *Fingerprinter {
	return &Fingerprinter{mac: hmac.New(sha256.New, key)}
}

// AddRow adds one row's canonical line, without its trailing newline.
func (f *Fingerprinter) AddRow(line []byte) {
	f.mac.Reset()
	f.mac.Write(line)
	d := f.mac.Sum(f.buf[:0])
	var carry uint64
	for i := 0; i < 4; i++ {
		// The digest is read big-endian: limb 0 is the least significant.
		v := binary.BigEndian.Uint64(d[32-8*(i+1) : 32-8*i])
		s := f.sum[i] + v
		c1 := s < v
		s2 := s + carry
		c2 := s2 < s
		f.sum[i] = s2
		carry = 0
		if c1 || c2 {
			carry = 1
		}
	}
	f.rows++
}

// Result returns the row count and fingerprint so far.
func (f *Fingerprinter) Result() TableResult {
	var b [32]byte
	for i := 0; i < 4; i++ {
		binary.BigEndian.PutUint64(b[32-8*(i+1):32-8*i], f.sum[i])
	}
	return TableResult{Rows: f.rows, Fingerprint: Fingerprint(hex.EncodeToString(b[:]))}
}

// FingerprintWriter is an io.Writer that splits what it is given into lines
// and fingerprints each one, for engines whose stream is produced elsewhere
// (e.g. PostgreSQL's COPY). Call Result after the last Write.
type FingerprintWriter struct {
	fp      *Fingerprinter
	partial []byte
}

// NewFingerprintWriter returns a FingerprintWriter keyed with key.
func NewFingerprintWriter(key []byte) *FingerprintWriter {
	return &FingerprintWriter{fp: NewFingerprinter(key)}
}

// Write fingerprints every complete line in p.
func (w *FingerprintWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(w.partial) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) > MaxRowLine {
				return 0, fmt.Errorf("table stream: a row longer than %d bytes", MaxRowLine)
			}
			return n, nil
		}
		w.partial = append(w.partial, p[:i]...)
		w.fp.AddRow(w.partial)
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		w.fp.AddRow(p[:i])
		p = p[i+1:]
	}
	w.partial = append(w.partial, p...)
	if len(w.partial) > MaxRowLine {
		return 0, fmt.Errorf("table stream: a row longer than %d bytes", MaxRowLine)
	}
	return n, nil
}

// Result returns the fingerprint of the complete lines written. A stream
// that does not end in a newline is an error.
func (w *FingerprintWriter) Result() (TableResult, error) {
	if len(w.partial) > 0 {
		return TableResult{}, fmt.Errorf("table stream ends in an unterminated row of %d bytes", len(w.partial))
	}
	return w.fp.Result(), nil
}

// FingerprintStream fingerprints a whole line-oriented table stream.
func FingerprintStream(key []byte, r io.Reader) (TableResult, error) {
	w := NewFingerprintWriter(key)
	if _, err := io.Copy(w, bufio.NewReaderSize(r, 256<<10)); err != nil {
		return TableResult{}, err
	}
	return w.Result()
}
