package rowindex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
)

var update = flag.Bool("update", false, "rewrite the golden files and seed corpora under testdata/")

// paged is a paged index built in a test, with a count of page reads.
type paged struct {
	head  []byte
	pages [][]byte
	mu    sync.Mutex
	reads []int
}

func buildPaged(t testing.TB, b *Builder, chunks [][]byte) *paged {
	t.Helper()
	for _, c := range chunks {
		b.Chunk(c)
	}
	head, pages, err := b.Finish(ids(chunks))
	if err != nil {
		t.Fatal(err)
	}
	return &paged{head: head, pages: pages}
}

func (p *paged) open(t testing.TB, ids []chunk.ID, rows int64) *PagedIndex {
	t.Helper()
	lk, err := Open(p.head, ids, rows, func(n int) ([]byte, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reads = append(p.reads, n)
		return p.pages[n], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	x, ok := lk.(*PagedIndex)
	if !ok {
		t.Fatalf("a paged index opens as %T", lk)
	}
	if x.Pages != len(p.pages) {
		t.Fatalf("head says %d pages, %d written", x.Pages, len(p.pages))
	}
	return x
}

// readLookup reads the runs of chunks x selects for hv and returns the
// lines read whole and the chunks selected.
func readLookup(t *testing.T, x Lookup, chunks [][]byte, hv uint64) ([]string, []bool) {
	t.Helper()
	sel, err := x.Select([]uint64{hv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for a := 0; a < len(sel); a++ {
		if !sel[a] {
			continue
		}
		b := a
		for b+1 < len(sel) && sel[b+1] {
			b++
		}
		err := x.ReadRun(bytes.NewReader(bytes.Join(chunks[a:b+1], nil)), a, b, func(line []byte) error {
			got = append(got, string(line))
			return nil
		})
		if err != nil {
			t.Fatalf("run %d..%d: %v", a, b, err)
		}
		a = b
	}
	return got, sel
}

// TestPagedSelectsExactlyTheKeysChunks: for random streams cut at random
// points, the paged index selects for a client exactly the chunks a row of
// the client touches (no false positives, unlike a filter), reading them
// gives exactly the client's rows, and the filters of the same stream
// select at least those chunks.
func TestPagedSelectsExactlyTheKeysChunks(t *testing.T) {
	sets := [][]string{{"client_id"}, {"treatment_id", "client_id"}}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 11))
		data, client := stream(rng, 1+rng.IntN(400), 1+rng.IntN(60))
		chunks := cut(rng, data, 1+rng.IntN(300))
		b, _ := NewBuilder(testKey, testTable(), sets)
		p := buildPaged(t, b, chunks)
		x := p.open(t, ids(chunks), int64(len(client)))
		fx := build(t, chunks, sets)
		// touched[c]: the chunks a row of client c touches, its line
		// feed included.
		var ends []int
		for _, ch := range chunks {
			ends = append(ends, offEnd(ends, len(ch)))
		}
		touched := map[int]map[int]bool{}
		off := 0
		for i, l := range strings.SplitAfter(string(data), "\n")[:len(client)] {
			if touched[client[i]] == nil {
				touched[client[i]] = map[int]bool{}
			}
			first, _ := slices.BinarySearch(ends, off+1)
			last, _ := slices.BinarySearch(ends, off+len(l))
			for k := first; k <= last; k++ {
				touched[client[i]][k] = true
			}
			off += len(l)
		}
		h := NewHasher(testKey)
		set := x.Set([]string{"client_id"})
		for cl := range 60 {
			hv := h.Hash(set, fmt.Sprint(cl))
			got, sel := readLookup(t, x, chunks, hv)
			_, fsel := readLookup(t, fx, chunks, hv)
			var want []string
			for i, cc := range client {
				if cc == cl {
					want = append(want, fmt.Sprint(i))
				}
			}
			var rows []string
			for _, g := range got {
				if f := strings.SplitN(g, "\t", 3); f[1] == fmt.Sprint(cl) {
					rows = append(rows, f[0])
				}
			}
			if strings.Join(rows, ",") != strings.Join(want, ",") {
				t.Fatalf("seed %d client %d: rows %v, want %v", seed, cl, rows, want)
			}
			for k := range sel {
				if sel[k] != touched[cl][k] {
					t.Fatalf("seed %d client %d: chunk %d selected %v, touched %v", seed, cl, k, sel[k], touched[cl][k])
				}
				if sel[k] && !fsel[k] {
					t.Fatalf("seed %d client %d: chunk %d selected by the pages, not by the filters", seed, cl, k)
				}
			}
		}
	}
}

// offEnd returns where a chunk of n bytes after those ending at ends ends.
func offEnd(ends []int, n int) int {
	if len(ends) == 0 {
		return n
	}
	return ends[len(ends)-1] + n
}

// TestPagedRecordsFindEveryKeyAndRow is TestRecordsIndexFindsEveryKeyAndRow
// for a paged records index.
func TestPagedRecordsFindEveryKeyAndRow(t *testing.T) {
	h := NewHasher(testKey)
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 13))
		data, keys, client := records(rng, 1+rng.IntN(300), 1+rng.IntN(30))
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		chunks := cut(rng, data, 1+rng.IntN(400))
		b, _ := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
		x := buildPaged(t, b, chunks).open(t, ids(chunks), int64(len(keys)))
		if !x.IsRecords() {
			t.Fatal("a records index opens as a table's")
		}
		for i, k := range keys {
			got, _ := readLookup(t, x, chunks, h.Hash(KeySet, k))
			if !slices.Contains(got, lines[i]) {
				t.Fatalf("seed %d: record %d not in the chunks its key selects", seed, i)
			}
		}
		set := x.Set([]string{"client_id"})
		for c := range 30 {
			want := 0
			for _, cl := range client {
				if cl == c {
					want++
				}
			}
			got := 0
			rows, _ := readLookup(t, x, chunks, h.Hash(set, fmt.Sprint(c)))
			for _, g := range rows {
				if strings.HasPrefix(g, "+") && strings.Split(g, "\t")[1] == fmt.Sprint(c) {
					got++
				}
			}
			if got != want {
				t.Fatalf("seed %d client %d: %d records, want %d", seed, c, got, want)
			}
		}
	}
}

