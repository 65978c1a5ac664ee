package rowindex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/source"
)

var testKey = bytes.Repeat([]byte{9}, 32)

func testTable() source.Table {
	return source.Table{Name: "public.reports", Encoding: "pg-copy-text", Columns: []source.Column{
		{Name: "id"}, {Name: "client_id"}, {Name: "body"}, {Name: "treatment_id"},
	}}
}

// stream makes n pg-copy-text rows with client ids below clients and
// bodies of random length (some long enough to span chunks).
func stream(rng *rand.Rand, n, clients int) (data []byte, client []int) {
	var b bytes.Buffer
	for i := range n {
		c := rng.IntN(clients)
		client = append(client, c)
		body := strings.Repeat("x", rng.IntN(40))
		if rng.IntN(20) == 0 {
			body = strings.Repeat("long\\t", rng.IntN(300))
		}
		tr := fmt.Sprint(rng.IntN(50))
		if rng.IntN(10) == 0 {
			tr = `\N`
		}
		fmt.Fprintf(&b, "%d\t%d\t%s\t%s\n", i, c, body, tr)
	}
	return b.Bytes(), client
}

// cut splits data at random points into chunks of 1..max bytes.
func cut(rng *rand.Rand, data []byte, maxLen int) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(maxLen))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func ids(chunks [][]byte) []chunk.ID {
	out := make([]chunk.ID, len(chunks))
	for i, c := range chunks {
		out[i] = sha256.Sum256(c)
	}
	return out
}

func build(t *testing.T, chunks [][]byte, sets [][]string) *Index {
	t.Helper()
	b, err := NewBuilder(testKey, testTable(), sets)
	if err != nil {
		t.Fatal(err)
	}
	return finish(t, b, chunks)
}

// finish feeds chunks to b and decodes the index it builds.
func finish(t *testing.T, b *Builder, chunks [][]byte) *Index {
	t.Helper()
	for _, c := range chunks {
		b.Chunk(c)
	}
	enc, err := b.FinishFilters(ids(chunks))
	if err != nil {
		t.Fatal(err)
	}
	x, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestSelectedChunksHoldEveryRow: for random streams cut at random points
// (rows spanning several chunks included), reading only the runs of
// chunks whose filter may hold a client gives exactly that client's rows,
// and the index's row counts fit.
func TestSelectedChunksHoldEveryRow(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 1))
		data, client := stream(rng, 1+rng.IntN(400), 1+rng.IntN(60))
		chunks := cut(rng, data, 1+rng.IntN(300))
		x := build(t, chunks, [][]string{{"client_id"}, {"client_id"}, {"treatment_id", "client_id"}})
		if len(x.Sets) != 2 {
			t.Fatalf("sets %v: a repeated list is indexed once", x.Sets)
		}
		if err := x.Verify(ids(chunks), int64(len(client))); err != nil {
			t.Fatal(err)
		}
		h := NewHasher(testKey)
		set := x.Set([]string{"client_id"})
		for c := range 60 {
			hv := h.Hash(set, fmt.Sprint(c))
			var want []string
			for i, cl := range client {
				if cl == c {
					want = append(want, fmt.Sprint(i))
				}
			}
			var got []string
			selected := 0
			for a := 0; a < len(chunks); a++ {
				if !x.MayContain(a, hv) {
					continue
				}
				b := a
				for b+1 < len(chunks) && x.MayContain(b+1, hv) {
					b++
				}
				selected += b - a + 1
				err := x.ReadRun(bytes.NewReader(bytes.Join(chunks[a:b+1], nil)), a, b, func(line []byte) error {
					f := strings.SplitN(string(line), "\t", 3)
					if f[1] == fmt.Sprint(c) {
						got = append(got, f[0])
					}
					return nil
				})
				if err != nil {
					t.Fatalf("seed %d: run %d..%d: %v", seed, a, b, err)
				}
				a = b
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("seed %d client %d: got rows %v, want %v (%d of %d chunks read)", seed, c, got, want, selected, len(chunks))
			}
		}
	}
}

