package repo

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"github.com/kluis-nl/kluis/chunk"
)

// An index object lists, for each pack, the blobs it holds (docs/format.md,
// "Index"). Every backup writes one for the packs it added; prune replaces
// them with one compacted object that names, sealed inside it, every index
// object it replaces and every one its predecessors replaced ("supersedes"),
// so an old index put back by a location is recognised and ignored.
// Plaintext before sealing, version 2:
//
//	"KLIX" ‖ version (1) = 2 ‖ supersedes count (uint32 LE) ‖ count × index name (32)
//	‖ pack count (uint32 LE) ‖ per pack:
//	  pack name (32) ‖ blob count (uint32 LE) ‖ per blob: ID (32) ‖ offset ‖ length ‖ raw length (uint32 LE each)
//
// Version 1 (written before supersedes existed) is the same without the
// supersedes list; it is still read.

const (
	indexMagic     = "KLIX"
	indexVersion1  = 1
	indexVersion   = 2
	maxIndexObject = 256 << 20 // about 5 million blobs
	// maxSupersedes bounds the supersedes list (32 MiB of names).
	maxSupersedes = 1 << 20
)

// PackBlobs is one pack and its blobs.
type PackBlobs struct {
	Pack  Hash
	Blobs []BlobEntry
}

// indexObject is one decoded index object.
type indexObject struct {
	Version    int
	Supersedes []Hash
	Packs      []PackBlobs
}

// encodeIndex encodes a version 2 index object.
func encodeIndex(supersedes []Hash, packs []PackBlobs) []byte {
	return encodeIndexVersion(&indexObject{Version: indexVersion, Supersedes: supersedes, Packs: packs})
}

func encodeIndexVersion(x *indexObject) []byte {
	n := 13 + 32*len(x.Supersedes)
	for _, p := range x.Packs {
		n += 36 + len(p.Blobs)*packEntrySize
	}
	out := make([]byte, 0, n)
	out = append(out, indexMagic...)
	out = append(out, byte(x.Version))
	if x.Version >= indexVersion {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(x.Supersedes)))
		for _, h := range x.Supersedes {
			out = append(out, h[:]...)
		}
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(x.Packs)))
	for _, p := range x.Packs {
		out = append(out, p.Pack[:]...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p.Blobs)))
		for _, e := range p.Blobs {
			out = append(out, e.ID[:]...)
			out = binary.LittleEndian.AppendUint32(out, e.Offset)
			out = binary.LittleEndian.AppendUint32(out, e.Length)
			out = binary.LittleEndian.AppendUint32(out, e.RawLength)
		}
	}
	return out
}

// decodeIndex implements docs/format.md, "Index" (versions 1 and 2).
func decodeIndex(b []byte) (*indexObject, error) {
	if len(b) < 9 || string(b[:4]) != indexMagic {
		return nil, fmt.Errorf("index: bad magic: %w", ErrCorrupt)
	}
	x := &indexObject{Version: int(b[4])}
	if x.Version != indexVersion1 && x.Version != indexVersion {
		return nil, fmt.Errorf("index version %d is not supported", b[4])
	}
	b = b[5:]
	if x.Version >= indexVersion {
		ns := binary.LittleEndian.Uint32(b[:4])
		b = b[4:]
		if ns > maxSupersedes || uint64(ns)*32 > uint64(len(b)) {
			return nil, fmt.Errorf("index: %d superseded names in %d bytes: %w", ns, len(b), ErrCorrupt)
		}
		if ns > 0 {
			x.Supersedes = make([]Hash, ns)
			for i := range x.Supersedes {
				copy(x.Supersedes[i][:], b[:32])
				b = b[32:]
			}
		}
		if len(b) < 4 {
			return nil, fmt.Errorf("index: truncated: %w", ErrCorrupt)
		}
	}
	np := binary.LittleEndian.Uint32(b[:4])
	b = b[4:]
	// Each pack needs at least 36 bytes: a count larger than that is a lie.
	if uint64(np)*36 > uint64(len(b)) {
		return nil, fmt.Errorf("index: %d packs in %d bytes: %w", np, len(b), ErrCorrupt)
	}
	packs := make([]PackBlobs, np)
	for i := range packs {
		if len(b) < 36 {
			return nil, fmt.Errorf("index: truncated at pack %d: %w", i, ErrCorrupt)
		}
		copy(packs[i].Pack[:], b[:32])
		nb := binary.LittleEndian.Uint32(b[32:36])
		b = b[36:]
		if uint64(nb)*packEntrySize > uint64(len(b)) {
			return nil, fmt.Errorf("index: pack %d claims %d blobs: %w", i, nb, ErrCorrupt)
		}
		blobs := make([]BlobEntry, nb)
		for j := range blobs {
			e := &blobs[j]
			copy(e.ID[:], b[:32])
			e.Offset = binary.LittleEndian.Uint32(b[32:36])
			e.Length = binary.LittleEndian.Uint32(b[36:40])
			e.RawLength = binary.LittleEndian.Uint32(b[40:44])
			b = b[packEntrySize:]
			if e.Length == 0 || e.Length > chunk.MaxSealedSize || e.RawLength > chunk.MaxChunkSize {
				return nil, fmt.Errorf("index: pack %d blob %d: length out of range: %w", i, j, ErrCorrupt)
			}
		}
		packs[i].Blobs = blobs
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("index: %d trailing bytes: %w", len(b), ErrCorrupt)
	}
	x.Packs = packs
	return x, nil
}

