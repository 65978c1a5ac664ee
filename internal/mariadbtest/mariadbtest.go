// Package mariadbtest gives tests a MariaDB server of their own.
//
// Start returns a throwaway server: mariadb-install-db into a temporary
// directory, mariadbd listening on a free loopback port (127.0.0.1 only; its
// unix socket lives in the temporary directory), durability off (no
// doublewrite, no flush at commit, no binary log), utf8mb4 as the server
// character set, and root with a random password on TCP and on the socket,
// so tests can also exercise a wrong password. When the tests run as root,
// the server runs as the mysql (or nobody) user. It is shared by every test
// of a package whose TestMain calls Main (mariadb-install-db takes seconds),
// and stopped and removed when the package's tests end.
//
// When no MariaDB binaries are found or the server cannot start, Start falls
// back to the shared server named by KLUIS_TEST_MARIADB_FALLBACK_DSN (a
// go-sql-driver DSN, by default root without a password at 127.0.0.1:3306),
// where every database a test creates gets a unique name and is dropped at
// cleanup. When neither works the test is skipped locally and fails under
// KLUIS_TEST_REQUIRE_SERVERS=1 (internal/testenv).
//
// Binaries are looked up in KLUIS_MARIADB_BIN (a directory), then PATH, then
// /usr/sbin and /usr/bin.
package mariadbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/internal/testenv"
)

// Environment variables read by this package.
const (
	BinEnv         = "KLUIS_MARIADB_BIN"               // directory holding mariadbd and mariadb-install-db
	FallbackDSNEnv = "KLUIS_TEST_MARIADB_FALLBACK_DSN" // server used when no throwaway one starts
	defaultDSN     = "root@tcp(127.0.0.1:3306)/?timeout=5s"
	dirPrefix      = "kluis-mariadbtest-"
	startTimeout   = 60 * time.Second
	superuser      = "root"
	maxIdentLength = 64
)

// Server is a MariaDB server for tests.
type Server struct {
	// Throwaway is true for a server started by this package, false for the
	// shared fallback server.
	Throwaway bool
	// PasswordAuth is true when connections must present Password (always
	// for a throwaway server).
	PasswordAuth bool
	// Host, Port, User and Password are the superuser's TCP connection
	// settings.
	Host     string
	Port     int
	User     string
	Password string
	// BinDir holds the client tools (mariadb, mariadb-dump), when found.
	BinDir string

	fallback *mysql.Config // the fallback server's parsed DSN
	dir      string
	proc     *testenv.Process
	seq      atomic.Int64
}

var shared = testenv.Shared[*Server]{
	What: "MariaDB server", Harness: "mariadbtest",
	Start: StartServer, Fallback: connectFallback,
	Describe: func(s *Server) string { return s.Addr() },
}

// Main runs the package's tests and stops the shared server afterwards. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
func Main(m *testing.M) { shared.Main(m) }

// Start returns the package's shared test server, starting it on first use.
// Without Main in TestMain every call starts its own server, stopped at the
// test's cleanup. It skips or fails the test (testenv.SkipOrFail) when no
// server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	return shared.Get(t)
}

// binaries are the server programs: mariadbd (or mysqld) and
// mariadb-install-db (or mysql_install_db).
type binaries struct{ server, installDB string }

// findBinaries looks for the server programs.
func findBinaries() (binaries, error) {
	var dirs []string
	if d := os.Getenv(BinEnv); d != "" {
		dirs = []string{d}
	}
	look := func(names ...string) string {
		for _, n := range names {
			for _, d := range dirs {
				if p := filepath.Join(d, n); testenv.IsExecutable(p) {
					return p
				}
			}
			if len(dirs) == 0 {
				if p, err := exec.LookPath(n); err == nil {
					return p
				}
				for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"} {
					if p := filepath.Join(d, n); testenv.IsExecutable(p) {
						return p
					}
				}
			}
		}
		return ""
	}
	b := binaries{server: look("mariadbd", "mysqld"), installDB: look("mariadb-install-db", "mysql_install_db")}
	if b.server == "" || b.installDB == "" {
		where := "PATH, /usr/sbin, /usr/bin; set " + BinEnv
		if len(dirs) > 0 {
			where = BinEnv + "=" + dirs[0]
		}
		return b, fmt.Errorf("no mariadbd and mariadb-install-db binaries (%s)", where)
	}
	return b, nil
}

