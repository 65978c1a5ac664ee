package testenv

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The corpus loads, and every name in it is one every engine accepts, so
// an engine test that fails on it found a bug in the engine, not a name no
// database allows.
func TestHostileNamesCorpus(t *testing.T) {
	names := HostileNames(t)
	if len(names) < 20 {
		t.Fatalf("%d names: the corpus did not load", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case n == "":
			t.Errorf("empty name")
		case len(n) > 63:
			t.Errorf("%q: %d bytes, PostgreSQL keeps 63", n, len(n))
		case strings.ContainsRune(n, 0):
			t.Errorf("%q: NUL", n)
		case strings.HasSuffix(n, " "):
			t.Errorf("%q: trailing space (MariaDB refuses)", n)
		case !utf8.ValidString(n):
			t.Errorf("%q: not UTF-8", n)
		case seen[strings.ToLower(n)]:
			t.Errorf("%q: a duplicate ignoring case (SQLite)", n)
		}
		for _, r := range n {
			if r > 0xFFFF {
				t.Errorf("%q: outside the Basic Multilingual Plane (MariaDB refuses)", n)
			}
		}
		seen[strings.ToLower(n)] = true
	}
}

func TestParseNamesRejectsBareLines(t *testing.T) {
	if _, err := parseNames([]byte("# c\n\"ok\"\nbare name\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v", err)
	}
}
