package main

// The CLI's contract with ops engineers and schedulers (docs/ops.md):
// exit codes 0 ok, 1 failed, 2 usage or configuration error, 3 degraded;
// --json output; key handling; fallback to the other location; and no
// secret in any output.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{nil, "missing command"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"keys", "bogus"}, `unknown command "bogus"`},
		{[]string{"snapshots", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"backup", "--tenant", tenant, "--file", "no-equals-sign"}, "want NAME=PATH"},
		{[]string{"forget", "--tenant", tenant, "--keep-last", "many"}, "invalid value"},
		{[]string{"snapshots", "--tenant", tenant, "stray"}, `unexpected argument "stray"`},
		{[]string{"snapshots", "--tenant", tenant, "--log-level", "loud"}, "--log-level"},
		{[]string{"snapshots", "--tenant", tenant, "--log-format", "xml"}, "--log-format"},
		{[]string{"init"}, "--tenant is required"},
		{[]string{"backup", "--file", "db=" + input}, "--tenant is required"},
		{[]string{"snapshots"}, "--tenant is required"},
		{[]string{"restore", "--to-dir", e.path("out")}, "--tenant is required"},
		{[]string{"check", "--read-data"}, "--tenant is required"},
		{[]string{"forget", "--keep-last", "1"}, "--tenant is required"},
		{[]string{"prune"}, "--tenant is required"},
		{[]string{"snapshots", "--tenant", "praktijk-z"}, `no tenant "praktijk-z"`},
		{[]string{"restore", "--tenant", tenant}, "--to-dir"},
		{[]string{"restore", "--tenant", tenant, "--to-dir", e.path("out"), "--location", "rotterdam"}, `no location "rotterdam"`},
		{[]string{"restore", "--tenant", tenant, "--to-dir", e.path("out"), "--target-path", e.path("out.db")}, "exactly one of"},
		{[]string{"restore", "--tenant", tenant, "--target-dsn", "postgres://kluis:s3cret-pw@db.example/restore"}, "must not carry a password"},
		{[]string{"--bogus", "version"}, "flag provided but not defined: -bogus"},
		{[]string{"--log-level", "loud", "version"}, "--log-level"},
	} {
		r := e.run(tc.args...)
		if r.code != 2 {
			t.Errorf("want exit 2, got %v", r)
			continue
		}
		if !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("stderr lacks %q: %v", tc.stderr, r)
		}
		if r.stdout != "" {
			t.Errorf("a usage error printed to stdout: %v", r)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cret-pw") {
			t.Errorf("a usage error echoes a password: %v", r)
		}
	}
	if _, err := os.Stat(e.path("out")); err == nil {
		t.Errorf("a refused restore created its target directory")
	}
	if rows := e.snapshots(); len(rows) != 0 {
		t.Errorf("usage errors created %d snapshots", len(rows))
	}
	if r := e.mustRun(0, "version"); !strings.HasPrefix(r.stdout, "kluis ") {
		t.Errorf("version: %v", r)
	}
}

// TestHelp: asking for help is not an error (exit 0) and prints usage on
// stdout (it is the answer); `help CMD` is that command's help; a mistake
// prints usage on stderr with exit 2.
func TestHelp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.mustRun(0, "help"); !strings.Contains(r.stdout, "Exit codes") || !strings.Contains(r.stdout, "Usage: kluis") {
		t.Errorf("help does not print the usage and exit codes on stdout: %v", r)
	}
	for _, args := range [][]string{{"snapshots", "--help"}, {"keys", "init", "-h"}, {"keys", "help"}, {"keys", "--help"}, {"--help"}, {"-h"}} {
		if r := e.mustRun(0, args...); !strings.Contains(r.stdout, "Usage: kluis") || r.stderr != "" {
			t.Errorf("kluis %s: want the usage on stdout and nothing on stderr, got %v", strings.Join(args, " "), r)
		}
	}
	if r := e.mustRun(0, "help", "restore"); !strings.Contains(r.stdout, "Usage: kluis restore") || !strings.Contains(r.stdout, "-to-dir") {
		t.Errorf("`kluis help restore` does not show restore's flags: %v", r)
	}
	if r := e.run("snapshots", "--no-such-flag"); r.code != 2 || !strings.Contains(r.stderr, "Usage: kluis snapshots") || r.stdout != "" {
		t.Errorf("a bad flag: want exit 2 and the usage on stderr, got %v", r)
	}
	if r := e.run(); r.code != 2 || !strings.Contains(r.stderr, "Usage: kluis") {
		t.Errorf("no command: want exit 2 and the usage on stderr, got %v", r)
	}
}

