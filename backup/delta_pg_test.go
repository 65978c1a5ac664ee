package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/postgres"
)

// deltaWorld is a tenant repository at two local locations whose
// directories the test can damage.
type deltaWorld struct {
	mk    repo.MasterKey
	names []string
	dirs  []string
	r     *repo.Repo
}

func newDeltaWorld(t *testing.T, tenant string) *deltaWorld {
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	w := &deltaWorld{mk: mk, names: []string{"amsterdam", "groningen"}, dirs: []string{t.TempDir(), t.TempDir()}}
	w.r, _, err = repo.Init(testCtx(t), tenant, w.locs(-1), repo.Options{Master: mk, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// locs returns both locations, or only location i.
func (w *deltaWorld) locs(i int) []repo.Location {
	var out []repo.Location
	for j := range w.names {
		if i < 0 || i == j {
			out = append(out, local.New(w.names[j], w.dirs[j]))
		}
	}
	return out
}

func (w *deltaWorld) open(t *testing.T, i int) *repo.Repo {
	r, err := repo.Open(testCtx(t), w.r.Tenant(), w.locs(i), repo.Options{Master: w.mk})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tableRows returns every user table's rows as text, sorted.
func tableRows(ctx context.Context, t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	out := map[string][]string{}
	for _, n := range names {
		rs, err := db.QueryContext(ctx, `SELECT t::text FROM `+pgx.Identifier{n}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		vals := []string{}
		for rs.Next() {
			var v string
			rs.Scan(&v)
			vals = append(vals, v)
		}
		rs.Close()
		sort.Strings(vals)
		out[n] = vals
	}
	return out
}

func sameRows(a, b map[string][]string) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d tables, want %d", len(b), len(a))
	}
	for n, ra := range a {
		rb, ok := b[n]
		if !ok {
			return "table " + n + " missing"
		}
		if strings.Join(ra, "\n") != strings.Join(rb, "\n") {
			return fmt.Sprintf("table %s: %d rows differ from the %d expected", n, len(rb), len(ra))
		}
	}
	return ""
}

// TestRowDeltaProperty runs random nights of inserts, updates, deletes,
// primary-key changes, added and dropped columns, new and dropped tables,
// with forgets and prunes between them, and then restores every snapshot
// left from each location alone: every table's fingerprint (restore fails
// otherwise) and every row must match what the database held at that
// backup. Tables are stored as row deltas (asserted: chains of several
// links whose parents were forgotten and pruned), bounded by
// DeltaMaxSteps.
func TestRowDeltaProperty(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	srcDSN := srv.CreateDB(t, "delta_src")
	db := openDB(t, srcDSN)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE ints (id bigint PRIMARY KEY, v text, n integer)`)
	exec(`CREATE TABLE pair (a integer, b text, v text, PRIMARY KEY (a, b))`)
	exec(`CREATE TABLE uuids (id uuid PRIMARY KEY, v bytea)`)
	exec(`CREATE TABLE words (w text PRIMARY KEY, v text)`) // text key: byte order may differ from the collation's
	exec(`CREATE TABLE nopk (v text, n integer)`)
	seed := uint64(11)
	if s := os.Getenv("KLUIS_DELTA_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	word := func() string {
		const letters = "aAbBzZ-_ é"
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(string([]rune(letters)[rng.IntN(10)]))
		}
		return b.String()
	}
	nextID := int64(1)
	insert := func(n int) {
		for range n {
			exec(`INSERT INTO ints VALUES ($1, $2, $3)`, nextID*7-300, fmt.Sprintf("row\t%d\n\\", rng.IntN(1000)), rng.IntN(100))
			exec(`INSERT INTO pair VALUES ($1, $2, 'p') ON CONFLICT DO NOTHING`, rng.IntN(200)-100, word())
			exec(`INSERT INTO uuids VALUES (gen_random_uuid(), $1)`, []byte(word()))
			exec(`INSERT INTO words VALUES ($1, 'w') ON CONFLICT DO NOTHING`, word()+fmt.Sprint(rng.IntN(50)))
			exec(`INSERT INTO nopk VALUES ($1, $2)`, word(), rng.IntN(9))
			nextID++
		}
	}
	insert(300)
	newTables := 0
	hasExtra := false

	w := newDeltaWorld(t, "praktijk-delta")
	type night struct {
		id   string
		rows map[string][]string
	}
	var kept []night
	forgotten := map[string]bool{}
	const nights = 12
	for n := 0; n < nights; n++ {
		if n > 0 { // a working day
			insert(rng.IntN(30))
			exec(`UPDATE ints SET v = v || 'u' WHERE id IN (SELECT id FROM ints ORDER BY random() LIMIT 15)`)
			exec(`DELETE FROM ints WHERE id IN (SELECT id FROM ints ORDER BY random() LIMIT 5)`)
			exec(`UPDATE ints SET id = id + 1000000 WHERE id IN (SELECT id FROM ints ORDER BY random() LIMIT 3)`) // key changes
			exec(`UPDATE pair SET v = v || 'q' WHERE (a, b) IN (SELECT a, b FROM pair ORDER BY random() LIMIT 10)`)
			exec(`UPDATE pair SET a = -a - 1000 WHERE (a, b) IN (SELECT a, b FROM pair WHERE a >= 0 ORDER BY random() LIMIT 2)`)
			exec(`DELETE FROM uuids WHERE id IN (SELECT id FROM uuids ORDER BY random() LIMIT 4)`)
			exec(`UPDATE uuids SET v = v || '\x00ff'::bytea WHERE id IN (SELECT id FROM uuids ORDER BY random() LIMIT 6)`)
			exec(`UPDATE words SET v = v || 'x' WHERE w IN (SELECT w FROM words ORDER BY random() LIMIT 6)`)
			exec(`DELETE FROM nopk WHERE ctid IN (SELECT ctid FROM nopk ORDER BY random() LIMIT 3)`)
			switch rng.IntN(5) {
			case 0:
				if hasExtra {
					exec(`ALTER TABLE ints DROP COLUMN extra`)
				} else {
					exec(`ALTER TABLE ints ADD COLUMN extra text DEFAULT 'x'`)
				}
				hasExtra = !hasExtra
			case 1:
				newTables++
				exec(fmt.Sprintf(`CREATE TABLE new_%d (id integer PRIMARY KEY, v text)`, newTables))
				exec(fmt.Sprintf(`INSERT INTO new_%d SELECT g, 'n' || g FROM generate_series(1, 50) g`, newTables))
			case 2:
				if newTables > 0 {
					exec(fmt.Sprintf(`DROP TABLE IF EXISTS new_%d`, 1+rng.IntN(newTables)))
				}
			}
		}
		res, err := backup.Database(ctx, w.r, postgres.New(srcDSN, w.r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{DeltaMaxSteps: 4})
		if err != nil {
			t.Fatalf("night %d: %v", n, err)
		}
		kept = append(kept, night{id: res.Snapshot, rows: tableRows(ctx, t, db)})
		t.Logf("night %d: snapshot %.8s stored %d bytes of %d read", n, res.Snapshot, res.Stats.Stored, res.Stats.Read)
		// forget the night before last (the parent of the parent of the
		// next delta) now and then, and something old at random
		if n >= 2 && rng.IntN(3) > 0 {
			i := len(kept) - 2
			if rng.IntN(2) == 0 {
				i = rng.IntN(len(kept) - 1)
			}
			h, _ := repo.ParseHash(kept[i].id)
			if _, err := w.r.Forget(ctx, []repo.Hash{h}); err != nil {
				t.Fatal(err)
			}
			forgotten[kept[i].id] = true
			kept = append(kept[:i], kept[i+1:]...)
			if _, err := w.r.Prune(ctx, repo.PruneOptions{}); err != nil {
				t.Fatalf("prune: %v", err)
			}
		}
	}

	// Deltas were really used, in chains that outlive their parents.
	deltas, deepest, orphaned := 0, 0, 0
	for _, k := range kept {
		s, err := w.r.FindSnapshot(ctx, k.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range s.Manifest.Streams {
			if !st.IsDelta() {
				continue
			}
			deltas++
			deepest = max(deepest, len(st.Keyed.Chain))
			if len(st.Keyed.Chain) > 4 {
				t.Errorf("snapshot %.8s %s: chain of %d links, more than DeltaMaxSteps", k.id, st.Name, len(st.Keyed.Chain))
			}
			for _, l := range st.Keyed.Chain {
				if forgotten[l.Snapshot] {
					orphaned++
				}
			}
		}
	}
	t.Logf("%d snapshots kept, %d delta streams, deepest chain %d links, %d links to forgotten snapshots", len(kept), deltas, deepest, orphaned)
	if deltas == 0 || deepest < 2 || orphaned == 0 {
		t.Fatalf("the property needs delta chains of 2+ links built on forgotten snapshots: %d deltas, deepest %d, %d orphaned links", deltas, deepest, orphaned)
	}
	if checks, err := w.r.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil {
		t.Fatal(err)
	} else {
		for _, c := range checks {
			if len(c.Errors) > 0 {
				t.Fatalf("check --read-data %s: %v", c.Location, c.Errors)
			}
		}
	}

	// Every snapshot from each location alone.
	for li := range w.names {
		r := w.open(t, li)
		for _, k := range kept {
			restoreAndCompare(ctx, t, srv, r, k.id, k.rows)
		}
	}
}

func restoreAndCompare(ctx context.Context, t *testing.T, srv *pgtest.Server, r *repo.Repo, id string, want map[string][]string) {
	t.Helper()
	restoreAndCompareParallel(ctx, t, srv, r, id, want, 2)
}

// restoreAndCompareParallel restores snapshot id, loading parallel tables
// at once, and compares every row with want.
func restoreAndCompareParallel(ctx context.Context, t *testing.T, srv *pgtest.Server, r *repo.Repo, id string, want map[string][]string, parallel int) {
	t.Helper()
	snap, err := r.FindSnapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dst := srv.CreateDB(t, srv.UniqueName("delta_dst"))
	target, err := postgres.NewTarget(ctx, dst, r.FingerprintKey(), postgres.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.ToDatabase(ctx, r, snap, target, restore.DBOptions{Parallel: parallel})
	target.Close()
	if err != nil {
		t.Fatalf("restore %.8s from %d location(s): %v", id, len(r.Locations()), err)
	}
	rdb := openDB(t, dst)
	if d := sameRows(want, tableRows(ctx, t, rdb)); d != "" {
		t.Fatalf("restore %.8s from %d location(s): %s", id, len(r.Locations()), d)
	}
	rdb.Close()
	srv.DropDB(t, dst)
}

// TestRowDeltaDamagedBase damages the pack holding a delta's base at one
// location, then at both: check names the snapshot, the table and the
// snapshot that wrote the base; a restore from the damaged location alone
// fails naming them, one with the good copy restores exactly; and with the
// base lost everywhere the next backup stores the table whole again.
func TestRowDeltaDamagedBase(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	srcDSN := srv.CreateDB(t, "delta_damage")
	db := openDB(t, srcDSN)
	for _, q := range []string{
		`CREATE TABLE clients (id integer PRIMARY KEY, name text)`,
		`INSERT INTO clients SELECT g, md5(g::text) || md5((g * 3)::text) || g FROM generate_series(1, 60000) g`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w := newDeltaWorld(t, "praktijk-damage")
	eng := func() *postgres.Engine { return postgres.New(srcDSN, w.r.FingerprintKey(), postgres.Options{}) }
	first, err := backup.Database(ctx, w.r, eng(), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE clients SET name = 'changed' WHERE id % 1000 = 0`); err != nil {
		t.Fatal(err)
	}
	second, err := backup.Database(ctx, w.r, eng(), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := tableRows(ctx, t, db)
	snap, err := w.r.FindSnapshot(ctx, second.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := snap.Manifest.Stream(backup.TableStream("public.clients"))
	if !st.IsDelta() || st.Keyed.Chain[0].Snapshot != first.Snapshot {
		t.Fatalf("second night's clients is not a delta on the first: %+v", st.Keyed)
	}
	if second.Stats.Stored*5 > first.Stats.Stored {
		t.Errorf("the delta night stored %d bytes, the first %d", second.Stats.Stored, first.Stats.Stored)
	}
	idx, err := w.r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a pack of the base that holds no schema blob (the damage should
	// hit the table, not the whole snapshot)
	schemaPacks := map[repo.Hash]bool{}
	for _, s := range snap.Manifest.Streams {
		if s.Name == backup.TableStream("public.clients") {
			continue
		}
		for _, id := range s.AllBlobs() {
			if b, ok := idx.Lookup(id); ok {
				schemaPacks[b.Pack] = true
			}
		}
	}
	for _, id := range st.Blobs {
		if b, ok := idx.Lookup(id); ok {
			schemaPacks[b.Pack] = true
		}
	}
	var bl repo.BlobLocation
	found := false
	for _, id := range st.Keyed.Chain[0].Blobs {
		if b, ok := idx.Lookup(id); ok && !schemaPacks[b.Pack] {
			bl, found = b, true
			break
		}
	}
	if !found {
		t.Fatal("no pack holds only base blobs")
	}
	packPath := func(i int) string {
		h := bl.Pack.String()
		return filepath.Join(w.dirs[i], w.r.Tenant(), "data", h[:2], h)
	}
	if err := os.Remove(packPath(0)); err != nil {
		t.Fatal(err)
	}
	checks, err := w.r.Check(ctx, repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, c := range checks {
		for _, e := range c.Errors {
			t.Logf("check %s: %s", c.Location, e)
			if c.Location == "amsterdam" && strings.Contains(e, second.Snapshot[:8]) && strings.Contains(e, "table/public.clients") && strings.Contains(e, "delta base written by snapshot "+first.Snapshot[:8]) {
				named = true
			}
		}
	}
	if !named {
		t.Errorf("check did not name the snapshot, table and base of the missing base")
	}
	// amsterdam alone cannot restore, and says what is missing
	ra := w.open(t, 0)
	sa, err := ra.FindSnapshot(ctx, second.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	dst := srv.CreateDB(t, "delta_damage_a")
	target, err := postgres.NewTarget(ctx, dst, ra.FingerprintKey(), postgres.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.ToDatabase(ctx, ra, sa, target, restore.DBOptions{})
	target.Close()
	if err == nil || !strings.Contains(err.Error(), "table/public.clients") || !strings.Contains(err.Error(), "delta base written by snapshot "+first.Snapshot[:8]) {
		t.Fatalf("restore from the damaged location: %v", err)
	}
	t.Logf("restore from the damaged location: %v", err)
	// both locations: the good copy serves
	restoreAndCompare(ctx, t, srv, w.open(t, -1), second.Snapshot, want)

	// Corrupt the other copy too: the next night cannot read its parent
	// and stores the table whole; that snapshot restores exactly.
	data, err := os.ReadFile(packPath(1))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x40
	if err := os.WriteFile(packPath(1), data, 0o600); err != nil {
		t.Fatal(err)
	}
	checks, err = w.r.Check(ctx, repo.CheckOptions{ReadData: true, Locations: []string{"groningen"}})
	if err != nil {
		t.Fatal(err)
	}
	named = false
	for _, c := range checks {
		for _, e := range c.Errors {
			t.Logf("check --read-data %s: %s", c.Location, e)
			if strings.Contains(e, "needed by") && strings.Contains(e, "snapshot "+second.Snapshot[:8]+" stream table/public.clients (delta base written by snapshot "+first.Snapshot[:8]+")") {
				named = true
			}
		}
	}
	if !named {
		t.Errorf("check --read-data did not name the snapshot, table and base of the damaged base")
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM clients WHERE id % 7 = 0`); err != nil {
		t.Fatal(err)
	}
	// A repository opened now: w.r's locations may still hold the removed
	// pack open (repo/local keeps a read handle for up to a second), and
	// a later command would not.
	r3 := w.open(t, -1)
	third, err := backup.Database(ctx, r3, eng(), repo.BackupOptions{})
	if err != nil {
		t.Fatalf("backup over a lost base: %v", err)
	}
	s3, err := r3.FindSnapshot(ctx, third.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if st3, _ := s3.Manifest.Stream(backup.TableStream("public.clients")); st3.IsDelta() {
		t.Fatalf("third night stored a delta over a lost base")
	}
	restoreAndCompare(ctx, t, srv, w.open(t, -1), third.Snapshot, tableRows(ctx, t, db))
}

// TestRowDeltaOrderFallback: a key whose database order is not the order
// kluis compares it in (numeric compares as bytes: "10" < "9") is caught.
// While the keys happen to agree (1 to 9) the table is key-ordered; the
// night a 10 appears the delta is given up for a whole table, which has no
// key order, and every snapshot restores exactly.
func TestRowDeltaOrderFallback(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	srcDSN := srv.CreateDB(t, "delta_order")
	db := openDB(t, srcDSN)
	for _, q := range []string{
		`CREATE TABLE amounts (id numeric PRIMARY KEY, v text)`,
		`INSERT INTO amounts SELECT g, 'v' || g FROM generate_series(1, 9) g`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w := newDeltaWorld(t, "praktijk-order")
	stream := func(id string) *repo.Stream {
		t.Helper()
		s, err := w.r.FindSnapshot(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := s.Manifest.Stream(backup.TableStream("public.amounts"))
		if !ok {
			t.Fatal("no stream")
		}
		return st
	}
	var ids []string
	var wants []map[string][]string
	for n, q := range []string{"", `UPDATE amounts SET v = 'x' WHERE id = 3`, `INSERT INTO amounts VALUES (10, 'ten')`, `UPDATE amounts SET v = 'y' WHERE id = 4`} {
		if q != "" {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		res, err := backup.Database(ctx, w.r, postgres.New(srcDSN, w.r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
		if err != nil {
			t.Fatalf("night %d: %v", n, err)
		}
		ids = append(ids, res.Snapshot)
		wants = append(wants, tableRows(ctx, t, db))
	}
	if st := stream(ids[0]); st.Keyed == nil || st.IsDelta() {
		t.Errorf("night 0: want a key-ordered whole table, got %+v", st.Keyed)
	}
	if st := stream(ids[1]); !st.IsDelta() {
		t.Errorf("night 1: want a delta")
	}
	if st := stream(ids[2]); st.Keyed != nil {
		t.Errorf("night 2 (keys out of byte order): want a whole table without key order, got %+v", st.Keyed)
	}
	if st := stream(ids[3]); st.Keyed != nil {
		t.Errorf("night 3: want a whole table again, got %+v", st.Keyed)
	}
	for i, id := range ids {
		restoreAndCompare(ctx, t, srv, w.r, id, wants[i])
	}
}
