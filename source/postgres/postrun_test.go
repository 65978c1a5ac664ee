package postgres

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// overlapTarget is a fresh target holding the given pre-data schema, and a
// connection to watch it with.
func overlapTarget(t *testing.T, pre string) (*Target, *pgx.Conn) {
	t.Helper()
	ctx := testContext(t)
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "overlap")
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	if err := tg.ApplySchema(ctx, strings.NewReader(pre)); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close(context.Background()) })
	return tg, watch
}

// intTable is public.<name> with one int column id.
func intTable(name string) source.Table {
	return source.Table{Name: "public." + name, Schema: "public", Table: name, Encoding: Encoding,
		Columns: []source.Column{{Name: "id", Type: "integer"}}}
}

// entry is one pg_dump post-data entry of the given type.
func entry(kind, sql string) string {
	return "\n--\n-- Name: x; Type: " + kind + "; Schema: public; Owner: -\n--\n\n" + sql + "\n"
}

const postPreamble = "SET statement_timeout = 0;\nSET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n"

func load(t *testing.T, tg *Target, p *postRun, name, rows string) {
	t.Helper()
	tb := intTable(name)
	if _, stale, err := tg.LoadAndFingerprint(testContext(t), tb, strings.NewReader(rows)); err != nil || stale {
		t.Fatalf("load %s: %v (stale %v)", name, err, stale)
	}
	if err := p.Loaded(tb); err != nil {
		t.Fatalf("loaded %s: %v", name, err)
	}
}

// exists reports whether the catalog holds the named object: an index
// (relation) or a constraint, trigger or rule (by name).
func exists(t *testing.T, watch *pgx.Conn, name string) bool {
	t.Helper()
	var n int
	err := watch.QueryRow(testContext(t), `SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relname = $1)
 + (SELECT count(*) FROM pg_catalog.pg_constraint WHERE conname = $1)
 + (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgname = $1)
 + (SELECT count(*) FROM pg_catalog.pg_rewrite WHERE rulename = $1)`, name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// An index, constraint or trigger starts once its tables are loaded,
// while others still load; a foreign key waits for both its tables; a rule (and everything after it) waits until every table is
// loaded.
func TestPostDataOverlapsTheLoads(t *testing.T) {
	tg, watch := overlapTarget(t, `
CREATE TABLE public.a (id int); CREATE TABLE public.b (id int); CREATE TABLE public.c (id int);
CREATE FUNCTION public.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;`)
	post := postPreamble +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);") +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.b ADD CONSTRAINT b_pkey PRIMARY KEY (id);") +
		entry("INDEX", "CREATE INDEX c_idx ON public.c USING btree (id);") +
		entry("FK CONSTRAINT", "ALTER TABLE ONLY public.b ADD CONSTRAINT b_fkey FOREIGN KEY (id) REFERENCES public.a(id);") +
		entry("TRIGGER", "CREATE TRIGGER c_trg BEFORE INSERT ON public.c FOR EACH ROW EXECUTE FUNCTION public.f();") +
		entry("RULE", "CREATE RULE a_rule AS ON UPDATE TO public.a DO INSTEAD NOTHING;") +
		entry("INDEX", "CREATE INDEX a_idx ON public.a USING btree (id);")
	ctx := testContext(t)
	p, err := tg.startPostData(ctx, strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("b"), intTable("c")})
	if err != nil {
		t.Fatal(err)
	}
	load(t, tg, p, "a", "1\n2\n")
	eventually(t, "a_pkey", func() bool { return exists(t, watch, "a_pkey") })
	load(t, tg, p, "c", "1\n")
	eventually(t, "c_idx and c_trg", func() bool { return exists(t, watch, "c_idx") && exists(t, watch, "c_trg") })
	if exists(t, watch, "b_pkey") || exists(t, watch, "b_fkey") {
		t.Fatal("an entry on public.b ran before b was loaded")
	}
	load(t, tg, p, "b", "1\n2\n")
	eventually(t, "b_fkey", func() bool { return exists(t, watch, "b_fkey") })
	time.Sleep(300 * time.Millisecond)
	if exists(t, watch, "a_rule") || exists(t, watch, "a_idx") {
		t.Fatal("the rule, or an entry after it, ran before every load was done")
	}
	stale, err := p.Finish()
	if err != nil || stale {
		t.Fatalf("finish: %v (stale %v)", err, stale)
	}
	for _, name := range []string{"a_pkey", "b_pkey", "c_idx", "b_fkey", "c_trg", "a_rule", "a_idx"} {
		if !exists(t, watch, name) {
			t.Errorf("%s missing", name)
		}
	}
}

