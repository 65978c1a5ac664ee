// Package dsn is the one place kluis parses database connection strings
// for anything it may print: it finds the secrets a DSN carries in every
// spelling libpq, pgx and the MySQL driver accept (password = X with
// spaces, quoted and backslash-escaped values, URL user info and query
// parameters, user:password@tcp(…)), and removes them from any text —
// errors of a parser, a driver or a server — before it reaches a log, a
// terminal, JSON output or a report.
//
// pgx redacts only "password=X" written without spaces and cuts an
// escaped value short, so a parse error elsewhere in such a DSN printed the
// password; ParsePostgres never returns pgx's text without Redact.
package dsn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Mask replaces a secret in redacted text.
const Mask = "xxxxx"

// secretKeys are the keyword/value keys whose values are secrets.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// Secrets returns the secret values dsn carries, in every form kluis can
// read it: libpq keyword/value pairs (password, sslpassword), a
// postgres:// URL's user info and password= parameter, and a MySQL
// driver DSN's user:password@. A string that does not parse as any of
// them is searched with the most permissive reading of each.
func Secrets(dsn string) []string {
	var out []string
	add := func(v string) {
		if v != "" && !contains(out, v) {
			out = append(out, v)
		}
	}
	if u, ok := strings.CutPrefix(dsn, "postgres://"); ok || strings.HasPrefix(dsn, "postgresql://") {
		if !ok {
			u = strings.TrimPrefix(dsn, "postgresql://")
		}
		if pu, err := url.Parse(dsn); err == nil {
			if p, ok := pu.User.Password(); ok {
				add(p)
			}
			for k, vs := range pu.Query() {
				if secretKeys[strings.ToLower(k)] {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
		// Permissive: user:pass@ before the last @ of the authority, and
		// password=… in a query that url.Parse refused.
		auth := u
		if i := strings.IndexAny(auth, "/?"); i >= 0 {
			auth = auth[:i]
		}
		if at := strings.LastIndex(auth, "@"); at >= 0 {
			if _, p, ok := strings.Cut(auth[:at], ":"); ok {
				add(p)
				if d, err := url.PathUnescape(p); err == nil {
					add(d)
				}
			}
		}
		if _, q, ok := strings.Cut(u, "?"); ok {
			for _, kv := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(kv, "=")
				if secretKeys[strings.ToLower(k)] {
					add(v)
					if d, err := url.QueryUnescape(v); err == nil {
						add(d)
					}
				}
			}
		}
		return out
	}
	for _, kv := range keywordValues(dsn) {
		if secretKeys[strings.ToLower(kv[0])] {
			add(kv[1])
		}
	}
	if c, err := mysql.ParseDSN(dsn); err == nil && c.Passwd != "" {
		add(c.Passwd)
	}
	// Permissive MySQL reading: user:password@ before the last @.
	if at := strings.LastIndex(dsn, "@"); at > 0 && !strings.ContainsAny(dsn[:at], " \t\n=") {
		if _, p, ok := strings.Cut(dsn[:at], ":"); ok {
			add(p)
		}
	}
	return out
}

// HasPassword reports whether dsn carries a secret (Secrets).
func HasPassword(dsn string) bool { return len(Secrets(dsn)) > 0 }

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// keywordValues splits a libpq keyword/value string the way libpq does:
// white space around '=' is allowed, a value is either single-quoted (with
// \' and \\ escapes) or runs to the next white space (a backslash escapes
// the next character). It never fails: what does not parse is skipped.
func keywordValues(s string) [][2]string {
	var out [][2]string
	i := 0
	space := func() {
		for i < len(s) && strings.ContainsRune(" \t\n\r\f\v", rune(s[i])) {
			i++
		}
	}
	for {
		space()
		if i >= len(s) {
			return out
		}
		start := i
		for i < len(s) && s[i] != '=' && !strings.ContainsRune(" \t\n\r\f\v", rune(s[i])) {
			i++
		}
		key := s[start:i]
		space()
		if i >= len(s) || s[i] != '=' {
			continue // not key=value: skip the word
		}
		i++
		space()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
			i++
		} else {
			for i < len(s) && !strings.ContainsRune(" \t\n\r\f\v", rune(s[i])) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		out = append(out, [2]string{key, v.String()})
	}
}

// Redact returns text with every secret of every dsn removed: each secret
// in its raw, quoted, backslash-escaped and URL-escaped spellings, and each
// piece of it of four bytes or more (a driver that cut an escaped value
// short prints the rest), and each whole dsn.
func Redact(text string, dsns ...string) string {
	var forms []string
	for _, d := range dsns {
		if strings.TrimSpace(d) != "" && len(d) >= 4 {
			forms = append(forms, d)
		}
		for _, s := range Secrets(d) {
			forms = append(forms, spellings(s)...)
		}
	}
	// Longest first, so a whole spelling goes before its pieces.
	for changed := true; changed; {
		changed = false
		for i := 1; i < len(forms); i++ {
			if len(forms[i]) > len(forms[i-1]) {
				forms[i], forms[i-1] = forms[i-1], forms[i]
				changed = true
			}
		}
	}
	for _, f := range forms {
		if f != "" {
			text = strings.ReplaceAll(text, f, Mask)
		}
	}
	return text
}

// spellings are s's whole spellings and its pieces of four bytes or more.
func spellings(s string) []string {
	out := wholeSpellings(s)
	if len(s) >= 2 {
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\\' || r == '\'' || r == '\t' }) {
			if len(p) >= 4 {
				out = append(out, p)
			}
		}
	}
	return out
}

