package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestBigValueMemory measures the peak RSS of `kluis backup` of a
// PostgreSQL tenant whose one row holds a bytea of KLUIS_BIG_VALUE_MB
// megabytes (issue 21: 120 MB cost 589 MB RSS). It is a measurement, run
// by hand (skipped unless KLUIS_BIG_VALUE_MB is set); figures are in
// docs/benchmarks.md.
func TestBigValueMemory(t *testing.T) {
	mb, err := strconv.Atoi(os.Getenv("KLUIS_BIG_VALUE_MB"))
	if err != nil || mb <= 0 {
		t.Skip("set KLUIS_BIG_VALUE_MB=120 to measure")
	}
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "bigvalue")
	pgtest.ExecDSN(t, dsn, fmt.Sprintf(`CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
		INSERT INTO blobs SELECT 1, decode(string_agg(md5(g::text), ''), 'hex') FROM generate_series(1, %d) g`, mb*1024*1024/16))
	e := newEnv(t)
	if err := os.WriteFile(e.path("secrets.dsn"), []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.cfg)
	s := strings.Replace(string(cfg), "  - {id: praktijk-a, engine: files}", "  - {id: big, engine: postgres, dsn_file: ./secrets.dsn}", 1)
	os.WriteFile(e.cfg, []byte(s), 0o600)
	for _, d := range []string{"loc-a", "loc-g"} {
		os.MkdirAll(e.path(d), 0o700)
	}
	e.keysInit()
	c, _, stderr := e.command("backup", "--tenant", "big")
	c.Env = append(c.Env, "PATH="+filepath.Dir(pg.Tool(t, "pg_dump"))+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		t.Fatalf("backup: %v %v\n%s", err, ee, stderr)
	}
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("backup of one %d MB bytea value: peak RSS %d MB", mb, ru.Maxrss/1024)
}