// TestVersion: `kluis --version` and `kluis version` agree and never say
// the bare "dev" that used to reach signed evidence.
func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.mustRun(0, "--version"), e.mustRun(0, "version")
	if a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "kluis ") || strings.TrimSpace(a.stdout) == "kluis dev" {
		t.Errorf("--version %q, version %q", a.stdout, b.stdout)
	}
}

// TestGlobalFlagsBeforeCommand: --config, --log-level and --log-format may
// come before the command (kluis --config F snapshots ...), and --config
// wins over $KLUIS_CONFIG.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	id := e.backup(0, input)
	good := e.cfg
	e.cfg = e.path("absent.yaml") // $KLUIS_CONFIG now points nowhere
	var rows []snapshotRow
	r := e.mustJSON(0, &rows, "--config", good, "--log-level", "debug", "--log-format", "json", "snapshots", "--tenant", tenant)
	if len(rows) != 1 || rows[0].ID != id {
		t.Errorf("snapshots with --config before the command: %v", r)
	}
	e.mustRun(0, "--config", good, "check", "--tenant", tenant)
	if r := e.run("snapshots", "--tenant", tenant); r.code != 2 {
		t.Errorf("without --config, $KLUIS_CONFIG (absent) should be used: want exit 2, got %v", r)
	}
	e.cfg = good
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()

	t.Run("unknown key, block style", func(t *testing.T) {
		defer e.in(t)()
		e.cfg = e.path("unknown-key-block.yaml")
		copyFile(t, filepath.Join("testdata", "unknown-key-block.yaml"), e.cfg)
		for _, args := range [][]string{{"config", "check"}, {"snapshots", "--tenant", tenant}, {"keys", "public"}} {
			r := e.run(args...)
			if r.code != 2 || !strings.Contains(r.stderr, "locations[0].pth") || !strings.Contains(r.stderr, "line 6") {
				t.Errorf("want exit 2 naming line 6 and locations[0].pth, got %v", r)
			}
		}
	})
	t.Run("unknown key, flow style", func(t *testing.T) {
		defer e.in(t)()
		e.cfg = e.path("unknown-key-flow.yaml")
		copyFile(t, filepath.Join("testdata", "unknown-key-flow.yaml"), e.cfg)
		r := e.run("config", "check")
		if r.code != 2 || !strings.Contains(r.stderr, "field pth not found") {
			t.Fatalf("want exit 2 naming field pth, got %v", r)
		}
		if !strings.Contains(r.stderr, "locations[0].pth") {
			t.Fatalf("a flow mapping: the unknown key is not named by its path: %q", strings.TrimSpace(r.stderr))
		}
	})
	t.Run("invalid YAML", func(t *testing.T) {
		defer e.in(t)()
		e.cfg = e.path("broken.yaml")
		if err := os.WriteFile(e.cfg, []byte("appliance: {id: ams-1\nlocations: ["), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := e.run("config", "check"); r.code != 2 || !strings.Contains(r.stderr, "configuration error") {
			t.Errorf("want exit 2, got %v", r)
		}
	})
	t.Run("no config file", func(t *testing.T) {
		defer e.in(t)()
		e.cfg = e.path("absent.yaml")
		if r := e.run("snapshots", "--tenant", tenant); r.code != 2 || !strings.Contains(r.stderr, "absent.yaml") {
			t.Errorf("want exit 2 naming the file, got %v", r)
		}
	})
	t.Run("config check --json", func(t *testing.T) {
		defer e.in(t)()
		e.cfg = e.path("unknown-key-block.yaml")
		copyFile(t, filepath.Join("testdata", "unknown-key-block.yaml"), e.cfg)
		var out map[string]any
		e.mustJSON(2, &out, "config", "check")
		if out["ok"] != false || !strings.Contains(out["error"].(string), "pth") {
			t.Errorf("config check --json on a bad config: %v", out)
		}
		e.cfg = e.path("kluis.yaml")
		out = nil
		e.mustJSON(0, &out, "config", "check")
		if out["ok"] != true || out["tenants"] == nil || out["locations"] == nil {
			t.Errorf("config check --json: %v", out)
		}
	})
	for _, key := range []string{"master.key", "signing.key"} {
		t.Run(key+" mode 0644", func(t *testing.T) {
			defer e.in(t)()
			e.cfg = e.path("kluis.yaml")
			p := e.path("secrets", key)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(p, 0o600)
			for _, args := range [][]string{{"config", "check"}, {"init", "--tenant", tenant}, {"snapshots", "--tenant", tenant}} {
				r := e.run(args...)
				if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") || !strings.Contains(r.stderr, key) {
					t.Errorf("want exit 2 saying chmod 600 %s, got %v", key, r)
				}
			}
		})
	}
	if _, err := os.Stat(e.path("loc-a")); err == nil {
		t.Errorf("a command refused for its config created a location")
	}
}

