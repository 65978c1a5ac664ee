package dossier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/rowindex"
	"github.com/kluis-nl/kluis/source"
)

// StreamSource reads a stream's plaintext; *repo.Repo is one.
type StreamSource interface {
	StreamReader(ctx context.Context, s *repo.Stream) io.ReadCloser
}

// Sink receives the dossier's rows, table by table in plan order. Row's
// values are only valid during the call.
type Sink interface {
	BeginTable(ctx context.Context, t source.TableMeta) error
	Row(ctx context.Context, t source.TableMeta, row []source.Value) error
	EndTable(ctx context.Context, t source.TableMeta, rows int64) error
}

// TableCount is how many rows of a table are in the dossier.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	// Via says which reference made the table a member (Step.Reason).
	Via string `json:"via,omitempty"`
	// Read says how the table's stream was read: "index" (only the
	// chunks its row index says can hold dossier rows) or "full" (every
	// chunk; ReadReason says why).
	Read       string `json:"read"`
	ReadReason string `json:"read_reason,omitempty"`
	// Chunks is the stream's number of chunks, ChunksRead how many were read.
	Chunks     int `json:"chunks"`
	ChunksRead int `json:"chunks_read"`
}

// SharedRef is a set of rows outside the dossier that dossier rows refer
// to: they are not restored but must exist in the target.
type SharedRef struct {
	Table   string           `json:"table"`
	Columns []string         `json:"columns"`
	Keys    [][]source.Value `json:"-"`
	// Display holds the keys as text, for show and error messages.
	Display []string `json:"keys"`
}

// Result is what an extraction found.
type Result struct {
	Tables []TableCount `json:"tables"`
	Rows   int64        `json:"rows"`
	Shared []SharedRef  `json:"shared"`
	// ScannedRows counts the rows read from the member tables' streams.
	ScannedRows int64 `json:"scanned_rows"`
}

// ErrNotFound is returned when no root row has the key.
var ErrNotFound = errors.New("no dossier with this id in the snapshot")

