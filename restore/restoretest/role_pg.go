package restoretest

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A restored schema executes code: a CHECK constraint or an index
// expression calls the tenant's functions while rows load, a trigger or a
// materialized view runs its body. On PostgreSQL that code runs as a
// throwaway role made for the one test (INHERIT only for the implicit
// pg_database_owner of its database; NOSUPERUSER NOCREATEDB
// NOCREATEROLE NOREPLICATION NOBYPASSRLS, member of nothing) that owns the
// scratch database and nothing else; no other role may connect to the
// scratch database. The configured restore-test role (the admin) only
// creates and drops the throwaway role and the database, from the
// maintenance database: it never connects to a scratch database, so no
// tenant code ever runs with its privileges. docs/security.md, "A
// tenant's database schema".

// pgForbiddenRoles are predefined roles the restore-test admin must not
// hold (nor reach by SET ROLE): each opens the server's files or programs,
// or every database's data.
var pgForbiddenRoles = []string{
	"pg_execute_server_program", "pg_write_server_files", "pg_read_server_files",
	"pg_read_all_data", "pg_write_all_data",
}

// pgCheckAdmin refuses a restore-test role that is too strong (superuser,
// REPLICATION, BYPASSRLS, a member of pgForbiddenRoles) or too weak to
// make throwaway roles and databases (CREATEDB and CREATEROLE).
func pgCheckAdmin(ctx context.Context, conn *pgx.Conn) error {
	var name string
	var super, repl, bypass, createdb, createrole bool
	if err := conn.QueryRow(ctx, `SELECT rolname, rolsuper, rolreplication, rolbypassrls, rolcreatedb, rolcreaterole
FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER`).Scan(&name, &super, &repl, &bypass, &createdb, &createrole); err != nil {
		return fmt.Errorf("reading the restore-test role's attributes: %w", err)
	}
	var bad []string
	if super {
		bad = append(bad, "SUPERUSER")
	}
	if repl {
		bad = append(bad, "REPLICATION")
	}
	if bypass {
		bad = append(bad, "BYPASSRLS")
	}
	rows, err := conn.Query(ctx, `SELECT r.rolname FROM pg_catalog.pg_roles r
WHERE r.rolname = ANY($1) AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'MEMBER') ORDER BY 1`, pgForbiddenRoles)
	if err != nil {
		return fmt.Errorf("reading the restore-test role's memberships: %w", err)
	}
	member, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading the restore-test role's memberships: %w", err)
	}
	if !super {
		bad = append(bad, member...)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: the restore-test role has %s: a restore test must not be able to reach the server's files, programs or other databases; use a role WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS CREATEDB CREATEROLE and no such membership (docs/ops.md, \"Restore-test server\")",
			serverField(familyPostgres), strings.Join(bad, ", "))
	}
	if !createdb || !createrole {
		return fmt.Errorf("%s: the restore-test role lacks CREATEDB or CREATEROLE: it creates a throwaway role and a scratch database per test (ALTER ROLE … CREATEDB CREATEROLE; docs/ops.md, \"Restore-test server\")",
			serverField(familyPostgres))
	}
	return nil
}

// pgRoleSettings returns the per-role and per-database settings
// (ALTER ROLE … SET, ALTER DATABASE … SET) that apply to the restore-test
// role's sessions, as one comparable string: a test must leave them as it
// found them.
func pgRoleSettings(ctx context.Context, conn *pgx.Conn) (string, error) {
	var s string
	err := conn.QueryRow(ctx, `SELECT COALESCE(pg_catalog.string_agg(
  COALESCE(d.datname, '*') || '/' || CASE WHEN s.setrole = 0 THEN '*' ELSE 'self' END || ':' || pg_catalog.array_to_string(s.setconfig, ','), ';'
  ORDER BY d.datname NULLS FIRST, s.setrole), '')
FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
WHERE s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER))
  AND (s.setdatabase = 0 OR d.datname = pg_catalog.current_database())`).Scan(&s)
	if err != nil {
		return "", fmt.Errorf("reading the restore-test role's settings: %w", err)
	}
	return s, nil
}

// pgCreateScratch creates the throwaway role (named like the database,
// with a random password) and the scratch database it owns, marked with
// the ledger entry's marker; it returns the password. PUBLIC loses every
// privilege on the database: only the throwaway role (and the admin, a
// member of it) may connect.
func pgCreateScratch(ctx context.Context, conn *pgx.Conn, e *ledgerEntry) (password string, err error) {
	if !scratchAlphabetRE.MatchString(e.Name) || e.Owner != e.Name {
		return "", fmt.Errorf("invalid scratch name %q", e.Name)
	}
	password = newToken() + newToken()
	id := pgx.Identifier{e.Name}.Sanitize()
	stmts := []string{
		"CREATE ROLE " + id + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD '" + password + "'",
		// Membership lets the admin create the database owned by the role,
		// mark it, and end its sessions when dropping it.
		"GRANT " + id + " TO CURRENT_USER",
		"CREATE DATABASE " + id + " OWNER " + id + " TEMPLATE template0",
		"COMMENT ON DATABASE " + id + " IS " + pgLiteral(e.marker()),
		"REVOKE ALL ON DATABASE " + id + " FROM PUBLIC",
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", err
		}
	}
	return password, pgCheckThrowaway(ctx, conn, e.Name)
}

// pgCheckThrowaway verifies a throwaway role: no attribute beyond LOGIN,
// member of no role.
func pgCheckThrowaway(ctx context.Context, conn *pgx.Conn, role string) error {
	var strong bool
	var memberships int
	err := conn.QueryRow(ctx, `SELECT r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls,
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid)
FROM pg_catalog.pg_roles r WHERE r.rolname = $1`, role).Scan(&strong, &memberships)
	if err != nil {
		return fmt.Errorf("checking the throwaway role: %w", err)
	}
	if strong || memberships > 0 {
		return fmt.Errorf("the throwaway role %s has privileges or memberships it must not have", role)
	}
	return nil
}

// pgDropRole drops a throwaway role and checks that it is gone.
func pgDropRole(ctx context.Context, conn *pgx.Conn, role string) error {
	if !scratchAlphabetRE.MatchString(role) {
		return fmt.Errorf("refusing to drop role %q: not a throwaway role's name", role)
	}
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("role %s still exists after DROP ROLE", role)
	}
	return nil
}

// pgLiteral quotes a string literal (standard_conforming_strings on, the
// default since PostgreSQL 9.1; the E” form is used either way).
func pgLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
