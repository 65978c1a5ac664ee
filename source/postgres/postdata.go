package postgres

import (
	"bytes"
	"regexp"
	"strings"
)

// This file splits pg_dump's plain-text post-data section into its entries
// so that indexes and constraints can be built on several connections, as
// pg_restore -j does (ApplyPostData). The split is done by a lexer that
// knows every way PostgreSQL quotes text (strings, E'' strings, dollar
// quotes, quoted identifiers, line and nested block comments), so a
// semicolon or an entry header inside a quoted body never splits anything.
// Whatever the lexer or the classifier is unsure of makes the section (or
// the entry) run the way it always did: in order, on one connection.

// ddlStmt is one top-level statement: its text without the terminating
// semicolon, and its significant tokens (identifiers and keywords folded as
// the server folds them, quoted identifiers unquoted, punctuation).
type ddlStmt struct {
	text   string
	tokens []ddlToken
}

type ddlToken struct {
	s      string
	quoted bool // a "quoted identifier"; never a keyword
	punct  bool
}

// ddlEntry is one pg_dump TOC entry: the statements between two
// "-- Name: …; Type: …; Schema: …; Owner: …" headers.
type ddlEntry struct {
	kind  string // the header's Type; "" for the section's preamble
	stmts []ddlStmt
}

var scsOn = regexp.MustCompile(`^(?i)SET\s+standard_conforming_strings\s*(=|TO)\s*('on'|on)$`)

var tocHeader = regexp.MustCompile(`^-- Name: .*; Type: ([A-Z][A-Z ]*); Schema: .*; Owner: .*$`)

