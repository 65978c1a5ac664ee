package rowindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kluis-nl/kluis/chunk"
)

// A paged index (version 3, docs/format.md "Row index", "Paged index")
// is key-addressed: a small head, bound to its stream, and pages, each a
// blob of its own. A keyed hash's top bits are its page; the page holds
// the chunks its postings name and, for each tag (the hash's next 32
// bits), ascending, the list of those chunks that hold it. A reader reads
// the head and one page per probed hash, so what it reads follows its
// keys, not the table.

// VersionPaged is the format version of a paged index's head.
const VersionPaged = 3

const (
	pageMagic = "kluis-row-page\n"
	// MaxPages bounds a paged index's page count (a power of two).
	MaxPages = 1 << 16
	// MaxPage bounds a page's plaintext (a blob's is at most
	// chunk.MaxChunkSize).
	MaxPage = 4 << 20
	// pageTarget is the page size the builder aims at: a dossier reads
	// one page per key it probes, and every page is a blob in the
	// repository's index.
	pageTarget = 4 << 10
	// maxPostingRows bounds the rows a posting says begin in a chunk.
	maxPostingRows = 1 << 40
)

// Head is the head of a paged index.
type Head struct {
	// Sets are the indexed column lists.
	Sets [][]string
	// Records: a row delta's records index (as Index.Records).
	Records bool
	// Chunks is the stream's chunk count, Rows its row (line) count.
	Chunks int
	Rows   int64
	// Stream is the SHA-256 of the stream's blob IDs, in order.
	Stream [32]byte
	// Pages is the page count, a power of two.
	Pages int
	// sum is the head's trailing SHA-256, which every page carries.
	sum [32]byte
}

// Posting says that a chunk may hold a key: the chunk's position in the
// stream, whether it begins a row, and how many rows begin in it.
type Posting struct {
	Chunk      int
	StartsLine bool
	Rows       int64
}

// Page is a decoded page: the chunks its postings name, ascending, and
// its tags, ascending, each with the positions in chunks of its chunks.
type Page struct {
	chunks []Posting
	tags   []uint32
	lists  [][]int
}

