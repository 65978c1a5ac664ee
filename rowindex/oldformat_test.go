package rowindex

import "github.com/kluis-nl/kluis/chunk"

// FinishFilters returns the index of the stream whose blobs, in order,
// are ids in the format kluis wrote before paged indexes (version 1, or
// 2 for records): a Bloom filter per chunk, read whole. Readers still
// read it; only tests write it now (old repositories).
func (b *Builder) FinishFilters(ids []chunk.ID) ([]byte, error) {
	if err := b.finish(ids); err != nil {
		return nil, err
	}
	x := &Index{Sets: b.sets, Chunks: make([]Chunk, len(b.done)), Records: b.records}
	per := make([]map[uint64]struct{}, len(b.done))
	for c := range per {
		per[c] = map[uint64]struct{}{}
	}
	for i, h := range b.pairs.h {
		per[b.pairs.c[i]][h] = struct{}{}
	}
	for c := range x.Chunks {
		x.Chunks[c] = newChunk(per[c])
		x.Chunks[c].ID, x.Chunks[c].StartsLine, x.Chunks[c].Rows = ids[c], b.done[c].StartsLine, b.done[c].Rows
	}
	return x.Encode(), nil
}