// An entry that writes rows while tables still load — to a table already
// proven, or to one not loaded yet — makes the load-time proofs stale.
func TestPostDataOverlapWritingRowsIsStale(t *testing.T) {
	for _, into := range []string{"w", "c"} {
		t.Run(into, func(t *testing.T) {
			tg, watch := overlapTarget(t, `
CREATE TABLE public.a (id int); CREATE TABLE public.c (id int); CREATE TABLE public.w (id int);
CREATE FUNCTION public.note(x int) RETURNS boolean LANGUAGE sql VOLATILE AS
  $$ INSERT INTO public.`+into+` VALUES (x + 100); SELECT true $$;`)
			post := postPreamble +
				entry("CHECK CONSTRAINT", "ALTER TABLE public.a ADD CONSTRAINT a_note CHECK (public.note(id));")
			p, err := tg.startPostData(testContext(t), strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("c"), intTable("w")})
			if err != nil {
				t.Fatal(err)
			}
			load(t, tg, p, "w", "1\n")
			load(t, tg, p, "a", "1\n2\n")
			eventually(t, "a_note", func() bool { return exists(t, watch, "a_note") })
			load(t, tg, p, "c", "1\n")
			stale, err := p.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if !stale {
				t.Error("an entry wrote rows beside the loads, and the proofs were not reported stale")
			}
		})
	}
}

// An entry that fails stops the loads (Loaded returns its error) and
// fails the section.
func TestPostDataOverlapFailure(t *testing.T) {
	tg, _ := overlapTarget(t, "CREATE TABLE public.a (id int); CREATE TABLE public.b (id int);")
	post := postPreamble + entry("INDEX", "CREATE INDEX a_idx ON public.a USING btree (no_such_column);")
	p, err := tg.startPostData(testContext(t), strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.LoadAndFingerprint(testContext(t), intTable("a"), strings.NewReader("1\n")); err != nil {
		t.Fatal(err)
	}
	// The index may start, and fail, as soon as a's load commits: before
	// or after this Loaded.
	p.Loaded(intTable("a"))
	eventually(t, "the failure to reach the loads", func() bool { return p.Loaded(intTable("b")) != nil })
	stale, err := p.Finish()
	if err == nil || stale || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("finish: %v (stale %v), want the entry's error", err, stale)
	}
}

// Cancelling the restore stops an entry that is running.
func TestPostDataOverlapCancelled(t *testing.T) {
	tg, watch := overlapTarget(t, `CREATE TABLE public.a (id int); CREATE TABLE public.b (id int);
CREATE FUNCTION public.slow(x int) RETURNS boolean LANGUAGE sql VOLATILE AS $$ SELECT pg_catalog.pg_sleep(60) IS NULL $$;`)
	post := postPreamble + entry("CHECK CONSTRAINT", "ALTER TABLE public.a ADD CONSTRAINT a_slow CHECK (public.slow(id));")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	p, err := tg.startPostData(ctx, strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("b")})
	if err != nil {
		t.Fatal(err)
	}
	load(t, tg, p, "a", "1\n")
	eventually(t, "the entry to run", func() bool {
		var n int
		watch.QueryRow(testContext(t), "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE query LIKE '%a_slow%' AND state = 'active' AND pid <> pg_catalog.pg_backend_pid()").Scan(&n)
		return n > 0
	})
	cancel()
	t0 := time.Now()
	_, err = p.Finish()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("finish: %v, want context.Canceled", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("finish took %v after the cancel", d)
	}
}

