package dossier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
)

// fakePG is an in-memory PostgreSQL-like engine (pg-copy-text streams in
// primary-key order), so that a property test can run hundreds of nights
// of random changes in seconds. Its schema is hostile on purpose: a text
// primary key holding escapes, tabs and keys longer than a chunk, a
// composite key, nullable references, and a reference through a text
// column.
type fakePG struct {
	tables []source.Table
	rows   map[string]map[string][]*string // table -> key form -> fields (nil: NULL)
	keys   map[string][]int
	fp     []byte
}

func (f *fakePG) Name() string { return "postgres" }

func (f *fakePG) Snapshot(context.Context) (source.Snapshot, error) { return fakeSnap{f}, nil }

type fakeSnap struct{ f *fakePG }

func (s fakeSnap) ServerVersion() string                          { return "fake" }
func (s fakeSnap) Tables() []source.Table                         { return s.f.tables }
func (s fakeSnap) Schema(_ context.Context, _, _ io.Writer) error { return nil }
func (s fakeSnap) Close() error                                   { return nil }

func (s fakeSnap) WriteTable(_ context.Context, t source.Table, w io.Writer) (source.TableResult, error) {
	fp := source.NewFingerprinter(s.f.fp)
	for _, line := range s.f.lines(t) {
		fp.AddRow(line)
		if _, err := w.Write(append(line, '\n')); err != nil {
			return source.TableResult{}, err
		}
	}
	return fp.Result(), nil
}

// copyField is v in COPY text format.
func copyField(v *string) string {
	if v == nil {
		return `\N`
	}
	return strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(*v)
}

// lines returns t's rows as COPY lines ascending by the primary key: int
// fields by value, text fields by their COPY bytes (as backup.RowKey
// orders them).
func (f *fakePG) lines(t source.Table) [][]byte {
	type row struct {
		line   []byte
		fields []string
	}
	var rows []row
	for _, vals := range f.rows[t.Name] {
		fields := make([]string, len(vals))
		for i, v := range vals {
			fields[i] = copyField(v)
		}
		rows = append(rows, row{[]byte(strings.Join(fields, "\t")), fields})
	}
	key, _ := backup.RowKey(t)
	slices.SortFunc(rows, func(a, b row) int {
		for i, p := range key.Fields {
			if key.Order[i] == "int" {
				x, _ := strconv.ParseInt(a.fields[p], 10, 64)
				y, _ := strconv.ParseInt(b.fields[p], 10, 64)
				if x != y {
					return cmpInt(x, y)
				}
				continue
			}
			if c := strings.Compare(a.fields[p], b.fields[p]); c != 0 {
				return c
			}
		}
		return 0
	})
	out := make([][]byte, len(rows))
	for i, r := range rows {
		out[i] = r.line
	}
	return out
}

func cmpInt(x, y int64) int {
	if x < y {
		return -1
	}
	return 1
}

func sp(s string) *string { return &s }

func newFakePG(fpKey []byte) *fakePG {
	col := func(name, typ string) source.Column { return source.Column{Name: name, Type: typ, Nullable: true} }
	f := &fakePG{fp: fpKey, rows: map[string]map[string][]*string{}, keys: map[string][]int{}}
	f.tables = []source.Table{
		{Name: "public.clients", Schema: "public", Table: "clients", Encoding: "pg-copy-text",
			Columns: []source.Column{col("id", "bigint"), col("name", "text")}, PrimaryKey: []string{"id"}},
		{Name: "public.visits", Schema: "public", Table: "visits", Encoding: "pg-copy-text",
			Columns:     []source.Column{col("id", "integer"), col("client_id", "bigint"), col("note", "text")},
			PrimaryKey:  []string{"id"},
			ForeignKeys: []source.ForeignKey{{Columns: []string{"client_id"}, RefTable: "public.clients", RefColumns: []string{"id"}}}},
		{Name: "public.notes", Schema: "public", Table: "notes", Encoding: "pg-copy-text",
			Columns:     []source.Column{col("code", "text"), col("visit_id", "integer"), col("body", "text")},
			PrimaryKey:  []string{"code"},
			ForeignKeys: []source.ForeignKey{{Columns: []string{"visit_id"}, RefTable: "public.visits", RefColumns: []string{"id"}}}},
		{Name: "public.links", Schema: "public", Table: "links", Encoding: "pg-copy-text",
			Columns:     []source.Column{col("a", "smallint"), col("b", "text"), col("client_id", "bigint"), col("note_code", "text")},
			PrimaryKey:  []string{"a", "b"},
			ForeignKeys: []source.ForeignKey{{Columns: []string{"client_id"}, RefTable: "public.clients", RefColumns: []string{"id"}}, {Columns: []string{"note_code"}, RefTable: "public.notes", RefColumns: []string{"code"}}}},
	}
	f.keys = map[string][]int{"public.clients": {0}, "public.visits": {0}, "public.notes": {0}, "public.links": {0, 1}}
	for _, t := range f.tables {
		f.rows[t.Name] = map[string][]*string{}
	}
	return f
}

