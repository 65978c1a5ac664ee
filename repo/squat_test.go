package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// TestSquattedPrefix (issue 14 point 7): someone holding one location's
// credential plants a repository config (and key file) of their own under
// the predictable id of a practice that has no repository yet. Open says
// "no repository" (so the daemon's first backup initialises it), Init
// reports the squatted location and initialises the tenant at the other,
// backups proceed degraded there, every snapshot restores from the good
// location, nothing is written next to the planted config, and check
// names it.
func TestSquattedPrefix(t *testing.T) {
	ctx := context.Background()
	locs, dirs := dirLocations(t)
	// The squatter runs kluis with their own master key at a scratch
	// location and copies the result into amsterdam.
	scratch := t.TempDir()
	if _, _, err := repo.Init(ctx, testTenant, []repo.Location{localLoc("scratch", scratch)}, repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize}); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dirs[0], testTenant), os.DirFS(filepath.Join(scratch, testTenant))); err != nil {
		t.Fatal(err)
	}
	planted := tree(t, filepath.Join(dirs[0], testTenant))

	opts := repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize}
	if _, err := repo.Open(ctx, testTenant, locs, opts); !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "amsterdam") {
		t.Fatalf("Open of a tenant whose only config is planted = %v, want ErrNotFound naming amsterdam", err)
	}
	r, res, err := repo.Init(ctx, testTenant, locs, opts)
	if err != nil {
		t.Fatalf("Init with a squatted prefix at one location: %v", err)
	}
	if res[0].OK || !strings.Contains(res[0].Error, "amsterdam") || !strings.Contains(res[0].Error, "not this appliance's") || !res[1].OK {
		t.Fatalf("Init results %+v: want amsterdam refused as foreign, groningen initialised", res)
	}
	a := randomStream("a", 31, 200<<10)
	br, err := tryBackup(r, a)
	if err != nil {
		t.Fatalf("backup with a squatted location: %v", err)
	}
	if br.Locations[0].OK || !br.Locations[1].OK {
		t.Errorf("backup results %+v: want degraded at amsterdam only", br.Locations)
	}
	// A later run opens from groningen and stays degraded at amsterdam.
	r2, err := repo.Open(ctx, testTenant, locs, opts)
	if err != nil {
		t.Fatalf("Open after init: %v", err)
	}
	b := randomStream("b", 32, 200<<10)
	second := backup(t, r2, a, b)
	verifyRestore(t, mustOpen(t, locs[1:], opts), br.ID, a)
	verifyRestore(t, mustOpen(t, locs[1:], opts), second.ID, a, b)
	sr, err := r2.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sr {
		if s.Location == "amsterdam" && (s.Complete() || !strings.Contains(s.Error, "not this repository's")) {
			t.Errorf("sync at the squatted amsterdam: %+v, want it refused as foreign", s)
		}
	}
	if after := tree(t, filepath.Join(dirs[0], testTenant)); !sameTree(planted, after) {
		t.Error("kluis wrote next to the planted config")
	}
	c := checkAt(t, r2, "amsterdam")
	if !strings.Contains(strings.Join(c.Errors, "\n"), testTenant+"/config") {
		t.Errorf("check of amsterdam does not name the planted config: %v", c.Errors)
	}
	if c := checkAt(t, r2, "groningen"); !c.OK() {
		t.Errorf("check of groningen: %v", c.Errors)
	}

	// Squatted everywhere: Init refuses, naming the reason.
	all := []repo.Location{localLoc("scratch", scratch)}
	if _, _, err := repo.Init(ctx, testTenant, all, opts); !errors.Is(err, repo.ErrForeign) {
		t.Errorf("Init with every location squatted = %v, want ErrForeign", err)
	}
}

func localLoc(name, dir string) repo.Location { return local.New(name, dir) }

func mustOpen(t *testing.T, locs []repo.Location, opts repo.Options) *repo.Repo {
	t.Helper()
	r, err := repo.Open(context.Background(), testTenant, locs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSquattedPrefixUnreadableConfig: a planted config this kluis cannot
// read (a "newer" version, garbage) is as foreign as a well-made one.
func TestSquattedPrefixUnreadableConfig(t *testing.T) {
	ctx := context.Background()
	for _, planted := range []string{`{"version": 99}`, "not json", `{"version": 1, "tenant": "praktijk-b"}`} {
		locs, dirs := dirLocations(t)
		if err := os.MkdirAll(filepath.Join(dirs[0], testTenant), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirs[0], testTenant, "config"), []byte(planted), 0o600); err != nil {
			t.Fatal(err)
		}
		opts := repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize}
		if _, err := repo.Open(ctx, testTenant, locs, opts); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("%q: Open = %v, want ErrNotFound", planted, err)
		}
		if _, res, err := repo.Init(ctx, testTenant, locs, opts); err != nil || res[0].OK || !res[1].OK {
			t.Errorf("%q: Init = %v %+v, want initialised at groningen only", planted, err, res)
		}
	}
}
