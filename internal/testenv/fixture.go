package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Fixture returns the path of name in the module's top-level testdata/
// directory: fixtures that tests of several packages share (see
// testdata/README.md). Per-package testdata/ keeps fuzz corpora and
// fixtures only that package uses.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", filepath.FromSlash(name))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory: cannot find testdata/%s", name)
		}
		dir = parent
	}
}

// HostileNames returns the hostile-names corpus (testdata/hostile-names.txt):
// table and column names every engine must back up and restore exactly.
func HostileNames(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(Fixture(t, "hostile-names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := parseNames(b)
	if err != nil {
		t.Fatalf("testdata/hostile-names.txt: %v", err)
	}
	return names
}

func parseNames(b []byte) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, err := strconv.Unquote(line)
		if err != nil || !strings.HasPrefix(line, `"`) {
			return nil, fmt.Errorf("line %d: not a double-quoted Go string: %s", n, line)
		}
		names = append(names, name)
	}
	return names, sc.Err()
}