// StreamSum is the SHA-256 of a stream's blob IDs, in order: what binds a
// paged index's head to its stream.
func StreamSum(ids []chunk.ID) [32]byte {
	h := sha256.New()
	for _, id := range ids {
		h.Write(id[:])
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// PageOf returns the page of hash h among n pages (a power of two): its
// top bits.
func PageOf(h uint64, n int) int {
	if n <= 1 {
		return 0
	}
	return int(h >> (64 - bits.TrailingZeros(uint(n))))
}

// Encode returns the head's bytes.
func (hd *Head) Encode() []byte {
	out := []byte(magic)
	out = binary.AppendUvarint(out, VersionPaged)
	var flags byte
	if hd.Records {
		flags = 1
	}
	out = append(out, flags)
	out = appendSets(out, hd.Sets)
	out = binary.AppendUvarint(out, uint64(hd.Chunks))
	out = binary.AppendUvarint(out, uint64(hd.Rows))
	out = append(out, hd.Stream[:]...)
	out = binary.AppendUvarint(out, uint64(hd.Pages))
	sum := sha256.Sum256(out)
	hd.sum = sum
	return append(out, sum[:]...)
}

func appendSets(out []byte, sets [][]string) []byte {
	out = binary.AppendUvarint(out, uint64(len(sets)))
	for _, s := range sets {
		out = binary.AppendUvarint(out, uint64(len(s)))
		for _, c := range s {
			out = binary.AppendUvarint(out, uint64(len(c)))
			out = append(out, c...)
		}
	}
	return out
}

// sets reads what appendSets wrote.
func (d *decoder) sets() [][]string {
	var out [][]string
	nsets := d.count(maxSets)
	for range nsets {
		ncols := d.count(maxSetCols)
		if d.err == nil && ncols == 0 {
			d.fail("empty column list")
		}
		var set []string
		for range ncols {
			n := d.count(maxColName)
			set = append(set, string(d.bytes(n)))
		}
		if d.err == nil && setPos(out, set) >= 0 {
			d.fail("column list " + strings.Join(set, ",") + " repeated")
		}
		out = append(out, set)
	}
	return out
}

// checked returns the body of b (an index or head) after checking its
// magic and trailing SHA-256, and its version.
func checked(b []byte) (body []byte, version uint64, err error) {
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+sha256.Size {
		return nil, 0, fmt.Errorf("no row index magic: %w", ErrBadIndex)
	}
	body = b[:len(b)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return nil, 0, fmt.Errorf("checksum does not match: %w", ErrBadIndex)
	}
	v, n := binary.Uvarint(body[len(magic):])
	if n <= 0 {
		return nil, 0, fmt.Errorf("truncated: %w", ErrBadIndex)
	}
	return body, v, nil
}

// DecodeHead parses a head written by Head.Encode, checking its SHA-256
// and bounds; whether it belongs to a stream is Verify's question.
func DecodeHead(b []byte) (*Head, error) {
	body, v, err := checked(b)
	if err != nil {
		return nil, err
	}
	if v != VersionPaged {
		return nil, fmt.Errorf("row index version %d is not a paged index: %w", v, ErrBadIndex)
	}
	d := decoder{b: body[len(magic):]}
	d.uvarint()
	hd := &Head{}
	if f := d.bytes(1); d.err == nil {
		if f[0]&^1 != 0 {
			d.fail("unknown flags")
		}
		hd.Records = f[0]&1 == 1
	}
	hd.Sets = d.sets()
	hd.Chunks = d.count(1 << 40)
	if rows := d.uvarint(); rows > 1<<50 {
		d.fail("row count out of range")
	} else {
		hd.Rows = int64(rows)
	}
	copy(hd.Stream[:], d.bytes(32))
	hd.Pages = d.count(MaxPages)
	if d.err == nil && (hd.Pages == 0 || hd.Pages&(hd.Pages-1) != 0) {
		d.fail("page count not a power of two")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	copy(hd.sum[:], b[len(body):])
	return hd, nil
}

// Verify checks that hd is the head of the stream whose blobs are ids
// and that holds rows rows (< 0: unchecked, as Index.Verify).
func (hd *Head) Verify(ids []chunk.ID, rows int64) error {
	if hd.Chunks != len(ids) {
		return fmt.Errorf("row index has %d chunks, the stream %d: %w", hd.Chunks, len(ids), ErrBadIndex)
	}
	if StreamSum(ids) != hd.Stream {
		return fmt.Errorf("row index is not the stream's (its blob list differs): %w", ErrBadIndex)
	}
	if rows >= 0 && hd.Rows != rows {
		return fmt.Errorf("row index counts %d rows, the table %d: %w", hd.Rows, rows, ErrBadIndex)
	}
	return nil
}

// Tag returns the part of hash h a page among n pages (a power of two)
// stores: the 32 bits after the page number. Keys whose hashes share a tag
// in a page share a posting list (a false positive: chunks read in vain,
// about one key in 2^32 per key in the page).
func Tag(h uint64, n int) uint32 {
	return uint32(h >> (32 - bits.TrailingZeros(uint(max(n, 1)))))
}

// EncodePage returns page n: the chunks its postings name (ascending by
// position, with their rows), and the tags (ascending) each with the
// positions in chunks (ascending) of its chunks.
func (hd *Head) EncodePage(n int, chunks []Posting, tags []uint32, lists [][]int) []byte {
	out := []byte(pageMagic)
	out = binary.AppendUvarint(out, VersionPaged)
	out = append(out, hd.sum[:]...)
	out = binary.AppendUvarint(out, uint64(n))
	out = binary.AppendUvarint(out, uint64(len(chunks)))
	prev := -1
	for _, c := range chunks {
		out = binary.AppendUvarint(out, uint64(c.Chunk-prev-1))
		v := uint64(c.Rows) << 1
		if c.StartsLine {
			v |= 1
		}
		out = binary.AppendUvarint(out, v)
		prev = c.Chunk
	}
	out = binary.AppendUvarint(out, uint64(len(tags)))
	for i, t := range tags {
		out = binary.BigEndian.AppendUint32(out, t)
		out = binary.AppendUvarint(out, uint64(len(lists[i])))
		prev := -1
		for _, k := range lists[i] {
			out = binary.AppendUvarint(out, uint64(k-prev-1))
			prev = k
		}
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// DecodePage parses page n of hd's pages. It checks that the page is the
// head's (it carries the head's SHA-256 and its number), that its chunks
// are the stream's, ascending, its tags ascending, and every list
// ascending over the page's chunks.
func (hd *Head) DecodePage(n int, b []byte) (*Page, error) {
	if len(b) > MaxPage {
		return nil, fmt.Errorf("row index page of %d bytes: %w", len(b), ErrBadIndex)
	}
	if !bytes.HasPrefix(b, []byte(pageMagic)) || len(b) < len(pageMagic)+sha256.Size {
		return nil, fmt.Errorf("page %d: no row index page magic: %w", n, ErrBadIndex)
	}
	body := b[:len(b)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return nil, fmt.Errorf("page %d: checksum does not match: %w", n, ErrBadIndex)
	}
	d := decoder{b: body[len(pageMagic):]}
	if v := d.uvarint(); d.err == nil && v != VersionPaged {
		d.fail("page version")
	}
	if s := d.bytes(32); d.err == nil && !bytes.Equal(s, hd.sum[:]) {
		d.fail("page of another index")
	}
	if m := d.count(MaxPages); d.err == nil && m != n {
		d.fail(fmt.Sprintf("page %d where page %d belongs", m, n))
	}
	pg := &Page{}
	// A chunk takes at least 2 bytes, a tag 4+1+1.
	nc := d.count(min(hd.Chunks, len(d.b)/2))
	if d.err == nil {
		pg.chunks = make([]Posting, 0, nc)
	}
	prev := -1
	for range nc {
		gap := d.uvarint()
		v := d.uvarint()
		if d.err != nil {
			break
		}
		if gap >= uint64(hd.Chunks-prev-1) {
			d.fail("chunk out of range")
			break
		}
		if v>>1 > maxPostingRows {
			d.fail("row count out of range")
			break
		}
		c := prev + 1 + int(gap)
		if c == 0 && v&1 == 0 {
			d.fail("the first chunk does not begin a row")
			break
		}
		pg.chunks = append(pg.chunks, Posting{Chunk: c, StartsLine: v&1 == 1, Rows: int64(v >> 1)})
		prev = c
	}
	nt := d.count(len(d.b) / 6)
	if d.err == nil {
		pg.tags = make([]uint32, 0, nt)
		pg.lists = make([][]int, 0, nt)
	}
	for range nt {
		tb := d.bytes(4)
		if d.err != nil {
			break
		}
		t := binary.BigEndian.Uint32(tb)
		if k := len(pg.tags); k > 0 && t <= pg.tags[k-1] {
			d.fail("tags not ascending")
		}
		nl := d.count(min(len(pg.chunks), len(d.b)))
		if d.err == nil && nl == 0 {
			d.fail("empty posting list")
		}
		list := make([]int, 0, nl)
		prev := -1
		for range nl {
			gap := d.uvarint()
			if d.err != nil {
				break
			}
			if gap >= uint64(len(pg.chunks)-prev-1) {
				d.fail("posting out of range")
				break
			}
			prev += 1 + int(gap)
			list = append(list, prev)
		}
		pg.tags = append(pg.tags, t)
		pg.lists = append(pg.lists, list)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("page %d: %w", n, d.err)
	}
	return pg, nil
}

// Lookup returns the postings of hash h in the page (none: no chunk holds
// it).
func (pg *Page) Lookup(h uint64, pages int) []Posting {
	i, ok := slices.BinarySearch(pg.tags, Tag(h, pages))
	if !ok {
		return nil
	}
	out := make([]Posting, len(pg.lists[i]))
	for j, k := range pg.lists[i] {
		out[j] = pg.chunks[k]
	}
	return out
}

// Lookup is a stream's row index as a reader uses it, of either format:
// which chunks may hold rows with a keyed hash, and the rows of a run of
// chunks. *Index (version 1 and 2) and *PagedIndex (version 3) are ones.
type Lookup interface {
	// Set returns the position of a column list, or -1.
	Set(cols []string) int
	// IsRecords reports a row delta's records index.
	IsRecords() bool
	// Select marks in sel (nil: a fresh one) the chunks that may hold
	// one of hashes.
	Select(hashes []uint64, sel []bool) ([]bool, error)
	// ReadRun reads the rows of the run a..b (see Index.ReadRun); the
	// run must consist of chunks Select marked.
	ReadRun(r io.Reader, a, b int, fn func(line []byte) error) error
}

// IsRecords reports a row delta's records index.
func (x *Index) IsRecords() bool { return x.Records }

// Select marks the chunks whose filter may hold one of hashes.
func (x *Index) Select(hashes []uint64, sel []bool) ([]bool, error) {
	if sel == nil {
		sel = make([]bool, len(x.Chunks))
	}
	for c := range x.Chunks {
		if sel[c] {
			continue
		}
		for _, h := range hashes {
			if x.MayContain(c, h) {
				sel[c] = true
				break
			}
		}
	}
	return sel, nil
}

// PagedIndex reads a paged index: its head, and the pages a reader's
// hashes need, each read once, when first needed.
type PagedIndex struct {
	*Head
	page  func(n int) ([]byte, error)
	pages map[int]*Page
	// known holds what the postings read say of each chunk.
	known map[int]Posting
}

// ErrPageUnreadable is wrapped by Select's error when a page could not be
// read (missing, or not authenticating, at every location).
var ErrPageUnreadable = errors.New("row index page unreadable")

// IsRecords reports a row delta's records index.
func (p *PagedIndex) IsRecords() bool { return p.Records }

// Set returns the position of the column list cols, or -1.
func (p *PagedIndex) Set(cols []string) int { return setPos(p.Sets, cols) }

// PagesRead returns how many pages have been read.
func (p *PagedIndex) PagesRead() int { return len(p.pages) }

// pageFetches bounds the pages Select reads at once (each is a ranged
// read, a round trip to a remote location).
const pageFetches = 4

// Select reads the pages of hashes it has not read yet, up to
// pageFetches at once, and marks the chunks their postings name. Pages
// that disagree about a chunk (its rows, whether it begins a row) fail
// with ErrBadIndex.
func (p *PagedIndex) Select(hashes []uint64, sel []bool) ([]bool, error) {
	if sel == nil {
		sel = make([]bool, p.Chunks)
	}
	var need []int
	asked := map[int]bool{} // pages in need: linear in the hashes, however many
	for _, h := range hashes {
		if n := PageOf(h, p.Pages); p.pages[n] == nil && !asked[n] {
			asked[n] = true
			need = append(need, n)
		}
	}
	if err := p.fetch(need); err != nil {
		return nil, err
	}
	for _, h := range hashes {
		pg := p.pages[PageOf(h, p.Pages)]
		for _, ps := range pg.Lookup(h, p.Pages) {
			if k, ok := p.known[ps.Chunk]; ok && k != ps {
				return nil, fmt.Errorf("chunk %d: pages disagree: %w", ps.Chunk, ErrBadIndex)
			}
			p.known[ps.Chunk] = ps
			sel[ps.Chunk] = true
		}
	}
	return sel, nil
}

// fetch reads and decodes the pages ns, pageFetches at once; the error is
// that of the first page in ns that failed.
func (p *PagedIndex) fetch(ns []int) error {
	got := make([]*Page, len(ns))
	errs := make([]error, len(ns))
	sem := make(chan struct{}, pageFetches)
	var wg sync.WaitGroup
	for i, n := range ns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := p.page(n)
			if err != nil {
				errs[i] = fmt.Errorf("page %d: %w: %w", n, ErrPageUnreadable, err)
				return
			}
			got[i], errs[i] = p.DecodePage(n, b)
		}()
	}
	wg.Wait()
	for i, n := range ns {
		if errs[i] != nil {
			return errs[i]
		}
		p.pages[n] = got[i]
	}
	return nil
}

// ReadRun reads the rows of the run a..b as Index.ReadRun does; every
// chunk of the run must have been named by a posting Select read.
func (p *PagedIndex) ReadRun(r io.Reader, a, b int, fn func(line []byte) error) error {
	if a < 0 || b < a || b >= p.Chunks {
		return fmt.Errorf("run %d..%d of %d chunks: %w", a, b, p.Chunks, ErrBadIndex)
	}
	var want int64
	for c := a; c <= b; c++ {
		k, ok := p.known[c]
		if !ok {
			return fmt.Errorf("chunk %d is in no posting read: %w", c, ErrBadIndex)
		}
		want += k.Rows
	}
	return readRun(r, !p.known[a].StartsLine, b == p.Chunks-1, want, a, b, fn)
}

// Open returns the index of the stream whose blobs are ids and that holds
// rows rows (< 0: unchecked) from its bytes (a version 1 or 2 index, or
// a paged index's head), checking that it fits the stream. page reads a
// paged index's page n; Select calls it from several goroutines at once.
func Open(b []byte, ids []chunk.ID, rows int64, page func(n int) ([]byte, error)) (Lookup, error) {
	// The version picks the decoder, which checks the whole (an old index
	// may be large: its checksum is computed once, there).
	var v uint64
	if bytes.HasPrefix(b, []byte(magic)) {
		v, _ = binary.Uvarint(b[len(magic):])
	}
	if v != VersionPaged {
		x, err := Decode(b)
		if err == nil {
			err = x.Verify(ids, rows)
		}
		if err != nil {
			return nil, err
		}
		return x, nil
	}
	hd, err := DecodeHead(b)
	if err == nil {
		err = hd.Verify(ids, rows)
	}
	if err != nil {
		return nil, err
	}
	return &PagedIndex{Head: hd, page: page, pages: map[int]*Page{}, known: map[int]Posting{}}, nil
}

// pairs are the distinct keyed hashes found in each chunk: h[i] in chunk
// c[i] (12 bytes a pair).
type pairs struct {
	h []uint64
	c []uint32
}

func (p *pairs) add(h uint64, c uint32) {
	p.h = append(p.h, h)
	p.c = append(p.c, c)
}

func (p *pairs) Len() int { return len(p.h) }
func (p *pairs) Less(i, j int) bool {
	return p.h[i] < p.h[j] || p.h[i] == p.h[j] && p.c[i] < p.c[j]
}
func (p *pairs) Swap(i, j int) {
	p.h[i], p.h[j] = p.h[j], p.h[i]
	p.c[i], p.c[j] = p.c[j], p.c[i]
}

// paginate builds a paged index's head and pages from the stream's chunks'
// metadata and the pairs: the fewest pages, a power of two, whose average
// is at most pageTarget and none of which exceeds MaxPage.
func paginate(hd *Head, meta []Chunk, ps *pairs) ([]byte, [][]byte, error) {
	sort.Sort(ps)
	// Estimate the encoded size: 5 bytes a hash (its tag and count),
	// about 2 bytes a posting.
	est := 0
	for i, h := range ps.h {
		if i == 0 || h != ps.h[i-1] {
			est += 5
		}
		est += 2
	}
	n := 1
	for n < MaxPages && est/n > pageTarget {
		n *= 2
	}
	for {
		hd.Pages = n
		head := hd.Encode()
		pages, ok := encodePages(hd, meta, ps)
		if ok {
			return head, pages, nil
		}
		if n == MaxPages {
			return nil, nil, fmt.Errorf("a row index page exceeds %d bytes with %d pages", MaxPage, MaxPages)
		}
		n *= 2
	}
}

// encodePages encodes hd.Pages pages; false when one exceeds MaxPage.
func encodePages(hd *Head, meta []Chunk, ps *pairs) ([][]byte, bool) {
	pages := make([][]byte, 0, hd.Pages)
	i := 0
	for n := range hd.Pages {
		j := i
		for j < ps.Len() && PageOf(ps.h[j], hd.Pages) == n {
			j++
		}
		// The page's chunks, and each its position among them.
		cs := slices.Clone(ps.c[i:j])
		slices.Sort(cs)
		cs = slices.Compact(cs)
		chunks := make([]Posting, len(cs))
		pos := make(map[uint32]int, len(cs))
		for k, c := range cs {
			chunks[k] = Posting{Chunk: int(c), StartsLine: meta[c].StartsLine, Rows: meta[c].Rows}
			pos[c] = k
		}
		var tags []uint32
		var lists [][]int
		for ; i < j; i++ {
			t := Tag(ps.h[i], hd.Pages)
			if len(tags) == 0 || tags[len(tags)-1] != t {
				tags = append(tags, t)
				lists = append(lists, nil)
			}
			lists[len(lists)-1] = append(lists[len(lists)-1], pos[ps.c[i]])
		}
		for k, l := range lists {
			// Hashes sharing a tag share a list: ascending, once each.
			slices.Sort(l)
			lists[k] = slices.Compact(l)
		}
		pg := hd.EncodePage(n, chunks, tags, lists)
		if len(pg) > MaxPage {
			return nil, false
		}
		pages = append(pages, pg)
	}
	return pages, true
}
