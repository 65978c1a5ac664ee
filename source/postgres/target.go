package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kluis-nl/kluis/source"
)

// ErrTargetNotEmpty: the target database already holds user objects and
// TargetOptions.Force was not given.
var ErrTargetNotEmpty = errors.New("postgres: target database is not empty")

// DefaultParallel is the number of connections a Target uses when
// TargetOptions.Parallel is not set.
const DefaultParallel = 4

// TargetOptions configure a Target.
type TargetOptions struct {
	// Force replaces a non-empty target database: it is dropped (its
	// sessions terminated, DROP DATABASE … WITH (FORCE)) and created anew.
	// Only ever point a forced restore at a scratch or restore-test server.
	Force bool
	// Parallel bounds the connections used by concurrent LoadTable and
	// Fingerprint calls; DefaultParallel when 0.
	Parallel int
}

// Target is a PostgreSQL database being restored into.
type Target struct {
	cfg  *pgx.ConnConfig
	key  []byte
	sem  chan struct{} // one token per connection in use
	mu   sync.Mutex
	idle []*pgx.Conn
	done bool
	// proved holds the storage file of every table LoadAndFingerprint
	// read back, by table oid.
	proved map[int64]int64
	// post is the post-data section running beside the loads, told when
	// a load commits (StartPostData).
	post *postRun
}

var _ source.Target = (*Target)(nil)

// NewTarget prepares the database named in dsn for a restore: it is created
// from template0 (with the server's default encoding and locale) when
// absent, used when empty, and refused with ErrTargetNotEmpty when it holds
// any user object — unless opts.Force, which drops and recreates it. The
// database is created and dropped through a maintenance database on the
// same server ("postgres", or "template1" when the target is "postgres"),
// so the role needs CREATEDB.
func NewTarget(ctx context.Context, dsn string, fingerprintKey []byte, opts TargetOptions) (*Target, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := prepareDatabase(ctx, cfg, opts.Force); err != nil {
		return nil, redactError(err, cfg.Password)
	}
	n := opts.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	t := &Target{cfg: cfg, key: append([]byte(nil), fingerprintKey...), sem: make(chan struct{}, n)}
	// Connect once now, so a bad target fails here rather than mid-restore.
	conn, err := t.acquire(ctx)
	if err != nil {
		return nil, err
	}
	t.release(conn, nil)
	return t, nil
}

func prepareDatabase(ctx context.Context, cfg *pgx.ConnConfig, force bool) error {
	db := cfg.Database
	if db == "" {
		return errors.New("postgres: the target connection string names no database")
	}
	maint := cfg.Copy()
	maint.Database = "postgres"
	if db == "postgres" {
		maint.Database = "template1"
	}
	mconn, err := connect(ctx, maint)
	if err != nil {
		return fmt.Errorf("connecting to the maintenance database %s: %w", maint.Database, err)
	}
	defer mconn.Close(context.Background())

	var exists bool
	if err := mconn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %s: %w", db, err)
	}
	create := "CREATE DATABASE " + pgx.Identifier{db}.Sanitize() + " TEMPLATE template0"
	if !exists {
		if err := execSimple(ctx, mconn, create); err != nil {
			return fmt.Errorf("creating database %s: %w", db, err)
		}
		return nil
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	objects, err := countUserObjects(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("inspecting database %s: %w", db, err)
	}
	if objects == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%w: %s holds %d user objects (restore into a new database, or force to drop and recreate it)", ErrTargetNotEmpty, db, objects)
	}
	switch db {
	case "postgres", "template0", "template1":
		return fmt.Errorf("postgres: refusing to drop system database %s", db)
	}
	if err := execSimple(ctx, mconn, "DROP DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", db, err)
	}
	if err := execSimple(ctx, mconn, create); err != nil {
		return fmt.Errorf("creating database %s: %w", db, err)
	}
	return nil
}

// countUserObjects counts what a restore could collide with: relations,
// routines and types in user schemas, user schemas other than public, and
// extensions other than plpgsql.
func countUserObjects(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `
SELECT
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE `+userSchema+`)
+ (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE `+userSchema+`)
+ (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE `+userSchema+`)
+ (SELECT pg_catalog.count(*) FROM pg_catalog.pg_namespace n WHERE n.nspname <> 'public' AND `+userSchema+`)
+ (SELECT pg_catalog.count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql')
+ (SELECT pg_catalog.count(*) FROM pg_catalog.pg_largeobject_metadata)`).Scan(&n)
	return n, err
}

// ApplySchema executes DDL written by Snapshot.Schema as one multi-statement
// simple-protocol query: atomically, on a connection of its own. pg_dump's
// \restrict and \unrestrict lines are removed; no other psql meta-command is
// interpreted.
func (t *Target) ApplySchema(ctx context.Context, ddl io.Reader) error {
	text, err := io.ReadAll(ddl)
	if err != nil {
		return fmt.Errorf("reading schema: %w", err)
	}
	text = stripRestrict(text)
	conn, err := connect(ctx, t.cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := execSimple(ctx, conn, string(text)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Position > 0 {
			n, line := lineAt(text, int(pgErr.Position))
			err = fmt.Errorf("line %d: %q: %w", n, line, err)
		}
		return redactError(fmt.Errorf("applying schema: %w", err), t.cfg.Password)
	}
	return nil
}

// LoadTable loads a stream written by Snapshot.WriteTable with COPY FROM
// STDIN, in one transaction that first truncates the table (see
// copyInSQL). Safe for concurrent use with other tables.
func (t *Target) LoadTable(ctx context.Context, tb source.Table, rows io.Reader) (err error) {
	if err := checkLoadable(tb); err != nil {
		return err
	}
	conn, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { t.release(conn, err) }()
	_, _, err = t.load(ctx, conn, tb, rows)
	return err
}

// Fingerprint recomputes a loaded table's fingerprint with the COPY TO
// statement WriteTable uses (without ORDER BY: the fingerprint does not
// depend on order) under the same session settings.
func (t *Target) Fingerprint(ctx context.Context, tb source.Table) (res source.TableResult, err error) {
	conn, err := t.acquire(ctx)
	if err != nil {
		return source.TableResult{}, err
	}
	defer func() { t.release(conn, err) }()
	res, err = copyOut(ctx, conn, tb, false, nil, t.key)
	if err != nil {
		return source.TableResult{}, redactError(fmt.Errorf("fingerprinting table %s: %w", tb.Name, err), t.cfg.Password)
	}
	return res, nil
}

// Close closes the Target's idle connections. Calls still running keep
// their connection until they return, and then close it.
func (t *Target) Close() error {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.done = nil, true
	t.mu.Unlock()
	var errs []error
	for _, c := range idle {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, c.Close(ctx))
		cancel()
	}
	return redactError(errors.Join(errs...), t.cfg.Password)
}

// acquire returns an idle connection, or a new one, once fewer than
// Parallel are in use.
func (t *Target) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		<-t.sem
		return nil, errors.New("postgres: target is closed")
	}
	if n := len(t.idle); n > 0 {
		c := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	c, err := connect(ctx, t.cfg)
	if err != nil {
		<-t.sem
		return nil, err
	}
	return c, nil
}

// release returns a connection to the idle list, or closes it after an
// error (its state is unknown) or once the Target is closed.
func (t *Target) release(c *pgx.Conn, err error) {
	defer func() { <-t.sem }()
	t.mu.Lock()
	if err == nil && !t.done && !c.IsClosed() {
		t.idle = append(t.idle, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.Close(context.Background())
}