// StartServer starts a throwaway server. The caller must Stop it.
func StartServer(ctx context.Context) (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	// As root, the server runs as the mysql (or nobody) user.
	cred, err := testenv.RunAs("mysql", "nobody")
	if err != nil {
		return nil, err
	}
	dir, err := testenv.OwnedTempDir(dirPrefix, cred, func(d string) bool {
		return testenv.PidAlive(filepath.Join(d, "mysqld.pid"))
	})
	if err != nil {
		return nil, err
	}
	s := &Server{Throwaway: true, PasswordAuth: true, Host: "127.0.0.1", User: superuser, Password: testenv.RandomHex(16), dir: dir}
	s.BinDir = clientDir(bin.server)
	if err := s.installDB(ctx, bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := testenv.RetryPortClash(func() error { return s.start(ctx, bin, cred) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// clientDir returns the directory of the mariadb client beside a server
// binary in sbin, or on PATH.
func clientDir(server string) string {
	for _, d := range []string{filepath.Join(filepath.Dir(filepath.Dir(server)), "bin"), filepath.Dir(server)} {
		if testenv.IsExecutable(filepath.Join(d, "mariadb-dump")) || testenv.IsExecutable(filepath.Join(d, "mysqldump")) {
			return d
		}
	}
	if p, err := exec.LookPath("mariadb-dump"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// Socket returns the path of the throwaway server's unix socket.
func (s *Server) Socket() string { return filepath.Join(s.dir, "mysqld.sock") }

func (s *Server) installDB(ctx context.Context, bin binaries, cred *syscall.Credential) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	args := []string{"--no-defaults", "--auth-root-authentication-method=normal",
		"--datadir=" + s.dataDir(), "--skip-test-db", "--skip-name-resolve"}
	if filepath.Base(bin.server) == "mariadbd" || filepath.Base(bin.server) == "mysqld" {
		args = append(args, "--basedir="+filepath.Dir(filepath.Dir(bin.server)))
	}
	out, err := testenv.Command(ctx, s.dir, cred, syscall.SIGKILL, bin.installDB, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(bin.installDB), err, testenv.Tail(out))
	}
	return nil
}

func (s *Server) start(ctx context.Context, bin binaries, cred *syscall.Credential) error {
	var err error
	if s.Port, err = testenv.FreePort(); err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, "error.log")
	os.Remove(logPath) // a failed attempt's log would mislead
	// Not bound to ctx: the server outlives it and is stopped by Stop.
	cmd := testenv.Command(context.Background(), s.dir, cred, syscall.SIGKILL, bin.server, "--no-defaults",
		"--datadir="+s.dataDir(), "--tmpdir="+s.dir,
		"--port="+strconv.Itoa(s.Port), "--bind-address=127.0.0.1",
		"--socket="+s.Socket(), "--pid-file="+filepath.Join(s.dir, "mysqld.pid"),
		"--log-error="+logPath, "--skip-name-resolve", "--skip-log-bin",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--innodb-buffer-pool-size=256M", "--innodb-log-file-size=256M",
		"--max-connections=200", "--max-allowed-packet=64M", "--local-infile=1")
	s.proc, err = testenv.StartProcess(ctx, cmd, testenv.Launch{
		Name: "mariadbd", LogPath: logPath, LogOwner: cred, Timeout: startTimeout,
		// SIGTERM is mariadbd's normal shutdown.
		StopSignal: syscall.SIGTERM, StopGrace: 30 * time.Second,
		// root has no password yet: readiness is setting one.
		Ready: s.setPassword,
	})
	return err
}

func (s *Server) setPassword(ctx context.Context) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = superuser, "unix", s.Socket()
	cfg.Timeout = 2 * time.Second
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pw := quoteString(s.Password)
	for _, q := range []string{
		"CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY " + pw,
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"ALTER USER 'root'@'localhost' IDENTIFIED BY " + pw,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
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
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot parse the DSN", FallbackDSNEnv)
	}
	if cfg.Net != "tcp" {
		return nil, fmt.Errorf("%s: only a tcp address is supported", FallbackDSNEnv)
	}
	cfg.Logger = nopLogger{}
	cfg.DBName = ""
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: bad address", FallbackDSNEnv)
	}
	port, _ := strconv.Atoi(portStr)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ping(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%s: %s", cfg.Addr, testenv.Redact(err.Error(), cfg.Passwd))
	}
	s := &Server{Host: host, Port: port, User: cfg.User, Password: cfg.Passwd, fallback: cfg}
	wrong := cfg.Clone()
	wrong.Passwd = cfg.Passwd + "-wrong"
	s.PasswordAuth = ping(ctx, wrong) != nil
	if p, err := exec.LookPath("mariadb-dump"); err == nil {
		s.BinDir = filepath.Dir(p)
	} else if testenv.IsExecutable("/usr/bin/mariadb-dump") {
		s.BinDir = "/usr/bin"
	}
	return s, nil
}

func ping(ctx context.Context, cfg *mysql.Config) error {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	return db.PingContext(ctx)
}

// Config returns the superuser's connection settings for database db
// (empty: none) over TCP.
func (s *Server) Config(db string) *mysql.Config {
	var cfg *mysql.Config
	if s.fallback != nil {
		cfg = s.fallback.Clone()
	} else {
		cfg = mysql.NewConfig()
		cfg.User, cfg.Passwd = s.User, s.Password
		cfg.Net, cfg.Addr = "tcp", s.Addr()
		cfg.Timeout = 10 * time.Second
	}
	cfg.Logger = nopLogger{}
	cfg.DBName = db
	return cfg
}

// DSN returns a go-sql-driver DSN for database db as the superuser.
func (s *Server) DSN(db string) string { return s.Config(db).FormatDSN() }

// WithPassword returns dsn with its password replaced.
func WithPassword(dsn, password string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		panic("mariadbtest: bad DSN")
	}
	cfg.Passwd = password
	return cfg.FormatDSN()
}

