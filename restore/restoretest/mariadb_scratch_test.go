package restoretest_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/synth"
)

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bsnAsID is a restore target whose load of clients puts each client's
// BSN into its id and loads the rows twice: the second load hits a
// duplicate primary key whose value is a BSN.
type bsnAsID struct {
	source.Target
}

func (b bsnAsID) LoadTable(ctx context.Context, t source.Table, rows io.Reader) error {
	if t.Name != "clients" {
		return b.Target.LoadTable(ctx, t, rows)
	}
	idCol, bsnCol := -1, -1
	for i, c := range t.Columns {
		switch c.Name {
		case "id":
			idCol = i
		case "bsn":
			bsnCol = i
		}
	}
	if idCol < 0 || bsnCol < 0 {
		return errors.New("test: clients has no id or bsn")
	}
	var stream []byte
	dec := source.NewRowDecoder(rows)
	for {
		vals, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(vals[bsnCol].Bytes), 10, 64)
		if err != nil {
			return err
		}
		vals[idCol] = source.IntValue(n)
		stream = source.AppendRow(stream, vals)
	}
	if err := b.Target.LoadTable(ctx, t, bytes.NewReader(stream)); err != nil {
		return fmt.Errorf("test: the first load failed: %w", err)
	}
	return b.Target.LoadTable(ctx, t, bytes.NewReader(stream))
}