func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 3<<20)
	e.backup(0, input)

	// Another appliance's master key, made the ordinary way.
	other := newEnv(t)
	other.keysInit()
	e.addKeySecrets(other.path("secrets", "master.key"), other.path("secrets", "signing.key"))
	right, err := os.ReadFile(e.path("secrets", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := os.ReadFile(other.path("secrets", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	setKey := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(e.path("secrets", "master.key"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setKey(wrong)
	objsA, objsG := objects(t, e.path("loc-a")), objects(t, e.path("loc-g"))

	out := e.path("out")
	for _, args := range [][]string{
		{"restore", "--tenant", tenant, "--to-dir", out},
		{"backup", "--tenant", tenant, "--file", "db=" + input},
		{"snapshots", "--tenant", tenant},
		{"check", "--tenant", tenant, "--read-data"},
		{"forget", "--tenant", tenant, "--keep-last", "0", "--prune"},
		{"prune", "--tenant", tenant, "--grace", "0s"},
		{"init", "--tenant", tenant},
	} {
		r := e.run(args...)
		if r.code != 1 {
			t.Errorf("want exit 1, got %v", r)
		}
		if args[0] != "init" && !strings.Contains(r.stderr, "master key does not open") {
			t.Errorf("the message does not say the master key does not open: %v", r)
		}
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		t.Errorf("restore with the wrong master key wrote %d entries into %s", len(entries), out)
	}
	if a, g := objects(t, e.path("loc-a")), objects(t, e.path("loc-g")); !equalStrings(a, objsA) || !equalStrings(g, objsG) {
		t.Errorf("commands with the wrong master key changed the locations:\namsterdam %d -> %d objects\ngroningen %d -> %d objects", len(objsA), len(a), len(objsG), len(g))
	}

	setKey(right)
	e.restoreEqual("latest", input)
	e.checkOK()
}

func equalStrings(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestDegradedLocation(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 4<<20)

	// groningen's disk is not mounted.
	if err := os.Rename(e.path("loc-g"), e.path("loc-g.unmounted")); err != nil {
		t.Fatal(err)
	}
	r := e.run("backup", "--tenant", tenant, "--file", "db="+input)
	if r.code != 3 || !strings.Contains(r.stderr, "degraded") || !strings.Contains(r.stderr, "groningen") {
		t.Fatalf("want exit 3 saying degraded at groningen, got %v", r)
	}
	if _, err := os.Stat(e.path("loc-g")); err == nil {
		t.Fatalf("the backup created the missing location root (it would write into an unmounted mount point)")
	}
	rows := e.snapshots()
	if len(rows) != 1 || !rows[0].Degraded || !equalStrings(rows[0].Locations, []string{"amsterdam"}) {
		t.Fatalf("snapshots --json: %+v, want one degraded snapshot at amsterdam", rows)
	}
	degraded := rows[0].ID
	if r := e.mustRun(0, "snapshots", "--tenant", tenant); !strings.Contains(r.stdout, "DEGRADED") {
		t.Errorf("snapshots does not mark the snapshot DEGRADED: %v", r)
	}
	e.restoreEqual(degraded, input)
	if recs := history(t, e); len(recs) != 1 || !recs[0].OK || recs[0].Snapshot != degraded ||
		!equalStrings(recs[0].Committed, []string{"amsterdam"}) || len(recs[0].Locations) != 2 {
		t.Errorf("the job history does not record the degraded backup: %+v", recs)
	}
	if r := e.run("check", "--tenant", tenant, "--location", "groningen"); r.code != 1 {
		t.Errorf("check of the unmounted location: want exit 1, got %v", r)
	}

	// The disk is back; the next backup (of the same input: every blob
	// dedups) catches groningen up.
	if err := os.Rename(e.path("loc-g.unmounted"), e.path("loc-g")); err != nil {
		t.Fatal(err)
	}
	latest := e.backup(0, input)
	// The degraded snapshot is still at amsterdam only: check names it at
	// groningen until a sync copies it.
	if r := e.run("check", "--tenant", tenant); r.code != 1 || !strings.Contains(r.stdout, "is missing here but held by amsterdam") || !strings.Contains(r.stdout, "snapshot "+degraded[:8]) {
		t.Errorf("check before sync: want exit 1 naming %s at groningen, got %v", degraded[:8], r)
	}
	e.mustRun(0, "sync", "--tenant", tenant)
	for _, l := range e.checkOK() {
		if l.Snapshots == 0 || l.PacksRead != l.Packs {
			t.Errorf("check at %s: %+v", l.Location, l)
		}
	}
	e.checkOK("--location", "groningen")
	pa, pg := packs(t, e.path("loc-a")), packs(t, e.path("loc-g"))
	if !equalStrings(pa, pg) {
		t.Errorf("after the catch-up backup amsterdam has %d packs, groningen %d", len(pa), len(pg))
	}
	// groningen alone now holds everything the new snapshot needs.
	if err := os.Rename(e.path("loc-a"), e.path("loc-a.unmounted")); err != nil {
		t.Fatal(err)
	}
	e.restoreEqual(latest, input)
	if err := os.Rename(e.path("loc-a.unmounted"), e.path("loc-a")); err != nil {
		t.Fatal(err)
	}

	// Both locations down: nothing can succeed.
	for _, loc := range []string{"loc-a", "loc-g"} {
		if err := os.Rename(e.path(loc), e.path(loc+".unmounted")); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"backup", "--tenant", tenant, "--file", "db=" + input},
		{"restore", "--tenant", tenant, "--to-dir", e.path("out")},
		{"snapshots", "--tenant", tenant},
		{"check", "--tenant", tenant},
	} {
		if r := e.run(args...); r.code != 1 {
			t.Errorf("with both locations down: want exit 1, got %v", r)
		}
	}
	for _, loc := range []string{"loc-a", "loc-g"} {
		if _, err := os.Stat(e.path(loc)); err == nil {
			t.Errorf("a command created the missing root %s", loc)
		}
	}
}

// TestDegradedAdviceIsRunnable: the degraded message tells the operator
// which command to run; that command must exist.
func TestDegradedAdviceIsRunnable(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	if err := os.Rename(e.path("loc-g"), e.path("loc-g.unmounted")); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun(3, "backup", "--tenant", tenant, "--file", "db="+input)
	m := regexp.MustCompile("`kluis ([a-z]+)").FindStringSubmatch(r.stderr)
	if m == nil {
		return // it advises no command, so none can be missing
	}
	if h := e.run(m[1], "--help"); h.code != 0 {
		t.Fatalf("the degraded message advises `kluis %s`, which is not a command (exit %d: %s)", m[1], h.code, strings.TrimSpace(h.stderr))
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	rng := seededRand(t)
	input := e.path("in.bin")
	writeData(t, rng, input, 3<<20)

	hasKeys := func(what string, m map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s --json lacks %q: %v", what, k, m)
			}
		}
	}
	var init map[string]any
	e.mustJSON(0, &init, "init", "--tenant", tenant)
	hasKeys("init", init, "tenant", "repository", "locations")
	if locs, _ := init["locations"].([]any); len(locs) != 2 {
		t.Errorf("init --json: want 2 locations, got %v", init["locations"])
	}

	var bk map[string]any
	e.mustJSON(0, &bk, "backup", "--tenant", tenant, "--file", "db="+input)
	hasKeys("backup", bk, "snapshot", "committed", "locations", "stats", "started", "finished")
	if st, ok := bk["stats"].(map[string]any); ok {
		hasKeys("backup stats", st, "bytes_read", "bytes_new", "bytes_stored", "blobs", "blobs_new", "packs", "streams")
		if fmt.Sprint(st["bytes_read"]) != "3145728" {
			t.Errorf("backup --json: bytes_read %v, want 3145728", st["bytes_read"])
		}
	}
	if c, _ := bk["committed"].([]any); len(c) != 2 {
		t.Errorf("backup --json: committed %v", bk["committed"])
	}
	modifyRegions(t, rng, input, 1<<20)
	e.backup(0, input)

	var snaps []map[string]any
	e.mustJSON(0, &snaps, "snapshots", "--tenant", tenant)
	if len(snaps) != 2 {
		t.Fatalf("snapshots --json: %d rows, want 2", len(snaps))
	}
	for _, s := range snaps {
		hasKeys("snapshots", s, "id", "started", "finished", "engine", "streams", "bytes", "locations", "degraded")
	}
	if snaps[0]["id"] != bk["snapshot"] {
		t.Errorf("snapshots --json: oldest is %v, backup said %v", snaps[0]["id"], bk["snapshot"])
	}

	var ck map[string]any
	e.mustJSON(0, &ck, "check", "--tenant", tenant, "--read-data")
	hasKeys("check", ck, "tenant", "ok", "locations")
	if locs, _ := ck["locations"].([]any); len(locs) == 2 {
		for _, l := range locs {
			hasKeys("check location", l.(map[string]any), "location", "snapshots", "indexes", "packs", "packs_read", "bytes_read")
		}
	} else {
		t.Errorf("check --json: locations %v", ck["locations"])
	}

	var dry map[string]any
	e.mustJSON(0, &dry, "forget", "--tenant", tenant, "--keep-last", "1", "--dry-run")
	hasKeys("forget --dry-run", dry, "tenant", "snapshots", "dry_run")
	if dry["dry_run"] != true {
		t.Errorf("forget --dry-run --json: dry_run %v", dry["dry_run"])
	}
	if rows := e.snapshots(); len(rows) != 2 {
		t.Errorf("forget --dry-run removed snapshots: %d left", len(rows))
	}
	var fg map[string]any
	e.mustJSON(0, &fg, "forget", "--tenant", tenant, "--keep-last", "1", "--prune")
	hasKeys("forget --prune", fg, "tenant", "snapshots", "dry_run", "prune")
	if rows, _ := fg["snapshots"].([]any); len(rows) == 2 {
		for _, r := range rows {
			hasKeys("forget row", r.(map[string]any), "id", "started", "keep")
		}
	} else {
		t.Errorf("forget --json: snapshots %v", fg["snapshots"])
	}
	if p, ok := fg["prune"].(map[string]any); ok {
		hasKeys("forget prune", p, "snapshots", "packs_kept", "packs_deleted", "bytes_freed", "indexes_deleted")
	}

	var pr map[string]any
	e.mustJSON(0, &pr, "prune", "--tenant", tenant, "--grace", "0s")
	hasKeys("prune", pr, "snapshots", "packs_kept", "packs_deleted", "bytes_freed", "indexes_deleted")
	if fmt.Sprint(pr["snapshots"]) != "1" {
		t.Errorf("prune --json after forget --keep-last 1: snapshots %v", pr["snapshots"])
	}
	e.restoreEqual("latest", input)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.keysInit()
	master, signing := e.path("secrets", "master.key"), e.path("secrets", "signing.key")
	before := map[string][]byte{}
	for _, p := range []string{master, signing} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", p, fi.Mode().Perm())
		}
		before[p], _ = os.ReadFile(p)
	}
	pub := parseEd25519PEM(t, r.stdout)

	// The private half in signing.key is the key printed.
	block, _ := pem.Decode(before[signing])
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.(ed25519.PrivateKey).Public()) {
		t.Errorf("keys init printed a public key that is not signing.key's")
	}

	again := e.run("keys", "init")
	if again.code != 1 || !strings.Contains(again.stderr, "refusing to overwrite") {
		t.Errorf("second keys init: want exit 1 refusing to overwrite, got %v", again)
	}
	if strings.Contains(again.stdout, "BEGIN") {
		t.Errorf("a refused keys init printed a key: %v", again)
	}
	// Only one of the two files present: still refused, nothing created.
	if err := os.Rename(signing, signing+".aside"); err != nil {
		t.Fatal(err)
	}
	if r := e.run("keys", "init"); r.code != 1 {
		t.Errorf("keys init with master.key present: want exit 1, got %v", r)
	}
	if _, err := os.Stat(signing); err == nil {
		t.Errorf("a refused keys init created %s", signing)
	}
	if err := os.Rename(signing+".aside", signing); err != nil {
		t.Fatal(err)
	}
	for p, b := range before {
		now, _ := os.ReadFile(p)
		if !bytes.Equal(now, b) {
			t.Errorf("a refused keys init changed %s", p)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o after a refused keys init", p, fi.Mode().Perm())
		}
	}

	pr := e.mustRun(0, "keys", "public")
	if !parseEd25519PEM(t, pr.stdout).Equal(pub) {
		t.Errorf("keys public prints a different key than keys init did")
	}
	if pr.stdout != r.stdout {
		t.Errorf("keys public output differs from keys init's: %q vs %q", pr.stdout, r.stdout)
	}
}

