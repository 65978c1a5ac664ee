package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var rowParams = Params{Min: 1 << 10, Avg: 4 << 10, Max: 32 << 10, Cut: CutRows}

// testRowSeed is the row cutter's seed in tests: RowSeed of a fixed key.
var testRowSeed = RowSeed(bytes.Repeat([]byte{0x1d}, KeySize))

// checkRowChunks checks what every row-cut chunking of data must hold: the
// chunks join back to data; none exceeds Max; every chunk but the last is
// at least Min long and ends at the first row end the hash chooses at or
// beyond Min, or, when no row end within Max is chosen, anywhere up to Max
// (the gear hash's choice).
func checkRowChunks(t testing.TB, data []byte, p Params, chunks [][]byte) {
	t.Helper()
	if joined := bytes.Join(chunks, nil); !bytes.Equal(joined, data) {
		t.Fatalf("chunks join to %d bytes, not the %d of the stream", len(joined), len(data))
	}
	avgBits := uint(bits.TrailingZeros(p.Avg))
	start := 0
	for i, c := range chunks {
		switch {
		case len(c) == 0:
			t.Fatalf("chunk %d is empty", i)
		case len(c) > int(p.Max):
			t.Fatalf("chunk %d is %d bytes, over the maximum %d", i, len(c), p.Max)
		case i == len(chunks)-1:
		case len(c) < int(p.Min):
			t.Fatalf("chunk %d of %d is %d bytes, under the minimum %d", i, len(chunks), len(c), p.Min)
		}
		if i < len(chunks)-1 {
			window := data[start:min(len(data), start+int(p.Max))]
			chosen := -1
			for n := 0; n < len(window); {
				e := bytes.IndexByte(window[n:], '\n')
				if e < 0 {
					break
				}
				end := n + e + 1
				if end >= int(p.Min) && rowChosen(testRowSeed, window[n:end], avgBits) {
					chosen = end
					break
				}
				n = end
			}
			if chosen >= 0 && len(c) != chosen {
				t.Fatalf("chunk %d is %d bytes, but the row ending at %d was chosen", i, len(c), chosen)
			}
		}
		start += len(c)
	}
}

func rowChunks(t testing.TB, data []byte, seed uint64, p Params) [][]byte {
	t.Helper()
	c := NewChunker(bytes.NewReader(data), testPol, seed, p)
	var out [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(ch))
	}
}

func TestRowCutSizes(t *testing.T) {
	data := tableStream(studySeed, 8<<20, false)
	chunks := rowChunks(t, data, testRowSeed, rowParams)
	checkRowChunks(t, data, rowParams, chunks)
	mean := len(data) / len(chunks)
	// A cut is chosen on average every Avg bytes after Min.
	if lo, hi := int(rowParams.Min+rowParams.Avg/2), int(rowParams.Min+2*rowParams.Avg); mean < lo || mean > hi {
		t.Fatalf("mean chunk %d bytes over %d chunks, want between %d and %d", mean, len(chunks), lo, hi)
	}
	// The same stream cuts the same way; another tenant's key elsewhere.
	if again := rowChunks(t, data, testRowSeed, rowParams); len(again) != len(chunks) {
		t.Fatalf("the same stream cut into %d chunks, then %d", len(chunks), len(again))
	}
	other := rowChunks(t, data, RowSeed(bytes.Repeat([]byte{0x2e}, KeySize)), rowParams)
	same := 0
	for i := range min(len(other), len(chunks)) {
		if len(other[i]) == len(chunks[i]) {
			same++
		}
	}
	if same > len(chunks)/4 {
		t.Fatalf("%d of %d chunks as long under another polynomial: the seed does not decide", same, len(chunks))
	}
}

