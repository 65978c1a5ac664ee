package restoretest

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// On MariaDB a restored schema's triggers, routines and events run as a
// throwaway user made for the one test, holding ALL on the scratch
// database alone (no global privilege, no GRANT OPTION). The configured
// restore-test user (the admin) holds CREATE USER and ALL … WITH GRANT
// OPTION on `kluis\_rt\_%`.* only; it never connects to a scratch
// database. See role_pg.go for PostgreSQL.

// mariadbAllowedGlobal are the global privileges the restore-test admin
// may hold: anything else (SUPER, FILE, PROCESS, SHUTDOWN, a data
// privilege on every database, …) reaches beyond the scratch databases.
var mariadbAllowedGlobal = map[string]bool{"USAGE": true, "CREATE USER": true}

// mariadbCheckAdmin refuses a restore-test user with a global privilege
// beyond CREATE USER, or without CREATE USER.
func mariadbCheckAdmin(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, "SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES")
	if err != nil {
		return fmt.Errorf("reading the restore-test user's privileges: %w", err)
	}
	defer rows.Close()
	var bad []string
	createUser := false
	for rows.Next() {
		var p, grantable string
		if err := rows.Scan(&p, &grantable); err != nil {
			return fmt.Errorf("reading the restore-test user's privileges: %w", err)
		}
		p = strings.ToUpper(p)
		if p == "CREATE USER" {
			createUser = true
		}
		if !mariadbAllowedGlobal[p] {
			bad = append(bad, p)
		}
		if strings.EqualFold(grantable, "YES") && p != "USAGE" {
			bad = append(bad, "GRANT OPTION ON *.*")
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the restore-test user's privileges: %w", err)
	}
	if len(bad) > 0 {
		bad = dedup(bad)
		// The most dangerous first; a report of twenty names is cut short.
		rank := func(p string) int {
			for i, d := range []string{"SUPER", "FILE", "SHUTDOWN", "PROCESS", "GRANT OPTION ON *.*"} {
				if p == d {
					return i
				}
			}
			return 99
		}
		sort.SliceStable(bad, func(i, j int) bool {
			if rank(bad[i]) != rank(bad[j]) {
				return rank(bad[i]) < rank(bad[j])
			}
			return bad[i] < bad[j]
		})
		if len(bad) > 6 {
			bad = append(bad[:6:6], fmt.Sprintf("%d more", len(bad)-6))
		}
		return fmt.Errorf("%s: the restore-test user holds %s on *.*: a restore test must not be able to reach the server's files, processes or other databases; grant only CREATE USER on *.* and ALL on `kluis\\_rt\\_%%`.* WITH GRANT OPTION (docs/ops.md, \"Restore-test server\")",
			serverField(familyMariaDB), strings.Join(bad, ", "))
	}
	if !createUser {
		return fmt.Errorf("%s: the restore-test user lacks CREATE USER: it creates a throwaway user per test (docs/ops.md, \"Restore-test server\")", serverField(familyMariaDB))
	}
	return nil
}

// mariadbLiteral quotes a string literal (NO_BACKSLASH_ESCAPES off or on).
func mariadbLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// mariadbGrantName escapes a database name for GRANT … ON `db`.*, where
// '_' and '%' are wildcards.
func mariadbGrantName(db string) string {
	return quoteMariaDB(strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(db))
}

// mariadbAccount is 'user'@'host'.
func mariadbAccount(user, host string) string {
	return mariadbLiteral(user) + "@" + mariadbLiteral(host)
}

// mariadbClientHost is the host part the server sees the admin connect
// from: the throwaway user is created for that host alone.
func mariadbClientHost(ctx context.Context, conn *sql.Conn) (string, error) {
	var u string
	if err := conn.QueryRowContext(ctx, "SELECT USER()").Scan(&u); err != nil {
		return "", err
	}
	i := strings.LastIndexByte(u, '@')
	if i < 0 || i == len(u)-1 {
		return "", fmt.Errorf("cannot tell the client host from USER()")
	}
	return u[i+1:], nil
}

// mariadbCreateScratch creates the throwaway user and the scratch
// database (its comment the ledger entry's marker) and grants the user ALL
// on that database alone; it returns the user's password.
func mariadbCreateScratch(ctx context.Context, conn *sql.Conn, e *ledgerEntry) (string, error) {
	if !scratchAlphabetRE.MatchString(e.Name) || !mariadbUserRE.MatchString(e.Owner) {
		return "", fmt.Errorf("invalid scratch name %q or user %q", e.Name, e.Owner)
	}
	password := newToken() + newToken()
	acct := mariadbAccount(e.Owner, e.OwnerHost)
	stmts := []string{
		"CREATE USER " + acct + " IDENTIFIED BY " + mariadbLiteral(password),
		"CREATE DATABASE " + quoteMariaDB(e.Name) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci COMMENT " + mariadbLiteral(e.marker()),
		"GRANT ALL PRIVILEGES ON " + mariadbGrantName(e.Name) + ".* TO " + acct,
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return "", err
		}
	}
	return password, nil
}

// mariadbDropUser drops a throwaway user. DROP USER IF EXISTS succeeds
// only when the account is gone afterwards.
func mariadbDropUser(ctx context.Context, db *sql.DB, user, host string) error {
	if !mariadbUserRE.MatchString(user) {
		return fmt.Errorf("refusing to drop user %q: not a throwaway user's name", user)
	}
	_, err := db.ExecContext(ctx, "DROP USER IF EXISTS "+mariadbAccount(user, host))
	return err
}
