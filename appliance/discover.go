package appliance

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/config"
	kdsn "github.com/kluis-nl/kluis/dsn"
)

// Discovered is the outcome of tenant discovery: the tenants found and, per
// discover block that failed, why (the block's tenants are then missing
// from this run; the daemon keeps the ones it knew), and the ids that
// collide.
type Discovered struct {
	Tenants []config.Tenant
	Errors  []error
	// Collisions are tenant ids that two or more discovered databases map
	// to (TenantID folds case and punctuation: praktijk_A and praktijk_a).
	// Neither database is backed up under the id: kluis cannot tell which
	// is the practice's, and taking the first would let anyone who can
	// create a database take over a practice's repository.
	Collisions []Collision
}

// Collision is a tenant id several discovered databases map to.
type Collision struct {
	ID string
	// Sources name the databases (or files): "discover[0] database praktijk_A".
	Sources []string
}

func (c Collision) Error() string {
	return fmt.Sprintf("tenant id %q comes from %d databases (%s): none of them is backed up until they are told apart (rename one, or make id_template unique)",
		c.ID, len(c.Sources), strings.Join(c.Sources, ", "))
}

// Discover runs every discover block of the config. Tenants declared in
// the YAML win over discovered ones with the same id. Discovered databases
// whose ids collide (with each other, in one block or across blocks) are
// all left out and reported in Collisions: the collision fails closed.
func (a *Appliance) Discover(ctx context.Context) Discovered {
	var out Discovered
	var found []config.Tenant
	var sources []string
	for i, d := range a.Cfg.Discover {
		var ts []config.Tenant
		var names []string
		var err error
		switch d.Engine {
		case "postgres":
			ts, names, err = a.discoverPostgres(ctx, d)
		case "sqlite":
			ts, names, err = a.discoverSQLite(d)
		default:
			err = fmt.Errorf("engine %q cannot discover tenants", d.Engine)
		}
		if err != nil {
			out.Errors = append(out.Errors, fmt.Errorf("discover[%d]: %w", i, err))
			continue
		}
		for j, t := range ts {
			if a.declared(t.ID) {
				continue
			}
			found = append(found, t)
			sources = append(sources, fmt.Sprintf("discover[%d] %s", i, names[j]))
		}
	}
	byID := map[string][]int{}
	var order []string
	for i, t := range found {
		if _, ok := byID[t.ID]; !ok {
			order = append(order, t.ID)
		}
		byID[t.ID] = append(byID[t.ID], i)
	}
	for _, id := range order {
		idx := byID[id]
		if len(idx) == 1 {
			out.Tenants = append(out.Tenants, found[idx[0]])
			continue
		}
		c := Collision{ID: id}
		for _, i := range idx {
			c.Sources = append(c.Sources, sources[i])
		}
		out.Collisions = append(out.Collisions, c)
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

// discoverPostgres returns the tenants of a postgres discover block and,
// for each, the database it comes from ("database NAME").
func (a *Appliance) discoverPostgres(ctx context.Context, d config.Discover) ([]config.Tenant, []string, error) {
	dsn, err := ReadDSN(a.Cfg.Resolve(d.DSNFile))
	if err != nil {
		return nil, nil, err
	}
	dbs, err := ListDatabases(ctx, dsn, d.Pattern)
	if err != nil {
		return nil, nil, err
	}
	var out []config.Tenant
	var names []string
	for _, db := range dbs {
		id, ok := TenantID(d.IDTemplate, db)
		if !ok {
			a.Log.Warn("discovered database gives no valid tenant id: skipped", "database", db, "id_template", d.IDTemplate)
			continue
		}
		out = append(out, config.Tenant{ID: id, Engine: "postgres", DSN: WithDatabase(dsn, db), Schedule: d.Schedule, Discovered: true})
		names = append(names, "database "+strconv.Quote(db))
	}
	return out, names, nil
}

func (a *Appliance) discoverSQLite(d config.Discover) ([]config.Tenant, []string, error) {
	files, err := filepath.Glob(a.Cfg.Resolve(d.Pattern))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	var out []config.Tenant
	var names []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		id, ok := TenantID(d.IDTemplate, name)
		if !ok {
			a.Log.Warn("discovered file gives no valid tenant id: skipped", "path", f, "id_template", d.IDTemplate)
			continue
		}
		out = append(out, config.Tenant{ID: id, Engine: "sqlite", Path: f, Schedule: d.Schedule, Discovered: true})
		names = append(names, "file "+strconv.Quote(filepath.Base(f)))
	}
	return out, names, nil
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
