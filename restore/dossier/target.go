package dossier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// TargetIdentity names a database whatever DSN or path reaches it, so a
// restore target can be compared with the tenants' databases: PostgreSQL's
// cluster system_identifier with the database's OID and name; MariaDB's
// @@server_uuid (MySQL) or @@hostname, @@port and @@datadir together, with
// the schema's name; SQLite's file (device and inode). It holds no
// password, host or DSN: it is what the access log records.
type TargetIdentity struct {
	Engine   string `json:"engine"`
	Server   string `json:"server"`        // "system_identifier 7312…", "@@server_uuid …", "file"
	Database string `json:"database"`      // the database (schema, file) name
	OID      string `json:"oid,omitempty"` // PostgreSQL: the database's OID
	file     string // SQLite: device:inode
}

// Key is equal for two identities of one database.
func (i TargetIdentity) Key() string {
	if i.Engine == "sqlite" {
		return "sqlite:" + i.file
	}
	return i.Engine + "|" + i.Server + "|" + i.OID + "|" + i.Database
}

// SameServer reports whether both databases live on one server (cluster).
func (i TargetIdentity) SameServer(o TargetIdentity) bool {
	return i.Engine == o.Engine && i.Server == o.Server && i.Engine != "sqlite"
}

// String is the identity as the access log and messages show it.
func (i TargetIdentity) String() string {
	switch i.Engine {
	case "postgres":
		return fmt.Sprintf("PostgreSQL cluster %s, database %s (oid %s)", i.Server, strconv.Quote(i.Database), i.OID)
	case "mariadb":
		return fmt.Sprintf("MariaDB server %s, schema %s", i.Server, strconv.Quote(i.Database))
	case "sqlite":
		return fmt.Sprintf("SQLite file %s", strconv.Quote(i.Database))
	}
	return i.Engine
}

// identity reads the identity of the database the target is connected to,
// inside its transaction (the connection the rows would go through).
func (t *Target) identity(ctx context.Context, engine, where string) (TargetIdentity, error) {
	id := TargetIdentity{Engine: engine}
	var rows int
	switch engine {
	case "sqlite":
		return FileIdentity(where)
	case "postgres":
		err := t.query(ctx, `SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text, d.oid::text, d.datname::text
FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`,
			func() []any { return []any{&id.Server, &id.OID, &id.Database} }, func() { rows++ })
		if err != nil {
			return id, fmt.Errorf("reading the target database's identity: %w", err)
		}
		id.Server = "system_identifier " + id.Server
	case "mariadb":
		var host, port, dir string
		err := t.query(ctx, "SELECT DATABASE(), @@hostname, CAST(@@port AS CHAR), @@datadir",
			func() []any { return []any{&id.Database, &host, &port, &dir} }, func() { rows++ })
		if err != nil {
			return id, fmt.Errorf("reading the target database's identity: %w", err)
		}
		id.Server = fmt.Sprintf("@@hostname %s, @@port %s, @@datadir %s", host, port, dir)
		var uuid string
		if t.query(ctx, "SELECT @@server_uuid", func() []any { return []any{&uuid} }, func() {}) == nil && uuid != "" {
			id.Server = "@@server_uuid " + uuid // MySQL; MariaDB has none (the error leaves the transaction usable)
		}
	default:
		return id, fmt.Errorf("engine %q has no target identity", engine)
	}
	if rows != 1 {
		return id, errors.New("reading the target database's identity: no row")
	}
	return id, nil
}

// FileIdentity is the identity of a SQLite database file.
func FileIdentity(path string) (TargetIdentity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return TargetIdentity{}, fmt.Errorf("sqlite target: %w", err)
	}
	id := TargetIdentity{Engine: "sqlite", Server: "file", Database: filepath.Base(path)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.file = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	} else if abs, err := filepath.Abs(path); err == nil {
		id.file = abs
	}
	return id, nil
}

// DatabaseIdentity connects to the database where (a SQLite path, a
// PostgreSQL or MariaDB DSN) and reads its identity; nothing is written
// (the transaction it opens is rolled back; a SQLite file is only
// stat'ed).
func DatabaseIdentity(ctx context.Context, engine, where string) (TargetIdentity, error) {
	if engine == "sqlite" {
		return FileIdentity(where)
	}
	t, err := openTarget(ctx, engine, where, nil, ConflictFail, TriggersCheck)
	if err != nil {
		return TargetIdentity{}, err
	}
	defer t.Close()
	return t.identity(ctx, engine, where)
}
