package config

import (
	"os"
	"regexp"
	"testing"
)

// TestOpsDocConfigValidates keeps the annotated kluis.yaml in docs/ops.md
// true: every ```yaml block of the page that starts with "appliance:" (a
// whole config) must parse and validate.
func TestOpsDocConfigValidates(t *testing.T) {
	doc, err := os.ReadFile("../docs/ops.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	whole := 0
	for _, b := range blocks {
		if !regexp.MustCompile(`^appliance:`).Match(b[1]) {
			continue
		}
		whole++
		if _, err := Parse(b[1], t.TempDir()); err != nil {
			t.Errorf("the annotated config in docs/ops.md does not validate:\n%v", err)
		}
	}
	if whole == 0 {
		t.Fatal("docs/ops.md has no whole config (a ```yaml block starting with appliance:)")
	}
}
