package restoretest

import (
	"context"
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

// StaleAfter is the age after which SweepStale may take a scratch
// database for a killed test's: a day, or twice the RTO target when that
// is longer, so that no running test loses its own.
func StaleAfter(c *config.Config) time.Duration {
	return max(24*time.Hour, 2*c.Policy.RestoreTest.RTOTarget.D())
}

// SweepStale removes scratch databases that restore tests left behind
// (a test killed before it could drop its own): every database named like
// ScratchName on the configured restore-test servers, and every such file
// (with SQLite's -journal, -wal and -shm beside it) in scratch_dir, whose
// name's time is more than olderThan before the appliance's clock.
// olderThan must exceed the longest restore test, or a running one loses
// its scratch database. A server that is a tenant's own is refused
// (ownServer), never swept. It returns what it removed (database names,
// file names) and an error per server or file it could not sweep.
func SweepStale(ctx context.Context, a *appliance.Appliance, olderThan time.Duration) ([]string, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	cutoff := now().Add(-olderThan)
	stale := func(name string) bool {
		t, ok := scratchTime(name)
		return ok && t.Before(cutoff)
	}
	var swept []string
	var errs []error

	dir := a.Cfg.Resolve(a.Cfg.Policy.RestoreTest.ScratchDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("policy.restore_test.scratch_dir: %w", err))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		base, ok := sqliteScratchBase(e.Name())
		if !ok || !e.Type().IsRegular() || seen[base] || !stale(base) {
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

	servers, serverErrs := checkedServers(ctx, a.Cfg)
	errs = append(errs, serverErrs...)
	for _, srv := range servers {
		fam, dsn := srv.fam, srv.dsn
		names, err := listScratch(ctx, fam, dsn)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: listing scratch databases: %s", serverField(fam), describe(err, dsnPassword(fam, dsn))))
			continue
		}
		for _, name := range names {
			if !stale(name) {
				continue
			}
			if err := dropScratchDB(ctx, fam, dsn, name); err != nil {
				errs = append(errs, fmt.Errorf("%s: stale scratch database %s not removed: %s", serverField(fam), name, describe(err, dsnPassword(fam, dsn))))
				continue
			}
			swept = append(swept, name)
		}
	}
	return swept, errors.Join(errs...)
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

// listScratch lists the databases on a restore-test server named like
// scratch databases.
func listScratch(ctx context.Context, fam, dsn string) ([]string, error) {
	var names []string
	keep := func(n string) {
		if scratchNameRE.MatchString(n) {
			names = append(names, n)
		}
	}
	switch fam {
	case familyPostgres:
		conn, err := pgConnect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		rows, err := conn.Query(ctx, "SELECT datname FROM pg_catalog.pg_database WHERE datname LIKE 'kluis%'")
		if err != nil {
			return nil, err
		}
		list, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, n := range list {
			keep(n)
		}
	case familyMariaDB:
		cfg, err := mariadbServerConfig(dsn)
		if err != nil {
			return nil, err
		}
		s := &mariadbScratch{server: cfg}
		db, err := s.open(cfg)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis%'")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return nil, err
			}
			keep(n)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// dropScratchDB drops a scratch database on a restore-test server.
func dropScratchDB(ctx context.Context, fam, dsn, name string) error {
	if fam == familyPostgres {
		return pgDrop(ctx, dsn, name)
	}
	cfg, err := mariadbServerConfig(dsn)
	if err != nil {
		return err
	}
	return (&mariadbScratch{server: cfg, name: name}).Drop(ctx)
}
