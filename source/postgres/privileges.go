package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/source"
)

// Owners and privileges are read from the catalog in the snapshot and
// written as statements that reproduce them exactly, apart from the schema
// (pg_dump runs with --no-owner --no-privileges), so a restore can apply
// them or skip them (source.RolesMode). For every object whose ACL is not
// the default the statements are pg_dump's: REVOKE ALL from PUBLIC and the
// owner, then one GRANT per ACL item in order (as its grantor, when that is
// not the owner), so the restored ACL is the original item for item.

// aclItem is one item of an ACL, exploded.
type aclItem struct {
	grantor, grantee string // grantee "" is PUBLIC
	privs, grantable []string
}

// aclObject is one object with an owner and an ACL.
type aclObject struct {
	kind    string // "schema", "table", "sequence", "function", "type", "domain", "large object"
	ident   string // as GRANT and ALTER … OWNER write it
	owner   string
	noOwner bool // owner follows another object's (an owned sequence)
	acl     []aclItem
	hasACL  bool
}

func (o aclObject) label() string { return o.kind + " " + o.ident }

// grantKeyword is the object type as GRANT … ON writes it.
func (o aclObject) grantKeyword() string {
	switch o.kind {
	case "table", "view", "materialized view", "foreign table", "partitioned table":
		return "TABLE"
	case "function":
		return "ROUTINE"
	case "large object":
		return "LARGE OBJECT"
	}
	return strings.ToUpper(o.kind)
}

// ownerStatement is ALTER … OWNER TO for o.
func (o aclObject) ownerStatement() string {
	kw := strings.ToUpper(o.kind)
	switch o.kind {
	case "partitioned table":
		kw = "TABLE"
	case "function":
		kw = "ROUTINE"
	}
	return fmt.Sprintf("ALTER %s %s OWNER TO %s;", kw, o.ident, quoteRole(o.owner))
}

func quoteRole(r string) string {
	if r == "" {
		return "PUBLIC"
	}
	return pgx.Identifier{r}.Sanitize()
}

// aclStatements replays o's ACL: REVOKE from PUBLIC and the owner, then
// each item in order, as its grantor when that is not the owner.
func aclStatements(on, owner string, acl []aclItem) (string, []string) {
	var b strings.Builder
	roles := []string{owner}
	fmt.Fprintf(&b, "REVOKE ALL ON %s FROM PUBLIC;\n", on)
	fmt.Fprintf(&b, "REVOKE ALL ON %s FROM %s;\n", on, quoteRole(owner))
	for _, it := range acl {
		if it.grantor != owner {
			fmt.Fprintf(&b, "SET ROLE %s;\n", quoteRole(it.grantor))
			roles = append(roles, it.grantor)
		}
		if it.grantee != "" {
			roles = append(roles, it.grantee)
		}
		grantItem(&b, on, it)
		if it.grantor != owner {
			b.WriteString("RESET ROLE;\n")
		}
	}
	return b.String(), roles
}

func grantItem(b *strings.Builder, on string, it aclItem) {
	if len(it.privs) > 0 {
		fmt.Fprintf(b, "GRANT %s ON %s TO %s;\n", strings.Join(it.privs, ", "), on, quoteRole(it.grantee))
	}
	if len(it.grantable) > 0 {
		fmt.Fprintf(b, "GRANT %s ON %s TO %s WITH GRANT OPTION;\n", strings.Join(it.grantable, ", "), on, quoteRole(it.grantee))
	}
}

