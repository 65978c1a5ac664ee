package restoretest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
)

// scratchChildEnv makes the test binary a restore test that creates its
// scratch database and then waits to be killed (TestScratchChild).
const scratchChildEnv = "KLUIS_TEST_SCRATCH_CHILD"

type scratchChildSpec struct {
	Engine, DSN, StateDir, Name string
}

// TestScratchChild is the helper process of TestSweepAfterKill: it does
// what a restore test does up to its restore (ledger entry, throwaway
// owner, marked scratch database) and then waits for SIGKILL.
func TestScratchChild(t *testing.T) {
	raw := os.Getenv(scratchChildEnv)
	if raw == "" {
		return // only as a helper process
	}
	var spec scratchChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := serverIdentity(ctx, family(spec.Engine), spec.DSN)
	if err != nil {
		t.Fatal(err)
	}
	base := ledgerEntry{Server: id.key, Name: spec.Name, Appliance: "ams-1", Tenant: "praktijk", Created: time.Now().UTC()}
	if _, err := newScratch(ctx, spec.Engine, base, spec.StateDir, "", spec.DSN); err != nil {
		t.Fatal(err)
	}
	fmt.Println("SCRATCH-READY")
	select {}
}

// TestSweepAfterKill: a restore test killed (SIGKILL) after creating its
// scratch database leaves a ledger entry; the next sweep (the daemon's
// start) drops that database and its throwaway owner at once — not after a
// day — while a running test's scratch, a kluis_rt_KEEP… database, another
// appliance's marked scratch database and one of ours that no ledger
// entry names are left alone.
func TestSweepAfterKill(t *testing.T) {
	for _, engine := range []string{"postgres", "mariadb"} {
		t.Run(engine, func(t *testing.T) { sweepAfterKill(t, engine) })
	}
}

func sweepAfterKill(t *testing.T, engine string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var dsn string
	var exec1 func(stmt string)
	var databases func() []string
	var owners func() []string
	quote := func(name string) string {
		if engine == "postgres" {
			return `"` + name + `"`
		}
		return quoteMariaDB(name)
	}
	comment := func(name, marker string) string { // a marked database
		if engine == "postgres" {
			return fmt.Sprintf("CREATE DATABASE %s; COMMENT ON DATABASE %s IS %s", name, name, pgLiteral(marker))
		}
		return fmt.Sprintf("CREATE DATABASE %s COMMENT %s", name, mariadbLiteral(marker))
	}
	switch engine {
	case "postgres":
		srv := pgtest.Start(t)
		dsn = srv.DSN("postgres")
		exec1 = func(stmt string) { srv.Exec(t, "postgres", stmt) }
		list := func(q string) []string {
			rows, err := srv.Connect(t, "postgres").Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				out = append(out, n)
			}
			return out
		}
		databases = func() []string {
			return list("SELECT datname FROM pg_database WHERE datname LIKE 'kluis%' ORDER BY 1")
		}
		owners = func() []string {
			return list("SELECT rolname FROM pg_roles WHERE rolname LIKE 'kluis\\_rt\\_%' ORDER BY 1")
		}
	case "mariadb":
		srv := mariadbtest.Start(t)
		dsn = srv.DSN("")
		exec1 = func(stmt string) { srv.Exec(t, "", stmt) }
		list := func(q string) []string {
			rows, err := srv.Open(t, "").QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				out = append(out, n)
			}
			return out
		}
		databases = func() []string {
			return list("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis%' ORDER BY 1")
		}
		owners = func() []string {
			return list("SELECT User FROM mysql.user WHERE User LIKE 'kluis\\_rt\\_%' ORDER BY 1")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "rt.dsn"), []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Dir: dir, Appliance: config.Appliance{ID: "ams-1", StateDir: "state"}}
	cfg.Policy.RestoreTest.ServerDSNFile = "rt.dsn"
	if engine == "mariadb" {
		cfg.Policy.RestoreTest.ServerDSNFile, cfg.Policy.RestoreTest.MariaDBServerDSNFile = "", "rt.dsn"
	}
	cfg.Policy.RestoreTest.ScratchDir = "scratch"
	a := appliance.New(cfg, slog.New(slog.DiscardHandler))
	now := time.Now()

	// Decoys no sweep may touch.
	keep := "kluis_rt_KEEP_legal_hold"
	other := ScratchName("other-appliance", now.Add(-72*time.Hour))
	unledgered := ScratchName("praktijk", now.Add(-72*time.Hour))
	exec1("CREATE DATABASE " + quote(keep))
	for _, s := range strings.Split(comment(other, "kluis restore-test scratch appliance=ams-2 token="+newToken()), "; ") {
		exec1(s)
	}
	for _, s := range strings.Split(comment(unledgered, "kluis restore-test scratch appliance=ams-1 token="+newToken()), "; ") {
		exec1(s)
	}
	t.Cleanup(func() {
		for _, db := range []string{keep, other, unledgered} {
			exec1("DROP DATABASE IF EXISTS " + quote(db))
		}
	})

	// A restore test, killed after creating its scratch database; a
	// second one still running.
	start := func(name string) *exec.Cmd {
		spec, _ := json.Marshal(scratchChildSpec{Engine: engine, DSN: dsn, StateDir: a.StateDir(), Name: name})
		cmd := exec.Command(os.Args[0], "-test.run=^TestScratchChild$")
		cmd.Env = append(os.Environ(), scratchChildEnv+"="+string(spec))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "SCRATCH-READY" {
				go func() {
					for sc.Scan() {
					}
				}()
				return cmd
			}
		}
		t.Fatalf("the helper process ended before creating its scratch database")
		return nil
	}
	killed := ScratchName("praktijk", now)
	running := ScratchName("praktijk-b", now)
	victim := start(killed)
	alive := start(running)
	if got := databases(); !slices.Contains(got, killed) || !slices.Contains(got, running) {
		t.Fatalf("databases: %v", got)
	}

	// While the test runs, its scratch is its own.
	swept, err := SweepStale(ctx, a, 24*time.Hour)
	if err != nil || len(swept) != 0 {
		t.Fatalf("sweep during the tests: %v, %v", swept, err)
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.Wait()

	swept, err = SweepStale(ctx, a, 24*time.Hour)
	if err != nil || strings.Join(swept, ",") != killed {
		t.Fatalf("sweep after the kill: %v, %v; want [%s]", swept, err, killed)
	}
	want := []string{keep, other, unledgered, running}
	slices.Sort(want)
	if got := databases(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("databases left: %v, want %v", got, want)
	}
	if got := owners(); len(got) != 1 {
		t.Errorf("throwaway owners left: %v, want the running test's alone", got)
	}
	entries, _ := ledgerPaths(a.StateDir())
	if len(entries) != 1 || filepath.Base(entries[0]) != running+".json" {
		t.Errorf("ledger: %v", entries)
	}

	// Its turn.
	alive.Process.Kill()
	alive.Wait()
	if swept, err = SweepStale(ctx, a, 24*time.Hour); err != nil || strings.Join(swept, ",") != running {
		t.Errorf("second sweep: %v, %v; want [%s]", swept, err, running)
	}
	if got := owners(); len(got) != 0 {
		t.Errorf("throwaway owners left: %v", got)
	}
}
