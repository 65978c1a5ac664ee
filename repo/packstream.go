package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"

	"github.com/kluis-nl/kluis/chunk"
)

// VerifyPackBlobs reads pack h whole, as a stream: every byte is hashed
// and compared with the pack's name at its end (so a flipped byte
// anywhere in the pack is found, also in blobs other snapshots own), and
// each of ids (blobs the index places in h) is opened as its bytes pass
// (decrypted, its keyed ID checked) and dropped. It holds one blob at a
// time, charged to r's read budget, so memory does not grow with the
// pack size. It returns the plaintext bytes of ids. When no location's
// copy streams clean, the pack is read the old way (LoadBlob per blob:
// every location, every version, whole packs through the pack cache),
// whose errors name the pack and what is wrong with it.
func (r *Repo) VerifyPackBlobs(ctx context.Context, h Hash, ids []chunk.ID) (int64, error) {
	idx, err := r.Index(ctx)
	if err != nil {
		return 0, err
	}
	ws := make([]packBlob, 0, len(ids))
	for _, id := range ids {
		for _, bl := range idx.Candidates(id) {
			if bl.Pack == h {
				ws = append(ws, packBlob{id, bl})
				break
			}
		}
	}
	if len(ws) == len(ids) {
		sort.Slice(ws, func(i, j int) bool { return ws[i].bl.Offset < ws[j].bl.Offset })
		name := objectName(r.tenant, kindData, h)
		for _, l := range r.readOrder() {
			n, err := r.streamPack(ctx, l, name, h, ws)
			if err == nil {
				r.noteRead(l, name, nil)
				return n, nil
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
	}
	var total int64
	var buf []byte
	for _, id := range ids {
		p, err := r.LoadBlob(ctx, id, buf[:0])
		if err != nil {
			return total, err
		}
		buf = p
		total += int64(len(p))
	}
	return total, nil
}

// packBlob is a blob and its place in one pack.
type packBlob struct {
	id chunk.ID
	bl BlobLocation
}

// streamPack reads name (pack h) from l once, start to end, opening ws
// (sorted by offset) on the way; the pack must match its name.
func (r *Repo) streamPack(ctx context.Context, l Location, name string, h Hash, ws []packBlob) (int64, error) {
	rc, err := l.Get(ctx, name, 0, -1)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	max := r.maxPackObject()
	sum := sha256.New()
	src := bufio.NewReaderSize(io.TeeReader(io.LimitReader(rc, max+1), sum), 64<<10)
	var pos, total int64
	var sealed, plain []byte
	for _, w := range ws {
		off, n := int64(w.bl.Offset), int64(w.bl.Length)
		if off < pos {
			return 0, fmt.Errorf("pack %s: blob %s overlaps the one before it: %w", h, w.id, ErrCorrupt)
		}
		if _, err := io.CopyN(io.Discard, src, off-pos); err != nil {
			return 0, fmt.Errorf("pack %s: %v: %w", h, err, ErrCorrupt)
		}
		charge := n + int64(w.bl.RawLength)
		if err := r.budget.hold(ctx, charge); err != nil {
			return 0, err
		}
		if int64(cap(sealed)) < n {
			sealed = make([]byte, n)
		}
		sealed = sealed[:n]
		_, err := io.ReadFull(src, sealed)
		if err == nil {
			plain, err = r.open(ctx, plain[:0], w.id, sealed)
		}
		r.budget.release(charge, nil)
		if err != nil {
			return 0, fmt.Errorf("pack %s: blob %s: %v: %w", h, w.id, err, ErrCorrupt)
		}
		pos = off + n
		total += int64(len(plain))
	}
	rest, err := io.Copy(io.Discard, src)
	if err != nil {
		return 0, err
	}
	if pos+rest > max {
		return 0, fmt.Errorf("pack %s: larger than %d bytes: %w", h, max, ErrCorrupt)
	}
	if Hash(sum.Sum(nil)) != h {
		return 0, fmt.Errorf("pack %s: content does not match its name: %w", h, ErrCorrupt)
	}
	return total, nil
}