// TestRowCutResync checks what deduplication relies on: an edited, an
// inserted and a deleted row change only the chunks around them.
func TestRowCutResync(t *testing.T) {
	data := tableStream(studySeed, 4<<20, false)
	rows := bytes.SplitAfter(data, []byte("\n"))
	mid := len(rows) / 2
	edited := bytes.Clone(rows[mid])
	copy(edited[3:], "XXXX")
	cases := map[string][][]byte{
		"edit":   append(append(append([][]byte{}, rows[:mid]...), edited), rows[mid+1:]...),
		"insert": append(append(append([][]byte{}, rows[:mid]...), []byte("999999\tnew\trow\n")), rows[mid:]...),
		"delete": append(append([][]byte{}, rows[:mid]...), rows[mid+1:]...),
	}
	s := newTestSealer(t)
	ids := map[ID]bool{}
	for _, c := range rowChunks(t, data, testRowSeed, rowParams) {
		ids[s.ID(c)] = true
	}
	for name, rs := range cases {
		changed := bytes.Join(rs, nil)
		fresh := 0
		chunks := rowChunks(t, changed, testRowSeed, rowParams)
		checkRowChunks(t, changed, rowParams, chunks)
		for _, c := range chunks {
			if !ids[s.ID(c)] {
				fresh++
			}
		}
		if fresh < 1 || fresh > 2 {
			t.Errorf("%s: %d of %d chunks new after one row changed; want 1 or 2", name, fresh, len(chunks))
		}
	}
}

func TestRowCutWithoutRowEnds(t *testing.T) {
	// No row ends: the gear hash cuts, about every Min+Avg bytes.
	rng := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(' ' + rng.IntN(90))
	}
	chunks := rowChunks(t, data, testRowSeed, rowParams)
	checkRowChunks(t, data, rowParams, chunks)
	if mean := len(data) / len(chunks); mean < int(rowParams.Min+rowParams.Avg/2) || mean > int(rowParams.Min+2*rowParams.Avg) {
		t.Fatalf("without row ends: mean chunk %d bytes over %d chunks", mean, len(chunks))
	}
	// A row longer than Max among table rows.
	long := append(bytes.Repeat([]byte("x"), 3*int(rowParams.Max)+7), '\n')
	data = append(append(tableStream(studySeed, 64<<10, false), long...), tableStream(studySeed+1, 64<<10, false)...)
	checkRowChunks(t, data, rowParams, rowChunks(t, data, testRowSeed, rowParams))
}

// freshBytes returns how many bytes of changed's chunks are not among
// data's: what a backup of changed would store after one of data.
func freshBytes(t *testing.T, data, changed []byte, p Params) (int, [][]byte) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range rowChunks(t, data, testRowSeed, p) {
		seen[string(c)] = true
	}
	chunks := rowChunks(t, changed, testRowSeed, p)
	checkRowChunks(t, changed, p, chunks)
	fresh := 0
	for _, c := range chunks {
		if !seen[string(c)] {
			fresh += len(c)
		}
	}
	return fresh, chunks
}

// TestRowCutFallback: where no row end is chosen within Max — a row longer
// than Max, a table of a few distinct rows repeated — the gear hash chooses
// the end, so an edit there still changes only the chunks around it (with
// a cut at Max bytes everything after the edit would shift).
func TestRowCutFallback(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// Four distinct rows in random order, none of them chosen by the hash.
	var distinct [][]byte
	for i := 0; len(distinct) < 4; i++ {
		row := []byte(fmt.Sprintf("%d\tstatus %d\n", i%10, i))
		if !rowChosen(testRowSeed, row, 12) {
			distinct = append(distinct, row)
		}
	}
	var few []byte
	for len(few) < 2<<20 {
		few = append(few, distinct[rng.IntN(len(distinct))]...)
	}
	mid := bytes.IndexByte(few[len(few)/2:], '\n') + len(few)/2 + 1
	inserted := append(append(append([]byte{}, few[:mid]...), distinct[0]...), few[mid:]...)
	fresh, chunks := freshBytes(t, few, inserted, rowParams)
	if fresh > 3*int(rowParams.Max) {
		t.Errorf("a few distinct rows: one inserted row made %d bytes of %d chunks new", fresh, len(chunks))
	}
	atMax := 0
	for _, c := range chunks {
		if len(c) == int(rowParams.Max) {
			atMax++
		}
	}
	if atMax > len(chunks)/10 {
		t.Errorf("a few distinct rows: %d of %d chunks cut at the maximum", atMax, len(chunks))
	}

	// A 1 MiB value among table rows: edit the row before it, and a byte
	// inside it.
	table := tableStream(studySeed, 256<<10, false)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + rng.IntN(26))
	}
	big[len(big)-1] = '\n'
	data := append(append(append([]byte{}, table...), big...), table...)
	before := bytes.LastIndexByte(table[:len(table)-1], '\n') + 1
	edited := bytes.Clone(data)
	copy(edited[before:], "XY")
	if fresh, _ := freshBytes(t, data, edited, rowParams); fresh > 3*int(rowParams.Max) {
		t.Errorf("editing the row before a 1 MiB row made %d bytes new", fresh)
	}
	grown := append(append(append([]byte{}, data[:len(table)+len(big)/2]...), 'Z'), data[len(table)+len(big)/2:]...)
	if fresh, _ := freshBytes(t, data, grown, rowParams); fresh > 3*int(rowParams.Max) {
		t.Errorf("one byte inserted in a 1 MiB row made %d bytes new", fresh)
	}
}

