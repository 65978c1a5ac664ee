package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/kluis-nl/kluis/display"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
)

// Exit codes, documented in docs/ops.md ("Exit codes"). Keep them here and
// only here.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitDegraded = 3
	// exitNotRun: a restore test could not run because of the test rig (a
	// location or the restore-test server); not a failed backup.
	exitNotRun = 4
)

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// degradedError marks a command that did its work with fewer copies than
// required.
type degradedError struct{ msg string }

func (e *degradedError) Error() string { return e.msg }

// silentError carries an exit code whose explanation was already printed.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// globals are the flags every command accepts, and its output streams.
type globals struct {
	stdout, stderr io.Writer
	configPath     string
	logLevel       string
	logFormat      string
	jsonOut        bool
	log            *slog.Logger
	// packageLogs says slog's default logger is log (--log-level debug
	// on the process's stderr), so it must follow log when log is wrapped.
	packageLogs bool
	// dsns are the config's connection strings, whose secrets the log
	// and every error printed are scrubbed of (redact.go).
	dsns   []string
	dsnsMu sync.Mutex // dsns grows when the daemon reloads its config

	// ctx is the command's context (cancelled on SIGINT/SIGTERM).
	ctx context.Context
	// Discovery, run at most once per command (tenants.go).
	discoveryDone bool
	discovered    []config.Tenant
	discoveryErr  error
}

func (g *globals) exit(err error) int {
	if err == nil {
		return exitOK
	}
	err = g.redactError(err)
	// Errors quote table, column and database names: no terminal control
	// sequence gets through (display).
	err = &scrubbed{msg: display.Text(err.Error()), err: err}
	var ue *usageError
	var ce *configError
	var de *degradedError
	var se *silentError
	switch {
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(g.stderr, "kluis:", err)
		return exitUsage
	case errors.As(err, &ce):
		fmt.Fprintln(g.stderr, "kluis: configuration error:", err)
		return exitUsage
	case errors.As(err, &de):
		fmt.Fprintln(g.stderr, "kluis: degraded:", err)
		return exitDegraded
	}
	fmt.Fprintln(g.stderr, "kluis:", err)
	return exitFailed
}

// flags returns a FlagSet with the global flags registered: --config and
// the log flags (cmd/kluis/usage.go).
func (g *globals) flags(name, usage string) *flag.FlagSet {
	return g.flagSet(name, usage, globalConfig|globalLog)
}

func (g *globals) jsonFlag(fs *flag.FlagSet) {
	fs.BoolVar(&g.jsonOut, "json", false, "print the result as JSON")
}

func (g *globals) parse(fs *flag.FlagSet, args []string) error {
	// Help that was asked for goes to stdout (it is the answer); usage
	// printed because of a mistake goes to stderr with the error.
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(g.stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			g.stdout.Write(out.Bytes())
			return err
		}
		g.stderr.Write(out.Bytes())
		return &silentError{code: exitUsage}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageErrorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usageErrorf("--log-format %q: want text or json", g.logFormat)
	}
	if level < slog.LevelInfo && g.stderr == os.Stderr {
		// --log-level debug: what the packages log (the backup's phases,
		// each table's time) goes through the same handler. Otherwise
		// they keep Go's default logger, which shows their notices (a
		// copy read from another location, a row delta given up) at any
		// --log-level. Only for the process's own stderr: tests run
		// commands in process, each with its own buffer.
		slog.SetDefault(g.log)
		g.packageLogs = true
	}
	return nil
}

// noArgs refuses positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func (g *globals) resolveConfigPath() (string, error) {
	if g.configPath != "" {
		return g.configPath, nil
	}
	for _, p := range []string{"kluis.yaml", "/etc/kluis/kluis.yaml"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &configError{errors.New("no config file: give --config FILE or set KLUIS_CONFIG (see docs/ops.md)")}
}

func (g *globals) loadConfig() (*config.Config, error) {
	p, err := g.resolveConfigPath()
	if err != nil {
		return nil, err
	}
	c, err := config.Load(p)
	if err != nil {
		return nil, &configError{err}
	}
	g.redactSecretsOf(c)
	return c, nil
}

func (g *globals) appliance() (*appliance.Appliance, error) {
	c, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	a := appliance.New(c, g.log)
	if len(g.discovered) > 0 {
		a = a.WithTenants(g.discovered)
	}
	return a, nil
}

// printJSON writes v as indented JSON to stdout.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // ">= 1", not "\u003e= 1": this is for scripts, not HTML
	return enc.Encode(v)
}

// requireTenant checks --tenant was given and exists in a (after
// resolveTenant, discovered tenants included).
func requireTenant(a *appliance.Appliance, tenant string) error {
	if tenant == "" {
		return usageErrorf("--tenant is required")
	}
	if _, err := a.Cfg.Tenant(tenant); err != nil {
		return &configError{unknownTenant(a.Cfg, tenant, nil)}
	}
	return nil
}

// isTerminal reports whether w is a terminal (for progress bars).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func locationsText(rs []repo.LocationResult) string {
	var parts []string
	for _, r := range rs {
		if r.OK {
			parts = append(parts, r.Location+" ok")
		} else {
			parts = append(parts, r.Location+" FAILED: "+r.Error)
		}
	}
	return strings.Join(parts, "; ")
}

// loadConfigForKeys loads the config for the keys commands, which must work
// before the key files exist.
func (g *globals) loadConfigForKeys() (*config.Config, error) {
	return g.loadConfig()
}

// command does what every command that needs the config starts with:
// parse the flags, refuse stray arguments, load the config.
func (g *globals) command(fs *flag.FlagSet, args []string) (*appliance.Appliance, error) {
	if err := g.parse(fs, args); err != nil {
		return nil, err
	}
	if err := noArgs(fs); err != nil {
		return nil, err
	}
	return g.appliance()
}

// tenantCommand does what every per-tenant command starts with: parse the
// flags, refuse stray arguments, load the config, and check the tenant
// (read after parsing, hence the pointer).
func (g *globals) tenantCommand(fs *flag.FlagSet, args []string, tenant *string) (*appliance.Appliance, error) {
	a, err := g.command(fs, args)
	if err != nil {
		return nil, err
	}
	return g.resolveTenant(g.ctx, a, *tenant)
}
