package chunk

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/restic/chunker"
)

// Params are the chunker's size boundaries and method, recorded in a
// repository's config. Avg must be a power of two; Min <= Avg <= Max.
type Params struct {
	Min uint `json:"min"`
	Avg uint `json:"avg"`
	Max uint `json:"max"`
	// Cut is how chunk ends are found: "" a rolling hash over every byte
	// (restic's chunker, Rabin fingerprints under the tenant's secret
	// polynomial); CutRows at row ends chosen by each row's keyed hash.
	Cut string `json:"cut,omitempty"`
}

// DefaultParams are chosen by measurement (docs/format.md, "Chunk size";
// TestChunkSizeStudy): database table streams change in scattered rows, so a
// small average keeps the nightly increment small while the index stays
// modest. On a 200 MiB table stream with 1% of rows edited, 16 KiB needs 24%
// of the stream's size in new sealed blobs where 64 KiB needs 33%, for one
// index entry per 20 KiB. Avg is the cut probability: the mean chunk is
// about Min+Avg.
var DefaultParams = Params{Min: 4 << 10, Avg: 16 << 10, Max: 128 << 10}

// RowDeltaParams are for a repository whose table streams are stored as
// row deltas after their first night (a PostgreSQL tenant; the appliance
// chooses, docs/format.md "Chunk size"): there a night stores the changed
// rows whatever the chunk size. Larger chunks compress better alone (with
// or without the tenant's dictionary) and need fewer blob IDs in packs,
// index, manifest and row index: measured on identical data, the first
// night is 5 % smaller than at 16 KiB, and the fresh base a table gets
// after a week of deltas 10–12 % larger (fewer of its chunks survive the
// week's scattered changes).
//
// They cut at row ends (CutRows): on the 500 MB practice the first night
// used 4.27 CPU-s of kluis against 5.79 with the rolling hash, which took
// about 1.1 of them (docs/benchmarks.md, "Idle machine, 500 MB, row ends
// and largest first").
var RowDeltaParams = Params{Min: 16 << 10, Avg: 64 << 10, Max: 512 << 10, Cut: CutRows}

// MaxChunkSize bounds Params.Max, and therefore every plaintext this package
// will produce or accept.
const MaxChunkSize = 8 << 20

// Validate reports whether p can be used to cut chunks.
func (p Params) Validate() error {
	switch {
	case p.Avg == 0 || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunk average %d is not a power of two", p.Avg)
	case p.Min < 64 || p.Min > p.Avg:
		return fmt.Errorf("chunk minimum %d must be between 64 and the average %d", p.Min, p.Avg)
	case p.Max < p.Avg || p.Max > MaxChunkSize:
		return fmt.Errorf("chunk maximum %d must be between the average %d and %d", p.Max, p.Avg, MaxChunkSize)
	case p.Cut != "" && p.Cut != CutRows:
		return fmt.Errorf("chunk cut %q is not known (want %q or none)", p.Cut, CutRows)
	}
	return nil
}

// Pol is a chunker polynomial; every tenant has its own, kept secret in its
// key file.
type Pol = chunker.Pol

// RandomPol returns a new random irreducible polynomial.
func RandomPol() (Pol, error) { return chunker.RandomPolynomial() }

// Chunker cuts a stream into content-defined chunks.
type Chunker struct {
	c    *chunker.Chunker
	rows *rowCutter // instead of c, for Params.Cut CutRows
	buf  []byte
	err  error // invalid Params, reported by every Next
}

// NewChunker returns a Chunker reading r that cuts as p says: with the
// rolling hash under pol, or (Params.Cut CutRows) at row ends under rowSeed
// (RowSeed of the tenant's blob-ID key). p must have passed Validate; if it
// has not, every call to Next returns the validation error (a repository's
// config is checked against the hash its key file records, but a chunker
// must not trust its caller for that: invalid parameters would make chunks
// of unbounded size).
func NewChunker(r io.Reader, pol Pol, rowSeed uint64, p Params) *Chunker {
	if err := p.Validate(); err != nil {
		return &Chunker{err: err}
	}
	if p.Cut == CutRows {
		return &Chunker{rows: newRowCutter(r, rowSeed, p)}
	}
	c := chunker.NewWithBoundaries(r, pol, p.Min, p.Max)
	c.SetAverageBits(bits.TrailingZeros(p.Avg))
	return &Chunker{c: c}
}

// Next returns the next chunk. The slice is only valid until the next call.
// At the end of the stream it returns io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	data, err := c.NextInto(c.buf)
	if err == nil {
		c.buf = data[:0]
	}
	return data, err
}

// NextInto is Next writing the chunk into buf's storage (from its start;
// grown if it is shorter than the chunk) instead of the Chunker's own, so
// that a caller that keeps chunks need not copy them. At the end of the
// stream it returns io.EOF.
func (c *Chunker) NextInto(buf []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.rows != nil {
		return c.rows.next(buf)
	}
	ch, err := c.c.Next(buf)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	return ch.Data, nil
}