// wholeSpellings are the ways a DSN, a URL or a quoted value can carry s
// whole: raw, backslash-escaped, quoted, URL-escaped and as URL userinfo.
func wholeSpellings(s string) []string {
	esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`, " ", `\ `).Replace(s)
	return []string{s, esc, "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'",
		url.QueryEscape(s), url.PathEscape(s), url.UserPassword("", s).String()[1:]}
}

// redacted is an error whose text had secrets removed; it unwraps to the
// original so errors.Is keeps working (code that digs the original out
// and prints it is on its own).
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// RedactError returns err with the secrets of dsns removed from its text.
func RedactError(err error, dsns ...string) error {
	if err == nil {
		return nil
	}
	msg := Redact(err.Error(), dsns...)
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

// RedactSecret returns text with secret removed in each of its whole
// spellings (raw, quoted, backslash-escaped, URL-escaped, URL userinfo),
// for a driver that knows the password but not the DSN it came from. An
// empty secret removes nothing. Unlike Redact it leaves pieces of a
// passphrase alone: an engine also uses it to check that a connection
// string it built holds no password, and a word of the passphrase that is
// also the user's or the database's name must not fail that check.
func RedactSecret(text, secret string) string {
	if secret == "" {
		return text
	}
	forms := wholeSpellings(secret)
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	for _, f := range forms {
		if f != "" {
			text = strings.ReplaceAll(text, f, Mask)
		}
	}
	return text
}

// RedactSecretError returns err with secret removed from its text (see
// RedactSecret); it unwraps to err.
func RedactSecretError(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := RedactSecret(err.Error(), secret)
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

// ErrInvalid is wrapped by ParsePostgres for a DSN that does not parse.
var ErrInvalid = errors.New("the connection string does not parse")

// ParsePostgres parses a PostgreSQL DSN with pgx. Its error never holds
// the DSN: only pgx's reason (what was wrong), itself redacted.
func ParsePostgres(s string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(s)
	if err == nil {
		return cfg, nil
	}
	reason := ""
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// "cannot parse `DSN`: reason": keep what follows the DSN.
		if i := strings.LastIndex(err.Error(), "`: "); i >= 0 {
			reason = err.Error()[i+3:]
		}
	}
	reason = Redact(reason, s)
	if reason == "" || strings.Contains(reason, "`") {
		return nil, ErrInvalid
	}
	return nil, &redacted{msg: ErrInvalid.Error() + " (" + reason + "; not shown: it may hold a password)", err: ErrInvalid}
}

// Handler is a slog.Handler that removes the secrets of DSNs from every
// record's message and attributes (strings, errors, anything printed)
// before the next handler writes it: the daemon log's last line of
// defence.
type Handler struct {
	next slog.Handler
	dsns func() []string
}

// NewHandler wraps next; dsns returns the connection strings whose
// secrets must never be logged (called for each record that needs it).
func NewHandler(next slog.Handler, dsns func() []string) *Handler {
	return &Handler{next: next, dsns: dsns}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	dsns := h.dsns()
	out := slog.NewRecord(r.Time, r.Level, Redact(r.Message, dsns...), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a, dsns))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	dsns := h.dsns()
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a, dsns)
	}
	return &Handler{next: h.next.WithAttrs(red), dsns: h.dsns}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), dsns: h.dsns}
}

func redactAttr(a slog.Attr, dsns []string) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String(), dsns...))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x, dsns)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if r := Redact(s, dsns...); r != s {
			return slog.String(a.Key, r)
		}
	}
	return a
}