func (f *fakePG) put(table string, vals ...*string) {
	var k []string
	for _, p := range f.keys[table] {
		k = append(k, *vals[p])
	}
	f.rows[table][strings.Join(k, "\x00")] = vals
}

// pick returns a random row key of table, or "".
func (f *fakePG) pick(rng *rand.Rand, table string) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range f.rows[table] {
			if !yield(k) {
				return
			}
		}
	})
	if len(keys) == 0 {
		return ""
	}
	return keys[rng.IntN(len(keys))]
}

// text returns hostile text: empty, escapes, tabs, newlines, backslashes,
// non-ASCII, sometimes longer than a chunk.
func text(rng *rand.Rand) string {
	parts := []string{"", "a", "\t", "\\", "\n", "\r", `\N`, "é", "z", "0", "-", " "}
	var b strings.Builder
	n := rng.IntN(12)
	if rng.IntN(25) == 0 {
		n = 3000 + rng.IntN(6000)
	}
	for range n {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	return b.String()
}

// ref returns a random existing key of table (as a reference), or NULL.
func (f *fakePG) ref(rng *rand.Rand, table string, field int) *string {
	if rng.IntN(8) == 0 {
		return nil
	}
	k := f.pick(rng, table)
	if k == "" {
		return nil
	}
	return f.rows[table][k][field]
}

// day applies n random changes: inserts, updates that move rows between
// dossiers (or to NULL), deletes, primary-key changes (delete + insert).
func (f *fakePG) day(rng *rand.Rand, n int, next *int) {
	for range n {
		*next++
		id := strconv.Itoa(*next)
		switch op := rng.IntN(10); {
		case op == 0:
			f.put("public.clients", sp(id), sp(text(rng)))
		case op <= 3:
			if k := f.pick(rng, "public.visits"); k != "" && rng.IntN(2) == 0 {
				v := f.rows["public.visits"][k]
				f.put("public.visits", v[0], f.ref(rng, "public.clients", 0), sp(text(rng)))
			} else {
				f.put("public.visits", sp(id), f.ref(rng, "public.clients", 0), sp(text(rng)))
			}
		case op <= 5:
			if k := f.pick(rng, "public.notes"); k != "" && rng.IntN(2) == 0 {
				v := f.rows["public.notes"][k]
				delete(f.rows["public.notes"], k)
				if rng.IntN(2) == 0 { // the key changes
					v[0] = sp(text(rng) + id)
				}
				f.put("public.notes", v[0], f.ref(rng, "public.visits", 0), v[2])
			} else {
				f.put("public.notes", sp(text(rng)+id), f.ref(rng, "public.visits", 0), sp(text(rng)))
			}
		case op <= 7:
			a := strconv.Itoa(rng.IntN(200) - 100)
			f.put("public.links", sp(a), sp(text(rng)), f.ref(rng, "public.clients", 0), f.ref(rng, "public.notes", 0))
		default:
			table := f.tables[rng.IntN(len(f.tables))].Name
			if k := f.pick(rng, table); k != "" {
				delete(f.rows[table], k)
			}
		}
	}
}

// TestChainIndexEqualsMerge: over random sequences of nights (inserts,
// updates moving rows between dossiers, deletes, key changes, NULL and
// text references with escapes and keys longer than a chunk), every
// dossier read through the row indexes of a delta chain equals the one
// read from the merged tables, and the delta tables are read through
// their index (not by falling back).
func TestChainIndexEqualsMerge(t *testing.T) {
	ctx := testCtx(t)
	seeds, nights := 6, 10
	if testing.Short() {
		seeds, nights = 2, 8
	}
	for seed := range uint64(seeds) {
		c := newChainRig(t, fmt.Sprintf("chain%d", seed), seed, 40, 800)
		r, f, rng := c.r, c.f, c.rng
		deltaIndexed := 0
		for night := range nights {
			if night > 0 {
				f.day(rng, 10+rng.IntN(60), &c.next)
			}
			snap, plan := indexedSnapshot(t, r, f, "postgres", practiceProfile())
			for range 6 {
				id := f.pick(rng, "public.clients")
				if rng.IntN(6) == 0 {
					id = strconv.Itoa(c.next + 1000) // no such client
				}
				sameDossier(t, r, snap, plan, id)
				res, err := Extract(ctx, r, snap.Manifest, plan, id, nil)
				if err != nil {
					continue
				}
				for _, tc := range res.Tables {
					if s, _ := snap.Manifest.Stream(backup.TableStream(tc.Table)); s.IsDelta() && tc.Read == "index" {
						deltaIndexed++
					}
				}
			}
		}
		if deltaIndexed == 0 {
			t.Fatalf("seed %d: no delta table was read through its index", seed)
		}
	}
}

// chainRig is a fake practice with its repository: clients, a first day
// of rows, then nights of changes.
type chainRig struct {
	r    *repo.Repo
	f    *fakePG
	rng  *rand.Rand
	next int
}

func newChainRig(t *testing.T, tenant string, seed uint64, clients, rows int) *chainRig {
	c := &chainRig{r: newRepoChunks(t, tenant, smallChunks), rng: rand.New(rand.NewPCG(seed, seed))}
	c.f = newFakePG(c.r.FingerprintKey())
	for range clients {
		c.next++
		c.f.put("public.clients", sp(strconv.Itoa(c.next)), sp(text(c.rng)))
	}
	c.f.day(c.rng, rows, &c.next)
	return c
}

// nights backs up n nights, with changes between them; it returns the
// newest snapshot (of the practice as it is now) and its plan.
func (c *chainRig) nights(t *testing.T, n, changes int) (repo.SnapshotInfo, *Plan) {
	var snap repo.SnapshotInfo
	var plan *Plan
	for i := range n {
		if i > 0 {
			c.f.day(c.rng, changes, &c.next)
		}
		snap, plan = indexedSnapshot(t, c.r, c.f, "postgres", practiceProfile())
	}
	return snap, plan
}

// TestChainDamagedIndexNeverMissesRows: a delta chain whose links' row
// indexes are damaged, swapped or emptied gives the merged table's
// dossier (read whole, the reason given) or fails as corrupt — never a
// dossier with rows missing. Tables not yet a delta keep their own
// index.
func TestChainDamagedIndexNeverMissesRows(t *testing.T) {
	ctx := testCtx(t)
	c := newChainRig(t, "chaindamage", 5, 30, 600)
	r := c.r
	snap, plan := c.nights(t, 4, 40)
	// The index of a delta link, served for every index.
	var delta *repo.Stream
	for i := range snap.Manifest.Streams {
		if s := &snap.Manifest.Streams[i]; s.IsDelta() && s.RowIndex != nil {
			delta = s
		}
	}
	if delta == nil {
		t.Fatal("no indexed delta in the snapshot")
	}
	deltaIndex, err := r.RowIndex(ctx, delta)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func([]byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)/2] },
		"flipped bit":   func(b []byte) []byte { b[len(b)/3] ^= 0x10; return b },
		"another index": func([]byte) []byte { return deltaIndex },
		"empty":         func([]byte) []byte { return nil },
	}
	for _, id := range []string{"1", "7", "22"} {
		var want collector
		if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, id, &want); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			t.Fatal(err)
		}
		for name, fn := range cases {
			var got collector
			res, err := Extract(ctx, damaged{r, fn}, snap.Manifest, plan, id, &got)
			if err != nil {
				if !errors.Is(err, repo.ErrCorrupt) {
					t.Fatalf("%s: failed, but not as corrupt: %v", name, err)
				}
				continue
			}
			if !reflect.DeepEqual(got.sorted(), want.sorted()) {
				t.Fatalf("%s, client %s: a damaged index gave a different dossier", name, id)
			}
			for _, tc := range res.Tables {
				s, _ := snap.Manifest.Stream(backup.TableStream(tc.Table))
				if s.IsDelta() && name != "another index" && tc.Read != "full" {
					t.Errorf("%s: delta %s read %s", name, tc.Table, tc.Read)
				}
			}
		}
	}
}

