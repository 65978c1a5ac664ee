// Package pgtest gives tests a PostgreSQL server of their own.
//
// Start returns a throwaway server: initdb in a temporary directory, postgres
// listening on a free loopback port (127.0.0.1 only; its unix socket lives in
// the temporary directory), fsync off, trust for the socket and a password
// (scram-sha-256) for TCP connections, so tests can also exercise a wrong
// password. It is shared by every test of a package whose TestMain calls Main
// (initdb takes seconds), and stopped and removed when the package's tests
// end.
//
// When no PostgreSQL binaries are found or the server cannot start, Start
// falls back to the shared server named by KLUIS_TEST_PG_FALLBACK_DSN (by
// default host=127.0.0.1 port=5432 user=postgres), where every database a test
// creates gets a unique name and is dropped at cleanup. When neither works the
// test is skipped locally and fails under KLUIS_TEST_REQUIRE_SERVERS=1
// (internal/testenv).
//
// Binaries are looked up in KLUIS_PG_BIN (a directory), then PATH, then
// /usr/lib/postgresql/*/bin (newest version first).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kluis-nl/kluis/internal/testenv"
)

// Environment variables read by this package.
const (
	BinEnv         = "KLUIS_PG_BIN"               // directory holding initdb and postgres
	FallbackDSNEnv = "KLUIS_TEST_PG_FALLBACK_DSN" // server used when no throwaway one starts
	defaultDSN     = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable connect_timeout=5"
	dirPrefix      = "kluis-pgtest-"
	startTimeout   = 60 * time.Second
	superuser      = "postgres"
	maintenanceDB  = "postgres"
	maxIdentLength = 63
)

// Server is a PostgreSQL server for tests.
type Server struct {
	// BinDir holds the server's client tools (pg_dump, …); empty when none
	// were found (possible only with the fallback server).
	BinDir string
	// Throwaway is true for a server started by this package, false for the
	// shared fallback server.
	Throwaway bool
	// PasswordAuth is true when TCP connections must present Password
	// (always for a throwaway server).
	PasswordAuth bool
	// Host, Port, User and Password are the superuser's connection settings.
	Host     string
	Port     int
	User     string
	Password string

	base string // connection string without dbname, keyword/value or URL form
	dir  string
	proc *testenv.Process
	seq  atomic.Int64
}

var shared = testenv.Shared[*Server]{
	What: "PostgreSQL server", Harness: "pgtest",
	Start: StartServer, Fallback: connectFallback,
	Describe: func(s *Server) string { return s.Addr() },
}

// Main runs the package's tests and stops the shared server afterwards. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { shared.Main(m) }

// Start returns the package's shared test server, starting it on first use.
// Without Main in TestMain every call starts its own server, stopped at the
// test's cleanup. It skips or fails the test (testenv.SkipOrFail) when no
// server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	return shared.Get(t)
}

