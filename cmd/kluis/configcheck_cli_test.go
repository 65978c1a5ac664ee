package main

import (
	"os"
	"strings"
	"testing"
)

// TestConfigCheckListsEveryProblem: `config check` lists every problem at
// once — as a list of {path, message} with --json — and names the location
// whose site another one repeats (issue 18.10).
func TestConfigCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: ams-too, type: dir, path: ./loc-g, country: NL, site: amsterdam, provider: provider-b}
tenants:
  - {id: Praktijk A, engine: files}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OK       bool `json:"ok"`
		Problems []struct {
			Path    string `json:"path"`
			Message string `json:"message"`
		} `json:"problems"`
	}
	e.mustJSON(2, &doc, "config", "check")
	paths := map[string]string{}
	for _, p := range doc.Problems {
		paths[p.Path] = p.Message
	}
	if doc.OK || len(doc.Problems) < 3 || !strings.Contains(paths["locations[1].site"], "locations[0] (amsterdam)") || paths["tenants[0].id"] == "" || paths["locations"] == "" {
		t.Errorf("want every problem with its path, the duplicate site naming the first: %+v", doc)
	}
	r := e.run("config", "check")
	if r.code != 2 || !strings.Contains(r.stderr, "problems:\n  ") || !strings.Contains(r.stderr, "1 distinct site in NL") {
		t.Errorf("text: want one problem a line and a correct plural, got %v", r)
	}
}
