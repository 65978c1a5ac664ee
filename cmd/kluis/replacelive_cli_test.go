package main

import (
	"os"
	"strings"
	"testing"
)

// TestRestoreReplaceLive (issue 15 §4): `restore --force` into a configured
// tenant's live database is refused unless --replace-live names that
// tenant; the live database is untouched by the refusal.
func TestRestoreReplaceLive(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, "", "")
	before, _ := os.ReadFile(e.path("praktijk.db"))
	for _, args := range [][]string{
		{"restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force"},
		{"restore", "--tenant", "praktijk-s", "--target-path", "./praktijk.db", "--force"},
		{"restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force", "--replace-live", "other"},
	} {
		if r := e.run(args...); r.code != 2 || !strings.Contains(r.stderr, "--replace-live") {
			t.Errorf("restore over the live database: %v", r)
		}
	}
	if after, _ := os.ReadFile(e.path("praktijk.db")); string(after) != string(before) {
		t.Fatalf("a refused restore changed the live database")
	}
	if r := e.run("restore", "--tenant", "praktijk-s", "--target-path", e.path("copy.db"), "--replace-live", "praktijk-s"); r.code != 2 || !strings.Contains(r.stderr, "not tenant praktijk-s's live database") {
		t.Errorf("--replace-live for a target that is not live: %v", r)
	}
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force", "--replace-live", "praktijk-s")
}
