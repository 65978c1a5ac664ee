package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// newestPostgres is the newest PostgreSQL major version kluis supports as
// a tenant (docs/ops.md "Container"); the image's pg_dump must be at least
// as new. oldestPostgres is the oldest (server_version_num / 100).
const (
	newestPostgres = 17
	oldestPostgres = 906
)

// dockerRunFlags must be in every documented docker run.
var dockerRunFlags = []string{"--read-only", "--cap-drop ALL", "--security-opt no-new-privileges"}

func goModVersion(t *testing.T) string {
	t.Helper()
	for _, l := range lines(t, "../go.mod") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			return v
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// versionLess compares dotted version numbers.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	return out
}

// TestDockerfile checks what can be checked without a Docker engine: a
// multi-stage build of a static binary, a non-root user, the newest pg_dump
// Debian ships and no unused client (issue 15 §5), base images pinned by
// digest, the documented docker run hardened, no secrets baked in.
func TestDockerfile(t *testing.T) {
	ls := lines(t, "../Dockerfile")
	var froms, users []string
	text := strings.Join(ls, "\n")
	for _, l := range ls {
		switch {
		case strings.HasPrefix(l, "FROM "):
			froms = append(froms, l)
		case strings.HasPrefix(l, "USER "):
			users = append(users, strings.TrimPrefix(l, "USER "))
		}
	}
	if len(froms) < 2 {
		t.Errorf("want a multi-stage build, got %d FROM lines", len(froms))
	}
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "0") || strings.HasPrefix(users[len(users)-1], "root") {
		t.Errorf("the final stage must run as a non-root user, got USER %v", users)
	}
	if !regexp.MustCompile(`^\d+:\d+$`).MatchString(users[len(users)-1]) {
		t.Errorf("use a numeric USER so runtimes can verify it is not root, got %q", users[len(users)-1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "ENTRYPOINT", "-trimpath"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// kluis reads MariaDB through its Go driver: no client tool.
	if strings.Contains(text, "mariadb-client") || strings.Contains(text, "default-mysql-client") {
		t.Errorf("the image installs a MariaDB client kluis never runs")
	}
	// pg_dump must be at least the server's major version.
	m := regexp.MustCompile(`postgresql-client-(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("the image installs no versioned postgresql-client-N (pg_dump)")
	} else if n, _ := strconv.Atoi(m[1]); n < newestPostgres {
		t.Errorf("the image ships pg_dump %d: a PostgreSQL %d tenant cannot be backed up from it", n, newestPostgres)
	}
	pinned := regexp.MustCompile(`^FROM (--platform=\S+ )?\S+:\S+@sha256:[0-9a-f]{64}( AS \S+)?$`)
	for _, f := range froms {
		if !pinned.MatchString(f) {
			t.Errorf("base image not pinned by digest: %s", f)
		}
	}
	// The build stage's Go is at least go.mod's (GOTOOLCHAIN=local in the image).
	if gm := regexp.MustCompile(`golang:(\d+\.\d+\.\d+)`).FindStringSubmatch(text); gm == nil {
		t.Errorf("the build stage does not name an exact Go version")
	} else if mod := goModVersion(t); versionLess(gm[1], mod) {
		t.Errorf("the build image has Go %s, go.mod needs %s", gm[1], mod)
	}
	for _, flag := range dockerRunFlags {
		if !strings.Contains(text, flag) {
			t.Errorf("the documented docker run lacks %s", flag)
		}
	}
	for _, bad := range []string{"master.key", "signing.key", "PGPASSWORD", "AWS_SECRET"} {
		if strings.Contains(text, bad) {
			t.Errorf("Dockerfile mentions %q: secrets are mounted at run time, never baked in", bad)
		}
	}
}

// TestSystemdUnit checks the unit's hardening directives, and asks
// systemd-analyze for its exposure score when it is installed.
func TestSystemdUnit(t *testing.T) {
	set := map[string]string{}
	for _, l := range lines(t, "kluis.service") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			set[k] = v
		}
	}
	for k, want := range map[string]string{
		"User": "kluis", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
		"ProtectHome": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes", "MemoryDenyWriteExecute": "yes",
	} {
		if got, ok := set[k]; !ok || got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if !strings.Contains(set["ExecStart"], "kluis daemon") {
		t.Errorf("ExecStart=%q does not run the daemon", set["ExecStart"])
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: exposure score not checked")
		return
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "kluis.service").CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (threshold 20 in tenths) or error: %v\n%s", err, out)
	}
}

// TestWebUnit: kluis web runs as its own user, cannot reach the state or
// the secrets, and is as hardened as the daemon.
func TestWebUnit(t *testing.T) {
	unit := strings.Join(lines(t, "kluis-web.service"), "\n")
	daemon := lines(t, "kluis.service")
	for _, want := range []string{"User=kluis-web", "ExecStart=/usr/local/bin/kluis web ", "InaccessiblePaths=-/var/lib/kluis -/etc/kluis/secrets", "NoNewPrivileges=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("kluis-web.service lacks %q", want)
		}
	}
	if strings.Contains(unit, "ReadWritePaths") || strings.Contains(unit, "StateDirectory") {
		t.Error("kluis-web.service can write somewhere")
	}
	// Every hardening line of the daemon's unit is in the web unit.
	hard := false
	for _, l := range daemon {
		if l == "# Hardening" {
			hard = true
			continue
		}
		if !hard || l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "ReadOnlyPaths") || strings.HasPrefix(l, "ReadWritePaths") || strings.HasPrefix(l, "[") || strings.HasPrefix(l, "WantedBy") {
			continue
		}
		if !strings.Contains(unit, "\n"+l+"\n") {
			t.Errorf("kluis-web.service lacks the daemon's %q", l)
		}
	}
	if !strings.Contains(strings.Join(daemon, "\n"), "RuntimeDirectory=kluis") {
		t.Error("the daemon's unit has no /run/kluis for the portal's socket")
	}
	if out, err := exec.Command("systemd-analyze", "verify", "kluis-web.service").CombinedOutput(); err == nil {
		t.Logf("systemd-analyze verify: %s", out)
	}
}
