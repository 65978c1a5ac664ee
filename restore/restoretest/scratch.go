package restoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
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

// newScratch creates an empty scratch database for a tenant's engine.
func newScratch(ctx context.Context, engine, name, scratchDir, serverDSN string) (scratch, error) {
	switch family(engine) {
	case familyPostgres:
		return newPGScratch(ctx, serverDSN, name)
	case familyMariaDB:
		return newMariaDBScratch(ctx, serverDSN, name)
	}
	if engine == "sqlite" {
		return newSQLiteScratch(scratchDir, name)
	}
	return nil, fmt.Errorf("engine %s has no scratch database", engine)
}

// sqliteScratch is a new file under policy.restore_test.scratch_dir.
type sqliteScratch struct{ path string }

// sqliteSiblings are the files SQLite keeps beside a database.
var sqliteSiblings = []string{"", "-journal", "-wal", "-shm"}

func newSQLiteScratch(dir, name string) (*sqliteScratch, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	p := filepath.Join(dir, name+".db")
	// O_EXCL: the name is ours alone. The empty file is a valid target.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scratch file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("scratch file: %w", err)
	}
	return &sqliteScratch{path: p}, nil
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
	return errors.Join(errs...)
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

// pgScratch is a database created on the PostgreSQL restore-test server.
type pgScratch struct {
	server string // the server DSN, whose database is the maintenance one
	name   string
	dsn    string
}

func newPGScratch(ctx context.Context, server, name string) (*pgScratch, error) {
	if _, err := pgx.ParseConfig(server); err != nil {
		return nil, fmt.Errorf("%s: not a valid PostgreSQL connection string", serverField(familyPostgres))
	}
	s := &pgScratch{server: server, name: name, dsn: appliance.WithDatabase(server, name)}
	err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	if err != nil {
		return nil, fmt.Errorf("creating scratch database %s: %w", name, err)
	}
	return s, nil
}

// exec runs one statement on the server's maintenance database.
func (s *pgScratch) exec(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, s.server)
	if err != nil {
		return fmt.Errorf("connecting to the restore-test server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, stmt)
	return err
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

func (s *pgScratch) Drop(ctx context.Context) error {
	// WITH (FORCE) ends sessions still connected (a probe cut off by a
	// timeout).
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, s.server)
	if err != nil {
		return fmt.Errorf("connecting to the restore-test server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1", s.name).Scan(&n); err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("database %s still exists after DROP DATABASE", s.name)
	}
	return nil
}

// mariadbScratch is a database created on the MariaDB restore-test server.
type mariadbScratch struct {
	server *mysql.Config // without a database
	name   string
}

func newMariaDBScratch(ctx context.Context, server, name string) (*mariadbScratch, error) {
	cfg, err := mysql.ParseDSN(server)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid MariaDB DSN", serverField(familyMariaDB))
	}
	cfg.DBName = ""
	cfg.MultiStatements, cfg.AllowAllFiles, cfg.InterpolateParams = false, false, false
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	s := &mariadbScratch{server: cfg, name: name}
	if err := s.exec(ctx, "CREATE DATABASE "+quoteMariaDB(name)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		return nil, fmt.Errorf("creating scratch database %s: %w", name, err)
	}
	return s, nil
}

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

func (s *mariadbScratch) dbConfig() *mysql.Config {
	c := s.server.Clone()
	c.DBName = s.name
	return c
}

func (s *mariadbScratch) Target() appliance.TargetSpec {
	return appliance.TargetSpec{Engine: "mariadb", DSN: s.dbConfig().FormatDSN()}
}

func (s *mariadbScratch) Open(readOnly bool) (*sql.DB, error) { return s.open(s.dbConfig()) }

func (s *mariadbScratch) Drop(ctx context.Context) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+quoteMariaDB(s.name)); err != nil {
		return err
	}
	db, err := s.open(s.server)
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", s.name).Scan(&n); err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("database %s still exists after DROP DATABASE", s.name)
	}
	return nil
}