// An entry whose code waits for a table a load holds gives way (rolls
// back, runs after the loads) instead of deadlocking with that load: here
// the entry on a reads b, which is loading, and b's load checks each row
// with a function that reads a, which the entry locks.
func TestPostDataOverlapGivesWayToLoads(t *testing.T) {
	tg, watch := overlapTarget(t, `
CREATE TABLE public.a (id int);
CREATE FUNCTION public.reads_a() RETURNS boolean LANGUAGE sql VOLATILE AS $$ SELECT count(*) >= 0 FROM public.a $$;
CREATE TABLE public.b (id int CHECK (public.reads_a()));
CREATE FUNCTION public.reads_b(x int) RETURNS boolean LANGUAGE sql VOLATILE AS $$ SELECT count(*) >= 0 FROM public.b $$;`)
	post := postPreamble + entry("CHECK CONSTRAINT", "ALTER TABLE public.a ADD CONSTRAINT a_reads_b CHECK (public.reads_b(id));")
	ctx := testContext(t)
	p, err := tg.startPostData(ctx, strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("b")})
	if err != nil {
		t.Fatal(err)
	}
	// b's load truncates b (its lock held) and waits for rows.
	pr, pw := io.Pipe()
	loaded := make(chan error, 1)
	go func() {
		_, _, err := tg.LoadAndFingerprint(ctx, intTable("b"), pr)
		loaded <- err
	}()
	eventually(t, "b's load to lock b", func() bool {
		var n int
		watch.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_locks WHERE relation = 'public.b'::regclass AND mode = 'AccessExclusiveLock' AND granted").Scan(&n)
		return n > 0
	})
	load(t, tg, p, "a", "1\n")
	// The entry locks a and waits for b (for overlapLockTimeout: it may
	// give way before this sees it); now b's rows need a.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var n int
		watch.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_locks WHERE relation = 'public.b'::regclass AND NOT granted").Scan(&n)
		if n > 0 {
			break
		}
	}
	if _, err := pw.Write([]byte("1\n2\n")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-loaded; err != nil {
		t.Fatalf("b's load: %v", err)
	}
	if err := p.Loaded(intTable("b")); err != nil {
		t.Fatalf("the entry failed: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if exists(t, watch, "a_reads_b") {
		t.Fatal("the entry that gave way ran again before the loads were done")
	}
	if stale, err := p.Finish(); err != nil || stale {
		t.Fatalf("finish: %v (stale %v)", err, stale)
	}
	if !exists(t, watch, "a_reads_b") {
		t.Error("the entry that gave way never ran")
	}
}

// An entry on a partition locks its whole tree: it waits until every
// partition is loaded, and runs beside entries on other tables.
func TestPostDataOverlapPartitionTree(t *testing.T) {
	tg, watch := overlapTarget(t, `
CREATE TABLE public.p (id int NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (10);
CREATE TABLE public.p2 PARTITION OF public.p FOR VALUES FROM (10) TO (20);
CREATE TABLE public.x (id int);`)
	post := postPreamble +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.p ADD CONSTRAINT p_pkey PRIMARY KEY (id);") +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.p1 ADD CONSTRAINT p1_pkey PRIMARY KEY (id);") +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.p2 ADD CONSTRAINT p2_pkey PRIMARY KEY (id);") +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.x ADD CONSTRAINT x_pkey PRIMARY KEY (id);") +
		entry("INDEX ATTACH", "ALTER INDEX public.p_pkey ATTACH PARTITION public.p1_pkey;") +
		entry("INDEX ATTACH", "ALTER INDEX public.p_pkey ATTACH PARTITION public.p2_pkey;")
	p, err := tg.startPostData(testContext(t), strings.NewReader(post), 2, []source.Table{intTable("p1"), intTable("p2"), intTable("x")})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range p.jobs {
		if j.serial {
			t.Errorf("entry runs alone: %s", j.sql)
		}
	}
	load(t, tg, p, "p1", "1\n")
	load(t, tg, p, "x", "1\n")
	eventually(t, "x_pkey", func() bool { return exists(t, watch, "x_pkey") })
	if exists(t, watch, "p_pkey") || exists(t, watch, "p1_pkey") {
		t.Fatal("an entry on the partition tree ran before p2 was loaded")
	}
	load(t, tg, p, "p2", "11\n")
	eventually(t, "p2_pkey attached", func() bool {
		var n int
		watch.QueryRow(testContext(t), "SELECT count(*) FROM pg_catalog.pg_inherits WHERE inhrelid = 'public.p2_pkey'::regclass").Scan(&n)
		return n > 0
	})
	if stale, err := p.Finish(); err != nil || stale {
		t.Fatalf("finish: %v (stale %v)", err, stale)
	}
}

// An index build starts as soon as its table's load committed (beside the
// read-back) and before the table's earlier primary key, but the key does
// not start beside it (it would only wait for the index build's lock).
func TestPostDataIndexBesideTheReadBack(t *testing.T) {
	tg, watch := overlapTarget(t, `CREATE TABLE public.a (id int NOT NULL); CREATE TABLE public.b (id int);
CREATE FUNCTION public.slow(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.3); RETURN x; END $$;`)
	post := postPreamble +
		entry("CONSTRAINT", "ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);") +
		entry("INDEX", "CREATE INDEX a_idx ON public.a USING btree (public.slow(id));")
	ctx := testContext(t)
	p, err := tg.startPostData(ctx, strings.NewReader(post), 2, []source.Table{intTable("a"), intTable("b")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.LoadTable(ctx, intTable("a"), strings.NewReader("1\n2\n3\n")); err != nil {
		t.Fatal(err)
	}
	tg.committed(intTable("a")) // as LoadAndFingerprint does before its read-back
	eventually(t, "a_idx to build", func() bool {
		var n int
		watch.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE query LIKE '%CREATE INDEX a_idx%' AND state = 'active' AND pid <> pg_catalog.pg_backend_pid()").Scan(&n)
		return n > 0
	})
	if exists(t, watch, "a_pkey") {
		t.Fatal("a_pkey built before a was proven")
	}
	if err := p.Loaded(intTable("a")); err != nil {
		t.Fatal(err)
	}
	// The key waits for the index build instead of queueing on its lock.
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var n int
		watch.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_locks WHERE relation = 'public.a'::regclass AND NOT granted").Scan(&n)
		if n > 0 {
			t.Fatal("a_pkey started beside a_idx")
		}
	}
	eventually(t, "a_pkey", func() bool { return exists(t, watch, "a_pkey") })
	if stale, err := p.Finish(); err != nil || stale {
		t.Fatalf("finish: %v (stale %v)", err, stale)
	}
	if !exists(t, watch, "a_idx") {
		t.Error("a_idx missing")
	}
}
