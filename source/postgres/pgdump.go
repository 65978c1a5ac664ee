package postgres

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// PgDumpConfigKey is the config key that names the pg_dump binary, for
// messages.
const PgDumpConfigKey = "policy.pg_dump"

// CheckPgDump finds the pg_dump a snapshot of a server of major version
// serverMajor would run (configured, else as Options.PgDumpPath's default
// says), runs `pg_dump --version`, and checks that its major version is at
// least the server's: an older pg_dump refuses a newer server. It returns
// the path and the version line.
func CheckPgDump(ctx context.Context, configured string, serverMajor int) (path, version string, err error) {
	path, err = findPgDump(configured, serverMajor)
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = []string{"LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		where := "it"
		if configured != "" {
			where = PgDumpConfigKey
		}
		return path, "", fmt.Errorf("pg_dump %s does not run (%v): check %s", path, err, where)
	}
	version = strings.TrimSpace(string(out))
	major, ok := ParsePgDumpMajor(version)
	if !ok {
		return path, version, fmt.Errorf("pg_dump %s: %q is not a pg_dump version", path, firstLine(version))
	}
	if major < serverMajor {
		return path, version, fmt.Errorf("pg_dump %s is version %d, older than the server (PostgreSQL %d): pg_dump must be at least the server's major version; install the PostgreSQL %d client tools (e.g. postgresql-client-%d) and set %s to its pg_dump",
			path, major, serverMajor, serverMajor, serverMajor, PgDumpConfigKey)
	}
	return path, version, nil
}

// ParsePgDumpMajor returns the major version in pg_dump's --version line
// ("pg_dump (PostgreSQL) 17.2 (Debian 17.2-1)" → 17; "… 9.6.24" → 9).
func ParsePgDumpMajor(line string) (int, bool) {
	f := strings.Fields(firstLine(line))
	if len(f) < 3 || f[0] != "pg_dump" {
		return 0, false
	}
	num, _, _ := strings.Cut(f[2], ".")
	// "18beta1", "17devel"
	end := 0
	for end < len(num) && num[end] >= '0' && num[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(num[:end])
	return n, err == nil && n > 0
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