func parseEd25519PEM(t *testing.T, s string) ed25519.PublicKey {
	t.Helper()
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("not exactly one PEM public key: %q", s)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		t.Fatalf("the public key is a %T, want Ed25519", k)
	}
	return pub
}

func TestTamperedPack(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	// Enough data for several 1 MiB packs even when the seeded mix
	// compresses well.
	writeData(t, seededRand(t), input, 16<<20)
	e.backup(0, input)

	// A pack of the snapshot's data: not the small pack of the tenant's
	// zstd dictionary, which a restore of the first night (compressed
	// before the dictionary was trained) never reads.
	var ps []string
	for _, q := range packs(t, e.path("loc-a")) {
		if fi, err := os.Stat(filepath.Join(e.path("loc-a"), filepath.FromSlash(q))); err == nil && fi.Size() >= 256<<10 {
			ps = append(ps, q)
		}
	}
	sort.Strings(ps)
	if len(ps) < 3 {
		t.Fatalf("want several data packs, got %d", len(ps))
	}
	victim := ps[len(ps)/2]
	hash := filepath.Base(victim)
	p := filepath.Join(e.path("loc-a"), filepath.FromSlash(victim))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x40
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}

	r := e.run("check", "--tenant", tenant, "--read-data", "--location", "amsterdam")
	if r.code != 1 || !strings.Contains(r.stdout, hash) {
		t.Errorf("check --read-data --location amsterdam: want exit 1 naming pack %s, got %v", hash, r)
	}
	e.checkOK("--location", "groningen")
	if r := e.run("check", "--tenant", tenant, "--read-data"); r.code != 1 || !strings.Contains(r.stderr, "1 of 2 locations") {
		t.Errorf("check --read-data of both: want exit 1 at 1 of 2 locations, got %v", r)
	}
	r = e.restoreEqual("latest", input, "--location", "amsterdam", "--log-level", "warn")
	if !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, tenant+"/data/"+hash[:2]+"/"+hash) {
		t.Errorf("restore fell back without a warning naming the object: %v", r)
	}

	// The same pack damaged at groningen too: the restore fails, and
	// leaves no file that looks complete (nor a temp file).
	pg := filepath.Join(e.path("loc-g"), filepath.FromSlash(victim))
	if err := os.Chmod(pg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pg, b, 0o400); err != nil {
		t.Fatal(err)
	}
	out := e.path("out")
	r = e.run("restore", "--tenant", tenant, "--to-dir", out)
	if r.code != 1 || !strings.Contains(r.stderr, hash) {
		t.Errorf("restore with no good copy of pack %s: want exit 1 naming it, got %v", hash, r)
	}
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("a failed restore left %d entries in %s (first %s)", len(entries), out, entries[0].Name())
	}
}

func TestRestoreRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	e.backup(0, input)
	out := e.path("out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "db"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "--tenant", tenant, "--to-dir", out)
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("want exit 1 refusing to overwrite, got %v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "db")); string(b) != "precious" {
		t.Errorf("restore overwrote an existing file")
	}
	if r := e.run("restore", "--tenant", tenant, "--snapshot", "ffffffff", "--to-dir", e.path("out2")); r.code != 1 {
		t.Errorf("restore of an unknown snapshot: want exit 1, got %v", r)
	}
}

// TestSecretsNeverPrinted runs every command, at debug level, in both log
// formats, through successes and failures; the env's cleanup asserts that
// no output (nor the job history) holds the master key or the signing
// key, in any common encoding.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	if len(e.secrets) < 8 {
		t.Fatalf("only %d secret encodings registered", len(e.secrets))
	}
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 2<<20)
	for _, format := range []string{"text", "json"} {
		g := []string{"--log-level", "debug", "--log-format", format}
		if format == "text" {
			e.mustRun(0, append([]string{"init", "--tenant", tenant}, g...)...)
		}
		e.mustRun(0, append([]string{"config", "check"}, g...)...)
		e.mustRun(0, append([]string{"keys", "public"}, g...)...)
		e.mustRun(1, append([]string{"keys", "init"}, g...)...)
		e.mustRun(0, append([]string{"backup", "--tenant", tenant, "--file", "db=" + input}, g...)...)
		e.mustRun(0, append([]string{"snapshots", "--tenant", tenant}, g...)...)
		e.mustRun(0, append([]string{"check", "--tenant", tenant, "--read-data"}, g...)...)
		e.mustRun(0, append([]string{"restore", "--tenant", tenant, "--to-dir", e.path("out-" + format)}, g...)...)
		e.mustRun(0, append([]string{"forget", "--tenant", tenant, "--keep-last", "1", "--prune"}, g...)...)
		e.mustRun(0, append([]string{"prune", "--tenant", tenant, "--grace", "0s"}, g...)...)
	}
	// Failures print errors that name key files: never their contents.
	p := e.path("secrets", "master.key")
	os.Chmod(p, 0o644)
	e.mustRun(2, "snapshots", "--tenant", tenant, "--log-level", "debug")
	os.Chmod(p, 0o600)
	good, _ := os.ReadFile(p)
	damaged := bytes.Replace(good, []byte("KLUIS-MASTER-KEY-1-"), []byte("KLUIS-MASTER-KEY-1-!"), 1)
	os.WriteFile(p, damaged, 0o600)
	e.mustRun(1, "restore", "--tenant", tenant, "--to-dir", e.path("out-damaged"), "--log-level", "debug")
	os.WriteFile(p, good, 0o600)
	sp := e.path("secrets", "signing.key")
	sgood, _ := os.ReadFile(sp)
	os.WriteFile(sp, sgood[:len(sgood)/2], 0o600)
	e.mustRun(1, "keys", "public", "--log-level", "debug")
	os.WriteFile(sp, sgood, 0o600)
	// The repository objects themselves hold no key in the clear either.
	for _, root := range []string{e.path("loc-a"), e.path("loc-g")} {
		for _, o := range objects(t, root) {
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(o)))
			if err != nil {
				t.Fatal(err)
			}
			for name, s := range e.secrets {
				if len(s) >= 16 && bytes.Contains(b, []byte(s)) {
					t.Errorf("the %s appears in object %s", name, o)
				}
			}
		}
	}
}