// Extract streams the plan's tables of snapshot m from src, passes every
// dossier row of the dossier whose root key is id to sink (which may be
// nil), and reports counts and shared references. Only key values of
// dossier rows are kept in memory, but for a table stored as a row delta
// read through its chain's indexes: its dossier rows are held until every
// link has been read (the newest link holding a key decides), then passed
// on in key order.
func Extract(ctx context.Context, src StreamSource, m *repo.Manifest, p *Plan, id string, sink Sink) (*Result, error) {
	keys := map[string]map[string]struct{}{} // group|cols -> dossier key set
	type refSet struct {
		group string
		cols  []string
		seen  map[string][]source.Value
		order []string
	}
	refs := map[string]*refSet{}
	res := &Result{}
	ix := newIndexUse(src)
	for _, st := range p.Steps {
		t := st.Table
		s, ok := m.Stream(backup.TableStream(t.Name))
		if !ok {
			return nil, fmt.Errorf("snapshot has no stream for table %s: %w", t.Name, repo.ErrCorrupt)
		}
		dec, err := rowindex.NewDecoder(t.Table)
		if err != nil {
			return nil, err
		}
		var keyPos []int
		if st.Root {
			if keyPos, err = columnIndex(t.Table, []string{p.Key}); err != nil {
				return nil, err
			}
		}
		type edgePos struct {
			set  map[string]struct{}
			pos  []int
			edge Edge
		}
		var member []edgePos
		for _, e := range st.Member {
			pos, err := columnIndex(t.Table, e.Columns)
			if err != nil {
				return nil, err
			}
			k := setName(e.RefGroup, e.RefColumns)
			member = append(member, edgePos{set: keys[k], pos: pos, edge: e})
		}
		var outside []edgePos
		for _, e := range append(append([]Edge(nil), st.Member...), st.Outside...) {
			pos, err := columnIndex(t.Table, e.Columns)
			if err != nil {
				return nil, err
			}
			k := setName(e.RefGroup, e.RefColumns)
			if refs[k] == nil {
				refs[k] = &refSet{group: e.RefGroup, cols: e.RefColumns, seen: map[string][]source.Value{}}
			}
			outside = append(outside, edgePos{pos: pos, edge: e, set: nil})
		}
		var needs []edgePos
		for _, cols := range p.Needs[st.Group] {
			pos, err := columnIndex(t.Table, cols)
			if err != nil {
				return nil, err
			}
			k := setName(st.Group, cols)
			if keys[k] == nil {
				keys[k] = map[string]struct{}{}
			}
			needs = append(needs, edgePos{set: keys[k], pos: pos})
		}

		if sink != nil {
			if err := sink.BeginTable(ctx, t); err != nil {
				return nil, err
			}
		}
		// Membership needs only the key columns: a row is first decoded up
		// to the last of them (a raw TAB only ever separates fields in both
		// encodings, so such a prefix is itself a valid line), and fully
		// only when it belongs to the dossier.
		upto := 0
		for _, p := range keyPos {
			upto = max(upto, p)
		}
		for _, e := range member {
			for _, p := range e.pos {
				upto = max(upto, p)
			}
		}
		var n, scanned int64
		// isMember reads a row's key columns and says whether the row
		// belongs to the dossier; take reads it whole and keeps it.
		isMember := func(line []byte) (bool, error) {
			scanned++
			row, err := dec(rowindex.FieldPrefix(line, upto+1))
			if err != nil {
				return false, fmt.Errorf("table %s row %d: %w", t.Name, scanned, err)
			}
			if len(row) != min(upto+1, len(t.Columns)) {
				return false, fmt.Errorf("table %s row %d: %d fields for %d columns: %w", t.Name, scanned, len(row), len(t.Columns), repo.ErrCorrupt)
			}
			in := false
			if st.Root {
				k, ok := rowindex.ValueKey(row[keyPos[0]])
				in = ok && k == id
			}
			for _, e := range member {
				if in {
					break
				}
				if k, ok := rowindex.TupleKey(row, e.pos); ok {
					_, in = e.set[k]
				}
			}
			return in, nil
		}
		take := func(line []byte) error {
			row, err := dec(line)
			if err != nil {
				return fmt.Errorf("table %s row %d: %w", t.Name, scanned, err)
			}
			if len(row) != len(t.Columns) {
				return fmt.Errorf("table %s row %d: %d fields for %d columns: %w", t.Name, scanned, len(row), len(t.Columns), repo.ErrCorrupt)
			}
			n++
			for _, e := range needs {
				if k, ok := rowindex.TupleKey(row, e.pos); ok {
					e.set[k] = struct{}{}
				}
			}
			for _, e := range outside {
				k, ok := rowindex.TupleKey(row, e.pos)
				if !ok {
					continue
				}
				rs := refs[setName(e.edge.RefGroup, e.edge.RefColumns)]
				if _, dup := rs.seen[k]; !dup {
					vals := make([]source.Value, len(e.pos))
					for i, p := range e.pos {
						vals[i] = cloneValue(row[p])
					}
					rs.seen[k] = vals
					rs.order = append(rs.order, k)
				}
			}
			if sink != nil {
				return sink.Row(ctx, t, row)
			}
			return nil
		}
		visit := func(line []byte) error {
			if in, err := isMember(line); err != nil || !in {
				return err
			}
			return take(line)
		}
		tc := TableCount{Table: t.Name, Via: st.Reason, Chunks: len(s.Blobs)}
		var probes []probe
		if st.Root {
			probes = append(probes, probe{cols: []string{p.Key}, keys: map[string]struct{}{id: {}}})
		}
		for _, e := range member {
			probes = append(probes, probe{cols: e.edge.Columns, keys: e.set})
		}
		var x rowindex.Lookup
		var sel []bool
		var links []chainLink
		why := ""
		if s.IsDelta() {
			links, why = ix.chooseChain(ctx, s, probes)
		} else {
			x, sel, why = ix.choose(ctx, s, t, probes)
		}
		chained := false
		if links != nil {
			tc.Read, chained = "index", true
			err = ix.readChain(ctx, s, links, isMember, take, &tc)
			var ce *chainIndexError
			if errors.As(err, &ce) {
				// Nothing was passed on: read the table whole instead.
				chained, why, scanned, err = false, ce.why, 0, nil
				tc.Chunks = len(s.Blobs)
			} else if err != nil {
				err = fmt.Errorf("table %s: %w", t.Name, err)
			}
		}
		switch {
		case chained || err != nil:
			// Read through the chain's indexes, or failed.
		case x == nil:
			tc.Read, tc.ReadReason, tc.ChunksRead = "full", why, len(s.Blobs)
			rd := ix.reader(ctx, src, s.Blobs, s)
			err = eachLine(rd, visit)
			rd.Close()
			if err == nil {
				err = ctx.Err()
			}
			if err == nil && scanned != t.Rows {
				err = fmt.Errorf("table %s: stream has %d rows, manifest says %d: %w", t.Name, scanned, t.Rows, repo.ErrCorrupt)
			}
		default:
			tc.Read = "index"
			err = eachRun(sel, func(a, b int) error {
				tc.ChunksRead += b - a + 1
				rd := ix.reader(ctx, src, s.Blobs[a:b+1], s)
				defer rd.Close()
				if err := x.ReadRun(rd, a, b, visit); err != nil {
					if errors.Is(err, rowindex.ErrBadIndex) {
						return fmt.Errorf("table %s: the row index does not fit the stream: %w: %w", t.Name, err, repo.ErrCorrupt)
					}
					return err
				}
				return ctx.Err()
			})
		}
		if err != nil {
			return nil, err
		}
		if sink != nil {
			if err := sink.EndTable(ctx, t, n); err != nil {
				return nil, err
			}
		}
		if st.Root && n == 0 {
			return nil, ErrNotFound
		}
		tc.Rows = n
		res.Tables = append(res.Tables, tc)
		res.Rows += n
		res.ScannedRows += scanned
	}
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		rs := refs[k]
		in := keys[k] // nil when the group is not a member
		sr := SharedRef{Table: rs.group, Columns: rs.cols}
		for _, kk := range rs.order {
			if _, ok := in[kk]; ok {
				continue
			}
			sr.Keys = append(sr.Keys, rs.seen[kk])
			sr.Display = append(sr.Display, displayTuple(rs.cols, rs.seen[kk]))
		}
		if len(sr.Keys) > 0 {
			res.Shared = append(res.Shared, sr)
		}
	}
	return res, nil
}

