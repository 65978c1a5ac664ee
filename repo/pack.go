package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/kluis-nl/kluis/chunk"
)

// A pack is many sealed blobs in one object (docs/format.md, "Pack"):
//
//	sealed blob ‖ … ‖ sealed blob ‖ sealed header ‖ header length (uint32 LE)
//
// The header, sealed under the data key, lists every blob's ID, offset,
// sealed length and plaintext length. Blobs are written in random order, so
// neither their order nor (with padding) their lengths tell an observer
// where chunk boundaries fell. The pack's name is the SHA-256 of its bytes.

const (
	packHeaderMagic   = "KLPH"
	packHeaderVersion = 1
	packEntrySize     = chunk.IDSize + 12
	// maxPackHeader bounds a header, and so the number of entries a hostile
	// pack can make us allocate.
	maxPackHeader = 16 << 20
)

// BlobEntry locates one sealed blob in a pack.
type BlobEntry struct {
	ID        chunk.ID
	Offset    uint32
	Length    uint32
	RawLength uint32
}

type pendingBlob struct {
	id     chunk.ID
	sealed []byte
	raw    uint32
}

// packer accumulates sealed blobs until a pack is full.
type packer struct {
	blobs []pendingBlob
	size  int
}

func (p *packer) add(id chunk.ID, sealed []byte, rawLen int) {
	p.blobs = append(p.blobs, pendingBlob{id: id, sealed: sealed, raw: uint32(rawLen)})
	p.size += len(sealed)
}

// finish writes the pack in random blob order and returns its bytes, name
// and entries.
func (p *packer) finish(ms *metaSealer) ([]byte, Hash, []BlobEntry) {
	rand.Shuffle(len(p.blobs), func(i, j int) { p.blobs[i], p.blobs[j] = p.blobs[j], p.blobs[i] })
	buf := bytes.NewBuffer(make([]byte, 0, p.size+len(p.blobs)*packEntrySize+128))
	entries := make([]BlobEntry, len(p.blobs))
	for i, b := range p.blobs {
		entries[i] = BlobEntry{ID: b.id, Offset: uint32(buf.Len()), Length: uint32(len(b.sealed)), RawLength: b.raw}
		buf.Write(b.sealed)
	}
	data := appendPackHeader(ms, buf.Bytes(), entries)
	p.blobs, p.size = p.blobs[:0], 0
	return data, sha256.Sum256(data), entries
}

// appendPackHeader ends a pack: the sealed header of entries, which
// describe the blobs already in buf, and its length.
func appendPackHeader(ms *metaSealer, buf []byte, entries []BlobEntry) []byte {
	hdr := ms.seal(adPackHeader, encodePackHeader(entries))
	buf = append(buf, hdr...)
	return binary.LittleEndian.AppendUint32(buf, uint32(len(hdr)))
}

func encodePackHeader(entries []BlobEntry) []byte {
	out := make([]byte, 0, 9+len(entries)*packEntrySize)
	out = append(out, packHeaderMagic...)
	out = append(out, packHeaderVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(entries)))
	for _, e := range entries {
		out = append(out, e.ID[:]...)
		out = binary.LittleEndian.AppendUint32(out, e.Offset)
		out = binary.LittleEndian.AppendUint32(out, e.Length)
		out = binary.LittleEndian.AppendUint32(out, e.RawLength)
	}
	return out
}

// decodePackHeader parses a header's plaintext and checks every entry lies
// inside the first dataLen bytes of the pack without overlap.
func decodePackHeader(b []byte, dataLen int) ([]BlobEntry, error) {
	if len(b) < 9 || string(b[:4]) != packHeaderMagic {
		return nil, fmt.Errorf("pack header: bad magic: %w", ErrCorrupt)
	}
	if b[4] != packHeaderVersion {
		return nil, fmt.Errorf("pack header version %d is not supported", b[4])
	}
	n := binary.LittleEndian.Uint32(b[5:9])
	b = b[9:]
	if uint64(len(b)) != uint64(n)*packEntrySize {
		return nil, fmt.Errorf("pack header: %d entries in %d bytes: %w", n, len(b), ErrCorrupt)
	}
	entries := make([]BlobEntry, n)
	var end uint64
	for i := range entries {
		e := &entries[i]
		copy(e.ID[:], b[:chunk.IDSize])
		e.Offset = binary.LittleEndian.Uint32(b[32:36])
		e.Length = binary.LittleEndian.Uint32(b[36:40])
		e.RawLength = binary.LittleEndian.Uint32(b[40:44])
		b = b[packEntrySize:]
		if uint64(e.Offset) != end || e.Length == 0 || e.Length > chunk.MaxSealedSize || e.RawLength > chunk.MaxChunkSize {
			return nil, fmt.Errorf("pack header: entry %d out of place: %w", i, ErrCorrupt)
		}
		end += uint64(e.Length)
	}
	if end != uint64(dataLen) {
		return nil, fmt.Errorf("pack header: entries cover %d of %d bytes: %w", end, dataLen, ErrCorrupt)
	}
	return entries, nil
}

// parsePack verifies a whole pack against its name and returns its
// entries.
func parsePack(ms *metaSealer, name Hash, data []byte) ([]BlobEntry, error) {
	if sha256.Sum256(data) != name {
		return nil, fmt.Errorf("pack %s: content does not match its name: %w", name, ErrCorrupt)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("pack %s: too short: %w", name, ErrCorrupt)
	}
	hl := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if hl > maxPackHeader || hl > len(data)-4 {
		return nil, fmt.Errorf("pack %s: header length %d out of range: %w", name, hl, ErrCorrupt)
	}
	start := len(data) - 4 - hl
	plain, err := ms.open(adPackHeader, data[start:len(data)-4])
	if err != nil {
		return nil, fmt.Errorf("pack %s: header: %w", name, err)
	}
	entries, err := decodePackHeader(plain, start)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	return entries, nil
}
