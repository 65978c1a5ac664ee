package restoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for probes
	_ "modernc.org/sqlite"             // database/sql driver "sqlite" for probes

	"github.com/kluis-nl/kluis/appliance"
)

// maxScratchName is the longest database name both PostgreSQL (63) and
// MariaDB (64) accept.
const maxScratchName = 63

// ScratchName returns a scratch database name that cannot collide with a
// tenant's: kluis_rt_<tenant>_<yyyymmddhhmmss>_<6 random hex digits>, the
// tenant part shortened so that the whole fits in 63 characters, '-'
// written as '_'.
func ScratchName(tenant string, now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	suffix := "_" + now.UTC().Format("20060102150405") + "_" + hex.EncodeToString(b[:])
	t := strings.ReplaceAll(tenant, "-", "_")
	if room := maxScratchName - len("kluis_rt_") - len(suffix); len(t) > room {
		t = t[:room]
	}
	return "kluis_rt_" + t + suffix
}

// scratch is a database the test created and must drop.
type scratch interface {
	// Name is the database name (sqlite: the file's base name).
	Name() string
	// Target is where appliance.Target restores into.
	Target() appliance.TargetSpec
	// Open returns a connection pool to the scratch database; readOnly
	// refuses writes where the engine can (probes).
	Open(readOnly bool) (*sql.DB, error)
	// Drop removes the database and checks that it is gone.
	Drop(ctx context.Context) error
}

// newScratch creates an empty scratch database for a tenant's engine,
// recording it in the ledger under stateDir (with its throwaway owner)
// before anything is created. base names the scratch, the appliance, the
// tenant and the restore-test server's identity.
// With an error it returns a nil scratch when nothing was created, and the
// scratch itself when it may have been (CREATE reached the server but its
// answer was lost): the caller drops that like any other.
func newScratch(ctx context.Context, engine string, base ledgerEntry, stateDir, scratchDir, serverDSN string) (scratch, error) {
	base.Family = family(engine)
	base.Token = newToken()
	// The constructors return typed pointers: a nil one must become a nil
	// interface, or the caller would drop a scratch that is not there.
	switch base.Family {
	case familyPostgres:
		base.Owner = base.Name
		held, err := ledgerWrite(stateDir, base)
		if err != nil {
			return nil, err
		}
		s, err := newPGScratch(ctx, serverDSN, held)
		if s == nil {
			held.done() // nothing reached the server
			return nil, err
		}
		return s, err
	case familyMariaDB:
		s, err := newMariaDBScratch(ctx, serverDSN, stateDir, base)
		if s == nil {
			return nil, err
		}
		return s, err
	}
	if engine == "sqlite" {
		base.Family = "sqlite"
		s, err := newSQLiteScratch(scratchDir, stateDir, base)
		if s == nil {
			return nil, err
		}
		return s, err
	}
	return nil, fmt.Errorf("engine %s has no scratch database", engine)
}

// sqliteScratch is a new file under policy.restore_test.scratch_dir.
type sqliteScratch struct {
	path  string
	entry *heldEntry
}

// sqliteSiblings are the files SQLite keeps beside a database.
var sqliteSiblings = []string{"", "-journal", "-wal", "-shm"}

func newSQLiteScratch(dir, stateDir string, e ledgerEntry) (*sqliteScratch, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	p := filepath.Join(dir, e.Name+".db")
	e.Path = p
	held, err := ledgerWrite(stateDir, e)
	if err != nil {
		return nil, err
	}
	// O_EXCL: the name is ours alone. The empty file is a valid target.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		held.done()
		return nil, fmt.Errorf("scratch file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		held.done()
		return nil, fmt.Errorf("scratch file: %w", err)
	}
	return &sqliteScratch{path: p, entry: held}, nil
}

func (s *sqliteScratch) Name() string { return filepath.Base(s.path) }

func (s *sqliteScratch) Target() appliance.TargetSpec {
	return appliance.TargetSpec{Engine: "sqlite", Path: s.path}
}

