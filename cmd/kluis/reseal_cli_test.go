package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupReseals: a backup that stores more than policy.reseal is
// re-sealed at zstd's best level, its old packs deleted under the
// exclusive lock, and what it stored restores and checks; a small
// increment is not re-sealed.
func TestBackupReseals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.cfg, []byte(strings.Replace(string(cfg), "policy: {pack_size: 1MiB}", "policy: {pack_size: 1MiB, reseal: 512KiB}", 1)), 0o600)
	initRepo(e)
	input := e.path("table.txt")
	var b strings.Builder
	for i := 0; b.Len() < 6<<20; i++ {
		fmt.Fprintf(&b, "%d\t%09d\tclient %d\t2026-%02d-%02d\tconsult: %s, advice %s\n", i, 100000000+i*7919%899999999, i%5000, 1+i%12, 1+i%28,
			[]string{"headache", "back pain", "a cough", "fatigue", "dizziness"}[i%5], []string{"rest", "fluids", "a follow-up in two weeks"}[i%3])
	}
	if err := os.WriteFile(input, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	type reseal struct {
		Skipped string `json:"skipped"`
		Packs   int    `json:"packs"`
		Before  int64  `json:"bytes_before"`
		After   int64  `json:"bytes_after"`
		Dropped int    `json:"old_packs_deleted"`
		DropErr string `json:"old_packs_error"`
		Error   string `json:"error"`
	}
	var bk struct {
		Stats struct {
			Packs int `json:"packs"`
		} `json:"stats"`
		Reseal *reseal `json:"reseal"`
	}
	e.mustJSON(0, &bk, "backup", "--tenant", tenant, "--file", "db="+input)
	rs := bk.Reseal
	if rs == nil || rs.Skipped != "" || rs.Error != "" || rs.Packs == 0 || rs.After >= rs.Before || rs.Dropped != rs.Packs || rs.DropErr != "" {
		t.Fatalf("backup --json reseal: %+v", rs)
	}
	for _, loc := range []string{"loc-a", "loc-g"} {
		packs, _ := filepath.Glob(e.path(loc, tenant, "data", "*", "*"))
		if len(packs) != bk.Stats.Packs {
			t.Errorf("%s: %d packs after the re-seal, want the %d the backup wrote (old ones deleted)", loc, len(packs), bk.Stats.Packs)
		}
		idx, _ := filepath.Glob(e.path(loc, tenant, "index", "*"))
		if len(idx) != 1 {
			t.Errorf("%s: %d index objects, want the re-sealed one only", loc, len(idx))
		}
	}
	e.restoreEqual("latest", input)
	e.checkOK()

	// A small increment stays as stored; the text output says nothing of it.
	if err := os.WriteFile(input, []byte(b.String()+"1\t2\tnew row\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun(0, "backup", "--tenant", tenant, "--file", "db="+input)
	if strings.Contains(r.stdout, "re-sealed") {
		t.Errorf("a small increment was re-sealed:\n%s", r.stdout)
	}
	e.restoreEqual("latest", input)
	// The job history holds the re-seal of the first backup only.
	raw, err := os.ReadFile(e.path("state", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"reseal":{`) || strings.Contains(lines[1], `"reseal"`) {
		t.Errorf("job history: want the first backup's re-seal in its record only:\n%s", raw)
	}
}
