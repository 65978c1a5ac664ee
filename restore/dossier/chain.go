package dossier

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/rowdelta"
	"github.com/kluis-nl/kluis/rowindex"
)

// chainLink is one part of a row delta's chain (docs/format.md, "Row
// deltas"), oldest first — the base, the earlier deltas, the stream's own
// records — with its row index and the chunks that may hold the
// dossier's probes.
type chainLink struct {
	what  string // for errors: "delta base written by snapshot 1a2b3c4d"
	delta bool
	blobs []chunk.ID
	x     rowindex.Lookup
	// sel marks the chunks whose index may hold a probe of the dossier.
	sel []bool
}

// chainIndexError is readChain's failure to look up the keys of rows found
// in older links in a later link's index (a page unreadable or damaged):
// nothing has been passed on yet, so the table is read whole instead.
type chainIndexError struct{ why string }

func (e *chainIndexError) Error() string { return e.why }

// chooseChain returns the links of delta stream s with their row
// indexes, or none and why the table must be read whole (merged): a link
// without an index (written before kluis indexed deltas, or without a
// profile), a damaged one, or one that lacks a column list the plan
// follows.
func (u *indexUse) chooseChain(ctx context.Context, s *repo.Stream, probes []probe) ([]chainLink, string) {
	if u.src == nil {
		return nil, "the source has no row indexes"
	}
	parts := s.Parts()
	refs := make([]*repo.RowIndexRef, 0, len(parts))
	for _, l := range s.Keyed.Chain {
		refs = append(refs, l.RowIndex)
	}
	refs = append(refs, s.RowIndex)
	links := make([]chainLink, len(parts))
	for i, p := range parts {
		what := p.What
		if what == "" {
			what = "this snapshot's delta"
		}
		if refs[i] == nil {
			return nil, "a row delta whose " + what + " has no row index: read whole, merged with its chain"
		}
		x, why := u.load(ctx, s, refs[i], p.Blobs, -1, i > 0)
		if x == nil {
			return nil, what + ": " + why
		}
		hashes, why := u.probeHashes(x, probes)
		if why != "" {
			return nil, why
		}
		sel, err := x.Select(hashes, nil)
		if err != nil {
			return nil, what + ": " + indexFailure(err)
		}
		links[i] = chainLink{what: what, delta: i > 0, blobs: p.Blobs, x: x, sel: sel}
	}
	return links, ""
}

// readChain reads the dossier's rows of delta stream s from its links'
// chosen chunks and passes them, ascending by key as the merged table
// would, to take. A link is read where its index may hold a probe (a
// row or "+" record of the dossier) or the primary key of a row found in
// an older link (its change or deletion), so for every key the newest
// link that holds it decides, as rowdelta.Merge decides; member says
// whether a row belongs to the dossier. Every link's lines must be
// strictly ascending by the key and well formed, and every run must hold
// the lines its index says.
func (u *indexUse) readChain(ctx context.Context, s *repo.Stream, links []chainLink, member func([]byte) (bool, error), take func([]byte) error, tc *TableCount) error {
	k := s.Keyed.Key
	// found holds, by key form, the newest row seen with that key that
	// belongs to the dossier.
	found := map[string][]byte{}
	var key, prev [][]byte
	var prevB, form []byte
	tc.Chunks = 0
	for _, l := range links {
		tc.Chunks += len(l.blobs)
		sel := l.sel
		if l.delta && len(found) > 0 {
			pk := make([]uint64, 0, len(found))
			for f := range found {
				pk = append(pk, u.h.Hash(rowindex.KeySet, f))
			}
			var err error
			if sel, err = l.x.Select(pk, slices.Clone(sel)); err != nil {
				return &chainIndexError{why: l.what + ": " + indexFailure(err)}
			}
		}
		hasPrev := false
		err := eachRun(sel, func(a, b int) error {
			tc.ChunksRead += b - a + 1
			rd := u.src.SparseReader(ctx, l.blobs[a:b+1])
			defer rd.Close()
			err := l.x.ReadRun(rd, a, b, func(line []byte) error {
				row, kk, err := k.ParseLine(key, line, l.delta)
				key = kk
				if err == nil {
					// Compare validates the key (an int field must be
					// canonical), so equal keys have equal forms.
					c := -1
					if hasPrev {
						c, err = k.Compare(prev, key)
					} else {
						_, err = k.Compare(key, key)
					}
					if err == nil && c >= 0 {
						err = rowdelta.ErrNotAscending
					}
				}
				if err != nil {
					return fmt.Errorf("%s: %w: %w", l.what, err, repo.ErrCorrupt)
				}
				prev, prevB = rowdelta.CopyKey(prev, prevB, key)
				hasPrev = true
				form = rowdelta.KeyForm(form[:0], key)
				if row != nil {
					in, err := member(row)
					if err != nil {
						return err
					}
					if in {
						found[string(form)] = append([]byte(nil), row...)
						return nil
					}
				}
				// A deletion, or a row no longer of the dossier.
				delete(found, string(form))
				return nil
			})
			if errors.Is(err, rowindex.ErrBadIndex) {
				return fmt.Errorf("%s: the row index does not fit the stream: %w: %w", l.what, err, repo.ErrCorrupt)
			}
			if err != nil {
				return err
			}
			return ctx.Err()
		})
		if err != nil {
			return err
		}
	}
	type keyed struct {
		row []byte
		key [][]byte
	}
	rows := make([]keyed, 0, len(found))
	for _, row := range found {
		_, kk, err := k.ParseLine(nil, row, false)
		if err != nil {
			return err
		}
		rows = append(rows, keyed{row, kk})
	}
	slices.SortFunc(rows, func(a, b keyed) int {
		c, _ := k.Compare(a.key, b.key) // validated while read
		return c
	})
	for _, r := range rows {
		if err := take(r.row); err != nil {
			return err
		}
	}
	return nil
}
