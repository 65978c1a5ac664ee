package restoretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// Server families: a restore-test server is compared only with tenants
// that speak its protocol.
const (
	familyPostgres = "postgres"
	familyMariaDB  = "mariadb"
)

func family(engine string) string {
	switch engine {
	case "postgres":
		return familyPostgres
	case "mariadb", "mysql":
		return familyMariaDB
	}
	return ""
}

// serverField is the config field naming a family's restore-test server.
func serverField(fam string) string {
	if fam == familyMariaDB {
		return "policy.restore_test.mariadb_server_dsn_file"
	}
	return "policy.restore_test.server_dsn_file"
}

// serverFile is the configured DSN file of a family's restore-test
// server ("" when none is configured).
func serverFile(c *config.Config, fam string) string {
	if fam == familyMariaDB {
		return c.Policy.RestoreTest.MariaDBServerDSNFile
	}
	return c.Policy.RestoreTest.ServerDSNFile
}

// serverDSN reads the restore-test server's connection string for a
// family. The DSN is a secret: errors name the file, never its contents.
func serverDSN(c *config.Config, fam string) (string, error) {
	file := serverFile(c, fam)
	if file == "" {
		return "", fmt.Errorf("no restore-test server: set %s (a dedicated server; never a tenant's own)", serverField(fam))
	}
	dsn, err := appliance.ReadDSN(c.Resolve(file))
	if err != nil {
		return "", fmt.Errorf("%s: %w", serverField(fam), err)
	}
	return dsn, nil
}

// endpoints returns the normalised addresses a DSN connects to:
// "local:PORT" for loopback and unix sockets (a unix socket of
// PostgreSQL names its port; MariaDB's default is 3306 only by
// convention, so its socket counts by path), "unix:PATH", and
// "tcp:HOST:PORT" for any other host. Two DSNs sharing an endpoint are
// taken to reach the same server.
func endpoints(fam, dsn string) ([]string, error) {
	switch fam {
	case familyPostgres:
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return nil, errors.New("not a valid PostgreSQL connection string")
		}
		keys := pgEndpoint(cfg.Host, cfg.Port)
		for _, f := range cfg.Fallbacks {
			keys = append(keys, pgEndpoint(f.Host, f.Port)...)
		}
		return dedup(keys), nil
	case familyMariaDB:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, errors.New("not a valid MariaDB DSN (user:password@tcp(host:port)/)")
		}
		if cfg.Net == "unix" {
			return []string{"unix:" + filepath.Clean(cfg.Addr)}, nil
		}
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host, port = cfg.Addr, "3306"
		}
		return []string{hostKey(host, port)}, nil
	}
	return nil, fmt.Errorf("engine family %q has no server", fam)
}

func pgEndpoint(host string, port uint16) []string {
	p := strconv.Itoa(int(port))
	if strings.HasPrefix(host, "/") {
		return []string{"unix:" + filepath.Join(filepath.Clean(host), ".s.PGSQL."+p), "local:" + p}
	}
	return []string{hostKey(host, p)}
}

func hostKey(host, port string) string {
	h := strings.ToLower(strings.Trim(host, "[]"))
	if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "local:" + port
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return "local:" + port
		}
		h = ip.String()
	}
	return "tcp:" + h + ":" + port
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// showEndpoint makes an endpoint key readable: "localhost:5432".
func showEndpoint(k string) string {
	switch {
	case strings.HasPrefix(k, "local:"):
		return "localhost:" + strings.TrimPrefix(k, "local:")
	case strings.HasPrefix(k, "unix:"):
		return strings.TrimPrefix(k, "unix:")
	}
	return strings.TrimPrefix(k, "tcp:")
}

// tenantServer is a database server a tenant (or a discover block) lives
// on.
type tenantServer struct {
	what string // "tenant praktijk_a", "discover[0]"
	dsn  string
	err  error // the DSN file could not be read: the server is unknown
}

// tenantServers lists the servers of every tenant (declared and
// discovered) and discover block of a family, with an error for each
// whose DSN file cannot be read (its server is unknown).
func tenantServers(c *config.Config, fam string) []tenantServer {
	var out []tenantServer
	for _, t := range c.Tenants {
		if family(t.Engine) != fam {
			continue
		}
		dsn := t.DSN
		var err error
		if dsn == "" && t.DSNFile != "" {
			dsn, err = appliance.ReadDSN(c.Resolve(t.DSNFile))
		}
		if dsn != "" || err != nil {
			out = append(out, tenantServer{what: "tenant " + t.ID, dsn: dsn, err: err})
		}
	}
	for i, d := range c.Discover {
		if family(d.Engine) != fam || d.DSNFile == "" {
			continue
		}
		dsn, err := appliance.ReadDSN(c.Resolve(d.DSNFile))
		out = append(out, tenantServer{what: fmt.Sprintf("discover[%d]", i), dsn: dsn, err: err})
	}
	return out
}