// TestMariaDBScratch: a MariaDB tenant's restore tests on a second
// server when things go wrong.
func TestMariaDBScratch(t *testing.T) {
	ctx := testCtx(t)
	tenantSrv := mariadbtest.Start(t)
	rtSrv, err := mariadbtest.StartServer(ctx)
	if err != nil {
		testenv.SkipOrFail(t, "no second MariaDB server for restore tests: %v", err)
	}
	t.Cleanup(func() { rtSrv.Stop() })
	tenantDSN := tenantSrv.CreateDB(t, "praktijk")
	if err := synth.Generate(ctx, mariadbtest.OpenDSN(t, tenantDSN), synth.MariaDB, synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.writeSecret("tenant.dsn", tenantDSN)
	e.writeSecret("rt.dsn", mariadbAdminDSN(t, rtSrv))
	e.writeConfig(`
  - id: praktijk-maria
    engine: mariadb
    dsn_file: ./tenant.dsn
`, `  restore_test: {mariadb_server_dsn_file: ./rt.dsn}`)
	e.backup("praktijk-maria")

	scratchLeft := func(srv *mariadbtest.Server) []string {
		t.Helper()
		rows, err := mariadbtest.OpenDSN(t, srv.DSN("")).QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis\\_rt\\_%'")
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
	run := func(t *testing.T, opts restoretest.Options) *evidence.Report {
		t.Helper()
		opts.Tenant = "praktijk-maria"
		e.clk.Advance(time.Hour)
		rep, err := restoretest.Run(ctx, e.a, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if left := scratchLeft(rtSrv); len(left) > 0 {
			t.Fatalf("scratch databases left on the restore-test server: %v", left)
		}
		return rep
	}
	adminDSN := mariadbAdminDSN(t, rtSrv)
	withAddr := func(addr string) string {
		cfg, err := mysql.ParseDSN(adminDSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Addr = addr
		return cfg.FormatDSN()
	}

	t.Run("duplicate key in the load", func(t *testing.T) {
		var logs lockedBuffer
		opts := restoretest.Options{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		restoretest.SetWrapTarget(&opts, func(tg source.Target, _ *sql.DB) source.Target { return bsnAsID{tg} })
		rep := run(t, opts)
		wantVerdict(t, rep, evidence.Fail, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO)
		c := checkOf(t, rep, evidence.CheckRestore)
		if !strings.Contains(c.Detail, "1062") || strings.Contains(c.Detail, "test: the first load failed") {
			t.Errorf("restore detail: %q", c.Detail)
		}
		rows, err := mariadbtest.OpenDSN(t, tenantDSN).QueryContext(ctx, "SELECT bsn FROM clients")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		js, n := dump(rep), 0
		for rows.Next() {
			var bsn string
			rows.Scan(&bsn)
			if strings.Contains(js, bsn) {
				t.Errorf("the report holds a BSN (%s): %s", bsn, c.Detail)
			}
			if strings.Contains(logs.String(), bsn) {
				t.Errorf("the log holds a BSN (%s)", bsn)
			}
			n++
		}
		if n == 0 || !strings.Contains(logs.String(), "1062") {
			t.Errorf("%d BSNs looked for; logs:\n%s", n, logs.String())
		}
	})

	t.Run("server down", func(t *testing.T) {
		// A restore-test server that does not answer is not a FAIL of the
		// backup: the test does not start.
		e.writeSecret("rt.dsn", withAddr(fmt.Sprintf("127.0.0.1:%d", closedPort(t))))
		defer e.writeSecret("rt.dsn", adminDSN)
		rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-maria"})
		var se *restoretest.SetupError
		if rep != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "does not answer") || strings.Contains(err.Error(), "rt-admin-s3cret") {
			t.Fatalf("Run: %v, %v; want a setup error: the server does not answer", rep, err)
		}
	})

	t.Run("create answer lost", func(t *testing.T) {
		px := startProxy(t, rtSrv.Addr(), "CREATE DATABASE")
		e.writeSecret("rt.dsn", withAddr(fmt.Sprintf("127.0.0.1:%d", px.Port())))
		defer e.writeSecret("rt.dsn", adminDSN)
		rep := run(t, restoretest.Options{}) // fails when a scratch database is left
		if px.cuts.Load() != 1 {
			t.Fatalf("the proxy cut %d answers, want 1", px.cuts.Load())
		}
		wantVerdict(t, rep, evidence.Error, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO)
		if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK || !strings.Contains(c.Detail, "removed") {
			t.Errorf("drop-scratch: %+v", c)
		}
	})

	t.Run("tenant's server at another address", func(t *testing.T) {
		cfg := tenantSrv.Config("")
		cfg.Net, cfg.Addr = "unix", tenantSrv.Socket()
		e.writeSecret("rt.dsn", cfg.FormatDSN())
		defer e.writeSecret("rt.dsn", adminDSN)
		rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-maria"})
		var se *restoretest.SetupError
		if rep != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "same MariaDB server as tenant praktijk-maria") {
			t.Fatalf("Run: %v; want a refusal naming the tenant", err)
		}
		if errs := restoretest.CheckServers(ctx, e.a); len(errs) != 1 {
			t.Errorf("CheckServers: %v", errs)
		}
		if left := scratchLeft(tenantSrv); len(left) > 0 {
			t.Errorf("scratch databases on the tenant's server: %v", left)
		}
	})

	t.Run("over-privileged user refused", func(t *testing.T) {
		defer e.writeSecret("rt.dsn", adminDSN)
		const filer = "kluis_rt_filer"
		rtSrv.Exec(t, "",
			"CREATE USER IF NOT EXISTS '"+filer+"'@'%' IDENTIFIED BY 'filer-s3cret'",
			"GRANT CREATE USER, FILE ON *.* TO '"+filer+"'@'%'")
		cfg := rtSrv.Config("")
		cfg.User, cfg.Passwd = filer, "filer-s3cret"
		for name, dsn := range map[string]string{"root": rtSrv.DSN(""), "FILE": cfg.FormatDSN()} {
			e.writeSecret("rt.dsn", dsn)
			rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-maria"})
			var se *restoretest.SetupError
			if rep != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "FILE") || !strings.Contains(err.Error(), "the restore-test user holds") {
				t.Errorf("%s: Run: %v, %v; want a refusal naming FILE", name, rep, err)
			}
			if errs := restoretest.CheckServers(ctx, e.a); len(errs) != 1 || !strings.Contains(errs[0].Error(), "FILE") {
				t.Errorf("%s: CheckServers: %v", name, errs)
			}
		}
		if left := scratchLeft(rtSrv); len(left) > 0 {
			t.Errorf("scratch databases: %v", left)
		}
	})
}