func (s *sqliteScratch) Open(readOnly bool) (*sql.DB, error) {
	dsn := sqliteURI(s.path) + "?_pragma=busy_timeout(10000)"
	if readOnly {
		dsn += "&mode=ro&_pragma=query_only(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (s *sqliteScratch) Drop(ctx context.Context) error {
	var errs []error
	for _, suffix := range sqliteSiblings {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, suffix := range sqliteSiblings {
		if _, err := os.Lstat(s.path + suffix); err == nil {
			errs = append(errs, fmt.Errorf("%s still exists", filepath.Base(s.path+suffix)))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return s.entry.done()
}

// sqliteURI makes an absolute file path a SQLite URI filename.
func sqliteURI(path string) string {
	var b strings.Builder
	b.WriteString("file:")
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// pgScratch is a database created on the PostgreSQL restore-test server,
// owned by a throwaway role of the same name (role_pg.go).
type pgScratch struct {
	server string // the server DSN (the admin role), whose database is the maintenance one
	name   string // the database and its owner
	dsn    string // the scratch database as its owner
	entry  *heldEntry
}

func newPGScratch(ctx context.Context, server string, entry *heldEntry) (*pgScratch, error) {
	name := entry.entry.Name
	s := &pgScratch{server: server, name: name, entry: entry}
	conn, err := pgConnect(ctx, server)
	if err != nil {
		return nil, fmt.Errorf("creating scratch database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	password, err := pgCreateScratch(ctx, conn, &entry.entry)
	if err != nil {
		// Whatever part was created is dropped by Drop (or, if kluis dies,
		// by the next sweep: the ledger entry names it).
		return s, fmt.Errorf("creating scratch database %s: %w", name, err)
	}
	if s.dsn, err = pgScratchDSN(server, name, name, password); err != nil {
		return s, err
	}
	return s, nil
}

// pgScratchDSN returns the server DSN naming the scratch database. A
// URL's dbname parameter would override its path (where
// appliance.WithDatabase puts the name), and the data would go into the
// maintenance database: it is removed, and the result is checked.
func pgScratchDSN(server, name, user, password string) (string, error) {
	invalid := fmt.Errorf("%s: not a valid PostgreSQL connection string", serverField(familyPostgres))
	if _, err := pgx.ParseConfig(server); err != nil {
		return "", invalid
	}
	dsn := server
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", invalid
		}
		q := u.Query()
		q.Del("dbname")
		q.Del("database")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	dsn = withUser(appliance.WithDatabase(dsn, name), user, password)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", invalid
	}
	if cfg.Database != name {
		return "", fmt.Errorf("%s: the connection string does not let kluis choose the database (it connects to %q): restore tests need their own scratch database", serverField(familyPostgres), cfg.Database)
	}
	if cfg.User != user || cfg.Password != password {
		return "", fmt.Errorf("%s: the connection string does not let kluis choose the role: restore tests run as a throwaway role", serverField(familyPostgres))
	}
	return dsn, nil
}

// withUser returns a PostgreSQL DSN (URL or keyword/value form) with its
// user and password replaced.
func withUser(dsn, user, password string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.User = url.UserPassword(user, password)
			q := u.Query()
			if q.Has("user") || q.Has("password") {
				q.Del("user")
				q.Del("password")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	quote := func(v string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`) + "'"
	}
	return dsn + " user=" + quote(user) + " password=" + quote(password)
}

func pgConnect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to the restore-test server: %w", err)
	}
	return conn, nil
}

func (s *pgScratch) Name() string { return s.name }

func (s *pgScratch) Target() appliance.TargetSpec {
	return appliance.TargetSpec{Engine: "postgres", DSN: s.dsn}
}

func (s *pgScratch) Open(readOnly bool) (*sql.DB, error) {
	db, err := sql.Open("pgx", s.dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Drop removes the scratch database (ending its sessions: it is this
// test's own) and the throwaway role, checks that both are gone, and
// closes the ledger entry.
func (s *pgScratch) Drop(ctx context.Context) error {
	if err := pgDrop(ctx, s.server, s.name); err != nil {
		return err
	}
	if err := pgDropOwner(ctx, s.server, s.name); err != nil {
		return err
	}
	return s.entry.done()
}

// pgDropOwner drops a scratch database's throwaway role.
func pgDropOwner(ctx context.Context, server, role string) error {
	conn, err := pgConnect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgDropRole(ctx, conn, role)
}

// pgForceDrop says whether a server of this server_version_num has DROP
// DATABASE … WITH (FORCE) (PostgreSQL 13 and later); tests replace it to
// take the other way on a newer server.
var pgForceDrop = func(versionNum int) bool { return versionNum >= 130000 }

// pgDrop drops a database on the restore-test server, ending sessions
// still connected to it (a probe cut off by a timeout, a killed test's),
// and checks that it is gone.
func pgDrop(ctx context.Context, server, name string) error {
	conn, err := pgConnect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return err
	}
	if pgForceDrop(version) {
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	} else {
		err = pgDropTerminating(ctx, conn, name)
	}
	if err != nil {
		return err
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("database %s still exists after DROP DATABASE", name)
	}
	return nil
}

// pgDropTerminating is DROP DATABASE … WITH (FORCE) for servers before
// PostgreSQL 13: refuse new sessions (the owner may), end the ones there
// are (a role may end its own), drop; again while a session lingers.
func pgDropTerminating(ctx context.Context, conn *pgx.Conn, name string) error {
	id := pgx.Identifier{name}.Sanitize()
	for attempt := 1; ; attempt++ {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" ALLOW_CONNECTIONS false"); err != nil {
			if pgCode(err) == "3D000" { // invalid_catalog_name: there is nothing to drop
				return nil
			}
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()", name); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id)
		if err == nil || pgCode(err) != "55006" || attempt == 5 { // 55006: object_in_use
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// mariadbScratch is a database created on the MariaDB restore-test
// server, to which a throwaway user alone has access (role_mariadb.go).
type mariadbScratch struct {
	server   *mysql.Config // the admin, without a database
	name     string
	user     string // the throwaway user
	host     string // its host part
	password string
	entry    *heldEntry
}

func newMariaDBScratch(ctx context.Context, server, stateDir string, base ledgerEntry) (*mariadbScratch, error) {
	cfg, err := mariadbServerConfig(server)
	if err != nil {
		return nil, err
	}
	s := &mariadbScratch{server: cfg, name: base.Name}
	db, err := s.open(s.server)
	if err != nil {
		return nil, fmt.Errorf("creating scratch database %s: %w", base.Name, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating scratch database %s: connecting to the restore-test server: %w", base.Name, err)
	}
	defer conn.Close()
	host, err := mariadbClientHost(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("creating scratch database %s: %w", base.Name, err)
	}
	base.Owner, base.OwnerHost = "kluis_rt_u"+newToken()[:12], host
	held, err := ledgerWrite(stateDir, base)
	if err != nil {
		return nil, err
	}
	e := &held.entry
	s.user, s.host, s.entry = e.Owner, e.OwnerHost, held
	if s.password, err = mariadbCreateScratch(ctx, conn, e); err != nil {
		// Whatever part was created is dropped by Drop (or by the next
		// sweep: the ledger entry names it).
		return s, fmt.Errorf("creating scratch database %s: %w", e.Name, err)
	}
	return s, nil
}

// mariadbServerConfig parses the restore-test server's DSN, without a
// database and with the driver's riskier options off.
func mariadbServerConfig(server string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(server)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid MariaDB DSN; the form is user:password@tcp(host:3306)/", serverField(familyMariaDB))
	}
	cfg.DBName = ""
	cfg.MultiStatements, cfg.AllowAllFiles, cfg.InterpolateParams = false, false, false
	cfg.Logger = quietLogger{}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg, nil
}

// quietLogger drops the MariaDB driver's own log lines, which would
// bypass describe; its errors are returned and described all the same.
type quietLogger struct{}

func (quietLogger) Print(...any) {}

func quoteMariaDB(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

func (s *mariadbScratch) exec(ctx context.Context, stmt string) error {
	db, err := s.open(s.server)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func (s *mariadbScratch) open(cfg *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

func (s *mariadbScratch) Name() string { return s.name }

// dbConfig connects to the scratch database as the throwaway user.
func (s *mariadbScratch) dbConfig() *mysql.Config {
	c := s.server.Clone()
	c.DBName = s.name
	c.User, c.Passwd = s.user, s.password
	return c
}

func (s *mariadbScratch) Target() appliance.TargetSpec {
	return appliance.TargetSpec{Engine: "mariadb", DSN: s.dbConfig().FormatDSN()}
}

func (s *mariadbScratch) Open(readOnly bool) (*sql.DB, error) { return s.open(s.dbConfig()) }

// Drop removes the scratch database and the throwaway user, checks that
// the database is gone and closes the ledger entry.
func (s *mariadbScratch) Drop(ctx context.Context) error {
	if err := s.drop(ctx); err != nil {
		return err
	}
	return s.entry.done()
}

func (s *mariadbScratch) drop(ctx context.Context) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+quoteMariaDB(s.name)); err != nil {
		return err
	}
	db, err := s.open(s.server)
	if err != nil {
		return err
	}
	defer db.Close()
	if s.user != "" {
		if err := mariadbDropUser(ctx, db, s.user, s.host); err != nil {
			return err
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", s.name).Scan(&n); err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("database %s still exists after DROP DATABASE", s.name)
	}
	return nil
}
