package postgres

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/source"
)

func tableForTest(encoding string) source.Table {
	return source.Table{
		Name: `we"ird.tab le`, Schema: `we"ird`, Table: "tab le",
		Columns:    []source.Column{{Name: "Id"}, {Name: `a"b; DROP`}},
		PrimaryKey: []string{`a"b; DROP`, "Id"},
		Encoding:   encoding,
	}
}

func TestCopyOutSQL(t *testing.T) {
	tb := tableForTest(Encoding)
	if got, want := copyOutSQL(tb, true), `COPY (SELECT "Id", "a""b; DROP" FROM ONLY "we""ird"."tab le" ORDER BY "a""b; DROP", "Id") TO STDOUT`; got != want {
		t.Errorf("ordered:\n got %s\nwant %s", got, want)
	}
	if got, want := copyOutSQL(tb, false), `COPY (SELECT "Id", "a""b; DROP" FROM ONLY "we""ird"."tab le") TO STDOUT`; got != want {
		t.Errorf("unordered:\n got %s\nwant %s", got, want)
	}
	tb.PrimaryKey, tb.Columns = nil, nil
	if got, want := copyOutSQL(tb, true), `COPY (SELECT  FROM ONLY "we""ird"."tab le") TO STDOUT`; got != want {
		t.Errorf("no columns, no key:\n got %s\nwant %s", got, want)
	}
}

