package repo

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/kluis-nl/kluis/chunk"
)

// An index object lists, for each pack, the blobs it holds (docs/format.md,
// "Index"). Every backup writes one for the packs it added; prune replaces
// them with one compacted object. Plaintext before sealing:
//
//	"KLIX" ‖ version (1) ‖ pack count (uint32 LE) ‖ per pack:
//	  pack name (32) ‖ blob count (uint32 LE) ‖ per blob: ID (32) ‖ offset ‖ length ‖ raw length (uint32 LE each)

const (
	indexMagic   = "KLIX"
	indexVersion = 1
	// maxIndexObject bounds one index object (about 5 million blobs).
	maxIndexObject = 256 << 20
)

// PackBlobs is one pack and its blobs.
type PackBlobs struct {
	Pack  Hash
	Blobs []BlobEntry
}

func encodeIndex(packs []PackBlobs) []byte {
	n := 9
	for _, p := range packs {
		n += 36 + len(p.Blobs)*packEntrySize
	}
	out := make([]byte, 0, n)
	out = append(out, indexMagic...)
	out = append(out, indexVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(packs)))
	for _, p := range packs {
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

func decodeIndex(b []byte) ([]PackBlobs, error) {
	if len(b) < 9 || string(b[:4]) != indexMagic {
		return nil, fmt.Errorf("index: bad magic: %w", ErrCorrupt)
	}
	if b[4] != indexVersion {
		return nil, fmt.Errorf("index version %d is not supported", b[4])
	}
	np := binary.LittleEndian.Uint32(b[5:9])
	b = b[9:]
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
	return packs, nil
}

// Index maps blob IDs to their place in a pack. It is safe for concurrent
// use.
type Index struct {
	mu     sync.RWMutex
	packs  []Hash
	packNo map[Hash]uint32
	blobs  map[chunk.ID]location
}

type location struct {
	pack                   uint32
	offset, length, rawLen uint32
}

// Location of a blob.
type BlobLocation struct {
	Pack      Hash
	Offset    uint32
	Length    uint32
	RawLength uint32
}

func newIndex() *Index {
	return &Index{packNo: map[Hash]uint32{}, blobs: map[chunk.ID]location{}}
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
		if _, dup := x.blobs[e.ID]; !dup {
			x.blobs[e.ID] = location{pack: n, offset: e.Offset, length: e.Length, rawLen: e.RawLength}
		}
	}
}

// Lookup returns where a blob is stored.
func (x *Index) Lookup(id chunk.ID) (BlobLocation, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blobs[id]
	if !ok {
		return BlobLocation{}, false
	}
	return BlobLocation{Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLength: l.rawLen}, true
}

// Has reports whether a blob is indexed.
func (x *Index) Has(id chunk.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.blobs[id]
	return ok
}

// Len returns the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// byPack groups the index by pack, for prune and check.
func (x *Index) byPack() map[Hash][]BlobEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[Hash][]BlobEntry, len(x.packs))
	for id, l := range x.blobs {
		p := x.packs[l.pack]
		out[p] = append(out[p], BlobEntry{ID: id, Offset: l.offset, Length: l.length, RawLength: l.rawLen})
	}
	return out
}