// readPrivileges reads owners, ACLs, column ACLs and default privileges of
// every user object, and the roles they name.
func readPrivileges(ctx context.Context, conn *pgx.Conn) (*source.Privileges, error) {
	p := &source.Privileges{Format: source.PrivilegesFormat}
	objs, err := readACLObjects(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading owners and privileges: %w", err)
	}
	for _, o := range objs {
		if !o.noOwner {
			p.Statements = append(p.Statements, source.PrivilegeStatement{Kind: "owner", Object: o.label(), Roles: []string{o.owner}, SQL: o.ownerStatement()})
		}
	}
	for _, o := range objs {
		if !o.hasACL {
			continue
		}
		sql, roles := aclStatements(o.grantKeyword()+" "+o.ident, o.owner, o.acl)
		p.Statements = append(p.Statements, source.PrivilegeStatement{Kind: "grant", Object: o.label(), Roles: dedupe(roles), SQL: sql})
	}
	cols, err := readColumnACLs(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading column privileges: %w", err)
	}
	p.Statements = append(p.Statements, cols...)
	defs, err := readDefaultACLs(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading default privileges: %w", err)
	}
	p.Statements = append(p.Statements, defs...)

	named := map[string]bool{}
	for _, s := range p.Statements {
		for _, r := range s.Roles {
			named[r] = true
		}
	}
	if p.Roles, err = readRoles(ctx, conn, named); err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	return p, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// aclColumns explodes an ACL array column into (grantor, grantee, privs,
// grantable) per item, in item order. $ACL is the array expression.
const aclItemsQuery = `
ARRAY(SELECT pg_catalog.jsonb_build_object(
   'grantor', (SELECT pg_catalog.pg_get_userbyid(e.grantor) FROM pg_catalog.aclexplode(ARRAY[a.item]) e LIMIT 1),
   'grantee', (SELECT CASE WHEN e.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(e.grantee)::text END FROM pg_catalog.aclexplode(ARRAY[a.item]) e LIMIT 1),
   'privs', ARRAY(SELECT e.privilege_type FROM pg_catalog.aclexplode(ARRAY[a.item]) e WHERE NOT e.is_grantable),
   'grantable', ARRAY(SELECT e.privilege_type FROM pg_catalog.aclexplode(ARRAY[a.item]) e WHERE e.is_grantable))::text
 FROM pg_catalog.unnest($ACL) WITH ORDINALITY AS a(item, idx) ORDER BY a.idx)`

func aclItems(expr string) string { return strings.ReplaceAll(aclItemsQuery, "$ACL", expr) }

type aclJSON struct {
	Grantor   string   `json:"grantor"`
	Grantee   string   `json:"grantee"`
	Privs     []string `json:"privs"`
	Grantable []string `json:"grantable"`
}

func parseACL(items []string) ([]aclItem, error) {
	out := make([]aclItem, 0, len(items))
	for _, s := range items {
		var j aclJSON
		if err := json.Unmarshal([]byte(s), &j); err != nil {
			return nil, err
		}
		out = append(out, aclItem{grantor: j.Grantor, grantee: j.Grantee, privs: j.Privs, grantable: j.Grantable})
	}
	return out, nil
}

func extMember(class, oid string) string {
	return `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '` + class + `'::pg_catalog.regclass AND d.objid = ` + oid + ` AND d.deptype = 'e')`
}

// readACLObjects reads schemas, types, relations, routines and large
// objects with their owners and ACLs, in that order (each by name).
func readACLObjects(ctx context.Context, conn *pgx.Conn) ([]aclObject, error) {
	q := `
SELECT * FROM (
SELECT 1 AS ord, 'schema' AS kind, pg_catalog.quote_ident(n.nspname) AS ident,
       pg_catalog.pg_get_userbyid(n.nspowner)::text AS owner, false AS no_owner,
       n.nspacl IS NOT NULL AS has_acl, ` + aclItems("n.nspacl") + ` AS acl
FROM pg_catalog.pg_namespace n
WHERE ` + userSchema + ` AND ` + extMember("pg_catalog.pg_namespace", "n.oid") + `
UNION ALL
SELECT 2, CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
       pg_catalog.format_type(t.oid, NULL), pg_catalog.pg_get_userbyid(t.typowner)::text, false,
       t.typacl IS NOT NULL, ` + aclItems("t.typacl") + `
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE ` + userSchema + ` AND ` + extMember("pg_catalog.pg_type", "t.oid") + `
  AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
  AND NOT (t.typcategory = 'A' AND t.typelem <> 0 AND EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid))
UNION ALL
SELECT 3, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
       WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
       pg_catalog.pg_get_userbyid(c.relowner)::text,
       c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')),
       c.relacl IS NOT NULL, ` + aclItems("c.relacl") + `
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't' AND ` + userSchema + ` AND ` + notExtensionMember + `
UNION ALL
SELECT 4, 'function', p.oid::pg_catalog.regprocedure::text, pg_catalog.pg_get_userbyid(p.proowner)::text, false,
       p.proacl IS NOT NULL, ` + aclItems("p.proacl") + `
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE ` + userSchema + ` AND ` + extMember("pg_catalog.pg_proc", "p.oid") + `
UNION ALL
SELECT 5, 'large object', l.oid::text, pg_catalog.pg_get_userbyid(l.lomowner)::text, false,
       l.lomacl IS NOT NULL, ` + aclItems("l.lomacl") + `
FROM pg_catalog.pg_largeobject_metadata l
) o ORDER BY ord, ident COLLATE "C"`
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []aclObject
	for rows.Next() {
		var o aclObject
		var ord int
		var items []string
		if err := rows.Scan(&ord, &o.kind, &o.ident, &o.owner, &o.noOwner, &o.hasACL, &items); err != nil {
			return nil, err
		}
		if o.acl, err = parseACL(items); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// readColumnACLs returns one GRANT statement per column with an ACL.
func readColumnACLs(ctx context.Context, conn *pgx.Conn) ([]source.PrivilegeStatement, error) {
	rows, err := conn.Query(ctx, `
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(a.attname),
       pg_catalog.pg_get_userbyid(c.relowner)::text, `+aclItems("a.attacl")+`
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND `+userSchema+` AND `+notExtensionMember+`
ORDER BY (pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)) COLLATE "C", a.attnum`)
	if err != nil {
		return nil, err
	}
	var out []source.PrivilegeStatement
	for rows.Next() {
		var rel, col, owner string
		var items []string
		if err := rows.Scan(&rel, &col, &owner, &items); err != nil {
			return nil, err
		}
		acl, err := parseACL(items)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		roles := []string{}
		for _, it := range acl {
			if it.grantor != owner {
				fmt.Fprintf(&b, "SET ROLE %s;\n", quoteRole(it.grantor))
				roles = append(roles, it.grantor)
			}
			roles = append(roles, it.grantee)
			for i, pr := range [][]string{it.privs, it.grantable} {
				if len(pr) == 0 {
					continue
				}
				cp := make([]string, len(pr))
				for k, x := range pr {
					cp[k] = x + " (" + col + ")"
				}
				fmt.Fprintf(&b, "GRANT %s ON TABLE %s TO %s", strings.Join(cp, ", "), rel, quoteRole(it.grantee))
				if i == 1 {
					b.WriteString(" WITH GRANT OPTION")
				}
				b.WriteString(";\n")
			}
			if it.grantor != owner {
				b.WriteString("RESET ROLE;\n")
			}
		}
		out = append(out, source.PrivilegeStatement{Kind: "column-grant", Object: "column " + rel + "." + col, Roles: dedupe(roles), SQL: b.String()})
	}
	return out, rows.Err()
}

// readDefaultACLs returns ALTER DEFAULT PRIVILEGES statements reproducing
// pg_default_acl. A global entry replaces the built-in default, so it is
// replayed from nothing (REVOKE ALL from PUBLIC and the role); an entry for
// one schema only adds grants.
func readDefaultACLs(ctx context.Context, conn *pgx.Conn) ([]source.PrivilegeStatement, error) {
	rows, err := conn.Query(ctx, `
SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text, COALESCE(pg_catalog.quote_ident(n.nspname), ''),
       d.defaclobjtype::text, `+aclItems("d.defaclacl")+`
FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
ORDER BY pg_catalog.pg_get_userbyid(d.defaclrole)::text COLLATE "C", COALESCE(pg_catalog.quote_ident(n.nspname), '') COLLATE "C", d.defaclobjtype`)
	if err != nil {
		return nil, err
	}
	var out []source.PrivilegeStatement
	for rows.Next() {
		var role, schema, objtype string
		var items []string
		if err := rows.Scan(&role, &schema, &objtype, &items); err != nil {
			return nil, err
		}
		acl, err := parseACL(items)
		if err != nil {
			return nil, err
		}
		kw, ok := map[string]string{"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}[objtype]
		if !ok {
			return nil, fmt.Errorf("default privileges of unknown object type %q", objtype)
		}
		prefix := "ALTER DEFAULT PRIVILEGES FOR ROLE " + quoteRole(role)
		// The label names no role: it may end up in a restore-test report.
		object := "default privileges on " + strings.ToLower(kw)
		if schema != "" {
			prefix += " IN SCHEMA " + schema
			object += " in schema " + schema
		}
		var b strings.Builder
		roles := []string{role}
		if schema == "" {
			fmt.Fprintf(&b, "%s REVOKE ALL ON %s FROM PUBLIC;\n", prefix, kw)
			fmt.Fprintf(&b, "%s REVOKE ALL ON %s FROM %s;\n", prefix, kw, quoteRole(role))
		}
		for _, it := range acl {
			roles = append(roles, it.grantee)
			if len(it.privs) > 0 {
				fmt.Fprintf(&b, "%s GRANT %s ON %s TO %s;\n", prefix, strings.Join(it.privs, ", "), kw, quoteRole(it.grantee))
			}
			if len(it.grantable) > 0 {
				fmt.Fprintf(&b, "%s GRANT %s ON %s TO %s WITH GRANT OPTION;\n", prefix, strings.Join(it.grantable, ", "), kw, quoteRole(it.grantee))
			}
		}
		out = append(out, source.PrivilegeStatement{Kind: "default-privileges", Object: object, Roles: dedupe(roles), SQL: b.String()})
	}
	return out, rows.Err()
}

// readRoles reads the attributes and memberships of the named roles. A
// password is never read.
func readRoles(ctx context.Context, conn *pgx.Conn, named map[string]bool) ([]source.Role, error) {
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	rows, err := conn.Query(ctx, `
SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY g.rolname::text COLLATE "C")
FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1) ORDER BY r.rolname::text COLLATE "C"`, names)
	if err != nil {
		return nil, err
	}
	var out []source.Role
	for rows.Next() {
		var r source.Role
		if err := rows.Scan(&r.Name, &r.Superuser, &r.Inherit, &r.CreateRole, &r.CreateDB, &r.Login,
			&r.Replication, &r.BypassRLS, &r.ConnLimit, &r.MemberOf); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Privileges writes the owners and privileges read in the snapshot
// (docs/format.md, "Privileges stream").
func (s *snapshot) Privileges(ctx context.Context, w io.Writer) error {
	if s.privileges == nil {
		return errors.New("postgres: snapshot has no privileges")
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(s.privileges)
}

// ApplyPrivileges applies a privileges stream in one transaction. With
// source.RolesApply every role the statements name must exist on the
// target, else nothing is applied and the error names the missing roles;
// with source.RolesSkip nothing is applied and the report says what.
func (t *Target) ApplyPrivileges(ctx context.Context, r io.Reader, mode source.RolesMode) (*source.PrivilegesReport, error) {
	p, err := source.DecodePrivileges(r)
	if err != nil {
		return nil, err
	}
	if mode == source.RolesSkip {
		return source.SkipPrivileges(p), nil
	}
	rep := &source.PrivilegesReport{Mode: mode}
	if mode != source.RolesApply {
		return nil, fmt.Errorf("postgres: roles mode %q", mode)
	}
	conn, err := connect(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	named := map[string]bool{}
	for _, s := range p.Statements {
		for _, r := range s.Roles {
			named[r] = true
		}
	}
	var names []string
	for n := range named {
		names = append(names, n)
	}
	present, err := pgx.CollectRows(mustQuery(ctx, conn, `SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)`, names), pgx.RowTo[string])
	if err != nil {
		return nil, redactError(fmt.Errorf("looking up roles: %w", err), t.cfg.Password)
	}
	have := map[string]bool{}
	for _, n := range present {
		have[n] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s (create them on the target first, or restore with --roles skip to leave owners and privileges out)", ErrMissingRoles, strings.Join(missing, ", "))
	}
	var b strings.Builder
	b.WriteString("BEGIN;\n")
	for _, s := range p.Statements {
		b.WriteString(s.SQL)
		b.WriteString("\n")
	}
	b.WriteString("COMMIT;\n")
	if err := execSimple(ctx, conn, b.String()); err != nil {
		return nil, redactError(fmt.Errorf("applying owners and privileges: %w", err), t.cfg.Password)
	}
	rep.Applied = len(p.Statements)
	return rep, nil
}

// ErrMissingRoles: the target lacks roles that owners or privileges name.
var ErrMissingRoles = errors.New("postgres: the target server lacks roles the snapshot's owners and privileges name")

func mustQuery(ctx context.Context, conn *pgx.Conn, sql string, args ...any) pgx.Rows {
	rows, _ := conn.Query(ctx, sql, args...) // CollectRows reports the error
	return rows
}

// ReadPrivileges reads the target's owners and privileges back, as a
// snapshot records them, for the schema check.
func (t *Target) ReadPrivileges(ctx context.Context) (*source.Privileges, error) {
	conn, err := connect(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	p, err := readPrivileges(ctx, conn)
	return p, redactError(err, t.cfg.Password)
}