// Index maps blob IDs to their places in packs. It keeps every candidate
// (pack, entry) any live index object names, not only the first: after a
// pack was pruned and its blobs stored again, an index naming the old pack
// must not hide the new one. A pack known to be at no location is
// "missing"; lookups prefer candidates in packs that are present. It is
// safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	packs   []Hash
	packNo  map[Hash]uint32
	missing map[uint32]bool
	blobs   map[chunk.ID]location   // the first candidate
	more    map[chunk.ID][]location // further candidates (rare)
	// superseded are index objects a live one supersedes: never loaded,
	// never copied (set once by loadIndexState, read-only after).
	superseded map[Hash]bool
	// unopened names the index objects that opened at no location when
	// this index was loaded, with their problems (for error messages).
	unopened []string
}

type location struct {
	pack                   uint32
	offset, length, rawLen uint32
}

// BlobLocation is one place a blob is stored.
type BlobLocation struct {
	Pack      Hash
	Offset    uint32
	Length    uint32
	RawLength uint32
}

func newIndex() *Index {
	return &Index{packNo: map[Hash]uint32{}, missing: map[uint32]bool{}, blobs: map[chunk.ID]location{}, more: map[chunk.ID][]location{}}
}

func (x *Index) add(pb PackBlobs) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n, ok := x.packNo[pb.Pack]
	if !ok {
		n = uint32(len(x.packs))
		x.packs = append(x.packs, pb.Pack)
		x.packNo[pb.Pack] = n
	}
	for _, e := range pb.Blobs {
		l := location{pack: n, offset: e.Offset, length: e.Length, rawLen: e.RawLength}
		first, dup := x.blobs[e.ID]
		if !dup {
			x.blobs[e.ID] = l
			continue
		}
		if first == l || containsLocation(x.more[e.ID], l) {
			continue
		}
		x.more[e.ID] = append(x.more[e.ID], l)
	}
}

// addPresent adds packs just written (a backup's): they are present.
func (x *Index) addPresent(packs []PackBlobs) {
	for _, p := range packs {
		x.add(p)
	}
	x.mu.Lock()
	for _, p := range packs {
		delete(x.missing, x.packNo[p.Pack])
	}
	x.mu.Unlock()
}

func containsLocation(ls []location, l location) bool {
	for _, v := range ls {
		if v == l {
			return true
		}
	}
	return false
}

// setPresent marks every indexed pack not in present as missing.
func (x *Index) setPresent(present map[Hash]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for n, h := range x.packs {
		if present[h] {
			delete(x.missing, uint32(n))
		} else {
			x.missing[uint32(n)] = true
		}
	}
}

func (x *Index) blobLocation(l location) BlobLocation {
	return BlobLocation{Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLength: l.rawLen}
}

// Candidates returns every place the index names for a blob, those in
// packs present at some location first.
func (x *Index) Candidates(id chunk.ID) []BlobLocation {
	x.mu.RLock()
	defer x.mu.RUnlock()
	first, ok := x.blobs[id]
	if !ok {
		return nil
	}
	all := append([]location{first}, x.more[id]...)
	out := make([]BlobLocation, 0, len(all))
	for _, wantMissing := range []bool{false, true} {
		for _, l := range all {
			if x.missing[l.pack] == wantMissing {
				out = append(out, x.blobLocation(l))
			}
		}
	}
	return out
}

// Lookup returns where a blob is stored: a candidate in a pack present at
// some location if there is one, else the first the index names.
func (x *Index) Lookup(id chunk.ID) (BlobLocation, bool) {
	c := x.Candidates(id)
	if len(c) == 0 {
		return BlobLocation{}, false
	}
	return c[0], true
}

// Has reports whether a blob is stored in a pack present at some location:
// a backup deduplicates only against blobs that can be read.
func (x *Index) Has(id chunk.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	first, ok := x.blobs[id]
	if !ok {
		return false
	}
	if !x.missing[first.pack] {
		return true
	}
	for _, l := range x.more[id] {
		if !x.missing[l.pack] {
			return true
		}
	}
	return false
}

// Len returns the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// byPack groups every candidate by pack, for prune and check.
func (x *Index) byPack() map[Hash][]BlobEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[Hash][]BlobEntry, len(x.packs))
	put := func(id chunk.ID, l location) {
		p := x.packs[l.pack]
		out[p] = append(out[p], BlobEntry{ID: id, Offset: l.offset, Length: l.length, RawLength: l.rawLen})
	}
	for id, l := range x.blobs {
		put(id, l)
	}
	for id, ls := range x.more {
		for _, l := range ls {
			put(id, l)
		}
	}
	for _, es := range out {
		sort.Slice(es, func(i, j int) bool { return es[i].Offset < es[j].Offset })
	}
	return out
}

func (x *Index) addAll(packs []PackBlobs) {
	for _, p := range packs {
		x.add(p)
	}
}

// isSuperseded reports whether a live index object supersedes index h.
func (x *Index) isSuperseded(h Hash) bool { return x.superseded[h] }