// TestIndexSkipsChunks: on a stream of many chunks, one key selects few.
func TestIndexSkipsChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var b bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&b, "%d\t%d\tbody\t1\n", i, i/100) // clients in order, 100 rows each
	}
	chunks := cut(rng, b.Bytes(), 4096)
	x := build(t, chunks, [][]string{{"client_id"}})
	hv := NewHasher(testKey).Hash(0, "77")
	n := 0
	for c := range x.Chunks {
		if x.MayContain(c, hv) {
			n++
		}
	}
	if n == 0 || n > 4 {
		t.Fatalf("client 77 (100 rows, ~2.5 KB) selects %d of %d chunks", n, len(x.Chunks))
	}
	// Another key (the tenant key differs): the filter says nothing.
	other := NewHasher(bytes.Repeat([]byte{1}, 32)).Hash(0, "77")
	if other == hv {
		t.Fatal("hashes do not depend on the key")
	}
}

// TestIndexMismatchDetected: an index that does not fit the stream — other
// chunks, a wrong row count, rows that do not begin where it says — is
// refused by Verify or ReadRun, never read as if it fit.
func TestIndexMismatchDetected(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	data, client := stream(rng, 300, 10)
	chunks := cut(rng, data, 200)
	x := build(t, chunks, [][]string{{"client_id"}})
	other := ids(chunks)
	other[len(other)/2][0] ^= 1
	if err := x.Verify(other, int64(len(client))); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("other chunk IDs: %v", err)
	}
	if err := x.Verify(ids(chunks), int64(len(client))+1); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("wrong row count: %v", err)
	}
	// Rows moved between chunks' counts: the total still fits, the run
	// does not.
	y := *x
	y.Chunks = append([]Chunk(nil), x.Chunks...)
	i := 0
	for y.Chunks[i].Rows == 0 {
		i++
	}
	y.Chunks[i].Rows--
	y.Chunks[len(y.Chunks)-1].Rows++
	if err := y.Verify(ids(chunks), int64(len(client))); err != nil {
		t.Fatal(err)
	}
	err := y.ReadRun(bytes.NewReader(chunks[i]), i, i, func([]byte) error { return nil })
	if !errors.Is(err, ErrBadIndex) {
		t.Fatalf("moved row count: %v", err)
	}
}

