package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/kluis-nl/kluis/source"
)

// dumpSections runs pg_dump for the pre-data and post-data sections of the
// exported snapshot, concurrently, and returns their SQL text.
func dumpSections(ctx context.Context, pgDump, dsn, password, snapshotID string, lockTimeout time.Duration) (pre, post []byte, err error) {
	conninfo, err := conninfoWithoutPassword(dsn, password)
	if err != nil {
		return nil, nil, err
	}
	var wg sync.WaitGroup
	var preErr, postErr error
	wg.Go(func() { pre, preErr = runPgDump(ctx, pgDump, conninfo, password, snapshotID, "pre-data", lockTimeout) })
	wg.Go(func() {
		post, postErr = runPgDump(ctx, pgDump, conninfo, password, snapshotID, "post-data", lockTimeout)
	})
	wg.Wait()
	if err := errors.Join(preErr, postErr); err != nil {
		return nil, nil, err
	}
	return pre, post, nil
}

// pgDumpArgs are the arguments of one pg_dump run; what ps shows of it. The
// password is never among them.
func pgDumpArgs(conninfo, snapshotID, section string) []string {
	return []string{
		"--schema-only",
		"--section=" + section,
		"--snapshot=" + snapshotID,
		"--no-owner",
		"--no-privileges",
		"--no-tablespaces",
		"--no-security-labels",
		"--no-subscriptions",
		"--no-password",
		"--dbname=" + conninfo,
	}
}

func runPgDump(ctx context.Context, pgDump, conninfo, password, snapshotID, section string, lockTimeout time.Duration) ([]byte, error) {
	args := pgDumpArgs(conninfo, snapshotID, section)
	if lockTimeout > 0 {
		// pg_dump locks every table it dumps (ACCESS SHARE) and by default
		// waits for ever behind another session's ACCESS EXCLUSIVE lock.
		args = append([]string{fmt.Sprintf("--lock-wait-timeout=%d", max(lockTimeout.Milliseconds(), 1))}, args...)
	}
	cmd := exec.CommandContext(ctx, pgDump, args...)
	// Ended early (an error elsewhere, a cancelled backup): SIGTERM, on
	// which pg_dump cancels its query on the server before it exits. A
	// killed pg_dump's session would go on waiting for a lock, holding
	// its ACCESS SHARE locks on every table until it got it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = pgDumpEnv(os.Environ(), password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pg_dump --section=%s: %w", section, ctx.Err())
		}
		// Classified before the password is masked: a password that is
		// one of these words would hide the timeout.
		raw := strings.TrimSpace(stderr.String())
		msg := redactString(raw, password)
		if lockTimeout > 0 && (strings.Contains(raw, "could not obtain lock") || strings.Contains(raw, "lock timeout") || strings.Contains(raw, "statement timeout")) {
			return nil, fmt.Errorf("pg_dump --section=%s: %w (lock_timeout %s): %s", section, source.ErrLockTimeout, lockTimeout, msg)
		}
		return nil, fmt.Errorf("pg_dump --section=%s: %v: %s", section, err, msg)
	}
	return stdout.Bytes(), nil
}

// pgDumpEnv is the whole environment of pg_dump: from env only what libpq
// and a process need (PG* connection settings, HOME for ~/.pgpass and
// ~/.postgresql, PATH, TMPDIR, TZ) and PGPASSWORD set to password (or
// removed, when the connection string has none, so a stray one cannot be
// used instead). Nothing else of kluis's environment — cloud credentials,
// KLUIS_*, anything a wrapper exported — reaches the child.
func pgDumpEnv(env []string, password string) []string {
	out := make([]string, 0, 8)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PGPASSWORD":
		case strings.HasPrefix(k, "PG"), k == "HOME", k == "PATH", k == "TMPDIR", k == "TZ":
			out = append(out, kv)
		}
	}
	if password != "" {
		out = append(out, "PGPASSWORD="+password)
	}
	return out
}

// conninfoWithoutPassword returns dsn, a libpq URL or keyword/value
// connection string, with its password removed, for pg_dump's command line.
// It refuses rather than risk a password showing up in ps.
func conninfoWithoutPassword(dsn, password string) (string, error) {
	var out string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		out = urlWithoutPassword(dsn)
	} else {
		kv, err := parseKeywordValue(dsn)
		if err != nil {
			return "", errInvalidDSN
		}
		var b strings.Builder
		for _, p := range kv {
			if p[0] == "password" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(p[0] + "=" + quoteConninfoValue(p[1]))
		}
		out = b.String()
	}
	if password != "" && redactString(out, password) != out {
		return "", errors.New("postgres: cannot pass the connection string to pg_dump without its password; use the keyword=value form")
	}
	return out, nil
}

func urlWithoutPassword(dsn string) string {
	scheme, rest, _ := strings.Cut(dsn, "://")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		if colon := strings.IndexByte(userinfo, ':'); colon >= 0 {
			userinfo = userinfo[:colon]
		}
		authority = userinfo + "@" + authority[at+1:]
	}
	if path, query, ok := strings.Cut(tail, "?"); ok {
		var kept []string
		for _, p := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(p, "=")
			if uk, err := url.QueryUnescape(k); k == "password" || (err == nil && uk == "password") {
				continue
			}
			kept = append(kept, p)
		}
		tail = path
		if len(kept) > 0 {
			tail += "?" + strings.Join(kept, "&")
		}
	}
	return scheme + "://" + authority + tail
}

// parseKeywordValue splits a libpq keyword/value connection string into
// its pairs, unquoting values.
func parseKeywordValue(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !unicode.IsSpace(rune(s[i])) {
			i++
		}
		key := s[start:i]
		skipSpace()
		if key == "" || i >= len(s) || s[i] != '=' {
			return nil, errors.New("missing =")
		}
		i++
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated quoted value")
				}
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					break
				}
				val.WriteByte(c)
			}
		} else {
			for i < len(s) && !unicode.IsSpace(rune(s[i])) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, [2]string{key, val.String()})
	}
}

func quoteConninfoValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// findPgDump returns the pg_dump to use for a server of major version
// major: the configured one, else the same major version's, else the
// newest installed one at least as new, else pg_dump on PATH.
func findPgDump(configured string, major int) (string, error) {
	if configured != "" {
		if !isExecutable(configured) {
			return "", fmt.Errorf("postgres: pg_dump %s (%s) is not an executable file", configured, PgDumpConfigKey)
		}
		return configured, nil
	}
	exact := fmt.Sprintf("/usr/lib/postgresql/%d/bin/pg_dump", major)
	if isExecutable(exact) {
		return exact, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	sort.Slice(dirs, func(i, j int) bool { return pgDumpMajor(dirs[i]) > pgDumpMajor(dirs[j]) })
	for _, p := range dirs {
		if pgDumpMajor(p) >= major && isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("postgres: no pg_dump found for PostgreSQL %d (pg_dump must be at least the server's major version): install the PostgreSQL %d client tools (e.g. postgresql-client-%d), or set %s in the config to a pg_dump of version %d or newer", major, major, major, PgDumpConfigKey, major)
}

func pgDumpMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