// TestChainWithoutLinkIndexReadsWhole: a delta whose chain was written
// before kluis indexed deltas (a link without row_index, as in an older
// repository) is read whole, merged, and says why.
func TestChainWithoutLinkIndexReadsWhole(t *testing.T) {
	ctx := testCtx(t)
	c := newChainRig(t, "chainold", 8, 20, 300)
	r := c.r
	snap, plan := c.nights(t, 2, 30)
	old := *snap.Manifest
	old.Streams = slices.Clone(old.Streams)
	for i, s := range old.Streams {
		if s.IsDelta() {
			k := *s.Keyed
			k.Chain = slices.Clone(k.Chain)
			k.Chain[0].RowIndex = nil
			old.Streams[i].Keyed = &k
		}
	}
	id := c.f.pick(c.rng, "public.clients")
	var want, got collector
	if _, err := Extract(ctx, fullScan{r}, &old, plan, id, &want); err != nil {
		t.Fatal(err)
	}
	res, err := Extract(ctx, r, &old, plan, id, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.sorted(), want.sorted()) {
		t.Fatal("dossier differs")
	}
	seen := false
	for _, tc := range res.Tables {
		s, _ := old.Stream(backup.TableStream(tc.Table))
		if s.IsDelta() {
			seen = true
			if tc.Read != "full" || !strings.Contains(tc.ReadReason, "has no row index") {
				t.Errorf("%s read %s (%s)", tc.Table, tc.Read, tc.ReadReason)
			}
		}
	}
	if !seen {
		t.Fatal("no delta table in the dossier")
	}
}

