package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestPgDumpDumpsOldestServer (issue 15 §5): the pg_dump kluis ships dumps
// the oldest PostgreSQL kluis supports, for real: a schema-only dump, as
// kluis runs it, of a database with a table. KLUIS_TEST_PG_DUMP names the
// pg_dump (default: the newest installed), KLUIS_TEST_PG_OLDEST_DSN the
// server (default: the test server); KLUIS_TEST_REQUIRE_OLDEST=1 fails
// unless that server is the oldest supported version (docs/ops.md
// "Container").
func TestPgDumpDumpsOldestServer(t *testing.T) {
	pgDump := os.Getenv("KLUIS_TEST_PG_DUMP")
	if pgDump == "" {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		sort.Slice(found, func(i, j int) bool { return major(found[i]) > major(found[j]) })
		if len(found) == 0 {
			if p, err := exec.LookPath("pg_dump"); err == nil {
				found = []string{p}
			}
		}
		if len(found) == 0 {
			t.Skip("no pg_dump installed")
		}
		pgDump = found[0]
	}
	dsn := os.Getenv("KLUIS_TEST_PG_OLDEST_DSN")
	if dsn == "" {
		srv := pgtest.Start(t)
		if srv == nil {
			return
		}
		dsn = srv.DSN("postgres")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		t.Fatal(err)
	}
	serverMajor := num / 100 // 906 for 9.6, 1500 for 15
	if serverMajor >= 1000 {
		serverMajor = num / 10000 * 100
	}
	if serverMajor < oldestPostgres {
		t.Fatalf("server %d is older than the oldest supported (%d)", num, oldestPostgres)
	}
	if serverMajor != oldestPostgres {
		if os.Getenv("KLUIS_TEST_REQUIRE_OLDEST") == "1" {
			t.Fatalf("the server is version %d, not the oldest supported (%d)", num, oldestPostgres)
		}
		t.Logf("the server is version %d, not the oldest supported (9.6): set KLUIS_TEST_PG_OLDEST_DSN to prove that one", num)
	}
	db := "kluis_pgdump_" + strconv.Itoa(os.Getpid())
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	c2, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c2.Exec(ctx, "CREATE TABLE clients (id bigint PRIMARY KEY, naam text NOT NULL)")
	c2.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := exec.Command(pgDump, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	vm := regexp.MustCompile(`(\d+)(\.\d+)?`).FindStringSubmatch(string(ver))
	dumpMajor, _ := strconv.Atoi(vm[1])
	if dumpMajor*100 < serverMajor && !(dumpMajor == 9 && serverMajor <= 906) {
		t.Fatalf("%s is older than the server (%d): pg_dump refuses a newer server", strings.TrimSpace(string(ver)), num)
	}
	cmd := exec.CommandContext(ctx, pgDump, "--schema-only", "--no-owner", "--no-privileges", "--no-password", "--dbname="+withDB(dsn, db))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSWORD=" + cfg.Password}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s on server %d: %v\n%s", strings.TrimSpace(string(ver)), num, err, out)
	}
	if !strings.Contains(string(out), "CREATE TABLE public.clients") {
		t.Fatalf("the dump lacks the table:\n%s", out)
	}
	t.Logf("%s dumped PostgreSQL %d", strings.TrimSpace(string(ver)), num)
}

func major(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// withDB returns dsn naming database db (keyword/value: the later keyword
// wins; URL: the path).
func withDB(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return regexp.MustCompile(`^([^?]*://[^/?]*)(/[^?]*)?`).ReplaceAllString(dsn, "${1}/"+db)
	}
	return dsn + " dbname=" + db
}