// TestRowCutLongRows: a row of Avg bytes or more ends a chunk only by its
// hash (one in two), so a chunk's length does not give away a long row's.
func TestRowCutLongRows(t *testing.T) {
	var data []byte
	var ends []int
	for i := range 400 {
		row := bytes.Repeat([]byte{byte('a' + i%26)}, int(rowParams.Avg)+i)
		row = append(append(row, fmt.Sprint(i)...), '\n')
		data = append(data, row...)
		ends = append(ends, len(data))
	}
	cuts := map[int]bool{}
	n := 0
	for _, c := range rowChunks(t, data, testRowSeed, rowParams) {
		n += len(c)
		cuts[n] = true
	}
	chosen := 0
	for _, e := range ends[:len(ends)-1] {
		if cuts[e] {
			chosen++
		}
	}
	if chosen < 120 || chosen > 280 {
		t.Fatalf("%d of %d long rows end a chunk; want about half", chosen, len(ends)-1)
	}
}

// TestRowCutAtMin: a row that ends exactly at Min may end the chunk; one
// that ends a byte before may not.
func TestRowCutAtMin(t *testing.T) {
	min := int(rowParams.Min)
	avgBits := uint(12)
	for _, at := range []int{min, min - 1} {
		// A first row ending at `at` that the hash chooses, then rows
		// that it does not.
		var first []byte
		for i := 0; ; i++ {
			first = append(bytes.Repeat([]byte("x"), at-1-len(fmt.Sprint(i))), fmt.Sprint(i)...)
			first = append(first, '\n')
			if rowChosen(testRowSeed, first, avgBits) {
				break
			}
		}
		data := append(first, tableStream(studySeed, 64<<10, false)...)
		got := len(rowChunks(t, data, testRowSeed, rowParams)[0])
		if (got == at) != (at == min) {
			t.Errorf("a chosen row ending at %d (Min %d): first chunk %d bytes", at, min, got)
		}
	}
}

// errAfterData returns its data and err from the same Read.
type errAfterData struct {
	data []byte
	err  error
}

func (r *errAfterData) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

// TestRowCutNoChunkAfterError: bytes that came with a read error are never
// cut into a chunk; Next returns the error.
func TestRowCutNoChunkAfterError(t *testing.T) {
	boom := errors.New("connection reset")
	c := NewChunker(&errAfterData{data: tableStream(studySeed, 8<<10, false), err: boom}, testPol, testRowSeed, rowParams)
	if ch, err := c.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next = %d bytes, %v; want the reader's error", len(ch), err)
	}
}

// emptyReads returns (0, nil) three times before every read of r.
type emptyReads struct {
	r io.Reader
	n int
}

func (e *emptyReads) Read(p []byte) (int, error) {
	if e.n++; e.n%4 != 0 {
		return 0, nil
	}
	return e.r.Read(p)
}

func TestRowCutEmptyReads(t *testing.T) {
	data := tableStream(studySeed, 256<<10, false)
	want := rowChunks(t, data, testRowSeed, rowParams)
	c := NewChunker(&emptyReads{r: iotest.HalfReader(bytes.NewReader(data))}, testPol, testRowSeed, rowParams)
	var got [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after empty reads: %v", err)
		}
		got = append(got, bytes.Clone(ch))
	}
	if !bytes.Equal(bytes.Join(got, nil), data) || len(got) != len(want) {
		t.Fatalf("%d chunks with empty reads, %d without", len(got), len(want))
	}
}

func TestRowCutReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(tableStream(studySeed, 100<<10, false)), iotest.ErrReader(boom))
	c := NewChunker(r, testPol, testRowSeed, rowParams)
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