// TestChainIndexSurvivesForgetAndPrune: with the snapshots that wrote a
// chain's base and earlier deltas forgotten and pruned, the newest
// snapshot's chain still has every link's row index (prune keeps what a
// manifest's links name, and check reads it), so its dossiers are still
// read through the index and equal the merged table's.
func TestChainIndexSurvivesForgetAndPrune(t *testing.T) {
	ctx := testCtx(t)
	c := newChainRig(t, "chainprune", 9, 25, 400)
	r := c.r
	snap, plan := c.nights(t, 4, 30)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var old []repo.Hash
	for _, s := range snaps {
		if s.ID != snap.ID {
			old = append(old, s.ID)
		}
	}
	if _, err := r.Forget(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	checks, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK() {
			t.Fatalf("check %s after prune: %v", c.Location, c.Errors)
		}
	}
	links := 0
	for _, s := range snap.Manifest.Streams {
		if s.IsDelta() {
			for _, l := range s.Keyed.Chain {
				if l.RowIndex == nil {
					t.Fatalf("%s: a link without its row index", s.Name)
				}
				links++
			}
		}
	}
	if links == 0 {
		t.Fatal("no delta chain in the newest snapshot")
	}
	for range 5 {
		sameDossier(t, r, snap, plan, c.f.pick(c.rng, "public.clients"))
	}
}

// TestChainPageLossNeverMissesRows: when pages of a chain's indexes stop
// being readable after the first k page reads (some before the dossier's
// rows are looked for, some while a later link is searched for the keys
// an older link held), the dossier is the merged table's, read whole with
// the reason given, or the command fails as corrupt — never one with rows
// missing.
func TestChainPageLossNeverMissesRows(t *testing.T) {
	ctx := testCtx(t)
	c := newChainRig(t, "chainpages", 6, 30, 600)
	r := c.r
	snap, plan := c.nights(t, 4, 40)
	fellBack := 0
	for _, id := range []string{"1", "9", "23"} {
		var want collector
		if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, id, &want); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			t.Fatal(err)
		}
		for k := range 12 {
			read := 0
			p := &pageServer{Repo: r, fn: func(_ *repo.RowIndexRef, _ int, b []byte, err error) ([]byte, error) {
				if read++; read > k {
					return nil, fmt.Errorf("page gone: %w", repo.ErrNotFound)
				}
				return b, err
			}}
			var got collector
			res, err := Extract(ctx, p, snap.Manifest, plan, id, &got)
			if err != nil {
				if !errors.Is(err, repo.ErrCorrupt) {
					t.Fatalf("k=%d: failed, but not as corrupt: %v", k, err)
				}
				continue
			}
			if !reflect.DeepEqual(got.sorted(), want.sorted()) {
				t.Fatalf("k=%d, client %s: lost pages gave a different dossier", k, id)
			}
			for _, tc := range res.Tables {
				if tc.Read == "full" && strings.Contains(tc.ReadReason, "page gone") {
					fellBack++
				}
			}
		}
	}
	if fellBack == 0 {
		t.Fatal("no table was read whole for a lost page")
	}
}
