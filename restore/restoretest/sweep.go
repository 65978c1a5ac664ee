package restoretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// scratchNameRE matches a name ScratchName made and captures its time.
var scratchNameRE = regexp.MustCompile(`^kluis_rt_.*_([0-9]{14})_[0-9a-f]{6}$`)

// scratchTime returns the UTC time embedded in a scratch database's name.
func scratchTime(name string) (time.Time, bool) {
	m := scratchNameRE.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("20060102150405", m[1], time.UTC)
	return t, err == nil
}

// StaleAfter is the age after which SweepStale may take a scratch file
// in scratch_dir that no ledger entry names (one made by an older kluis):
// a day, or twice the RTO target when that is longer, so that no running
// test loses its own.
func StaleAfter(c *config.Config) time.Duration {
	return max(24*time.Hour, 2*c.Policy.RestoreTest.RTOTarget.D())
}

// SweepStale removes what killed restore tests left behind, as soon as
// the ledger (ledger.go) proves it is the appliance's own and no running
// test holds it — at the daemon's start, whatever its age:
//
//   - on a restore-test server, a database the ledger names, whose
//     name is in the scratch alphabet, whose marker (COMMENT) carries this
//     appliance's id and the entry's random token, and (PostgreSQL) whose
//     owner is the entry's throwaway role; then that role (user). The
//     server must have the identity recorded in the entry. Nothing is
//     dropped WITH (FORCE): a database still in use stays for the next
//     sweep. A database no entry names is never touched, whatever its name
//     (another appliance's test, a kluis_rt_KEEP… kept by hand).
//   - in scratch_dir, the file an entry names; and a scratch file no
//     entry names (an older kluis's) whose name's time is more than
//     olderThan before the appliance's clock.
//
// It returns what it removed (database and file names) and an error per
// entry, server or file it could not sweep.
func SweepStale(ctx context.Context, a *appliance.Appliance, olderThan time.Duration) ([]string, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	cutoff := now().Add(-olderThan)
	var swept []string
	var errs []error

	paths, err := ledgerPaths(a.StateDir())
	if err != nil {
		errs = append(errs, fmt.Errorf("scratch ledger: %w", err))
	}
	ledgered := map[string]bool{}
	servers := map[string]*sweepServer{}
	for _, p := range paths {
		ledgered[strings.TrimSuffix(filepath.Base(p), ".json")] = true
		h, err := ledgerTake(p)
		if errors.Is(err, errEntryBusy) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("scratch ledger entry %s: %w", filepath.Base(p), err))
			continue
		}
		name, err := sweepEntry(ctx, a, h, servers)
		if err != nil {
			h.release()
			errs = append(errs, fmt.Errorf("scratch %s (tenant %s) not removed: %w", h.entry.Name, h.entry.Tenant, err))
			continue
		}
		if err := h.done(); err != nil {
			errs = append(errs, fmt.Errorf("scratch ledger entry %s: %w", filepath.Base(p), err))
		}
		swept = append(swept, name)
	}

	dir := a.Cfg.Resolve(a.Cfg.Policy.RestoreTest.ScratchDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("policy.restore_test.scratch_dir: %w", err))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		base, ok := sqliteScratchBase(e.Name())
		if !ok || !e.Type().IsRegular() || seen[base] || ledgered[base] {
			continue
		}
		if t, ok := scratchTime(base); !ok || !t.Before(cutoff) {
			continue
		}
		seen[base] = true
		sc := &sqliteScratch{path: filepath.Join(dir, base+".db")}
		if err := sc.Drop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stale scratch file %s: %w", sc.Name(), err))
			continue
		}
		swept = append(swept, sc.Name())
	}
	return swept, errors.Join(errs...)
}

// sweepServer is a configured restore-test server as a sweep sees it.
type sweepServer struct {
	dsn string
	id  identity
	err error
}