// TestBuilderRefusesWhatItCannotRead: a row it cannot decode, or with too
// few fields, fails the index (the stream is then stored without one).
func TestBuilderRefusesWhatItCannotRead(t *testing.T) {
	for _, in := range []string{"1\t2\tx\\\n", "1\t2\n", "1\t2\tx\t3"} {
		b, err := NewBuilder(testKey, testTable(), [][]string{{"treatment_id"}})
		if err != nil {
			t.Fatal(err)
		}
		b.Chunk([]byte(in))
		if _, _, err := b.Finish(ids([][]byte{[]byte(in)})); err == nil {
			t.Errorf("%q: index built", in)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	data, _ := stream(rng, 100, 5)
	chunks := cut(rng, data, 500)
	x := build(t, chunks, [][]string{{"client_id"}, {"id", "treatment_id"}})
	if !bytes.Equal(x.Encode(), build(t, chunks, [][]string{{"client_id"}, {"id", "treatment_id"}}).Encode()) {
		t.Fatal("the same stream gives another index (it would not deduplicate)")
	}
	enc := x.Encode()
	for _, cut := range []int{0, 5, len(magic) + 1, len(enc) / 2, len(enc) - 1} {
		if _, err := Decode(enc[:cut]); !errors.Is(err, ErrBadIndex) {
			t.Errorf("truncated at %d: %v", cut, err)
		}
	}
	if _, err := Decode(append(enc, 0)); !errors.Is(err, ErrBadIndex) {
		t.Errorf("trailing byte: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	data, _ := stream(rng, 30, 5)
	b, _ := NewBuilder(testKey, testTable(), [][]string{{"client_id"}, {"id", "treatment_id"}})
	chunks := cut(rng, data, 300)
	for _, c := range chunks {
		b.Chunk(c)
	}
	enc, _ := b.FinishFilters(ids(chunks))
	f.Add(enc)
	rdata, _, _ := records(rng, 30, 5)
	rb, _ := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
	rchunks := cut(rng, rdata, 200)
	for _, c := range rchunks {
		rb.Chunk(c)
	}
	renc, _ := rb.FinishFilters(ids(rchunks))
	f.Add(renc)
	f.Add([]byte(magic))
	f.Add(enc[:len(enc)-sha256.Size]) // a body: the fuzzer adds the checksum
	f.Fuzz(func(t *testing.T, in []byte) {
		sum := sha256.Sum256(in)
		for _, b := range [][]byte{in, append(append([]byte(nil), in...), sum[:]...)} {
			x, err := Decode(b)
			if err != nil {
				if !errors.Is(err, ErrBadIndex) {
					t.Fatalf("error without ErrBadIndex: %v", err)
				}
				continue
			}
			if !bytes.Equal(x.Encode(), b) {
				t.Fatal("decoded index does not encode back to its input")
			}
			for c := range x.Chunks {
				x.MayContain(c, 12345)
			}
		}
	})
}

// BenchmarkBuilder measures the index's cost at backup time: rows of a
// report-like table (two indexed columns), cut into 20 KB chunks.
func BenchmarkBuilder(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	var buf bytes.Buffer
	for i := 0; buf.Len() < 32<<20; i++ {
		fmt.Fprintf(&buf, "%d\t%d\t%s\t%d\n", i, i/40, strings.Repeat("w", 80+rng.IntN(200)), i/8)
	}
	chunks := cut(rng, buf.Bytes(), 40<<10)
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		bl, err := NewBuilder(testKey, testTable(), [][]string{{"client_id"}, {"treatment_id"}})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range chunks {
			bl.Chunk(c)
		}
		head, pages, err := bl.Finish(ids(chunks))
		if err != nil {
			b.Fatal(err)
		}
		n := len(head)
		for _, p := range pages {
			n += len(p)
		}
		b.ReportMetric(float64(n)/float64(buf.Len())*100, "index_%")
		b.ReportMetric(float64(len(pages)), "pages")
	}
}

// FuzzCopyFields: the builder's field-by-field reading of a pg-copy-text
// line gives, for the indexed columns, the key forms ParseCopyLine gives
// (what extraction compares), and fails only where ParseCopyLine fails on
// one of them.
func FuzzCopyFields(f *testing.F) {
	f.Add([]byte("1\t2\tbody\t3"))
	f.Add([]byte(`1\x31` + "\t\\N\t\\\\t\t\\101"))
	f.Add([]byte("7\t\t\r\t9"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return
		}
		b, err := NewBuilder(testKey, testTable(), [][]string{{"id"}, {"treatment_id", "client_id"}})
		if err != nil {
			t.Fatal(err)
		}
		prefix := FieldPrefix(line, b.upto+1)
		got, gerr := b.copyFields(prefix)
		fields, werr := ParseCopyLine(nil, prefix)
		if gerr != nil {
			if werr == nil {
				t.Fatalf("copyFields fails (%v) where ParseCopyLine does not", gerr)
			}
			return
		}
		if werr != nil {
			return // a malformed field the index does not read
		}
		if len(got) != len(fields) {
			t.Fatalf("%d fields, ParseCopyLine %d", len(got), len(fields))
		}
		want := make([]source.Value, len(fields))
		for i, fl := range fields {
			if fl == nil {
				want[i] = source.NullValue()
			} else {
				want[i] = source.TextValue(fl)
			}
		}
		for _, pos := range b.pos {
			if len(got) <= maxPos(pos) {
				continue
			}
			g, gok := TupleKey(got, pos)
			w, wok := TupleKey(want, pos)
			if g != w || gok != wok {
				t.Fatalf("key of %v: %q/%v, ParseCopyLine gives %q/%v", pos, g, gok, w, wok)
			}
		}
	})
}

func maxPos(pos []int) int {
	m := 0
	for _, p := range pos {
		m = max(m, p)
	}
	return m
}
