package dossier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/rowindex"
	"github.com/kluis-nl/kluis/source"
)

// IndexColumns returns what a backup indexes for dossiers of profile p
// (backup.DatabaseIndexed): per table, the column lists a dossier selects
// its rows by — the root's key and every member reference of the plan
// (declared foreign keys and edges:). A profile that does not fit the
// tables indexes nothing: its dossiers fail anyway, and read whole once
// it is fixed.
func IndexColumns(engine string, p *config.Dossier) backup.IndexColumns {
	return func(tables []source.Table) map[string][][]string {
		metas := make([]source.TableMeta, len(tables))
		for i, t := range tables {
			metas[i].Table = t
		}
		plan, err := NewPlan(engine, metas, p)
		if err != nil {
			return nil
		}
		out := map[string][][]string{}
		for _, st := range plan.Steps {
			name := st.Table.Name
			if st.Root {
				out[name] = append(out[name], []string{plan.Key})
			}
			for _, e := range st.Member {
				out[name] = append(out[name], e.Columns)
			}
		}
		return out
	}
}

// IndexSource is a StreamSource that also reads streams' row indexes
// and single blobs; *repo.Repo is one. Extract uses the row index, and
// reads only the bytes of the chunks it needs, when its source is one.
type IndexSource interface {
	StreamSource
	RowIndex(ctx context.Context, s *repo.Stream) ([]byte, error)
	RowIndexPage(ctx context.Context, ri *repo.RowIndexRef, n int) ([]byte, error)
	RowIndexKey() []byte
	SparseReader(ctx context.Context, blobs []chunk.ID) io.ReadCloser
}

// probe is one way a table's rows join the dossier: the values (key
// forms) a column list must hold.
type probe struct {
	cols []string
	keys map[string]struct{}
}

// indexUse is Extract's access to row indexes.
type indexUse struct {
	src IndexSource
	h   *rowindex.Hasher
}

func newIndexUse(src StreamSource) *indexUse {
	is, ok := src.(IndexSource)
	if !ok {
		return &indexUse{}
	}
	return &indexUse{src: is, h: rowindex.NewHasher(is.RowIndexKey())}
}

// choose returns the row index of stream s and the chunks that may hold
// rows matching any probe, or no index and why the stream must be read
// whole: the snapshot has none (older kluis, no profile at backup time, a
// table it could not index), the index does not cover a column list the
// plan follows now (the profile changed since the snapshot), or the index
// (or a page of it the probes need) is unreadable, damaged or does not fit
// the stream. A damaged index is never used.
func (u *indexUse) choose(ctx context.Context, s *repo.Stream, t source.TableMeta, probes []probe) (rowindex.Lookup, []bool, string) {
	if u.src == nil {
		return nil, nil, "the source has no row indexes"
	}
	if s.RowIndex == nil {
		return nil, nil, "the snapshot has no row index for this table"
	}
	x, why := u.load(ctx, s, s.RowIndex, s.Blobs, t.Rows, false)
	if x == nil {
		return nil, nil, why
	}
	hashes, why := u.probeHashes(x, probes)
	if why != "" {
		return nil, nil, why
	}
	sel, err := x.Select(hashes, nil)
	if err != nil {
		return nil, nil, indexFailure(err)
	}
	return x, sel, ""
}

// indexFailure says why an index Select failed is not used.
func indexFailure(err error) string {
	if errors.Is(err, rowindex.ErrPageUnreadable) {
		return "row index unreadable: " + err.Error()
	}
	return "row index damaged: " + err.Error()
}

// load reads, decodes and binds the row index ri of blobs (a stream or a
// chain link) holding rows lines (< 0: not recorded); records says
// whether it must be a row delta's records index. A paged index's pages
// are read when Select first needs them. On failure it returns why the
// stream must be read whole.
func (u *indexUse) load(ctx context.Context, s *repo.Stream, ri *repo.RowIndexRef, blobs []chunk.ID, rows int64, records bool) (rowindex.Lookup, string) {
	data, err := u.src.RowIndex(ctx, &repo.Stream{Name: s.Name, RowIndex: ri})
	if err != nil {
		return nil, "row index unreadable: " + err.Error()
	}
	x, err := rowindex.Open(data, blobs, rows, func(n int) ([]byte, error) {
		return u.src.RowIndexPage(ctx, ri, n)
	})
	if err == nil {
		// The manifest lists a paged index's pages; it must list as
		// many as the head says, and an index read whole has none.
		want := 0
		if p, ok := x.(*rowindex.PagedIndex); ok {
			want = p.Pages
		}
		if len(ri.Pages) != want {
			err = fmt.Errorf("%d pages listed, the index has %d: %w", len(ri.Pages), want, rowindex.ErrBadIndex)
		}
	}
	if err == nil && x.IsRecords() != records {
		err = fmt.Errorf("a %s index where a %s index belongs: %w", indexKind(x.IsRecords()), indexKind(records), rowindex.ErrBadIndex)
	}
	if err != nil {
		return nil, "row index damaged: " + err.Error()
	}
	return x, ""
}

func indexKind(records bool) string {
	if records {
		return "row delta's"
	}
	return "table's"
}

// probeHashes returns the keyed hashes of every probe's keys in x's
// sets, or why x cannot answer (it lacks a column list).
func (u *indexUse) probeHashes(x rowindex.Lookup, probes []probe) ([]uint64, string) {
	var hashes []uint64
	for _, pr := range probes {
		set := x.Set(pr.cols)
		if set < 0 {
			return nil, fmt.Sprintf("the row index does not cover (%s): the dossier profile changed since the snapshot", strings.Join(pr.cols, ", "))
		}
		for k := range pr.keys {
			hashes = append(hashes, u.h.Hash(set, k))
		}
	}
	return hashes, ""
}

// reader returns the plaintext of blobs, a part of stream s (a delta:
// the table's rows, its chain merged).
func (u *indexUse) reader(ctx context.Context, src StreamSource, blobs []chunk.ID, s *repo.Stream) io.ReadCloser {
	if s.IsDelta() {
		return src.StreamReader(ctx, s)
	}
	if u.src != nil {
		return u.src.SparseReader(ctx, blobs)
	}
	return src.StreamReader(ctx, &repo.Stream{Name: s.Name, Blobs: blobs})
}

// eachRun calls fn with every run a..b of consecutive selected chunks.
func eachRun(sel []bool, fn func(a, b int) error) error {
	for a := 0; a < len(sel); a++ {
		if !sel[a] {
			continue
		}
		b := a
		for b+1 < len(sel) && sel[b+1] {
			b++
		}
		if err := fn(a, b); err != nil {
			return err
		}
		a = b
	}
	return nil
}

// BackupIndex returns what the backups of tenant index: the column lists
// of its dossier profile, or nil when it has none.
func BackupIndex(cfg *config.Config, tenant string) backup.IndexColumns {
	p, err := cfg.DossierFor(tenant)
	if err != nil {
		return nil
	}
	t, err := cfg.Tenant(tenant)
	if err != nil {
		return nil
	}
	return IndexColumns(t.Engine, p)
}