// splitDDL splits a schema section into entries. ok is false when the text
// cannot be split with certainty (an unterminated quote or comment,
// standard_conforming_strings turned off, a statement after the last
// semicolon): the caller then runs it whole.
func splitDDL(text []byte) (entries []ddlEntry, ok bool) {
	cur := ddlEntry{}
	var stmt strings.Builder
	var toks []ddlToken
	flush := func() {
		s := strings.TrimSpace(stmt.String())
		if s != "" || len(toks) > 0 {
			cur.stmts = append(cur.stmts, ddlStmt{text: s, tokens: toks})
		}
		stmt.Reset()
		toks = nil
	}
	i, n := 0, len(text)
	depth := 0 // parentheses
	for i < n {
		c := text[i]
		switch {
		case c == '-' && i+1 < n && text[i+1] == '-':
			end := bytes.IndexByte(text[i:], '\n')
			if end < 0 {
				end = n
			} else {
				end += i
			}
			line := string(text[i:end])
			if (i == 0 || text[i-1] == '\n') && len(toks) == 0 {
				if m := tocHeader.FindStringSubmatch(line); m != nil {
					flush()
					if len(cur.stmts) > 0 || cur.kind != "" {
						entries = append(entries, cur)
					}
					cur = ddlEntry{kind: strings.TrimSpace(m[1])}
					stmt.Reset()
					i = end
					continue
				}
			}
			i = end // comments are not sent
			continue
		case c == '/' && i+1 < n && text[i+1] == '*':
			depth, j := 1, i+2
			for j < n && depth > 0 {
				switch {
				case text[j] == '/' && j+1 < n && text[j+1] == '*':
					depth++
					j += 2
				case text[j] == '*' && j+1 < n && text[j+1] == '/':
					depth--
					j += 2
				default:
					j++
				}
			}
			if depth > 0 {
				return nil, false
			}
			stmt.WriteByte(' ')
			i = j
		case c == '\'':
			// An E'' string when the quote directly follows a lone E.
			escapes := false
			if l := len(toks); l > 0 && !toks[l-1].quoted && !toks[l-1].punct && (toks[l-1].s == "e") && i > 0 && (text[i-1] == 'E' || text[i-1] == 'e') {
				escapes = true
				toks = toks[:l-1] // the E prefix is part of the literal
			}
			j := i + 1
			for {
				if j >= n {
					return nil, false
				}
				if escapes && text[j] == '\\' {
					j += 2
					continue
				}
				if text[j] == '\'' {
					if j+1 < n && text[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			toks = append(toks, ddlToken{s: "'", punct: true})
			stmt.Write(text[i : j+1])
			i = j + 1
		case c == '"':
			j := i + 1
			var id strings.Builder
			for {
				if j >= n {
					return nil, false
				}
				if text[j] == '"' {
					if j+1 < n && text[j+1] == '"' {
						id.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				id.WriteByte(text[j])
				j++
			}
			toks = append(toks, ddlToken{s: id.String(), quoted: true})
			stmt.Write(text[i : j+1])
			i = j + 1
		case c == '$' && !(i > 0 && isIdentByte(text[i-1])):
			// $tag$ … $tag$, or a positional parameter $1.
			j := i + 1
			for j < n && text[j] != '$' && isIdentByte(text[j]) && !(j == i+1 && text[j] >= '0' && text[j] <= '9') {
				j++
			}
			if j < n && text[j] == '$' {
				tag := text[i : j+1]
				end := bytes.Index(text[j+1:], tag)
				if end < 0 {
					return nil, false
				}
				end += j + 1 + len(tag)
				toks = append(toks, ddlToken{s: "$", punct: true})
				stmt.Write(text[i:end])
				i = end
			} else {
				toks = append(toks, ddlToken{s: "$", punct: true})
				stmt.WriteByte(c)
				i++
			}
		case c == ';' && depth == 0:
			flush()
			i++
		case c == '(' || c == ')':
			// A rule's actions are statements in parentheses: the server,
			// like psql, splits only outside them.
			if c == '(' {
				depth++
			} else if depth--; depth < 0 {
				return nil, false
			}
			toks = append(toks, ddlToken{s: string(c), punct: true})
			stmt.WriteByte(c)
			i++
		case isIdentStart(c):
			j := i
			for j < n && isIdentByte(text[j]) {
				j++
			}
			word := strings.ToLower(string(text[i:j]))
			if word == "atomic" && len(toks) > 0 && toks[len(toks)-1].s == "begin" && !toks[len(toks)-1].quoted {
				// A BEGIN ATOMIC … END body holds semicolons at the top level.
				return nil, false
			}
			toks = append(toks, ddlToken{s: word})
			stmt.Write(text[i:j])
			i = j
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			stmt.WriteByte(c)
			i++
		default:
			toks = append(toks, ddlToken{s: string(c), punct: true})
			stmt.WriteByte(c)
			i++
		}
	}
	if len(toks) > 0 || depth != 0 {
		return nil, false // a statement without its semicolon
	}
	flush()
	if len(cur.stmts) > 0 || cur.kind != "" {
		entries = append(entries, cur)
	}
	// The lexer reads '' strings as standard_conforming_strings = on
	// does; pg_dump sets it so. Any other mention of the setting is a
	// reason to stop splitting.
	for _, e := range entries {
		for _, s := range e.stmts {
			if strings.Contains(strings.ToLower(s.text), "standard_conforming_strings") && !scsOn.MatchString(s.text) {
				return nil, false
			}
		}
	}
	return entries, true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentByte(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$'
}

// isSet reports whether s changes a session setting: SET …, RESET … or
// SELECT pg_catalog.set_config(…).
func isSet(s ddlStmt) bool {
	t := s.tokens
	if len(t) == 0 || t[0].quoted {
		return false
	}
	switch t[0].s {
	case "set", "reset":
		return true
	case "select":
		for _, x := range t {
			if !x.quoted && x.s == "set_config" {
				return true
			}
		}
	}
	return false
}

// isEmpty reports whether s holds nothing but comments.
func (s ddlStmt) isEmpty() bool { return len(s.tokens) == 0 }

// qname is a schema-qualified table name, as stored in the catalog.
type qname struct{ schema, name string }

// entryTables returns the relations an entry locks when every statement in
// it is one that may run beside others on another connection: an index, a
// primary key, unique, exclusion, check or foreign key constraint, CLUSTER
// ON or REPLICA IDENTITY, a trigger (CREATE TRIGGER … ON table), or the
// attachment of a partition's index to its parent's (the two indexes are
// returned; the caller maps them to their tables). ok is false for
// anything else (such an entry runs alone, after everything before it).
func entryTables(e ddlEntry) (tables []qname, ok bool) {
	switch e.kind {
	case "INDEX", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER", "INDEX ATTACH":
	default:
		return nil, false
	}
	add := func(q qname) {
		for _, t := range tables {
			if t == q {
				return
			}
		}
		tables = append(tables, q)
	}
	for _, s := range e.stmts {
		if s.isEmpty() {
			continue
		}
		t := s.tokens
		kw := func(i int, words ...string) bool {
			if i >= len(t) || t[i].quoted || t[i].punct {
				return false
			}
			for _, w := range words {
				if t[i].s == w {
					return true
				}
			}
			return false
		}
		switch {
		case e.kind == "TRIGGER" || e.kind == "INDEX ATTACH":
			q, ok := triggerOrAttach(t, kw)
			if !ok {
				return nil, false
			}
			for _, x := range q {
				add(x)
			}
		case kw(0, "create") && (kw(1, "index") || (kw(1, "unique") && kw(2, "index"))):
			i := 2
			if kw(1, "unique") {
				i = 3
			}
			if kw(i, "concurrently") {
				return nil, false
			}
			// CREATE INDEX name ON [ONLY] table: pg_dump always names the index.
			if i >= len(t) || t[i].punct || kw(i, "on") || kw(i, "if") {
				return nil, false
			}
			i++
			if !kw(i, "on") {
				return nil, false
			}
			i++
			if kw(i, "only") {
				i++
			}
			q, next, ok := parseQName(t, i)
			if !ok || next >= len(t) || !(kw(next, "using") || (t[next].punct && t[next].s == "(")) {
				return nil, false
			}
			add(q)
		case kw(0, "alter") && kw(1, "table"):
			i := 2
			if kw(i, "only") {
				i++
			}
			q, next, ok := parseQName(t, i)
			if !ok {
				return nil, false
			}
			switch {
			case kw(next, "add") && kw(next+1, "constraint"):
				// ADD CONSTRAINT name PRIMARY KEY | UNIQUE | EXCLUDE | CHECK | FOREIGN KEY …
				j := next + 3
				switch {
				case kw(j, "primary") && kw(j+1, "key"), kw(j, "unique"), kw(j, "exclude"), kw(j, "check"):
					add(q)
				case kw(j, "foreign") && kw(j+1, "key"):
					ref := -1
					for k := j + 2; k < len(t); k++ {
						if kw(k, "references") {
							if ref >= 0 {
								return nil, false
							}
							ref = k
						}
					}
					if ref < 0 {
						return nil, false
					}
					rq, _, ok := parseQName(t, ref+1)
					if !ok {
						return nil, false
					}
					add(q)
					add(rq)
				default:
					return nil, false
				}
			case kw(next, "cluster") && kw(next+1, "on"), kw(next, "replica") && kw(next+1, "identity"):
				add(q)
			default:
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return tables, len(tables) > 0
}

// entryIndexes returns the indexes an entry creates, with their tables: a
// CREATE INDEX (in its table's schema) or a primary key, unique or
// exclusion constraint (an index of the constraint's name). An index
// attachment later in the section names them.
func entryIndexes(e ddlEntry) map[qname]qname {
	out := map[qname]qname{}
	for _, s := range e.stmts {
		t := s.tokens
		kw := func(i int, w string) bool { return i < len(t) && !t[i].quoted && !t[i].punct && t[i].s == w }
		switch {
		case kw(0, "create") && (kw(1, "index") || (kw(1, "unique") && kw(2, "index"))):
			i := 2
			if kw(1, "unique") {
				i = 3
			}
			if i+1 >= len(t) || t[i].punct || !kw(i+1, "on") {
				continue
			}
			j := i + 2
			if kw(j, "only") {
				j++
			}
			if q, _, ok := parseQName(t, j); ok {
				out[qname{q.schema, t[i].s}] = q
			}
		case kw(0, "alter") && kw(1, "table"):
			i := 2
			if kw(i, "only") {
				i++
			}
			q, next, ok := parseQName(t, i)
			if !ok || !kw(next, "add") || !kw(next+1, "constraint") || next+2 >= len(t) || t[next+2].punct {
				continue
			}
			if j := next + 3; (kw(j, "primary") && kw(j+1, "key")) || kw(j, "unique") || kw(j, "exclude") {
				out[qname{q.schema, t[next+2].s}] = q
			}
		}
	}
	return out
}

// triggerOrAttach reads CREATE TRIGGER name … ON table … (not a constraint
// trigger, which names a second table) or ALTER INDEX parent ATTACH
// PARTITION child.
func triggerOrAttach(t []ddlToken, kw func(int, ...string) bool) ([]qname, bool) {
	switch {
	case kw(0, "create") && kw(1, "trigger"):
		if len(t) < 3 || t[2].punct {
			return nil, false
		}
		// FROM names a second table (a constraint trigger's): anywhere
		// after the trigger's name, the entry is not one of these.
		on := -1
		for i := 3; i < len(t); i++ {
			if kw(i, "from") {
				return nil, false
			}
			if on < 0 && kw(i, "on") {
				on = i
			}
		}
		if on >= 0 {
			q, _, ok := parseQName(t, on+1)
			if !ok {
				return nil, false
			}
			return []qname{q}, true
		}
	case kw(0, "alter") && kw(1, "index"):
		parent, next, ok := parseQName(t, 2)
		if !ok || !kw(next, "attach") || !kw(next+1, "partition") {
			return nil, false
		}
		child, end, ok := parseQName(t, next+2)
		if !ok || end != len(t) {
			return nil, false
		}
		return []qname{parent, child}, true
	}
	return nil, false
}

// parseQName reads schema.name at t[i]; pg_dump qualifies every table in
// the post-data section.
func parseQName(t []ddlToken, i int) (q qname, next int, ok bool) {
	if i+2 >= len(t) || t[i].punct || !t[i+1].punct || t[i+1].s != "." || t[i+2].punct {
		return qname{}, 0, false
	}
	if i+3 < len(t) && t[i+3].punct && t[i+3].s == "." {
		return qname{}, 0, false // database.schema.table
	}
	return qname{t[i].s, t[i+2].s}, i + 3, true
}

// rowWritesSQL counts the rows this session inserted, updated or deleted
// in ordinary user tables (see rowWrites).
const rowWritesSQL = `SELECT s.relid::pg_catalog.int8, (s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::pg_catalog.int8
FROM pg_catalog.pg_stat_xact_all_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid
WHERE c.relkind = 'r' AND s.schemaname <> 'information_schema' AND s.schemaname !~ '^pg_'
  AND s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0`

// filenodesSQL lists every user table's storage file: TRUNCATE and table
// rewrites give a table a new one.
const filenodesSQL = `SELECT c.oid::pg_catalog.int8, pg_catalog.pg_relation_filenode(c.oid)::pg_catalog.int8
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'`

// relationsSQL lists every relation in a user schema and, for an index,
// its table.
const relationsSQL = `SELECT n.nspname, c.relname, COALESCE(tn.nspname, ''), COALESCE(t.relname, '')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'`

// inheritsSQL lists the edges of every inheritance and partition tree: a
// statement on one member may lock the others, so an entry locks the
// whole tree of each table it names.
const inheritsSQL = `SELECT cn.nspname, c.relname, pn.nspname, p.relname
FROM pg_catalog.pg_inherits h
JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = h.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace`