// bigStream is a table of 20,000 rows indexed by id: many pages.
func bigStream(t testing.TB) ([][]byte, *paged) {
	rng := rand.New(rand.NewPCG(8, 8))
	var buf bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&buf, "%d\t%d\tbody\t%d\n", i, i/40, i/8)
	}
	chunks := cut(rng, buf.Bytes(), 2048)
	b, err := NewBuilder(testKey, testTable(), [][]string{{"id"}, {"client_id"}})
	if err != nil {
		t.Fatal(err)
	}
	return chunks, buildPaged(t, b, chunks)
}

// TestPagedReadsOnlyItsPages: a probe reads the head and the one page its
// hash falls in, whatever the size of the index; pages stay near their
// target size.
func TestPagedReadsOnlyItsPages(t *testing.T) {
	chunks, p := bigStream(t)
	if len(p.pages) < 16 {
		t.Fatalf("%d pages for 20,000 keys", len(p.pages))
	}
	total := 0
	for _, pg := range p.pages {
		total += len(pg)
		if len(pg) > 4*pageTarget {
			t.Errorf("a page of %d bytes (target %d)", len(pg), pageTarget)
		}
	}
	x := p.open(t, ids(chunks), 20000)
	h := NewHasher(testKey)
	hv := h.Hash(x.Set([]string{"id"}), "12345")
	got, sel := readLookup(t, x, chunks, hv)
	if len(p.reads) != 1 || p.reads[0] != PageOf(hv, x.Pages) {
		t.Fatalf("pages read %v, want only %d", p.reads, PageOf(hv, x.Pages))
	}
	n := 0
	for _, s := range sel {
		if s {
			n++
		}
	}
	if n > 2 || !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "12345\t") }) {
		t.Fatalf("%d chunks selected, row 12345 found: %v", n, got)
	}
	// The same page again costs nothing.
	if _, err := x.Select([]uint64{hv}, nil); err != nil || len(p.reads) != 1 {
		t.Fatalf("page read again: %v, %v", p.reads, err)
	}
	t.Logf("%d pages, %d bytes in all; a probe read %d bytes of them and a %d-byte head", len(p.pages), total, len(p.pages[p.reads[0]]), len(p.head))
}

