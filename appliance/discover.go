package appliance

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/config"
	kdsn "github.com/kluis-nl/kluis/internal/dsn"
)

// Discovered is the outcome of tenant discovery: the tenants found and, per
// discover block that failed, why (the block's tenants are then missing
// from this run; the daemon keeps the ones it knew).
type Discovered struct {
	Tenants []config.Tenant
	Errors  []error
}

// Discover runs every discover block of the config. Tenants declared in
// the YAML win over discovered ones with the same id; of two discovered
// ones with one id, the first (in block and name order) wins and the
// collision is reported.
func (a *Appliance) Discover(ctx context.Context) Discovered {
	var out Discovered
	ids := map[string]bool{}
	for _, t := range a.Cfg.Tenants {
		ids[t.ID] = true
	}
	for i, d := range a.Cfg.Discover {
		var ts []config.Tenant
		var err error
		switch d.Engine {
		case "postgres":
			ts, err = a.discoverPostgres(ctx, d)
		case "sqlite":
			ts, err = a.discoverSQLite(d)
		default:
			err = fmt.Errorf("engine %q cannot discover tenants", d.Engine)
		}
		if err != nil {
			out.Errors = append(out.Errors, fmt.Errorf("discover[%d]: %w", i, err))
			continue
		}
		for _, t := range ts {
			if ids[t.ID] {
				if !a.declared(t.ID) {
					out.Errors = append(out.Errors, fmt.Errorf("discover[%d]: tenant id %q found twice: the second is skipped (make id_template unique)", i, t.ID))
				}
				continue
			}
			ids[t.ID] = true
			out.Tenants = append(out.Tenants, t)
		}
	}
	return out
}

func (a *Appliance) declared(id string) bool {
	_, err := a.Cfg.Tenant(id)
	return err == nil
}

// WithTenants returns an Appliance whose config also holds extra tenants
// (discovered ones), sharing the master key already loaded.
func (a *Appliance) WithTenants(extra []config.Tenant) *Appliance {
	c := *a.Cfg
	c.Tenants = append(append([]config.Tenant(nil), a.Cfg.Tenants...), extra...)
	n := New(&c, a.Log)
	n.Now = a.Now
	return n
}

// ListDatabases returns the non-template databases on the server of dsn
// whose names match the glob pattern, sorted.
func ListDatabases(ctx context.Context, dsn, pattern string) ([]string, error) {
	cfg, err := kdsn.ParsePostgres(dsn)
	if err != nil {
		return nil, fmt.Errorf("discovery server: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, kdsn.RedactError(fmt.Errorf("connect to the discovery server: %w", err), dsn)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []string
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (a *Appliance) discoverPostgres(ctx context.Context, d config.Discover) ([]config.Tenant, error) {
	dsn, err := ReadDSN(a.Cfg.Resolve(d.DSNFile))
	if err != nil {
		return nil, err
	}
	dbs, err := ListDatabases(ctx, dsn, d.Pattern)
	if err != nil {
		return nil, err
	}
	var out []config.Tenant
	for _, db := range dbs {
		id, ok := TenantID(d.IDTemplate, db)
		if !ok {
			a.Log.Warn("discovered database gives no valid tenant id: skipped", "database", db, "id_template", d.IDTemplate)
			continue
		}
		out = append(out, config.Tenant{ID: id, Engine: "postgres", DSN: WithDatabase(dsn, db), Schedule: d.Schedule, Discovered: true})
	}
	return out, nil
}

func (a *Appliance) discoverSQLite(d config.Discover) ([]config.Tenant, error) {
	files, err := filepath.Glob(a.Cfg.Resolve(d.Pattern))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []config.Tenant
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		id, ok := TenantID(d.IDTemplate, name)
		if !ok {
			a.Log.Warn("discovered file gives no valid tenant id: skipped", "path", f, "id_template", d.IDTemplate)
			continue
		}
		out = append(out, config.Tenant{ID: id, Engine: "sqlite", Path: f, Schedule: d.Schedule, Discovered: true})
	}
	return out, nil
}

var (
	idBadCharsRE = regexp.MustCompile(`[^a-z0-9_-]+`)
	tenantIDRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// TenantID makes a tenant id from an id template and a database name:
// "{db}" is replaced by the name, the result lower-cased, every run of
// other characters replaced by '_', and leading '_' or '-' trimmed. It
// reports false when no valid id (at most 63 characters) results.
func TenantID(template, name string) (string, bool) {
	id := strings.ReplaceAll(template, "{db}", strings.ToLower(name))
	id = idBadCharsRE.ReplaceAllString(id, "_")
	id = strings.TrimLeft(id, "_-")
	return id, tenantIDRE.MatchString(id)
}

// WithDatabase returns dsn (URL or keyword/value form) with its database
// replaced by db.
func WithDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			// A dbname= (or database=) query parameter would override the
			// path: drop it, so the database is the one named here.
			q := u.Query()
			if q.Has("dbname") || q.Has("database") {
				q.Del("dbname")
				q.Del("database")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	// In the keyword/value form the later keyword wins.
	v := strings.ReplaceAll(strings.ReplaceAll(db, `\`, `\\`), `'`, `\'`)
	return dsn + " dbname='" + v + "'"
}