// TestSecretDetector proves the leak check is not vacuous: an output that
// holds a key, in any registered encoding, is caught.
func TestSecretDetector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	e.mu.Lock()
	var planted []string
	for name, s := range e.secrets {
		if len(s) >= 16 {
			planted = append(planted, name)
			e.outputs = append(e.outputs, "kluis planted "+name+"\nlevel=DEBUG key="+s+"\n")
		}
	}
	e.mu.Unlock()
	leaks, checked := e.leaks()
	if checked < 8 || len(leaks) < len(planted) {
		t.Errorf("%d encodings checked, %d of %d planted secrets found: %q", checked, len(leaks), len(planted), leaks)
	}
	e.mu.Lock()
	e.outputs = e.outputs[:len(e.outputs)-len(planted)]
	e.mu.Unlock()
}

// TestStaleTempFilesAreRemoved: a process killed inside a local Put leaves
// a .tmp-* file next to where the object would have been (the crash tests
// produce them). repo/local documents that such files "are removed when
// found stale"; after a backup, a prune with no grace and a check, a
// two-day-old one must be gone.
func TestStaleTempFilesAreRemoved(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	e.backup(0, input)
	var stale []string
	for _, p := range []string{
		e.path("loc-a", tenant, "data", "00", ".tmp-1234567890"),
		e.path("loc-g", tenant, "index", ".tmp-987654321"),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xa5}, 256<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-48 * time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, p)
	}
	e.backup(0, input)
	e.mustRun(0, "prune", "--tenant", tenant, "--grace", "0s")
	e.checkOK()
	e.restoreEqual("latest", input)
	var left []string
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			rel, _ := filepath.Rel(e.dir, p)
			left = append(left, rel)
		}
	}
	if len(left) > 0 {
		t.Fatalf("temp files of interrupted writes survive prune --grace 0s: %q", left)
	}
}