// TestPagedSelectReadsEachPageOnce: one Select over many hashes reads
// each page they need once (several at once), and the selection is the
// union of the hashes' one by one.
func TestPagedSelectReadsEachPageOnce(t *testing.T) {
	chunks, p := bigStream(t)
	x := p.open(t, ids(chunks), 20000)
	h := NewHasher(testKey)
	var hs []uint64
	pages := map[int]bool{}
	for i := range 40 {
		hv := h.Hash(x.Set([]string{"id"}), fmt.Sprint(i*397))
		hs = append(hs, hv)
		pages[PageOf(hv, x.Pages)] = true
	}
	sel, err := x.Select(hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.reads) != len(pages) {
		t.Fatalf("%d page reads for %d pages", len(p.reads), len(pages))
	}
	y := p.open(t, ids(chunks), 20000)
	var one []bool
	for _, hv := range hs {
		if one, err = y.Select([]uint64{hv}, one); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(sel, one) {
		t.Fatal("a Select of many hashes differs from one by one")
	}
}

// TestPagedDamageDetected: a head that does not fit the stream, a page
// that is not the one asked for (another page, another index's, a
// damaged one) or that cannot be read, fails with ErrBadIndex or
// ErrPageUnreadable — never a selection with chunks missing.
func TestPagedDamageDetected(t *testing.T) {
	chunks, p := bigStream(t)
	sum := ids(chunks)
	if _, err := Open(p.head, sum[1:], 20000, nil); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("fewer chunks: %v", err)
	}
	other := slices.Clone(sum)
	other[7][0] ^= 1
	if _, err := Open(p.head, other, 20000, nil); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("other chunk IDs: %v", err)
	}
	if _, err := Open(p.head, sum, 19999, nil); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("wrong row count: %v", err)
	}
	// Another index over the same stream (other sets): its pages carry
	// another head's checksum.
	b, _ := NewBuilder(testKey, testTable(), [][]string{{"id"}})
	q := buildPaged(t, b, chunks)
	h := NewHasher(testKey)
	hv := h.Hash(0, "777")
	n := PageOf(hv, len(p.pages))
	flipped := slices.Clone(p.pages[n])
	flipped[len(flipped)/2] ^= 4
	for name, serve := range map[string]func(int) ([]byte, error){
		"another page":    func(k int) ([]byte, error) { return p.pages[(k+1)%len(p.pages)], nil },
		"another index's": func(k int) ([]byte, error) { return q.pages[k%len(q.pages)], nil },
		"flipped byte":    func(int) ([]byte, error) { return flipped, nil },
		"truncated":       func(k int) ([]byte, error) { return p.pages[k][:len(p.pages[k])-1], nil },
		"empty":           func(int) ([]byte, error) { return nil, nil },
	} {
		x, err := Open(p.head, sum, 20000, serve)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Select([]uint64{hv}, nil); !errors.Is(err, ErrBadIndex) {
			t.Errorf("%s: %v", name, err)
		}
	}
	x, _ := Open(p.head, sum, 20000, func(int) ([]byte, error) { return nil, errors.New("gone") })
	if _, err := x.Select([]uint64{hv}, nil); !errors.Is(err, ErrPageUnreadable) {
		t.Errorf("unreadable page: %v", err)
	}
	// A run the postings read do not cover.
	y, _ := Open(p.head, sum, 20000, func(k int) ([]byte, error) { return p.pages[k], nil })
	if err := y.ReadRun(bytes.NewReader(chunks[3]), 3, 3, func([]byte) error { return nil }); !errors.Is(err, ErrBadIndex) {
		t.Errorf("unselected run: %v", err)
	}
}

// TestPagedDeterministic: the same stream gives the same head and pages
// (so an unchanged table's index deduplicates), and a head round-trips.
func TestPagedDeterministic(t *testing.T) {
	chunks, p := bigStream(t)
	_, q := bigStream(t)
	if !bytes.Equal(p.head, q.head) || len(p.pages) != len(q.pages) {
		t.Fatal("the same stream gives another head")
	}
	for i := range p.pages {
		if !bytes.Equal(p.pages[i], q.pages[i]) {
			t.Fatalf("page %d differs", i)
		}
	}
	hd, err := DecodeHead(p.head)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hd.Encode(), p.head) || hd.Chunks != len(chunks) || hd.Rows != 20000 {
		t.Fatal("head does not round-trip")
	}
	for _, cut := range []int{0, len(magic), len(p.head) / 2, len(p.head) - 1} {
		if _, err := DecodeHead(p.head[:cut]); !errors.Is(err, ErrBadIndex) {
			t.Errorf("head cut at %d: %v", cut, err)
		}
	}
}