// CreateDB creates an empty utf8mb4 database with a unique name derived
// from name and returns its DSN; the database is dropped at cleanup.
func (s *Server) CreateDB(t testing.TB, name string) string {
	t.Helper()
	db := s.UniqueName(name)
	s.Exec(t, "", "CREATE DATABASE "+QuoteIdent(db)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
	t.Cleanup(func() { s.DropDB(t, db) })
	return s.DSN(db)
}

// UniqueName returns a database name, unique on this server, derived from
// name.
func (s *Server) UniqueName(name string) string {
	return testenv.UniqueName(&s.seq, name, maxIdentLength)
}

// DropDB drops database db if it exists.
func (s *Server) DropDB(t testing.TB, db string) {
	t.Helper()
	s.Exec(t, "", "DROP DATABASE IF EXISTS "+QuoteIdent(db))
}

// Open returns a connection pool to database db (empty: none), closed at
// cleanup.
func (s *Server) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(s.Config(db))
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(conn)
	t.Cleanup(func() { pool.Close() })
	return pool
}

// OpenDSN returns a connection pool to dsn, closed at cleanup.
func OpenDSN(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal("bad DSN")
	}
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(conn)
	t.Cleanup(func() { pool.Close() })
	return pool
}

// Exec runs each statement, in order on one connection, in database db
// (empty: none).
func (s *Server) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	ExecDSN(t, s.DSN(db), stmts...)
}

// ExecDSN runs each statement, in order on one connection, at dsn.
func ExecDSN(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal("bad DSN")
	}
	cfg.Logger = nopLogger{}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("connect: %s", testenv.Redact(err.Error(), cfg.Passwd))
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("exec %.200q: %v", q, err)
		}
	}
}

// Tool returns the path of a client tool (mariadb, mariadb-dump, …), or
// skips or fails the test when there is none.
func (s *Server) Tool(t testing.TB, name string) string {
	t.Helper()
	return testenv.Tool(t, s.BinDir, name)
}

// ClientArgs returns the arguments and environment that connect a client
// tool (mariadb, mariadb-dump) to the server as the superuser over TCP. The
// password travels in MYSQL_PWD, never on a command line.
func (s *Server) ClientArgs() (args, env []string) {
	args = []string{"--no-defaults", "--protocol=tcp", "-h", s.Host, "-P", strconv.Itoa(s.Port), "-u", s.User}
	env = append(os.Environ(), "MYSQL_PWD="+s.Password)
	return args, env
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// QuoteIdent quotes a MariaDB identifier with backticks.
func QuoteIdent(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

func quoteString(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(v) + "'"
}

// nopLogger silences the driver's own logging.
type nopLogger struct{}

func (nopLogger) Print(...any) {}
