package appliance

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/config"
	kdsn "github.com/kluis-nl/kluis/dsn"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/source/sqlite"
)

// Engine returns the source engine of a database tenant, keyed with the
// tenant's fingerprint key.
func (a *Appliance) Engine(t *config.Tenant, fingerprintKey []byte) (source.Engine, error) {
	switch t.Engine {
	case "sqlite":
		return sqlite.New(a.Cfg.Resolve(t.Path), fingerprintKey), nil
	case "postgres":
		dsn := t.DSN // set by discovery
		if dsn == "" {
			var err error
			if dsn, err = ReadDSN(a.Cfg.Resolve(t.DSNFile)); err != nil {
				return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
			}
		}
		return postgres.New(dsn, fingerprintKey, postgres.Options{PgDumpPath: a.PgDumpPath(), LockTimeout: a.Cfg.TenantLockTimeout(t)}), nil
	case "mariadb", "mysql":
		dsn, err := ReadDSN(a.Cfg.Resolve(t.DSNFile))
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		return mariadb.New(dsn, fingerprintKey, mariadb.Options{LockTimeout: a.Cfg.TenantLockTimeout(t)}), nil
	}
	return nil, fmt.Errorf("tenant %s: engine %s has no database source", t.ID, t.Engine)
}

// PgDumpPath is the configured pg_dump (policy.pg_dump), resolved against
// the config's directory, or "" for the default search.
func (a *Appliance) PgDumpPath() string {
	if a.Cfg.Policy.PgDump == "" {
		return ""
	}
	return a.Cfg.Resolve(a.Cfg.Policy.PgDump)
}

// TargetSpec says where a database restore goes: a SQLite file (Path) or a
// PostgreSQL database (DSN, which may carry a password: it came from a
// file or the environment, never the command line).
type TargetSpec struct {
	Engine string
	Path   string
	DSN    string
	Force  bool
}

// Target opens a restore target for an engine.
func Target(ctx context.Context, spec TargetSpec, fingerprintKey []byte) (source.Target, error) {
	switch spec.Engine {
	case "sqlite":
		if spec.Path == "" {
			return nil, fmt.Errorf("a sqlite snapshot restores into a file: give --target-path FILE")
		}
		return sqlite.NewTarget(spec.Path, fingerprintKey, spec.Force)
	case "postgres":
		if spec.DSN == "" {
			return nil, fmt.Errorf("a postgres snapshot restores into a database: give --target-dsn or --target-dsn-file")
		}
		return postgres.NewTarget(ctx, spec.DSN, fingerprintKey, postgres.TargetOptions{Force: spec.Force})
	case "mariadb", "mysql":
		if spec.DSN == "" {
			return nil, fmt.Errorf("a mariadb snapshot restores into a database: give --target-dsn or --target-dsn-file")
		}
		return mariadb.NewTarget(ctx, spec.DSN, fingerprintKey, mariadb.TargetOptions{Force: spec.Force})
	}
	return nil, fmt.Errorf("engine %q has no restore target", spec.Engine)
}

// DSNHasPassword reports whether a connection string carries a password
// in any spelling (dsn.Secrets: URL user info or query, a
// password keyword with or without spaces around =, MariaDB's
// user:password@…).
func DSNHasPassword(s string) bool { return kdsn.HasPassword(s) }