func TestRowCutSmallReads(t *testing.T) {
	data := tableStream(studySeed, 1<<20, false)
	want := rowChunks(t, data, testRowSeed, rowParams)
	c := NewChunker(iotest.OneByteReader(bytes.NewReader(data)), testPol, testRowSeed, rowParams)
	for i := 0; ; i++ {
		ch, err := c.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d chunks read a byte at a time, %d at once", i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(want) || !bytes.Equal(ch, want[i]) {
			t.Fatalf("chunk %d differs when the stream is read a byte at a time", i)
		}
	}
}

func TestParamsCut(t *testing.T) {
	p := rowParams
	p.Cut = "bytes"
	if err := p.Validate(); err == nil {
		t.Fatal("an unknown cut validated")
	}
	c := NewChunker(bytes.NewReader([]byte("a\n")), testPol, testRowSeed, p)
	if _, err := c.Next(); err == nil || err == io.EOF {
		t.Fatalf("Next with an unknown cut = %v, want the validation error", err)
	}
	if err := RowDeltaParams.Validate(); err != nil || RowDeltaParams.Cut != CutRows {
		t.Fatalf("RowDeltaParams %+v: %v; want valid, cut at rows", RowDeltaParams, err)
	}
}

// TestRowCutGolden pins where chunks end (testdata/golden/rowcut.txt): a
// change to the row hash or the rule would make every tenant's next night
// store its tables anew. Rewrite with -update only for a deliberate change
// (and say so in docs/format.md).
func TestRowCutGolden(t *testing.T) {
	// Table rows, a row longer than Max, a stretch without row ends, and
	// rows of Avg bytes and more.
	data := tableStream(studySeed, 1<<20, false)
	data = append(append(data, bytes.Repeat([]byte("lang "), int(rowParams.Max)/4)...), '\n')
	data = append(data, bytes.Repeat([]byte("geen regeleinde "), int(rowParams.Max)/8)...)
	for i := range 20 {
		data = append(append(data, bytes.Repeat([]byte(fmt.Sprint(i)), int(rowParams.Avg)+i*37)...), '\n')
	}
	var lens []string
	for _, c := range rowChunks(t, data, testRowSeed, rowParams) {
		lens = append(lens, strconv.Itoa(len(c)))
	}
	got := strings.Join(lens, "\n") + "\n"
	path := filepath.Join("testdata", "golden", "rowcut.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("chunk lengths differ from %s (first: %s)", path, strings.SplitN(got, "\n", 2)[0])
	}
}

// FuzzRowCut feeds the row cutter any stream and any valid bounds (Min
// 64 + 4·mn, Avg 2^(6 + avg mod 10), Max Avg + 64·mx): the chunks must join
// back to it and keep the bounds, read at once or in halves.
func FuzzRowCut(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, mn, avg, mx byte) {
		p := Params{Min: 64 + uint(mn)*4, Avg: 1 << (6 + avg%10), Cut: CutRows}
		p.Max = p.Avg + uint(mx)*64
		if p.Validate() != nil {
			return
		}
		chunks := rowChunks(t, data, testRowSeed, p)
		checkRowChunks(t, data, p, chunks)
		c := NewChunker(iotest.HalfReader(bytes.NewReader(data)), testPol, testRowSeed, p)
		for i := 0; ; i++ {
			ch, err := c.Next()
			if err == io.EOF {
				if i != len(chunks) {
					t.Fatalf("%d chunks read in halves, %d at once", i, len(chunks))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(chunks) || !bytes.Equal(ch, chunks[i]) {
				t.Fatalf("chunk %d differs when read in halves", i)
			}
		}
	})
}

// rowCutSeeds are FuzzRowCut's seed corpus (testdata/fuzz/FuzzRowCut).
func rowCutSeeds() map[string][]any {
	return map[string][]any{
		"two-rows":      {[]byte("1\ta\n2\tb\n"), byte(0), byte(1), byte(2)},
		"table":         {tableStream(studySeed, 4<<10, false), byte(10), byte(2), byte(8)},
		"empty-rows":    {bytes.Repeat([]byte("\n"), 300), byte(0), byte(0), byte(0)},
		"no-row-end":    {bytes.Repeat([]byte("x"), 500), byte(0), byte(0), byte(1)},
		"long-row":      {append(append(bytes.Repeat([]byte("y"), 700), '\n'), tableStream(studySeed, 2<<10, false)...), byte(1), byte(1), byte(3)},
		"every-row-cut": {tableStream(studySeed, 2<<10, false), byte(0), byte(0), byte(20)},
	}
}