// sweepEntry removes what one ledger entry names and returns its name.
func sweepEntry(ctx context.Context, a *appliance.Appliance, h *heldEntry, servers map[string]*sweepServer) (string, error) {
	e := &h.entry
	if e.Appliance != a.Cfg.Appliance.ID {
		return "", fmt.Errorf("the entry is appliance %s's, not this one's (%s)", e.Appliance, a.Cfg.Appliance.ID)
	}
	if e.Family == "sqlite" {
		dir, err := filepath.Abs(a.Cfg.Resolve(a.Cfg.Policy.RestoreTest.ScratchDir))
		if err != nil {
			return "", err
		}
		if e.Path != filepath.Join(dir, e.Name+".db") {
			return "", fmt.Errorf("the entry's file is not in policy.restore_test.scratch_dir")
		}
		return e.Name + ".db", (&sqliteScratch{path: e.Path}).Drop(ctx)
	}
	if e.Family != familyPostgres && e.Family != familyMariaDB {
		return "", fmt.Errorf("unknown family %q", e.Family)
	}
	srv := servers[e.Family]
	if srv == nil {
		srv = &sweepServer{}
		srv.dsn, srv.err = serverDSN(a.Cfg, e.Family)
		if srv.err == nil {
			srv.id, srv.err = serverIdentity(ctx, e.Family, srv.dsn)
			if srv.err != nil {
				srv.err = fmt.Errorf("%s: %s", serverField(e.Family), describe(srv.err, dsnPassword(e.Family, srv.dsn)))
			}
		}
		servers[e.Family] = srv
	}
	if srv.err != nil {
		return "", srv.err
	}
	if srv.id.key != e.Server {
		return "", fmt.Errorf("it was made on another server than the configured %s (%s now)", serverField(e.Family), srv.id.show)
	}
	var err error
	if e.Family == familyPostgres {
		err = pgSweep(ctx, srv.dsn, e)
	} else {
		err = mariadbSweep(ctx, srv.dsn, e)
	}
	if err != nil {
		return "", errors.New(describe(err, dsnPassword(e.Family, srv.dsn)))
	}
	return e.Name, nil
}

// pgSweep drops an entry's database, when it is marked and owned as the
// entry says, and its throwaway role.
func pgSweep(ctx context.Context, dsn string, e *ledgerEntry) error {
	if !scratchAlphabetRE.MatchString(e.Name) || e.Owner != e.Name {
		return fmt.Errorf("invalid entry")
	}
	conn, err := pgConnect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var owner, marker *string
	err = conn.QueryRow(ctx, `SELECT r.rolname, pg_catalog.shobj_description(d.oid, 'pg_database')
FROM pg_catalog.pg_database d LEFT JOIN pg_catalog.pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`, e.Name).Scan(&owner, &marker)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case owner == nil || *owner != e.Owner || marker == nil || *marker != e.marker():
		return fmt.Errorf("database %s is not marked and owned as the ledger says: left alone (remove it by hand if it is a scratch database)", e.Name)
	default:
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{e.Name}.Sanitize()); err != nil {
			return err
		}
	}
	return pgDropRole(ctx, conn, e.Owner)
}

// mariadbSweep drops an entry's database, when it is marked as the entry
// says, and its throwaway user.
func mariadbSweep(ctx context.Context, dsn string, e *ledgerEntry) error {
	if !scratchAlphabetRE.MatchString(e.Name) || !mariadbUserRE.MatchString(e.Owner) {
		return fmt.Errorf("invalid entry")
	}
	cfg, err := mariadbServerConfig(dsn)
	if err != nil {
		return err
	}
	s := &mariadbScratch{server: cfg, name: e.Name, user: e.Owner, host: e.OwnerHost}
	db, err := s.open(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var marker string
	err = db.QueryRowContext(ctx, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", e.Name).Scan(&marker)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return mariadbDropUser(ctx, db, e.Owner, e.OwnerHost)
	case err != nil:
		return err
	case marker != e.marker():
		return fmt.Errorf("database %s is not marked as the ledger says: left alone (remove it by hand if it is a scratch database)", e.Name)
	}
	return s.drop(ctx)
}

// sqliteScratchBase returns the scratch name of a file in scratch_dir:
// NAME.db or one of its siblings.
func sqliteScratchBase(file string) (string, bool) {
	for _, suffix := range sqliteSiblings {
		if base, ok := strings.CutSuffix(file, ".db"+suffix); ok && scratchNameRE.MatchString(base) {
			return base, true
		}
	}
	return "", false
}
