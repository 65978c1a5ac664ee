package restoretest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/synth"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// clock is a settable clock for the appliance (snapshot times) and the
// restore test (RPO).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// env is an appliance in a temp dir with two local locations (loc-a =
// amsterdam, loc-g = groningen) and a fake clock.
type env struct {
	t   testing.TB
	dir string
	a   *appliance.Appliance
	clk *clock
}

const configTemplate = `
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: b}
tenants:
%s
policy:
  pack_size: 1MiB
%s
`

var start = time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)

// newEnv makes the directory, keys and locations; writeConfig then
// writes and loads the config.
func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"loc-a", "loc-g"} {
		if err := os.Mkdir(filepath.Join(dir, l), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, dir: dir, clk: &clock{now: start}}
}

// writeConfig writes a config with the given tenants and policy blocks
// (YAML, indented as list items and policy fields) and loads it.
func (e *env) writeConfig(tenants, policy string) {
	e.t.Helper()
	p := filepath.Join(e.dir, "kluis.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(configTemplate, tenants, policy)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.a = appliance.New(cfg, slog.New(slog.DiscardHandler))
	e.a.Now = e.clk.Now
}

func (e *env) path(p ...string) string { return filepath.Join(append([]string{e.dir}, p...)...) }

// writeSecret writes a DSN file (mode 0600) and returns its name.
func (e *env) writeSecret(name, content string) string {
	e.t.Helper()
	if err := os.WriteFile(e.path(name), []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return name
}

// backup takes a snapshot of a tenant at the clock's time.
func (e *env) backup(tenant string) *repo.Result {
	e.t.Helper()
	ctx := testCtx(e.t)
	r, err := e.a.OpenOrInitRepo(ctx, tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	tn, err := e.a.Cfg.Tenant(tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	eng, err := e.a.Engine(tn, r.FingerprintKey())
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := backup.Database(ctx, r, eng, repo.BackupOptions{Appliance: "ams-1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// synthSQLite generates a synthetic practice database file.
func (e *env) synthSQLite(name string, scale synth.Scale) string {
	e.t.Helper()
	p := e.path(name)
	if err := synth.GenerateSQLiteFile(testCtx(e.t), p, scale, 7); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// scratchLeft lists what remains in the sqlite scratch directory.
func (e *env) scratchLeft() []string {
	e.t.Helper()
	var left []string
	dir := e.a.Cfg.Resolve(e.a.Cfg.Policy.RestoreTest.ScratchDir)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// checkOf returns a report's check by name.
func checkOf(t testing.TB, rep *evidence.Report, name string) evidence.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("report has no check %s", name)
	return evidence.Check{}
}

// wantVerdict fails unless the report has the verdict and exactly the
// failed checks given.
func wantVerdict(t testing.TB, rep *evidence.Report, verdict string, failed ...string) {
	t.Helper()
	if rep == nil {
		t.Fatal("no report")
	}
	if rep.Verdict != verdict || strings.Join(rep.FailedChecks, ",") != strings.Join(failed, ",") {
		t.Fatalf("verdict %s, failed %v; want %s, failed %v\n%s", rep.Verdict, rep.FailedChecks, verdict, failed, dump(rep))
	}
	if len(rep.Checks) != 10 {
		t.Fatalf("%d checks, want 10:\n%s", len(rep.Checks), dump(rep))
	}
}

func dump(rep *evidence.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// store opens the appliance's evidence log, copied to both locations.
func (e *env) store() *evidence.Store {
	e.t.Helper()
	key, err := repo.LoadSigningKey(e.path("signing.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	locs, err := e.a.Locations()
	if err != nil {
		e.t.Fatal(err)
	}
	s := evidence.OpenStore(e.a.StateDir(), e.a.Cfg.Appliance.ID, key, locs)
	s.Now = e.clk.Now
	return s
}

// proxy forwards TCP connections to a server from another loopback port,
// so that a DSN through it reaches the same server at another address.
// Armed with cut, it forwards the first client message containing cut to
// the server and then closes both sides as soon as the server answers: the
// statement ran on the server, the client saw only a broken connection.
type proxy struct {
	ln     net.Listener
	target string
	cut    []byte
	armed  atomic.Bool
	cuts   atomic.Int32
}

func startProxy(t testing.TB, target, cut string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, cut: []byte(cut)}
	p.armed.Store(cut != "")
	go p.serve()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var cutting atomic.Bool
		go func() { // client to server
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if p.armed.Load() && bytes.Contains(buf[:n], p.cut) && p.armed.CompareAndSwap(true, false) {
						cutting.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			s.Close()
		}()
		go func() { // server to client
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if cutting.Load() {
						p.cuts.Add(1)
						break
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			s.Close()
		}()
	}
}

// pgAdminDSN creates the restore-test role docs/ops.md prescribes
// (CREATEDB CREATEROLE, nothing more) on a PostgreSQL server and returns
// its DSN to the maintenance database.
func pgAdminDSN(t testing.TB, srv *pgtest.Server) string {
	t.Helper()
	const role, password = "kluis_restore_test", "rt-admin-s3cret"
	conn := srv.Connect(t, "postgres")
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		srv.Exec(t, "postgres", "CREATE ROLE "+role+" LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '"+password+"'")
	}
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=disable connect_timeout=5", srv.Host, srv.Port, role, password)
}

// mariadbAdminDSN creates the restore-test user docs/ops.md prescribes
// (CREATE USER on *.*, ALL on `kluis\_rt\_%`.* WITH GRANT OPTION) on a
// MariaDB server and returns its DSN.
func mariadbAdminDSN(t testing.TB, srv *mariadbtest.Server) string {
	t.Helper()
	const user, password = "kluis_restore_test", "rt-admin-s3cret"
	srv.Exec(t, "",
		"CREATE USER IF NOT EXISTS '"+user+"'@'%' IDENTIFIED BY '"+password+"'",
		"GRANT CREATE USER ON *.* TO '"+user+"'@'%'",
		"GRANT ALL PRIVILEGES ON `kluis\\_rt\\_%`.* TO '"+user+"'@'%' WITH GRANT OPTION")
	cfg := srv.Config("")
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN()
}