// identityTimeout bounds each connection made to tell servers apart, and
// identityParallel how many are made at once.
const (
	identityTimeout  = 5 * time.Second
	identityParallel = 8
)

// ownServer refuses a restore-test server that is a tenant's own: one
// sharing an endpoint with any tenant's or discover block's DSN, or having
// the same identity (serverIdentity) as the server of any of them. It
// fails closed: when the restore-test server's identity or any tenant
// server's cannot be read (not answering, a DSN file that cannot be
// read), it is an error, and no test runs. It returns the restore-test
// server's identity.
func ownServer(ctx context.Context, c *config.Config, fam, server string) (identity, error) {
	mine, err := endpoints(fam, server)
	if err != nil {
		return identity{}, fmt.Errorf("%s: %w", serverField(fam), err)
	}
	own := map[string]bool{}
	for _, k := range mine {
		own[k] = true
	}
	// Tenants' servers by address, one group per address: many tenants
	// (discovered databases) share a server, which is asked once.
	var groups [][]tenantServer
	groupOf := map[string]int{}
	for _, ts := range tenantServers(c, fam) {
		if ts.err != nil {
			return identity{}, fmt.Errorf("%s: cannot tell whether the restore-test server is the server of %s: %v; no restore test runs until every tenant's server is known",
				serverField(fam), ts.what, ts.err)
		}
		theirs, err := endpoints(fam, ts.dsn)
		if err != nil {
			return identity{}, fmt.Errorf("%s: cannot tell whether the restore-test server is the server of %s: %v; no restore test runs until every tenant's server is known",
				serverField(fam), ts.what, err)
		}
		for _, k := range theirs {
			if own[k] {
				return identity{}, fmt.Errorf("%s points at the server of %s (%s): a restore test never creates or drops databases on a tenant's server; use a dedicated restore-test server",
					serverField(fam), ts.what, showEndpoint(k))
			}
		}
		key := strings.Join(theirs, ",")
		if g, ok := groupOf[key]; ok {
			groups[g] = append(groups[g], ts)
		} else {
			groupOf[key] = len(groups)
			groups = append(groups, []tenantServer{ts})
		}
	}
	id, err := serverIdentity(ctx, fam, server)
	if err != nil {
		return identity{}, fmt.Errorf("%s: the restore-test server does not answer: %s", serverField(fam), describe(err, dsnPassword(fam, server)))
	}
	match := make([]string, len(groups))   // the tenant whose server is the restore-test server
	unknown := make([]string, len(groups)) // a group none of whose members answered
	sem := make(chan struct{}, identityParallel)
	var wg sync.WaitGroup
	for g, members := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var last error
			for _, ts := range members { // the first that answers
				theirs, err := serverIdentity(ctx, fam, ts.dsn)
				if err == nil {
					if theirs.key == id.key {
						match[g] = ts.what
					}
					return
				}
				last = err
			}
			unknown[g] = fmt.Sprintf("%s (%s)", members[0].what, describe(last, dsnPassword(fam, members[0].dsn)))
		}()
	}
	wg.Wait()
	for _, what := range match {
		if what != "" {
			return identity{}, fmt.Errorf("%s reaches the same %s as %s (%s): a restore test never creates or drops databases on a tenant's server; use a dedicated restore-test server",
				serverField(fam), id.kind, what, id.show)
		}
	}
	for _, what := range unknown {
		if what != "" {
			return identity{}, fmt.Errorf("%s: cannot tell whether the restore-test server is the server of %s: it does not answer; no restore test runs until it does (the guard fails closed)",
				serverField(fam), what)
		}
	}
	return id, nil
}

// identity tells database servers apart whatever address reaches them.
type identity struct {
	key  string // equal for one server
	kind string // "PostgreSQL cluster", "MariaDB server"
	show string // what was compared, for a message
}

// serverIdentity reads a server's identity within identityTimeout:
// PostgreSQL's system_identifier; MariaDB's (MySQL's) @@server_uuid where
// the server has it, else @@hostname, @@port and @@datadir together.
func serverIdentity(ctx context.Context, fam, dsn string) (identity, error) {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	switch fam {
	case familyPostgres:
		sid, err := pgSystemID(ctx, dsn)
		if err != nil {
			return identity{}, err
		}
		return identity{key: fmt.Sprintf("pg:%d", sid), kind: "PostgreSQL cluster", show: fmt.Sprintf("system_identifier %d", sid)}, nil
	case familyMariaDB:
		return mariadbIdentity(ctx, dsn)
	}
	return identity{}, fmt.Errorf("engine family %q has no server", fam)
}

