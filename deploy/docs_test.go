package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOpsUnitIsTheRealUnit (issue 15 §5): the systemd unit docs/ops.md
// prints is deploy/kluis.service, byte for byte — the printed one used to
// be an unhardened sketch (systemd-analyze: 9.2 UNSAFE).
func TestOpsUnitIsTheRealUnit(t *testing.T) {
	ops, err := os.ReadFile("../docs/ops.md")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("kluis.service")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```ini\n(.*?)```").FindAllStringSubmatch(string(ops), -1)
	found := 0
	for _, b := range blocks {
		if !strings.Contains(b[1], "[Service]") {
			continue
		}
		found++
		if b[1] != string(unit) {
			t.Errorf("docs/ops.md prints a unit that is not deploy/kluis.service:\n%s", b[1])
		}
	}
	if found == 0 {
		t.Fatal("docs/ops.md prints no systemd unit")
	}
}

// TestDocumentedDockerRun: every docker run in the docs is hardened.
func TestDocumentedDockerRun(t *testing.T) {
	for _, f := range []string{"../docs/ops.md", "../README.md", "../docs/security.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, run := range regexp.MustCompile(`docker run [^\n]*`).FindAllString(text, -1) {
			for _, flag := range dockerRunFlags {
				if !strings.Contains(strings.Join(strings.Fields(run), " "), flag) {
					t.Errorf("%s: %q lacks %s", f, run, flag)
				}
			}
		}
	}
}
