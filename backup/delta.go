package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/rowdelta"
	"github.com/kluis-nl/kluis/source"
)

// DefaultDeltaMaxSteps is how many nights in a row a table may be stored
// as a row delta before a full table is written again, when
// repo.BackupOptions.DeltaMaxSteps is 0 (policy.delta_max_steps).
const DefaultDeltaMaxSteps = 6

// DeltaMaxShare: when a chain's deltas together exceed this share of the
// table's size, the next night writes a full table.
const DeltaMaxShare = 0.5

// RowKey returns the key a table's stream is ordered by, for the encodings
// whose rows a row delta can carry: pg-copy-text with a primary key, every
// key column streamed. Integer columns compare by value (as PostgreSQL
// orders them), every other type by its text's bytes; the order is
// checked on every stream, so a column whose database order differs (text
// under a linguistic collation) only costs a full table.
func RowKey(t source.Table) (rowdelta.Key, bool) {
	if t.Encoding != "pg-copy-text" || len(t.PrimaryKey) == 0 || t.PhysicalOrder || len(t.PrimaryKey) > rowdelta.MaxKeyFields {
		return rowdelta.Key{}, false
	}
	var k rowdelta.Key
	for _, pk := range t.PrimaryKey {
		pos := -1
		for i, c := range t.Columns {
			if c.Name == pk {
				pos = i
				break
			}
		}
		if pos < 0 {
			return rowdelta.Key{}, false
		}
		order := rowdelta.OrderBytes
		switch strings.ToLower(t.Columns[pos].Type) {
		case "smallint", "integer", "bigint":
			order = rowdelta.OrderInt
		}
		k.Fields = append(k.Fields, pos)
		k.Order = append(k.Order, order)
	}
	return k, true
}

// deltaParent returns the parent snapshot's stream of t when this night
// may store t as a row delta against it: same structure, same key, stored
// key-ordered, and the chain short and small enough.
func deltaParent(b *repo.Backup, t source.Table, key rowdelta.Key, maxSteps int) *repo.Stream {
	if maxSteps == 0 {
		maxSteps = DefaultDeltaMaxSteps
	}
	p := b.Parent()
	if maxSteps < 0 || p == nil {
		return nil
	}
	s, ok := p.Manifest.Stream(TableStream(t.Name))
	if !ok || s.Kind != repo.KindTable || s.Keyed == nil || !s.Keyed.Key.Equal(key) {
		return nil
	}
	if len(s.Keyed.Chain)+1 > maxSteps {
		return nil
	}
	var deltas int64
	for i, l := range s.Keyed.Chain {
		if i > 0 {
			deltas += l.Size
		}
	}
	deltas += s.Keyed.DeltaSize
	if float64(deltas) > DeltaMaxShare*float64(s.Size) {
		return nil
	}
	var pm source.TableMeta
	if err := json.Unmarshal(s.Meta, &pm); err != nil || !sameStructure(pm.Table, t) {
		return nil
	}
	return s
}

func sameStructure(a, b source.Table) bool {
	if a.Name != b.Name || a.Encoding != b.Encoding || len(a.Columns) != len(b.Columns) || len(a.PrimaryKey) != len(b.PrimaryKey) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Name != b.Columns[i].Name || a.Columns[i].Type != b.Columns[i].Type {
			return false
		}
	}
	for i := range a.PrimaryKey {
		if a.PrimaryKey[i] != b.PrimaryKey[i] {
			return false
		}
	}
	return true
}

// keyedTable writes t whole, recording its key when the rows came out
// strictly ascending by it (so the next night may store a delta).
func keyedTable(ctx context.Context, b *repo.Backup, snap source.Snapshot, t source.Table, key rowdelta.Key, ix indexing) error {
	sw := ix.writer(ctx, b, t)
	oc := rowdelta.NewOrderCheck(key)
	res, err := snap.WriteTable(ctx, t, io.MultiWriter(sw, oc))
	if err != nil {
		sw.CloseWithError(err)
		return fmt.Errorf("table %s: %w", t.Name, err)
	}
	meta, err := json.Marshal(source.TableMeta{Table: t, TableResult: res})
	if err != nil {
		sw.CloseWithError(err)
		return err
	}
	var keyed *repo.Keyed
	if oc.Ascending() {
		keyed = &repo.Keyed{Key: key}
	}
	return sw.CloseKeyed(meta, keyed, 0)
}

// deltaTable streams t through rowdelta.Diff against the parent's table
// and stores only the records. done is false when the delta was given up
// (the parent could not be read, or the fresh rows were not in key
// order): the caller then writes the table whole.
func deltaTable(ctx context.Context, b *repo.Backup, snap source.Snapshot, t source.Table, key rowdelta.Key, ps *repo.Stream, ix indexing) (done bool, err error) {
	parent := b.Repo().StreamReader(ctx, ps)
	defer parent.Close()
	pr, pw := io.Pipe()
	sw := ix.recordsWriter(ctx, b, t, key)
	type diffResult struct {
		st  rowdelta.Stats
		err error
	}
	diffed := make(chan diffResult, 1)
	go func() {
		st, err := rowdelta.Diff(key, parent, pr, sw)
		if err != nil {
			io.Copy(io.Discard, pr) // let the COPY finish
		}
		diffed <- diffResult{st, err}
	}()
	res, werr := snap.WriteTable(ctx, t, pw)
	pw.CloseWithError(werr)
	d := <-diffed
	if werr != nil {
		sw.CloseWithError(werr)
		return true, fmt.Errorf("table %s: %w", t.Name, werr)
	}
	if d.err != nil {
		if errors.Is(d.err, rowdelta.ErrParent) || errors.Is(d.err, rowdelta.ErrNotAscending) || errors.Is(d.err, rowdelta.ErrBadRecord) {
			if err := sw.Discard(); err != nil {
				return true, fmt.Errorf("table %s: %w", t.Name, err)
			}
			slog.Warn("row delta given up, storing the whole table", "table", t.Name, "parent", b.Parent().ID.Short(), "err", d.err)
			return false, nil
		}
		sw.CloseWithError(d.err)
		return true, fmt.Errorf("table %s: row delta: %w", t.Name, d.err)
	}
	if d.st.Rows != res.Rows {
		err := fmt.Errorf("table %s: row delta read %d rows, the table streamed %d", t.Name, d.st.Rows, res.Rows)
		sw.CloseWithError(err)
		return true, err
	}
	meta, err := json.Marshal(source.TableMeta{Table: t, TableResult: res})
	if err != nil {
		sw.CloseWithError(err)
		return true, err
	}
	chain := append([]repo.Link(nil), ps.Keyed.Chain...)
	own := ps.Size
	if ps.IsDelta() {
		own = ps.Keyed.DeltaSize
	}
	chain = append(chain, repo.Link{Snapshot: b.Parent().ID.String(), Size: own, Blobs: ps.Blobs, RowIndex: ps.RowIndex})
	b.AddRead(d.st.Size - d.st.DeltaSize)
	return true, sw.CloseKeyed(meta, &repo.Keyed{Key: key, Chain: chain}, d.st.Size)
}
