// Command kluis is the backup and disaster-recovery appliance's command
// line: it parses flags, loads the config, wires the packages together and
// prints results. Behaviour lives in the packages it calls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strings"
	"syscall"
	_ "time/tzdata" // time_zone works on minimal images without /usr/share/zoneinfo
)

// command is one subcommand (or group of subcommands).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, g *globals, args []string) error
	sub     []*command
}

var commands []*command

func init() {
	commands = []*command{
		{name: "keys", summary: "create or show the appliance keys", sub: []*command{
			{name: "init", summary: "create the master key and the evidence signing key (--master-only: a lost master key alone)", run: cmdKeysInit},
			{name: "public", summary: "print the evidence signing public key (for auditors)", run: cmdKeysPublic},
			{name: "recover", summary: "re-wrap a tenant key under this appliance's master key with an offline recovery identity", run: cmdKeysRecover},
			{name: "previous", summary: "list, or --add, the trusted previous signing keys (a lost appliance's, after a recovery)", run: cmdKeysPrevious},
		}},
		{name: "config", summary: "work with the config file", sub: []*command{
			{name: "check", summary: "validate the config without side effects", run: cmdConfigCheck},
		}},
		{name: "init", summary: "create a tenant's repository and keys at every location", run: cmdInit},
		{name: "backup", summary: "take a snapshot of a tenant", run: cmdBackup},
		{name: "snapshots", summary: "list a tenant's snapshots and where they are stored", run: cmdSnapshots},
		{name: "restore", summary: "restore a snapshot into a database (PostgreSQL, MariaDB, SQLite file) or its streams into a directory", run: cmdRestore},
		{name: "check", summary: "verify a tenant's repository at each location", run: cmdCheck},
		{name: "forget", summary: "remove snapshots by the retention policy (and prune)", run: cmdForget},
		{name: "prune", summary: "delete data no snapshot needs", run: cmdPrune},
		{name: "sync", summary: "copy to each location what it lacks, verified; exit 1 unless every location is complete", run: cmdSync},
		{name: "daemon", summary: "run scheduled backups, retention, restore tests and discovery; serve metrics", run: cmdDaemon},
		{name: "status", summary: "every tenant's last backup, copies and next run; exit 1 when one is stale or degraded", run: cmdStatus},
		{name: "demo", summary: "run the whole product on synthetic tenants in a temporary directory", run: cmdDemo},
		{name: "dossier", summary: "show or restore one client's dossier from a snapshot", sub: []*command{{name: "show", summary: "list a dossier's tables and row counts (logged)", run: cmdDossierShow}, {name: "restore", summary: "restore a dossier to a file or into a live database (logged)", run: cmdDossierRestore}}},
		{name: "erasure", summary: "the AVG art. 17 erasure register", sub: []*command{{name: "add", summary: "record that a dossier was erased", run: cmdErasureAdd}, {name: "list", summary: "list recorded erasures", run: cmdErasureList}, {name: "recover", summary: "rebuild the erasure register and access log from the locations (replacement appliance)", run: cmdErasureRecover}, {name: "verify", summary: "verify the erasure register: signatures, links, checkpoints, anchors", run: cmdErasureVerify}}},
		{name: "access-log", summary: "the dossier access log", sub: []*command{{name: "verify", summary: "verify the access log: signatures, links, checkpoints, anchors", run: cmdAccessLogVerify}}},
		{name: "restore-test", summary: "prove a snapshot restores: verify, restore to scratch, compare, probe; write signed evidence; exit 1 on FAIL", run: cmdRestoreTest},
		{name: "evidence", summary: "the signed restore-test reports (for auditors)", sub: []*command{
			{name: "list", summary: "list restore-test reports", run: cmdEvidenceList},
			{name: "show", summary: "show one report", run: cmdEvidenceShow},
			{name: "export", summary: "write reports, public key and an HTML summary to a directory", run: cmdEvidenceExport},
			{name: "verify", summary: "verify exported reports (or one report's proof) with only the public key", run: cmdEvidenceVerify},
			{name: "prove", summary: "write one report with its inclusion proof and the signed checkpoint", run: cmdEvidenceProve},
			{name: "cosign", summary: "ask the configured witnesses to cosign the newest checkpoint", run: cmdEvidenceCosign},
			{name: "check", summary: "audit every location's copy of the evidence log (versions, checkpoints, foreign reports)", run: cmdEvidenceCheck},
			{name: "continue", summary: "link this appliance's log to a lost appliance's (after a recovery with a new signing key)", run: cmdEvidenceContinue},
		}},
		{name: "witness", summary: "a witness of other appliances' evidence logs (run it elsewhere)", sub: []*command{
			{name: "init", summary: "create a witness key and print its public key line", run: cmdWitnessInit},
			{name: "serve", summary: "cosign checkpoints that extend the ones seen before", run: cmdWitnessServe},
		}},
		{name: "retention", summary: "approved retention changes", sub: []*command{
			{name: "cancel", summary: "cancel a pending retention change that shortens retention (before it takes effect)", run: cmdRetentionCancel},
		}},
		{name: "tenants", summary: "manage tenants that are gone", sub: []*command{
			{name: "retire", summary: "acknowledge a tenant that is no longer declared or discovered (its snapshots stay under retention)", run: cmdTenantsRetire},
		}},
		{name: "users", summary: "the practice and auditor portal's accounts", sub: []*command{
			{name: "add", summary: "add a user and print their one-time enrolment link", run: cmdUsersAdd},
			{name: "list", summary: "list users (no secrets)", run: cmdUsersList},
			{name: "disable", summary: "stop a user from logging in", run: cmdUsersDisable},
			{name: "enable", summary: "let a disabled or locked-out user log in again", run: cmdUsersEnable},
			{name: "reset", summary: "clear a user's password and second factors; print a new enrolment link", run: cmdUsersReset},
			{name: "bind", summary: "bind a user to an identity at the identity provider (web.oidc), which replaces the password; --clear unbinds", run: cmdUsersBind},
		}},
		{name: "web", summary: "serve the practice and auditor portal (talks to the daemon's socket; holds no keys)", run: cmdWeb},
		{name: "version", summary: "print the version", run: cmdVersion},
	}
}