// TestOldIndexesStillRead: a version 1 index written by kluis before paged
// indexes (testdata/v1.index: reports(client_id) over testdata's stream)
// and a version 2 records index open and select as they did.
func TestOldIndexesStillRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	data, client := stream(rng, 200, 12)
	chunks := cut(rng, data, 400)
	b, _ := NewBuilder(testKey, testTable(), [][]string{{"client_id"}})
	for _, c := range chunks {
		b.Chunk(c)
	}
	enc, err := b.FinishFilters(ids(chunks))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "v1.index")
	if *update {
		if err := os.WriteFile(golden, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, enc) {
		t.Fatal("FinishFilters no longer writes what kluis wrote before paged indexes")
	}
	x, err := Open(old, ids(chunks), int64(len(client)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x.(*Index); !ok || x.IsRecords() {
		t.Fatalf("a version 1 index opens as %T", x)
	}
	h := NewHasher(testKey)
	for c := range 12 {
		got, _ := readLookup(t, x, chunks, h.Hash(0, fmt.Sprint(c)))
		n := 0
		for _, g := range got {
			if strings.Split(g, "\t")[1] == fmt.Sprint(c) {
				n++
			}
		}
		want := 0
		for _, cl := range client {
			if cl == c {
				want++
			}
		}
		if n != want {
			t.Fatalf("client %d: %d rows via the old index, %d in the stream", c, n, want)
		}
	}
	rdata, keys, _ := records(rng, 50, 5)
	rchunks := cut(rng, rdata, 200)
	rb, _ := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
	for _, c := range rchunks {
		rb.Chunk(c)
	}
	renc, err := rb.FinishFilters(ids(rchunks))
	if err != nil {
		t.Fatal(err)
	}
	rx, err := Open(renc, ids(rchunks), int64(len(keys)), nil)
	if err != nil || !rx.IsRecords() {
		t.Fatalf("version 2 index: %v", err)
	}
}

// pagedSeeds are the fuzz seeds of the paged decoders: a head and its
// pages.
func pagedSeeds(t testing.TB) (*paged, *paged) {
	rng := rand.New(rand.NewPCG(1, 2))
	data, _ := stream(rng, 300, 40)
	chunks := cut(rng, data, 300)
	b, _ := NewBuilder(testKey, testTable(), [][]string{{"client_id"}, {"id", "treatment_id"}})
	p := buildPaged(t, b, chunks)
	rdata, _, _ := records(rng, 60, 5)
	rchunks := cut(rng, rdata, 200)
	rb, _ := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
	return p, buildPaged(t, rb, rchunks)
}

// writeSeeds writes seeds as a seed corpus of fuzz target name (-update).
func writeSeeds(t *testing.T, name string, seeds ...[]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeedCorpora checks that the paged decoders' seed corpora hold what
// the builder writes now (rewritten with -update), so the fuzzers start
// from valid heads and pages.
func TestSeedCorpora(t *testing.T) {
	p, r := pagedSeeds(t)
	if *update {
		writeSeeds(t, "FuzzDecodeHead", p.head, r.head)
		writeSeeds(t, "FuzzDecodePage", p.pages[0], r.pages[0])
	}
	for _, name := range []string{"FuzzDecodeHead", "FuzzDecodePage"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no seed corpus (%v)", name, err)
		}
	}
}

// FuzzDecodeHead: a head decodes only when it encodes back to its input,
// and never panics.
func FuzzDecodeHead(f *testing.F) {
	p, r := pagedSeeds(f)
	f.Add(p.head)
	f.Add(r.head)
	f.Add(p.head[:len(p.head)-sha256.Size])
	f.Fuzz(func(t *testing.T, in []byte) {
		sum := sha256.Sum256(in)
		for _, b := range [][]byte{in, append(append([]byte(nil), in...), sum[:]...)} {
			hd, err := DecodeHead(b)
			if err != nil {
				if !errors.Is(err, ErrBadIndex) {
					t.Fatalf("error without ErrBadIndex: %v", err)
				}
				continue
			}
			if !bytes.Equal(hd.Encode(), b) {
				t.Fatal("decoded head does not encode back to its input")
			}
		}
	})
}

// FuzzDecodePage: a page of the seed head decodes only when it encodes
// back to its input, its postings name the stream's chunks ascending, and
// it never panics.
func FuzzDecodePage(f *testing.F) {
	p, r := pagedSeeds(f)
	f.Add(p.pages[0])
	f.Add(r.pages[0])
	f.Add(p.pages[0][:len(p.pages[0])-sha256.Size])
	hd, err := DecodeHead(p.head)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sum := sha256.Sum256(in)
		for _, b := range [][]byte{in, append(append([]byte(nil), in...), sum[:]...)} {
			pg, err := hd.DecodePage(0, b)
			if err != nil {
				if !errors.Is(err, ErrBadIndex) {
					t.Fatalf("error without ErrBadIndex: %v", err)
				}
				continue
			}
			for j, c := range pg.chunks {
				if c.Chunk < 0 || c.Chunk >= hd.Chunks || j > 0 && c.Chunk <= pg.chunks[j-1].Chunk {
					t.Fatalf("page chunk %d at %d", c.Chunk, j)
				}
			}
			for i, l := range pg.lists {
				for j, k := range l {
					if k < 0 || k >= len(pg.chunks) || j > 0 && k <= l[j-1] {
						t.Fatalf("tag %d: posting %d", i, k)
					}
				}
			}
			if !bytes.Equal(hd.EncodePage(0, pg.chunks, pg.tags, pg.lists), b) {
				t.Fatal("decoded page does not encode back to its input")
			}
		}
	})
}
