package appliance

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	kdsn "github.com/kluis-nl/kluis/dsn"
	"github.com/kluis-nl/kluis/source/postgres"
)

// OnlineResult is the outcome of connecting to one database (or
// discovery server) for `kluis config check --online`.
type OnlineResult struct {
	// Kind is "tenant" or "discover".
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// onlineTimeout bounds each connection attempt.
const onlineTimeout = 15 * time.Second

// CheckDatabases connects to every tenant database declared in the config
// and every discovery server, reads nothing but the server version (and,
// for a discovery server, the matching database names), and reports each.
// It writes nothing anywhere. Errors never carry a DSN.
func (a *Appliance) CheckDatabases(ctx context.Context) []OnlineResult {
	var out []OnlineResult
	for i := range a.Cfg.Tenants {
		t := &a.Cfg.Tenants[i]
		if t.Engine == "files" {
			continue
		}
		r := OnlineResult{Kind: "tenant", Name: t.ID}
		cctx, cancel := context.WithTimeout(ctx, onlineTimeout)
		ver, err := a.pingTenant(cctx, t.ID)
		cancel()
		if err != nil {
			r.Error = a.Redact(err.Error())
		} else {
			r.OK, r.Detail = true, t.Engine+" "+ver
		}
		out = append(out, r)
	}
	for i, d := range a.Cfg.Discover {
		r := OnlineResult{Kind: "discover", Name: fmt.Sprintf("discover[%d] %s %s", i, d.Engine, d.Pattern)}
		cctx, cancel := context.WithTimeout(ctx, onlineTimeout)
		n, err := a.countDiscoverable(cctx, i)
		cancel()
		if err != nil {
			r.Error = a.Redact(err.Error())
		} else {
			r.OK, r.Detail = true, fmt.Sprintf("%d matching databases", n)
		}
		out = append(out, r)
	}
	return out
}

// pingTenant opens the tenant's database read-only and returns the server
// version. PostgreSQL gets a plain connection (no snapshot, no locks);
// other engines open and close a snapshot.
func (a *Appliance) pingTenant(ctx context.Context, id string) (string, error) {
	t, err := a.Cfg.Tenant(id)
	if err != nil {
		return "", err
	}
	if t.Engine == "postgres" {
		dsn := t.DSN
		if dsn == "" {
			if dsn, err = ReadDSN(a.Cfg.Resolve(t.DSNFile)); err != nil {
				return "", err
			}
		}
		cfg, err := kdsn.ParsePostgres(dsn)
		if err != nil {
			return "", err
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return "", kdsn.RedactError(fmt.Errorf("connect: %w", err), dsn)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var v string
		var num int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int").Scan(&v, &num); err != nil {
			return "", err
		}
		// The pg_dump a backup would run: present, runnable, and at
		// least the server's major version.
		path, pv, err := postgres.CheckPgDump(ctx, a.PgDumpPath(), num/10000)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s; %s (%s)", v, pv, path), nil
	}
	eng, err := a.Engine(t, nil)
	if err != nil {
		return "", err
	}
	snap, err := eng.Snapshot(ctx)
	if err != nil {
		return "", err
	}
	defer snap.Close()
	return snap.ServerVersion(), nil
}

func (a *Appliance) countDiscoverable(ctx context.Context, i int) (int, error) {
	d := a.Cfg.Discover[i]
	switch d.Engine {
	case "postgres":
		dsn, err := ReadDSN(a.Cfg.Resolve(d.DSNFile))
		if err != nil {
			return 0, err
		}
		dbs, err := ListDatabases(ctx, dsn, d.Pattern)
		if err != nil {
			return 0, err
		}
		// Its tenants are backed up with the configured pg_dump too.
		return len(dbs), a.checkPgDumpFor(ctx, dsn)
	case "sqlite":
		ts, _, err := a.discoverSQLite(d)
		return len(ts), err
	}
	return 0, fmt.Errorf("engine %q cannot discover tenants", d.Engine)
}

// checkPgDumpFor checks the pg_dump a backup would run against the major
// version of the server dsn names.
func (a *Appliance) checkPgDumpFor(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return err
	}
	_, _, err = postgres.CheckPgDump(ctx, a.PgDumpPath(), num/10000)
	return err
}
