package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis/chunk"
)

// DictRef names a snapshot's zstd dictionary (docs/format.md, "Zstd
// dictionary"): the blob holding it, and the zstd ID the blobs compressed
// with it carry in their frame header.
type DictRef struct {
	ZstdID uint32   `json:"zstd_id"`
	Blob   chunk.ID `json:"blob"`
}

// KindDictionary is the kind of the pseudo-stream StreamsAndDictionary
// adds for the dictionary; no manifest holds a stream of this kind.
const KindDictionary = "zstd-dictionary"

// StreamsAndDictionary returns the snapshot's streams and, when it has a
// dictionary, a pseudo-stream holding the dictionary's blob, so that what
// walks every blob a snapshot needs (check, prune, copy, restore tests)
// keeps, copies and verifies the dictionary too.
func (m *Manifest) StreamsAndDictionary() []Stream {
	if m.Dictionary == nil {
		return m.Streams
	}
	d := Stream{Name: fmt.Sprintf("zstd dictionary %08x", m.Dictionary.ZstdID), Kind: KindDictionary, Blobs: []chunk.ID{m.Dictionary.Blob}}
	return append(m.Streams[:len(m.Streams):len(m.Streams)], d)
}

// noteDict remembers which blob holds the dictionary a manifest names, so
// that a blob compressed with it can be opened by any reader.
func (r *Repo) noteDict(m *Manifest) {
	if m.Dictionary != nil {
		r.dicts.LoadOrStore(m.Dictionary.ZstdID, m.Dictionary.Blob)
	}
}

// ctxLoadingDict marks a context in which a dictionary is being loaded: a
// dictionary blob is never compressed with a dictionary.
type ctxLoadingDict struct{}

// open opens a sealed blob, loading the zstd dictionary it was
// compressed with when that is not loaded yet.
func (r *Repo) open(ctx context.Context, dst []byte, id chunk.ID, sealed []byte) ([]byte, error) {
	plain, err := r.sealer.Open(dst, id, sealed)
	var de *chunk.DictError
	if err == nil || !errors.As(err, &de) || ctx.Value(ctxLoadingDict{}) != nil {
		return plain, err
	}
	if lerr := r.loadDict(ctx, de.ZstdID); lerr != nil {
		return nil, fmt.Errorf("blob %s: %w", id, lerr)
	}
	return r.sealer.Open(dst, id, sealed)
}

// loadDict loads the dictionary with zstd ID zid into the sealer. The
// error names the dictionary and says whether it is unknown, missing or
// damaged.
func (r *Repo) loadDict(ctx context.Context, zid uint32) error {
	v, ok := r.dicts.Load(zid)
	if !ok {
		return fmt.Errorf("compressed with zstd dictionary %08x, which no snapshot read names: %w", zid, ErrCorrupt)
	}
	return r.loadDictRef(ctx, DictRef{ZstdID: zid, Blob: v.(chunk.ID)})
}

func (r *Repo) loadDictRef(ctx context.Context, ref DictRef) error {
	plain, err := r.LoadBlob(context.WithValue(ctx, ctxLoadingDict{}, true), ref.Blob, nil)
	if err != nil {
		return fmt.Errorf("zstd dictionary %08x (blob %s): %w", ref.ZstdID, ref.Blob, err)
	}
	d, err := chunk.LoadDict(plain)
	if err == nil && d.ZstdID() != ref.ZstdID {
		err = fmt.Errorf("declares zstd ID %08x", d.ZstdID())
	}
	if err != nil {
		return fmt.Errorf("zstd dictionary %08x (blob %s) is damaged: %v: %w", ref.ZstdID, ref.Blob, err, ErrCorrupt)
	}
	r.sealer.AddDict(d)
	return nil
}

func isDictError(err error) bool {
	var de *chunk.DictError
	return errors.As(err, &de)
}