func TestConninfoWithoutPassword(t *testing.T) {
	for _, tc := range []struct {
		name, dsn, password, want string
	}{
		{name: "keyword/value", dsn: "host=db port=5432 user=kluis password=" + url.QueryEscape(secret) + " dbname=t", password: url.QueryEscape(secret),
			want: "host='db' port='5432' user='kluis' dbname='t'"},
		{name: "quoted values", dsn: `host = 'my host' password='it\'s \\ secret' dbname='a\\b'`, password: `it's \ secret`,
			want: `host='my host' dbname='a\\b'`},
		{name: "url userinfo", dsn: "postgres://kluis:" + url.PathEscape(secret) + "@db:5432/t?sslmode=require", password: secret,
			want: "postgres://kluis@db:5432/t?sslmode=require"},
		{name: "url query", dsn: "postgresql://kluis@db/t?password=" + url.QueryEscape(secret) + "&sslmode=disable", password: secret,
			want: "postgresql://kluis@db/t?sslmode=disable"},
		{name: "url multi-host", dsn: "postgres://kluis:pw123@h1:5432,h2:5433/t", password: "pw123",
			want: "postgres://kluis@h1:5432,h2:5433/t"},
		{name: "no password", dsn: "host=db dbname=t", want: "host='db' dbname='t'"},
		// A passphrase one of whose words is the user's name: that word
		// alone is not the password (a masked piece refused the backup).
		{name: "passphrase sharing a word", dsn: "host=127.0.0.1 user=postgres dbname=praktijk password='my postgres pw'", password: "my postgres pw",
			want: "host='127.0.0.1' user='postgres' dbname='praktijk'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := conninfoWithoutPassword(tc.dsn, tc.password)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// A password left behind (here: a malformed URL) is refused, not passed.
	if _, err := conninfoWithoutPassword("postgres://u@h/db?x=pw123", "pw123"); err == nil {
		t.Fatal("a connection string still holding the password was accepted")
	}
}

func TestConninfoParsesLikePgx(t *testing.T) {
	dsn := `host='my host' port=5433 user=u\ ser password='p\'w' dbname='d b' sslmode=disable`
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := conninfoWithoutPassword(dsn, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := pgx.ParseConfig(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Host != cfg.Host || cfg2.Port != cfg.Port || cfg2.User != cfg.User || cfg2.Database != cfg.Database || cfg2.Password == cfg.Password {
		t.Fatalf("before %+v\nafter %+v", cfg.Config, cfg2.Config)
	}
}

func TestPgDumpCommandLineHasNoPassword(t *testing.T) {
	conninfo, err := conninfoWithoutPassword("host=db user=kluis password="+url.QueryEscape(secret)+" dbname=t", url.QueryEscape(secret))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(pgDumpArgs(conninfo, "00000003-00000002-1", "pre-data"), " ")
	if strings.Contains(args, "S3cret") || !strings.Contains(args, "--no-owner") || !strings.Contains(args, "--snapshot=00000003-00000002-1") {
		t.Fatalf("args: %s", args)
	}
	env := pgDumpEnv([]string{"PATH=/bin", "PGPASSWORD=stale"}, secret)
	if !slices.Equal(env, []string{"PATH=/bin", "PGPASSWORD=" + secret}) {
		t.Fatalf("env: %q", env)
	}
	if env := pgDumpEnv([]string{"PGPASSWORD=stale"}, ""); len(env) != 0 {
		t.Fatalf("a stale PGPASSWORD survived: %q", env)
	}
}

func TestRedactError(t *testing.T) {
	base := errors.New("failed: postgres://u:" + url.PathEscape(secret) + "@h/ password=" + secret + " q=" + url.QueryEscape(secret))
	err := redactError(base, secret)
	assertNoSecret(t, err)
	if !errors.Is(err, base) {
		t.Fatal("redacted error does not unwrap to the original")
	}
	if redactError(nil, secret) != nil {
		t.Fatal("nil error became non-nil")
	}
}

func TestStripRestrict(t *testing.T) {
	ddl := "--\n-- dump\n--\n\n\\restrict KeY1\n\nCREATE FUNCTION f() AS $$\n\\restrict inner\n\\unrestrict KeY1\n$$;\n\n--\n\\unrestrict KeY1\n\n"
	want := "--\n-- dump\n--\n\n\n\nCREATE FUNCTION f() AS $$\n\\restrict inner\n\\unrestrict KeY1\n$$;\n\n--\n\n\n"
	if got := string(stripRestrict([]byte(ddl))); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// Only the outermost pair, with matching keys, is removed.
	mismatch := "\\restrict a1\nSELECT 1;\n\\unrestrict b2\n"
	if got := string(stripRestrict([]byte(mismatch))); got != "\nSELECT 1;\n\\unrestrict b2\n" {
		t.Fatalf("mismatched keys: %q", got)
	}
	body := "SELECT 1;\n\\restrict a1\n"
	if got := string(stripRestrict([]byte(body))); got != body {
		t.Fatalf("a \\restrict after a statement was removed: %q", got)
	}
}

func TestSplitTrailer(t *testing.T) {
	head, tail := splitTrailer([]byte("\\restrict k\nA;\n-- done\n\n\\unrestrict k\n\n"))
	if string(head) != "\\restrict k\nA;\n-- done\n\n" || string(tail) != "\\unrestrict k\n\n" {
		t.Fatalf("head %q tail %q", head, tail)
	}
	head, tail = splitTrailer([]byte("A;\n"))
	if string(head) != "A;\n" || tail != nil {
		t.Fatalf("without trailer: head %q tail %q", head, tail)
	}
}

func TestLineAt(t *testing.T) {
	text := []byte("ü1\nünï2\nthree")
	for _, tc := range []struct {
		pos      int
		wantLine int
		want     string
	}{
		{1, 1, "ü1"}, {4, 2, "ünï2"}, {7, 2, "ünï2"}, {9, 3, "three"}, {100, 3, "three"},
	} {
		if n, line := lineAt(text, tc.pos); n != tc.wantLine || line != tc.want {
			t.Errorf("position %d: line %d %q, want %d %q", tc.pos, n, line, tc.wantLine, tc.want)
		}
	}
}

func TestFindPgDump(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "pg_dump")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := findPgDump(exe, 15); err != nil || p != exe {
		t.Fatalf("configured path: %s %v", p, err)
	}
	// A configured pg_dump that is not there names the config key, not a
	// Go field (issue 18 point 9).
	if _, err := findPgDump("/opt/pg/bin/pg_dump", 15); err == nil || !strings.Contains(err.Error(), "policy.pg_dump") {
		t.Errorf("missing configured pg_dump: %v, want an error naming policy.pg_dump", err)
	}
	p, err := findPgDump("", 15)
	if err != nil {
		t.Skipf("no pg_dump here: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

func TestParsePgDumpMajor(t *testing.T) {
	for line, want := range map[string]int{
		"pg_dump (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)\n": 17,
		"pg_dump (PostgreSQL) 9.6.24":                           9,
		"pg_dump (PostgreSQL) 18beta1":                          18,
		"pg_restore (PostgreSQL) 17.2":                          0,
		"#!/bin/sh":                                             0,
	} {
		got, ok := ParsePgDumpMajor(line)
		if got != want || ok != (want > 0) {
			t.Errorf("ParsePgDumpMajor(%q) = %d, %v; want %d", line, got, ok, want)
		}
	}
}

// TestPgDumpMinimalEnvironment (issue 15 §4): the real child process
// started for pg_dump sees only what libpq needs, never the rest of
// kluis's environment (cloud credentials, KLUIS_*, a stray PGPASSWORD).
func TestPgDumpMinimalEnvironment(t *testing.T) {
	script := t.TempDir() + "/pg_dump"
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec env\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-pass")
	t.Setenv("KLUIS_MASTER_KEY", "kluis-secret-do-not-pass")
	t.Setenv("PGPASSWORD", "stale-password")
	t.Setenv("PGSSLROOTCERT", "/etc/ssl/root.crt")
	out, err := runPgDump(t.Context(), script, "host=db dbname=t", secret, "00000003-00000002-1", "pre-data", 0)
	if err != nil {
		t.Fatal(err)
	}
	env := string(out)
	for _, bad := range []string{"aws-secret-do-not-pass", "kluis-secret-do-not-pass", "stale-password"} {
		if strings.Contains(env, bad) {
			t.Errorf("pg_dump's environment holds %s:\n%s", bad, env)
		}
	}
	for _, want := range []string{"PGSSLROOTCERT=/etc/ssl/root.crt", "PGPASSWORD=" + secret} {
		if !strings.Contains(env, want) {
			t.Errorf("pg_dump's environment lacks %s:\n%s", want, env)
		}
	}
}
