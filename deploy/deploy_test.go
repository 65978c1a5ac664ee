package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

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
// multi-stage build of a static binary, a non-root user, client tools for
// the database engines, no secrets baked in.
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
	for _, want := range []string{"CGO_ENABLED=0", "postgresql-client", "mariadb-client", "ENTRYPOINT", "-trimpath"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
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
