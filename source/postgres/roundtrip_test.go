package postgres

import (
	"bytes"
	"fmt"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// hostileSchema exercises identifiers and contents that break naive
// quoting, escaping or line splitting, and every kind of object the engine
// treats specially.
const hostileSchema = `
CREATE SCHEMA "Sch""ema; DROP TABLE x;--";
CREATE SCHEMA "ünïcødé spaces";
CREATE TYPE "Sch""ema; DROP TABLE x;--"."Mood" AS ENUM ('sad', 'ok', 'hap''py');

CREATE TABLE "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted""" (
  "Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "naam; DROP" text NOT NULL,
  "new
line" text,
  notes text,
  photo bytea,
  balance numeric(14,3),
  born date,
  seen timestamptz,
  local_ts timestamp,
  span interval,
  ratio double precision,
  r real,
  tags text[],
  doc jsonb,
  raw json,
  mood "Sch""ema; DROP TABLE x;--"."Mood",
  fee money,
  ip inet,
  uid uuid,
  flag boolean,
  upper_naam text GENERATED ALWAYS AS (upper("naam; DROP")) STORED
);

INSERT INTO "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted"""
  ("naam; DROP", "new
line", notes, photo, balance, born, seen, local_ts, span, ratio, r, tags, doc, raw, mood, fee, ip, uid, flag)
VALUES
  (E'tab\there', E'new\nline', E'back\\slash \\N not null, crlf\r\n', '\x00ff000a5c', 123456789.125, '2024-02-29',
   '2024-03-31 02:30:00+02', '2024-03-31 02:30:00', '1 year 2 mons 3 days 04:05:06.789', 0.1, 3.4028235e38,
   ARRAY['a,b', 'c"d', NULL, E'e\\f', ''], '{"ü": "\u00fc", "n": [1, 2.50, null]}', '{"keep":  "spacing" }',
   'hap''py', 12.34, '10.0.0.1/8', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true),
  ('Ëmma', NULL, NULL, '\x', -0.001, '0001-01-01 BC', 'infinity', '-infinity', '-00:00:01', 'NaN', '-Infinity',
   '{}', 'null', '[]', 'sad', -0.01, '::1', NULL, false),
  ('nulls', NULL, '\N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE "ünïcødé spaces"."Afspraak 📅" (
  a int NOT NULL,
  b text NOT NULL,
  client bigint REFERENCES "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted"""("Id") ON DELETE CASCADE,
  at timestamptz DEFAULT now(),
  PRIMARY KEY (b, a)
);
INSERT INTO "ünïcødé spaces"."Afspraak 📅" (a, b, client, at)
SELECT i, 'k' || (i % 7), 1 + i % 2, '2024-01-01 00:00:00+00'::timestamptz + i * interval '90 minutes'
FROM generate_series(1, 200) i;

CREATE TABLE public.log (msg text, at timestamptz);
INSERT INTO public.log VALUES ('dup', '2024-01-01 00:00:00+00'), ('dup', '2024-01-01 00:00:00+00'), (NULL, NULL), ('last', now());

CREATE TABLE public.measurements (
  id int NOT NULL,
  at date NOT NULL,
  value numeric,
  client bigint REFERENCES "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted"""("Id"),
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.measurements_2025 PARTITION OF public.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.measurements SELECT i, DATE '2024-06-01' + i, i / 7.0, 1 FROM generate_series(1, 300) i;

CREATE TABLE public.measurement_notes (
  id serial PRIMARY KEY,
  m_id int, m_at date, note text,
  FOREIGN KEY (m_id, m_at) REFERENCES public.measurements (id, at)
);
INSERT INTO public.measurement_notes (m_id, m_at, note) VALUES (1, DATE '2024-06-02', 'first'), (300, DATE '2024-06-01' + 300, 'last');

CREATE TABLE public.audit (id bigserial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION public.audit_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.audit (what) VALUES (TG_OP || ' ' || NEW.msg);
  RETURN NEW;
END $$;
CREATE TRIGGER "log audit; trigger" AFTER INSERT ON public.log FOR EACH ROW EXECUTE FUNCTION public.audit_log();
INSERT INTO public.log VALUES ('audited', NULL);

-- A function whose body holds a line psql would read as a meta-command.
CREATE FUNCTION public.hostile() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN '
\! echo pwned
'; END $$;
COMMENT ON TABLE public.log IS E'line one\n\\! echo pwned\n-- not a comment';

CREATE VIEW public."Client View" AS
  SELECT "Id", "naam; DROP" FROM "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted""" WHERE flag;
CREATE MATERIALIZED VIEW public.mv_counts AS SELECT count(*) AS n FROM "ünïcødé spaces"."Afspraak 📅";
CREATE VIEW public.v_counts AS SELECT n FROM public.mv_counts;
CREATE MATERIALIZED VIEW public.mv_on_view AS SELECT n * 2 AS n2 FROM public.v_counts;

CREATE SEQUENCE public."Invoice Nr" START 1000;
SELECT nextval('public."Invoice Nr"'), nextval('public."Invoice Nr"'), nextval('public."Invoice Nr"');
CREATE SEQUENCE public.unused_seq;
CREATE INDEX "idx; naam" ON "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted""" (lower("naam; DROP"));
`

func TestRoundTrip(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	srcDSN := srv.CreateDB(t, "roundtrip source")
	pgtest.ExecDSN(t, srcDSN, hostileSchema)

	b := takeBackup(t, newEngine(t, srv, srcDSN))
	if !strings.HasPrefix(b.version, "PostgreSQL ") {
		t.Errorf("server version %q", b.version)
	}
	checkTableMetadata(t, b.tables)

	dstDSN := srv.DSN(srv.UniqueName("roundtrip restored"))
	t.Cleanup(func() { srv.DropDB(t, dbName(t, dstDSN)) })
	restoreInto(t, b, dstDSN, TargetOptions{Parallel: 3}) // (a) fingerprints, checked inside

	// (b) The schema of the restored database is the original's.
	pgDump := srv.Tool(t, "pg_dump")
	if want, got := schemaDump(t, pgDump, srcDSN), schemaDump(t, pgDump, dstDSN); want != got {
		t.Errorf("restored schema differs:\n%s", lineDiff(want, got))
	}

	// (c) The rows are the original's: a backup of the restored database
	// streams the same bytes and metadata.
	again := takeBackup(t, newEngine(t, srv, dstDSN))
	if !reflect.DeepEqual(again.tables, b.tables) {
		t.Errorf("restored tables %+v\nwant %+v", again.tables, b.tables)
	}
	for _, tb := range b.tables {
		want, got := b.streams[tb.Name], again.streams[tb.Name]
		if tb.PhysicalOrder {
			want, got = sortedLines(want), sortedLines(got)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("table %s: restored rows differ\nwant %q\n got %q", tb.Name, want, got)
		}
	}
	if !bytes.Equal(b.post, again.post) && !bytes.Equal(stripVolatile(b.post), stripVolatile(again.post)) {
		t.Errorf("post-data (with sequence values) differs:\n%s", lineDiff(string(stripVolatile(b.post)), string(stripVolatile(again.post))))
	}

	// The restored database behaves like the original.
	for _, q := range []struct{ sql, want string }{
		{`SELECT nextval('public."Invoice Nr"')::text`, "1003"},
		{`SELECT last_value::text || ' ' || is_called::text FROM public.unused_seq`, "1 false"},
		{`INSERT INTO "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted""" ("naam; DROP") VALUES ('new') RETURNING "Id"::text`, "4"},
		{`SELECT upper_naam FROM "Sch""ema; DROP TABLE x;--"."Cliënts ""quoted""" WHERE "Id" = 1`, "TAB\tHERE"},
		{`SELECT n::text FROM public.mv_counts`, "200"},
		{`SELECT n2::text FROM public.mv_on_view`, "400"},
		{`SELECT string_agg("naam; DROP", ',' ORDER BY "Id") FROM public."Client View"`, "tab\there"},
		{`SELECT public.hostile()`, "\n\\! echo pwned\n"},
		{`SELECT obj_description('public.log'::regclass)`, "line one\n\\! echo pwned\n-- not a comment"},
		{`WITH i AS (INSERT INTO public.log VALUES ('after restore', NULL)) SELECT 'ok'`, "ok"},
		{`SELECT string_agg(what, ',' ORDER BY id) FROM public.audit`, "INSERT audited,INSERT after restore"},
		{`SELECT count(*)::text FROM ONLY public.measurements`, "0"},
		{`SELECT count(*)::text FROM public.measurements`, "300"},
	} {
		conn := pgtest.ConnectDSN(t, dstDSN)
		var got string
		if err := conn.QueryRow(ctx, q.sql).Scan(&got); err != nil {
			t.Errorf("%s: %v", q.sql, err)
		} else if got != q.want {
			t.Errorf("%s = %q, want %q", q.sql, got, q.want)
		}
	}
	// Foreign keys were restored and are enforced.
	conn := pgtest.ConnectDSN(t, dstDSN)
	if _, err := conn.Exec(ctx, `INSERT INTO public.measurement_notes (m_id, m_at) VALUES (-1, '2024-01-01')`); err == nil {
		t.Error("a foreign key violation was accepted in the restored database")
	}
}

func checkTableMetadata(t *testing.T, tables []source.Table) {
	t.Helper()
	var names []string
	byName := map[string]source.Table{}
	for _, tb := range tables {
		names = append(names, tb.Name)
		byName[tb.Name] = tb
		if tb.Encoding != Encoding {
			t.Errorf("%s: encoding %q", tb.Name, tb.Encoding)
		}
	}
	const clients = `Sch"ema; DROP TABLE x;--.Cliënts "quoted"`
	wantNames := []string{
		clients,
		"public.audit", "public.log", "public.measurement_notes", "public.measurements_2024", "public.measurements_2025",
		"ünïcødé spaces.Afspraak 📅",
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("tables %q, want %q", names, wantNames)
	}
	c := byName[clients]
	if c.Schema != `Sch"ema; DROP TABLE x;--` || c.Table != `Cliënts "quoted"` || !reflect.DeepEqual(c.PrimaryKey, []string{"Id"}) || c.PhysicalOrder {
		t.Errorf("clients: %+v", c)
	}
	if len(c.Columns) != 20 || c.Columns[2].Name != "new\nline" || c.Columns[1].Nullable || !c.Columns[2].Nullable {
		t.Errorf("clients columns (generated one left out): %+v", c.Columns)
	}
	if got := c.Columns[15]; got.Type != `"Sch""ema; DROP TABLE x;--"."Mood"` {
		t.Errorf("enum column type %q", got.Type)
	}
	if got := c.Columns[5].Type; got != "numeric(14,3)" {
		t.Errorf("numeric column type %q", got)
	}
	a := byName["ünïcødé spaces.Afspraak 📅"]
	if !reflect.DeepEqual(a.PrimaryKey, []string{"b", "a"}) {
		t.Errorf("primary key in key order: %q", a.PrimaryKey)
	}
	if len(a.ForeignKeys) != 1 || a.ForeignKeys[0].RefTable != clients || !reflect.DeepEqual(a.ForeignKeys[0].Columns, []string{"client"}) || !reflect.DeepEqual(a.ForeignKeys[0].RefColumns, []string{"Id"}) {
		t.Errorf("foreign keys %+v", a.ForeignKeys)
	}
	if l := byName["public.log"]; !l.PhysicalOrder || len(l.PrimaryKey) != 0 {
		t.Errorf("log: %+v", l)
	}
	for _, p := range []string{"public.measurements_2024", "public.measurements_2025"} {
		m := byName[p]
		if m.PartitionOf != "public.measurements" || !reflect.DeepEqual(m.PrimaryKey, []string{"id", "at"}) || len(m.ForeignKeys) != 1 || m.ForeignKeys[0].RefTable != clients {
			t.Errorf("%s: %+v", p, m)
		}
	}
	n := byName["public.measurement_notes"]
	if len(n.ForeignKeys) != 1 || n.ForeignKeys[0].RefTable != "public.measurements" || !reflect.DeepEqual(n.ForeignKeys[0].Columns, []string{"m_id", "m_at"}) {
		t.Errorf("foreign key to a partitioned table (one, not one per partition): %+v", n.ForeignKeys)
	}
}

// schemaDump is pg_dump --schema-only of dsn without its version comments
// and per-run \restrict keys.
func schemaDump(t *testing.T, pgDump, dsn string) string {
	t.Helper()
	conninfo, err := conninfoWithoutPassword(dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pgDump, "--schema-only", "--dbname="+conninfo)
	cmd.Env = pgDumpEnv(cmd.Environ(), passwordOf(t, dsn))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return string(stripVolatile(out))
}

// stripVolatile drops comment lines and \restrict / \unrestrict lines.
func stripVolatile(ddl []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(ddl), "\n") {
		if strings.HasPrefix(l, "--") || strings.HasPrefix(l, `\restrict `) || strings.HasPrefix(l, `\unrestrict `) {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

func passwordOf(t *testing.T, dsn string) string {
	cfg, err := parseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Password
}

func dbName(t *testing.T, dsn string) string {
	cfg, err := parseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func sortedLines(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	sort.Strings(lines)
	return []byte(strings.Join(lines, ""))
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %q\n got %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}
