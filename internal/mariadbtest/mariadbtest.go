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
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
	cmd      *exec.Cmd
	exit     chan struct{}
	seq      atomic.Int64
}

var (
	mainActive atomic.Bool
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Main runs the package's tests and stops the shared server afterwards. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "mariadbtest: stopping the test server: %v\n", err)
		}
	}
	os.Exit(code)
}

// Start returns the package's shared test server, starting it on first use.
// Without Main in TestMain every call starts its own server, stopped at the
// test's cleanup. It skips or fails the test (testenv.SkipOrFail) when no
// server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	if !mainActive.Load() {
		s, err := startOrFallback()
		if err != nil {
			testenv.SkipOrFail(t, "no MariaDB server for tests: %v", err)
			return nil
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("stopping the test server: %v", err)
			}
		})
		return s
	}
	sharedOnce.Do(func() { shared, sharedErr = startOrFallback() })
	if sharedErr != nil {
		testenv.SkipOrFail(t, "no MariaDB server for tests: %v", sharedErr)
		return nil
	}
	return shared
}

func startOrFallback() (*Server, error) {
	s, err := StartServer(context.Background())
	if err == nil {
		return s, nil
	}
	f, ferr := connectFallback(context.Background())
	if ferr != nil {
		return nil, fmt.Errorf("throwaway server: %v; fallback server: %v", err, ferr)
	}
	fmt.Fprintf(os.Stderr, "mariadbtest: no throwaway server (%v); using the shared server at %s\n", err, f.Addr())
	return f, nil
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
				if p := filepath.Join(d, n); isExecutable(p) {
					return p
				}
			}
			if len(dirs) == 0 {
				if p, err := exec.LookPath(n); err == nil {
					return p
				}
				for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"} {
					if p := filepath.Join(d, n); isExecutable(p) {
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

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartServer starts a throwaway server. The caller must Stop it.
func StartServer(ctx context.Context) (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	s := &Server{Throwaway: true, PasswordAuth: true, Host: "127.0.0.1", User: superuser, Password: randomHex(16), dir: dir}
	s.BinDir = clientDir(bin.server)
	if err := s.installDB(ctx, bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err = s.start(ctx, bin)
		if err == nil || attempt == 2 || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// clientDir returns the directory of the mariadb client beside a server
// binary in sbin, or on PATH.
func clientDir(server string) string {
	for _, d := range []string{filepath.Join(filepath.Dir(filepath.Dir(server)), "bin"), filepath.Dir(server)} {
		if isExecutable(filepath.Join(d, "mariadb-dump")) || isExecutable(filepath.Join(d, "mysqldump")) {
			return d
		}
	}
	if p, err := exec.LookPath("mariadb-dump"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// runAs returns the credential to run the server with: as root, the server
// runs as the mysql (or nobody) user.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"mysql", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root and no unprivileged mysql or nobody user to run the server as")
}

func (s *Server) command(ctx context.Context, cred *syscall.Credential, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// Socket returns the path of the throwaway server's unix socket.
func (s *Server) Socket() string { return filepath.Join(s.dir, "mysqld.sock") }

func (s *Server) installDB(ctx context.Context, bin binaries) error {
	cred, err := runAs()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	args := []string{"--no-defaults", "--auth-root-authentication-method=normal",
		"--datadir=" + s.dataDir(), "--skip-test-db", "--skip-name-resolve"}
	if filepath.Base(bin.server) == "mariadbd" || filepath.Base(bin.server) == "mysqld" {
		args = append(args, "--basedir="+filepath.Dir(filepath.Dir(bin.server)))
	}
	out, err := s.command(ctx, cred, bin.installDB, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(bin.installDB), err, tail(out))
	}
	return nil
}

func (s *Server) start(ctx context.Context, bin binaries) error {
	cred, err := runAs()
	if err != nil {
		return err
	}
	if s.Port, err = freePort(); err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, "error.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if cred != nil {
		os.Chown(logPath, int(cred.Uid), int(cred.Gid))
	}
	// Not CommandContext: the server outlives ctx and is stopped by Stop.
	cmd := s.command(context.Background(), cred, bin.server, "--no-defaults",
		"--datadir="+s.dataDir(), "--tmpdir="+s.dir,
		"--port="+strconv.Itoa(s.Port), "--bind-address=127.0.0.1",
		"--socket="+s.Socket(), "--pid-file="+filepath.Join(s.dir, "mysqld.pid"),
		"--log-error="+logPath, "--skip-name-resolve", "--skip-log-bin",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--innodb-buffer-pool-size=256M", "--innodb-log-file-size=256M",
		"--max-connections=200", "--max-allowed-packet=64M", "--local-infile=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mariadbd: %w", err)
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exit) }()

	// root has no password yet: set one over the socket, for the socket
	// (root@localhost) and for TCP (root@127.0.0.1).
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.setPassword(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.exit:
			log, _ := os.ReadFile(logPath)
			s.cmd = nil
			return fmt.Errorf("mariadbd exited while starting: %s", tail(log))
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			s.Stop()
			return fmt.Errorf("mariadbd not ready after %v (%v): %s", startTimeout, err, tail(log))
		}
	}
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
	if s.cmd != nil && s.cmd.Process != nil {
		// SIGTERM is mariadbd's normal shutdown.
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exit:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exit
		}
		s.cmd = nil
	}
	return os.RemoveAll(s.dir)
}

// removeStaleDirs removes the directories of throwaway servers whose test
// process died without cleaning up (their mariadbd died with it: Pdeathsig).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			if b, err := os.ReadFile(filepath.Join(d, "mysqld.pid")); err == nil {
				if spid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(spid, 0) == nil {
					continue // a server still runs there; leave it alone
				}
			}
			os.RemoveAll(d)
		}
	}
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
		return nil, fmt.Errorf("%s: %s", cfg.Addr, redact(err.Error(), cfg.Passwd))
	}
	s := &Server{Host: host, Port: port, User: cfg.User, Password: cfg.Passwd, fallback: cfg}
	wrong := cfg.Clone()
	wrong.Passwd = cfg.Passwd + "-wrong"
	s.PasswordAuth = ping(ctx, wrong) != nil
	if p, err := exec.LookPath("mariadb-dump"); err == nil {
		s.BinDir = filepath.Dir(p)
	} else if isExecutable("/usr/bin/mariadb-dump") {
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
	clean := regexp.MustCompile(`[^a-z0-9_]+`).ReplaceAllString(strings.ToLower(name), "_")
	db := fmt.Sprintf("kluis_%d_%d_%s", os.Getpid(), s.seq.Add(1), clean)
	if len(db) > maxIdentLength {
		db = db[:maxIdentLength]
	}
	return db
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
		t.Fatalf("connect: %s", redact(err.Error(), cfg.Passwd))
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
	if s.BinDir != "" {
		if p := filepath.Join(s.BinDir, name); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	testenv.SkipOrFail(t, "no %s binary", name)
	return ""
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(s, password string) string {
	if password == "" {
		return s
	}
	return strings.ReplaceAll(s, password, "xxxxx")
}

func tail(b []byte) string {
	const max = 2000
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// nopLogger silences the driver's own logging.
type nopLogger struct{}

func (nopLogger) Print(...any) {}