func setName(group string, cols []string) string {
	return group + "\x00" + strings.Join(cols, "\x00")
}

// maxLine bounds one row line (kluis-row-v1's own bound).
const maxLine = source.MaxRowLine

// eachLine calls fn with every LF-terminated line of r, without its LF.
func eachLine(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte
	for {
		part, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, part...)
			if len(long) > maxLine {
				return fmt.Errorf("row longer than %d bytes: %w", maxLine, repo.ErrCorrupt)
			}
			continue
		}
		if err == io.EOF {
			if len(part)+len(long) > 0 {
				return fmt.Errorf("last row has no line feed: %w", repo.ErrCorrupt)
			}
			return nil
		}
		if err != nil {
			return err
		}
		line := part[:len(part)-1]
		if long != nil {
			long = append(long, line...)
			line, long = long, nil
		}
		if err := fn(line); err != nil {
			return err
		}
	}
}

func cloneValue(v source.Value) source.Value {
	if v.Bytes != nil {
		v.Bytes = append([]byte{}, v.Bytes...)
	}
	return v
}

func displayTuple(cols []string, vals []source.Value) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c + "=" + displayValue(vals[i])
	}
	return strings.Join(parts, ",")
}

func displayValue(v source.Value) string {
	switch v.Kind {
	case source.KindNull:
		return "NULL"
	case source.KindInt:
		return strconv.FormatInt(v.Int, 10)
	case source.KindFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case source.KindBlob:
		return fmt.Sprintf("x'%x'", v.Bytes)
	}
	return strconv.Quote(string(v.Bytes))
}