// StartServer starts a throwaway server. The caller must Stop it.
func StartServer(ctx context.Context) (*Server, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	// postgres refuses to run as root: root hands it to postgres (or nobody).
	cred, err := testenv.RunAs("postgres", "nobody")
	if err != nil {
		return nil, err
	}
	dir, err := testenv.OwnedTempDir(dirPrefix, cred, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "data", "postmaster.pid"))
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	s := &Server{BinDir: binDir, Throwaway: true, PasswordAuth: true, Host: "127.0.0.1", User: superuser, dir: dir}
	if err := s.initdb(ctx, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := testenv.RetryPortClash(func() error { return s.start(ctx, cred) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// FindBinDir returns the directory holding initdb and postgres.
func FindBinDir() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		if hasServerBinaries(d) {
			return d, nil
		}
		return "", fmt.Errorf("%s=%s holds no initdb and postgres", BinEnv, d)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); hasServerBinaries(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	dirs = append(dirs, "/usr/local/pgsql/bin")
	for _, d := range dirs {
		if hasServerBinaries(d) {
			return d, nil
		}
	}
	return "", errors.New("no initdb and postgres binaries (PATH, /usr/lib/postgresql/*/bin; set " + BinEnv + ")")
}

func hasServerBinaries(dir string) bool {
	return testenv.IsExecutable(filepath.Join(dir, "initdb")) && testenv.IsExecutable(filepath.Join(dir, "postgres"))
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func (s *Server) initdb(ctx context.Context, cred *syscall.Credential) error {
	s.Password = testenv.RandomHex(16)
	pwFile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	if cred != nil {
		if err := os.Chown(pwFile, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cmd := testenv.Command(ctx, s.dir, cred, syscall.SIGQUIT, filepath.Join(s.BinDir, "initdb"),
		"-D", filepath.Join(s.dir, "data"), "-U", superuser,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwFile,
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, testenv.Tail(out))
	}
	return nil
}

func (s *Server) start(ctx context.Context, cred *syscall.Credential) error {
	var err error
	if s.Port, err = testenv.FreePort(); err != nil {
		return err
	}
	s.base = fmt.Sprintf("host=%s port=%d user=%s password=%s sslmode=disable connect_timeout=5", s.Host, s.Port, s.User, s.Password)
	logPath := filepath.Join(s.dir, "postgres.log")
	os.Remove(logPath) // a failed attempt's log would mislead
	// Not bound to ctx: the server outlives it and is stopped by Stop.
	cmd := testenv.Command(context.Background(), s.dir, cred, syscall.SIGQUIT, filepath.Join(s.BinDir, "postgres"),
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=60", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning", "-c", "log_timezone=UTC")
	s.proc, err = testenv.StartProcess(ctx, cmd, testenv.Launch{
		Name: "postgres", LogPath: logPath, Timeout: startTimeout,
		// SIGINT is PostgreSQL's fast shutdown: clients are disconnected.
		StopSignal: syscall.SIGINT, StopGrace: 15 * time.Second,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, s.DSN(maintenanceDB))
			if err != nil {
				return err
			}
			return conn.Close(context.Background())
		},
	})
	return err
}

// Stop stops a throwaway server and removes its directory; for the fallback
// server it does nothing.
func (s *Server) Stop() error {
	if !s.Throwaway {
		return nil
	}
	s.proc.Stop()
	return os.RemoveAll(s.dir)
}

func connectFallback(ctx context.Context) (*Server, error) {
	dsn := os.Getenv(FallbackDSNEnv)
	if dsn == "" {
		dsn = defaultDSN
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot parse the connection string", FallbackDSNEnv)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %s", cfg.Host, cfg.Port, testenv.Redact(err.Error(), cfg.Password))
	}
	defer conn.Close(context.Background())
	s := &Server{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, base: dsn}
	// A wrong password is refused only if the server asks for one.
	s.PasswordAuth = cfg.Password != "" && !acceptsWrongPassword(ctx, cfg)
	if d, err := FindBinDir(); err == nil {
		s.BinDir = d
	} else if p, err := exec.LookPath("pg_dump"); err == nil {
		s.BinDir = filepath.Dir(p)
	}
	return s, nil
}

func acceptsWrongPassword(ctx context.Context, cfg *pgx.ConnConfig) bool {
	c := cfg.Copy()
	c.Password = cfg.Password + "-wrong"
	conn, err := pgx.ConnectConfig(ctx, c)
	if err != nil {
		return false
	}
	conn.Close(context.Background())
	return true
}

// DSN returns a connection string for database db as the superuser. db is
// a database name: a connection string given by mistake panics (without
// showing it), since it would end up, password and all, in the server's
// "database does not exist" error and the test's output.
func (s *Server) DSN(db string) string {
	if looksLikeDSN(db) {
		panic("pgtest: Server.DSN wants a database name, not a connection string (use ConnectDSN or ExecDSN)")
	}
	if strings.HasPrefix(s.base, "postgres://") || strings.HasPrefix(s.base, "postgresql://") {
		u, err := url.Parse(s.base)
		if err == nil {
			u.Path = "/" + db
			return u.String()
		}
	}
	return s.base + " dbname=" + quoteValue(db)
}

// WithPassword returns a keyword/value dsn with its password replaced (the
// later keyword wins). It does not work for the URL form.
func WithPassword(dsn, password string) string {
	return dsn + " password=" + quoteValue(password)
}

// CreateDB creates an empty database with a unique name derived from name
// and returns its connection string; the database is dropped at cleanup.
func (s *Server) CreateDB(t testing.TB, name string) string {
	t.Helper()
	db := s.UniqueName(name)
	s.Exec(t, maintenanceDB, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
	t.Cleanup(func() { s.DropDB(t, db) })
	return s.DSN(db)
}

// UniqueName returns a database name, unique on this server, derived from
// name.
func (s *Server) UniqueName(name string) string {
	return testenv.UniqueName(&s.seq, name, maxIdentLength)
}

// DropDB drops database db if it exists, disconnecting its sessions.
func (s *Server) DropDB(t testing.TB, db string) {
	t.Helper()
	s.Exec(t, maintenanceDB, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// Connect opens a connection to db, closed at cleanup.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	return ConnectDSN(t, s.DSN(db))
}

// ConnectDSN opens a connection to dsn, closed at cleanup.
func ConnectDSN(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %s", redactDSN(dsn, err.Error()))
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql (one or more statements, simple protocol) in database db.
func (s *Server) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ExecDSN(t, s.DSN(db), sql)
}

// ExecDSN runs sql (one or more statements, simple protocol) at dsn.
func ExecDSN(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %s", redactDSN(dsn, err.Error()))
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("exec %.200q: %s", sql, redactDSN(dsn, err.Error()))
	}
}

// Tool returns the path of a client tool (pg_dump, psql, …) of the server's
// version, or skips or fails the test when there is none.
func (s *Server) Tool(t testing.TB, name string) string {
	t.Helper()
	return testenv.Tool(t, s.BinDir, name)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// looksLikeDSN reports whether s is a connection string rather than a
// database name (keyword/value or URL form).
func looksLikeDSN(s string) bool {
	return strings.Contains(s, "=") || strings.Contains(s, "://")
}

// redactDSN removes from msg (a driver's or server's error) the secrets of
// dsn: its password, and, when its database name is itself a connection
// string (given by mistake), that whole name and the password in it.
func redactDSN(dsn, msg string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "a connection string that does not parse"
	}
	if looksLikeDSN(cfg.Database) {
		msg = testenv.Redact(msg, cfg.Database)
		if inner, err := pgconn.ParseConfig(cfg.Database); err == nil {
			msg = testenv.Redact(msg, inner.Password)
		}
	}
	return testenv.Redact(msg, cfg.Password)
}