// historyRecord is one line of state/history.jsonl (appliance.Record).
type historyRecord struct {
	Time      time.Time `json:"time"`
	Tenant    string    `json:"tenant"`
	Job       string    `json:"job"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error"`
	Snapshot  string    `json:"snapshot"`
	Committed []string  `json:"committed"`
	Locations []struct {
		Location string `json:"location"`
		OK       bool   `json:"ok"`
	} `json:"locations"`
}

func history(t *testing.T, e *env) []historyRecord {
	t.Helper()
	b, err := os.ReadFile(e.path("state", "history.jsonl"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []historyRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r historyRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("history.jsonl: %v: %q", err, line)
		}
		out = append(out, r)
	}
	return out
}

// TestFailedBackupIsRecorded: docs/ops.md says every backup appends a line
// to the job history, which feeds status and monitoring; a nightly backup
// that failed outright must be there too, with its error.
func TestFailedBackupIsRecorded(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	e.backup(0, input)
	for _, loc := range []string{"loc-a", "loc-g"} {
		if err := os.Rename(e.path(loc), e.path(loc+".unmounted")); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun(1, "backup", "--tenant", tenant, "--file", "db="+input)
	recs := history(t, e)
	if len(recs) == 0 || !recs[0].OK {
		t.Fatalf("the successful backup is not in the history: %+v", recs)
	}
	if len(recs) == 1 {
		t.Fatalf("a backup that failed before it had a result (no location reachable) left no history line")
	}
	if last := recs[len(recs)-1]; last.OK || last.Error == "" || last.Tenant != tenant {
		t.Errorf("the failed backup's history line: %+v", last)
	}
}