func mariadbIdentity(ctx context.Context, dsn string) (identity, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return identity{}, err
	}
	cfg.MultiStatements, cfg.AllowAllFiles, cfg.Logger = false, false, quietLogger{}
	if cfg.Timeout == 0 || cfg.Timeout > identityTimeout {
		cfg.Timeout = identityTimeout
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return identity{}, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	const kind = "MariaDB server"
	var uuid string
	err = db.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&uuid)
	if err == nil && uuid != "" {
		return identity{key: "uuid:" + uuid, kind: kind, show: "@@server_uuid " + uuid}, nil
	}
	var me *mysql.MySQLError
	if err != nil && !(errors.As(err, &me) && me.Number == 1193) { // ER_UNKNOWN_SYSTEM_VARIABLE: MariaDB
		return identity{}, err
	}
	var host, dir string
	var port int
	if err := db.QueryRowContext(ctx, "SELECT @@hostname, @@port, @@datadir").Scan(&host, &port, &dir); err != nil {
		return identity{}, err
	}
	return identity{key: fmt.Sprintf("host:%s|%d|%s", host, port, dir), kind: kind,
		show: fmt.Sprintf("@@hostname %s, @@port %d and @@datadir %s", host, port, dir)}, nil
}

// pgSystemID reads the cluster's system_identifier (pg_control_system,
// PostgreSQL 9.6+), which tells two clusters apart whatever address
// reaches them.
func pgSystemID(ctx context.Context, dsn string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var id int64
	if err := conn.QueryRow(ctx, "SELECT system_identifier FROM pg_catalog.pg_control_system()").Scan(&id); err != nil {
		return 0, err
	}
	return uint64(id), nil
}

// CheckServers checks the configured restore-test servers (for `kluis
// config check --online`) as Run does: each must be readable, must not be
// the server of any tenant or discover block, by address and by identity
// (ownServer, which fails closed), and its role or user must be neither
// too strong nor too weak (checkAdmin). It returns one error per problem.
func CheckServers(ctx context.Context, a *appliance.Appliance) []error {
	_, errs := checkedServers(ctx, a.Cfg)
	return errs
}

// checkedServer is a configured restore-test server that passed
// checkServer.
type checkedServer struct {
	fam, dsn string
	id       identity
}

// checkedServers returns the configured restore-test servers that are
// readable and pass checkServer, and one error per server that does not.
func checkedServers(ctx context.Context, c *config.Config) ([]checkedServer, []error) {
	var ok []checkedServer
	var errs []error
	for _, fam := range []string{familyPostgres, familyMariaDB} {
		if serverFile(c, fam) == "" {
			continue
		}
		dsn, err := serverDSN(c, fam)
		var id identity
		if err == nil {
			id, err = checkServer(ctx, c, fam, dsn)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, checkedServer{fam, dsn, id})
	}
	return ok, errs
}

// checkServer is what a restore-test server must pass before a test runs
// on it: ownServer and checkAdmin.
func checkServer(ctx context.Context, c *config.Config, fam, dsn string) (identity, error) {
	id, err := ownServer(ctx, c, fam, dsn)
	if err != nil {
		return identity{}, err
	}
	if err := checkAdmin(ctx, fam, dsn); err != nil {
		return identity{}, err
	}
	return id, nil
}

// checkAdmin connects to the restore-test server and refuses a role
// (user) that is too strong or too weak (pgCheckAdmin, mariadbCheckAdmin).
func checkAdmin(ctx context.Context, fam, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	secret := dsnPassword(fam, dsn)
	switch fam {
	case familyPostgres:
		conn, err := pgConnect(ctx, dsn)
		if err != nil {
			return fmt.Errorf("%s: %s", serverField(fam), describe(err, secret))
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if err := pgCheckAdmin(ctx, conn); err != nil {
			return errors.New(describe(err, secret))
		}
	case familyMariaDB:
		cfg, err := mariadbServerConfig(dsn)
		if err != nil {
			return err
		}
		db, err := (&mariadbScratch{}).open(cfg)
		if err != nil {
			return err
		}
		defer db.Close()
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("%s: connecting to the restore-test server: %s", serverField(fam), describe(err, secret))
		}
		defer conn.Close()
		if err := mariadbCheckAdmin(ctx, conn); err != nil {
			return errors.New(describe(err, secret))
		}
	}
	return nil
}

// serverSettings returns what a test must leave as it found it on the
// restore-test server: on PostgreSQL the settings applying to the
// restore-test role's sessions (pgRoleSettings). MariaDB has no per-user
// settings a throwaway user could change.
func serverSettings(ctx context.Context, fam, dsn string) (string, error) {
	if fam != familyPostgres {
		return "", nil
	}
	conn, err := pgConnect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgRoleSettings(ctx, conn)
}

// dsnPassword returns the password a DSN carries, to mask it in messages.
func dsnPassword(fam, dsn string) string {
	switch fam {
	case familyPostgres:
		if cfg, err := pgconn.ParseConfig(dsn); err == nil {
			return cfg.Password
		}
	case familyMariaDB:
		if cfg, err := mysql.ParseDSN(dsn); err == nil {
			return cfg.Passwd
		}
	}
	return ""
}
