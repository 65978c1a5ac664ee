package appliance

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// LiveTenant returns the id of the configured tenant whose live database
// spec points at ("" when none): the same SQLite file (os.SameFile, or the
// same absolute path), or a PostgreSQL or MariaDB database of the same
// name on the same server (same port, and a host that resolves to an
// address in common, or the same socket). A tenant whose database cannot
// be compared (an unreadable DSN file) is an error: the check fails
// closed.
func (a *Appliance) LiveTenant(ctx context.Context, spec TargetSpec) (string, error) {
	for _, t := range a.Cfg.Tenants {
		if t.Engine != spec.Engine && !(isMariaDB(t.Engine) && isMariaDB(spec.Engine)) {
			continue
		}
		if spec.Engine == "sqlite" {
			if sameFile(a.Cfg.Resolve(t.Path), spec.Path) {
				return t.ID, nil
			}
			continue
		}
		dsn := t.DSN
		if dsn == "" && t.DSNFile != "" {
			var err error
			if dsn, err = ReadDSN(a.Cfg.Resolve(t.DSNFile)); err != nil {
				return "", fmt.Errorf("cannot tell whether the target is the live database of tenant %s: %w", t.ID, err)
			}
		}
		if dsn == "" {
			continue
		}
		same, err := sameDatabase(ctx, spec.Engine, dsn, spec.DSN)
		if err != nil {
			return "", fmt.Errorf("cannot tell whether the target is the live database of tenant %s: %w", t.ID, err)
		}
		if same {
			return t.ID, nil
		}
	}
	// A database a discover block would back up is live too, found or not
	// (no discovery run needed: the server and the name pattern say it).
	for _, d := range a.Cfg.Discover {
		switch {
		case d.Engine == "sqlite" && spec.Engine == "sqlite":
			abs, err := filepath.Abs(spec.Path)
			if err != nil {
				continue
			}
			if ok, _ := filepath.Match(a.Cfg.Resolve(d.Pattern), abs); ok {
				name := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
				id, _ := TenantID(d.IDTemplate, name)
				return id, nil
			}
		case d.Engine == "postgres" && spec.Engine == "postgres":
			server, err := ReadDSN(a.Cfg.Resolve(d.DSNFile))
			if err != nil {
				return "", fmt.Errorf("cannot tell whether the target is a database discovery backs up: %w", err)
			}
			target, err := parseEndpoint(spec.Engine, spec.DSN)
			if err != nil {
				return "", err
			}
			if ok, _ := path.Match(d.Pattern, target.db); !ok {
				continue
			}
			same, err := sameDatabase(ctx, spec.Engine, WithDatabase(server, target.db), spec.DSN)
			if err != nil {
				return "", fmt.Errorf("cannot tell whether the target is a database discovery backs up: %w", err)
			}
			if same {
				id, _ := TenantID(d.IDTemplate, target.db)
				return id, nil
			}
		}
	}
	return "", nil
}

func isMariaDB(e string) bool { return e == "mariadb" || e == "mysql" }

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// endpoint is a database server address and a database name.
type endpoint struct {
	hosts []string // hosts or socket directories
	port  int
	db    string
}

func parseEndpoint(engine, dsn string) (endpoint, error) {
	if isMariaDB(engine) {
		c, err := mysql.ParseDSN(dsn)
		if err != nil {
			return endpoint{}, fmt.Errorf("a mariadb DSN does not parse")
		}
		e := endpoint{db: c.DBName, port: 3306}
		if c.Net == "unix" {
			e.hosts = []string{c.Addr}
			return e, nil
		}
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			host = c.Addr
		} else if p, err := strconv.Atoi(port); err == nil {
			e.port = p
		}
		e.hosts = []string{host}
		return e, nil
	}
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return endpoint{}, fmt.Errorf("a postgres DSN does not parse")
	}
	e := endpoint{db: c.Database, port: int(c.Port), hosts: []string{c.Host}}
	for _, fb := range c.Fallbacks {
		e.hosts = append(e.hosts, fb.Host)
	}
	return e, nil
}

func sameDatabase(ctx context.Context, engine, a, b string) (bool, error) {
	ea, err := parseEndpoint(engine, a)
	if err != nil {
		return false, err
	}
	eb, err := parseEndpoint(engine, b)
	if err != nil {
		return false, err
	}
	if ea.db != eb.db || ea.port != eb.port {
		return false, nil
	}
	aa, bb := addresses(ctx, ea.hosts), addresses(ctx, eb.hosts)
	for _, x := range aa {
		if slices.Contains(bb, x) {
			return true, nil
		}
	}
	return false, nil
}

// addresses resolves hosts to IP addresses (a host that does not resolve,
// or a socket path, stands for itself); every loopback address counts as
// one.
func addresses(ctx context.Context, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if h == "" || filepath.IsAbs(h) {
			out = append(out, "socket:"+h)
			continue
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, h)
		if err != nil {
			out = append(out, "host:"+h)
			continue
		}
		for _, ip := range ips {
			if p := net.ParseIP(ip); p != nil && p.IsLoopback() {
				ip = "loopback"
			}
			out = append(out, ip)
		}
	}
	return out
}
