package repo_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// Issue 19: finding the latest snapshot opens one manifest however many
// there are (the snapshot time cache), and an edited cache cannot make an
// older snapshot the latest.
func TestLatestOpensOneManifest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.init()
	cache := t.TempDir()
	open := func(dir string) *repo.Repo {
		r, err := repo.Open(ctx, f.tenant, f.locs, repo.Options{Master: f.master, CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var ids []repo.Hash
	for i := range 5 {
		ids = append(ids, backup(t, open(cache), randomStream("s", uint64(i), 32<<10)).ID)
	}
	// Every manifest but the newest now opens nowhere: a latest that
	// opened them would record the damage.
	for _, h := range ids[:4] {
		for _, m := range f.mems {
			m.Replace(testTenant+"/snapshots/"+h.String(), []byte("garbage"))
		}
	}
	r := open(cache)
	latest, err := r.FindSnapshot(ctx, "latest")
	if err != nil || latest.ID != ids[4] {
		t.Fatalf("latest = %v, %v; want %s", latest.ID, err, ids[4].Short())
	}
	if d := r.Damage(); len(d) != 0 {
		t.Fatalf("latest opened other manifests: %v", d)
	}
	// A prefix opens only the manifests it matches.
	if s, err := r.FindSnapshot(ctx, ids[4].String()[:8]); err != nil || s.ID != ids[4] {
		t.Fatalf("prefix: %v, %v", s.ID, err)
	}
	if d := r.Damage(); len(d) != 0 {
		t.Fatalf("a prefix opened other manifests: %v", d)
	}
	// Without the cache every manifest is opened (and the damage seen).
	cold := open(t.TempDir())
	if s, err := cold.FindSnapshot(ctx, "latest"); err != nil || s.ID != ids[4] {
		t.Fatalf("cold latest: %v, %v", s.ID, err)
	}
	if len(cold.Damage()) == 0 {
		t.Fatal("a cold cache did not open the other manifests: the test proves nothing")
	}
}

func TestEditedTimeCacheIsIgnored(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.init()
	cache := t.TempDir()
	open := func() *repo.Repo {
		r, err := repo.Open(ctx, f.tenant, f.locs, repo.Options{Master: f.master, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old := backup(t, open(), randomStream("s", 1, 32<<10)).ID
	newer := backup(t, open(), randomStream("s", 2, 32<<10)).ID
	if s, err := open().FindSnapshot(ctx, "latest"); err != nil || s.ID != newer {
		t.Fatalf("latest: %v, %v", s.ID, err)
	}
	path := filepath.Join(cache, "snapshot-times-"+testTenant+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	times := file["times"].(map[string]any)
	times[old.String()] = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339Nano)
	b, _ = json.Marshal(file)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := open().FindSnapshot(ctx, "latest"); err != nil || s.ID != newer {
		t.Fatalf("an edited cache made %s latest (%v); want %s", s.ID.Short(), err, newer.Short())
	}
}
