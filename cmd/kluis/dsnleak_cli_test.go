package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/config"
)

// dsnLeakForms are valid libpq spellings of a password that pgx does not
// redact, each with something else that fails (issue 15 §4).
var dsnLeakForms = map[string]string{
	"spaces.dsn":   "host=127.0.0.1 port=1 user=kluis password = Spaces-S3cret-Passw0rd dbname=p sslmode=bogus",
	"escaped.dsn":  `host=127.0.0.1 port=1 user=kluis password=Escaped\ S3cret\ Passw0rd dbname=p sslmode=bogus`,
	"url.dsn":      "postgres://kluis:Url-S3cret-Passw0rd@127.0.0.1:notaport/p",
	"discover.dsn": "host=127.0.0.1 port=1 user=kluis password = Discover-S3cret-Passw0rd dbname=postgres sslmode=bogus",
}

var dsnLeakSecrets = []string{"Spaces-S3cret-Passw0rd", "Escaped", "S3cret\\ Passw0rd", "S3cret Passw0rd", "Url-S3cret-Passw0rd", "Discover-S3cret-Passw0rd"}

// TestDSNSecretsNeverPrinted (issue 15 §4): DSNs whose password is spelt
// in a way pgx does not redact, and that fail to parse for another
// reason, reach no output: config check --online (text and --json),
// status (text and --json) and the daemon's log.
func TestDSNSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, d := range dsnLeakForms {
		if err := os.WriteFile(e.path(name), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key, metrics_listen: "127.0.0.1:0"}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: spaces, engine: postgres, dsn_file: ./spaces.dsn}
  - {id: escaped, engine: postgres, dsn_file: ./escaped.dsn}
  - {id: url, engine: postgres, dsn_file: ./url.dsn}
discover:
  - {engine: postgres, dsn_file: ./discover.dsn, pattern: "praktijk_*", id_template: "{db}"}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	var outs []result
	outs = append(outs, e.mustRun(1, "config", "check", "--online"))
	outs = append(outs, e.mustRun(1, "config", "check", "--online", "--json"))
	r := e.mustRun(1, "config", "check", "--online")
	if !strings.Contains(r.stdout, "spaces: FAILED") || !strings.Contains(r.stdout, "does not parse") {
		t.Errorf("config check --online does not say what failed: %v", r)
	}
	outs = append(outs, e.run("status"), e.run("status", "--json"), e.run("backup", "--tenant", "escaped"))

	c, _, _ := e.command("daemon", "--log-level", "debug", "--log-format", "json")
	var logs lockedBuffer
	c.Stdout, c.Stderr = io.Discard, &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	waitFor(t, "the discovery failure in the daemon log", func() bool { return strings.Contains(logs.String(), "does not parse") })
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
	}
	texts := []string{"daemon log\n" + logs.String()}
	for _, o := range outs {
		texts = append(texts, o.String())
	}
	if b, err := os.ReadFile(e.path("state", "history.jsonl")); err == nil {
		texts = append(texts, "history\n"+string(b))
	}
	for _, text := range texts {
		for _, s := range dsnLeakSecrets {
			if strings.Contains(text, s) {
				name, _, _ := strings.Cut(text, "\n")
				t.Errorf("password %q printed by %s", s, name)
			}
		}
	}
}

// At --log-level debug the packages log through slog's default logger;
// once the config's connection strings are known it must scrub them too,
// not only the command's own logger.
func TestPackageLogsScrubbedAtDebug(t *testing.T) {
	const secret = "Pkg-Debug-S3cret-Passw0rd"
	var buf strings.Builder
	g := &globals{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), packageLogs: true}
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(g.log)
	g.redactSecretsOf(&config.Config{Tenants: []config.Tenant{{ID: "p", Engine: "postgres", DSN: "host=h user=u password=" + secret + " dbname=d"}}})
	slog.Debug("a package's debug line", "err", "connecting with password="+secret)
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("the password reached a package's debug log: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "a package's debug line") {
		t.Fatalf("the package's debug line is gone: %q", buf.String())
	}
}

// A config the daemon reloads adds its connection strings to those
// scrubbed from the log, also when the config it started with had none;
// those of the config before stay scrubbed (its running jobs go on).
func TestReloadedDSNsScrubbed(t *testing.T) {
	const first, second = "First-Reload-S3cret", "Second-Reload-S3cret"
	tenant := func(secret string) *config.Config {
		return &config.Config{Tenants: []config.Tenant{{ID: "p", Engine: "postgres", DSN: "host=h user=u password=" + secret + " dbname=d"}}}
	}
	var buf strings.Builder
	g := &globals{log: slog.New(slog.NewTextHandler(&buf, nil))}
	g.redactSecretsOf(&config.Config{}) // only SQLite tenants, or none: no DSN yet
	g.redactSecretsOf(tenant(first))
	g.redactSecretsOf(tenant(second))
	g.log.Error("backup failed", "err", "connect password="+first+" and password="+second)
	if strings.Contains(buf.String(), first) || strings.Contains(buf.String(), second) {
		t.Fatalf("a reloaded config's password reached the log: %s", buf.String())
	}
	if err := g.redactError(errors.New("password=" + second)); strings.Contains(err.Error(), second) {
		t.Fatalf("a reloaded config's password in a printed error: %v", err)
	}
}