// version is set at build time with -ldflags "-X main.version=…"; when it
// is not, Version derives it from the module and VCS data Go embeds.
var version = ""

// Version is the kluis version recorded in evidence and printed by
// `kluis version`: the -ldflags value, else the module version, else
// "devel+<commit>" (with "-dirty" for uncommitted changes), never a bare
// "dev" that says nothing.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}

func main() {
	// Every file kluis writes may hold personal data or a secret: private
	// to the kluis user whatever umask it was started with (the systemd
	// unit sets UMask=0077 too; a shell or container may not).
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	endProfile := startProfiles(os.Stderr)
	code := run(ctx, os.Args[1:])
	endProfile()
	stop()
	os.Exit(code)
}

// startProfiles starts what KLUIS_CPUPROFILE and KLUIS_TRACE ask for (a
// CPU profile for go tool pprof, an execution trace for go tool trace,
// written to the named files, which must not exist yet) and returns the
// function that ends them. They are for measuring a command as it runs in
// production (docs/benchmarks.md, docs/ops.md "Profiling a command"); a
// file that cannot be created is reported and the command runs without it.
func startProfiles(stderr io.Writer) (end func()) {
	var ends []func()
	start := func(env string, begin func(io.Writer) error, stop func()) {
		p := os.Getenv(env)
		if p == "" {
			return
		}
		// A new file, mode 0600, never through a symlink: a profile holds
		// function names and timings, a trace more; neither goes where
		// someone else chose.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			if err = begin(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "kluis: %s: %v\n", env, err)
			return
		}
		ends = append(ends, func() { stop(); f.Close() })
	}
	start("KLUIS_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	start("KLUIS_TRACE", trace.Start, trace.Stop)
	return func() {
		for _, e := range ends {
			e()
		}
	}
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string) int {
	g := &globals{ctx: ctx, stdout: os.Stdout, stderr: os.Stderr, configPath: os.Getenv("KLUIS_CONFIG"), logLevel: "warn", logFormat: "text"}
	// Global flags may also come before the command: kluis --config F status.
	pre := g.flags("", "")
	pre.Usage = func() {}
	pre.SetOutput(io.Discard)
	var showVersion bool
	pre.BoolVar(&showVersion, "version", false, "print the version")
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(g.stdout, commands, "kluis")
			return exitOK
		}
		return g.exit(usageErrorf("%v", err))
	}
	if showVersion {
		fmt.Fprintln(g.stdout, "kluis", Version())
		return exitOK
	}
	// The daemon is a service: it says it started, what it runs and when
	// it stops (info) unless --log-level says otherwise.
	explicit := false
	pre.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "log-level" })
	if rest := pre.Args(); !explicit && len(rest) > 0 && rest[0] == "daemon" {
		g.logLevel = "info"
	}
	err := dispatch(ctx, g, commands, pre.Args(), "kluis")
	return g.exit(err)
}

func dispatch(ctx context.Context, g *globals, cmds []*command, args []string, path string) error {
	if len(args) == 0 {
		printUsage(g.stderr, cmds, path)
		return usageErrorf("missing command")
	}
	if args[0] == "help" && len(args) > 1 {
		// `kluis help restore` = `kluis restore --help`.
		return dispatch(ctx, g, cmds, append(append([]string(nil), args[1:]...), "--help"), path)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		printUsage(g.stdout, cmds, path)
		return nil
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		if c.sub != nil {
			if len(args) > 1 && (args[1] == "--help" || args[1] == "-h") {
				printUsage(g.stdout, c.sub, path+" "+c.name)
				return nil
			}
			return dispatch(ctx, g, c.sub, args[1:], path+" "+c.name)
		}
		return c.run(ctx, g, args[1:])
	}
	return usageErrorf("unknown command %q (run `%s help`)", args[0], path)
}

func printUsage(w io.Writer, cmds []*command, path string) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", path)
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `%s <command> --help` for a command's flags.\n", path)
	if path == "kluis" {
		fmt.Fprintln(w, "\nGlobal flags (every command that reads the config; `kluis help CMD` lists a command's own): --config FILE (or KLUIS_CONFIG), --log-level debug|info|warn|error, --log-format text|json")
		fmt.Fprintln(w, "Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 succeeded but degraded, 4 a restore test could not run (the test rig, not the backup).")
	}
}

func cmdVersion(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("version", "", 0)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, "kluis", Version())
	return nil
}

func splitKV(s string) (string, string, bool) {
	k, v, ok := strings.Cut(s, "=")
	return k, v, ok && k != "" && v != ""
}
