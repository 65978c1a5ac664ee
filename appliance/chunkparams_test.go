package appliance

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
)

// chunkAppliance returns an appliance over two local locations (locs) and
// the keys in dir, with one tenant per engine and the given policy lines.
func chunkAppliance(t *testing.T, dir string, locs [2]string, policy string) *Appliance {
	t.Helper()
	yaml := `
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key}
locations:
  - {name: a, type: dir, path: ` + locs[0] + `, country: NL, site: Amsterdam, provider: p1}
  - {name: b, type: dir, path: ` + locs[1] + `, country: NL, site: Groningen, provider: p2}
tenants:
  - {id: pg, engine: postgres, dsn_file: ./pg.dsn}
  - {id: lite, engine: sqlite, path: ./lite.db}
  - {id: maria, engine: mariadb, dsn_file: ./maria.dsn}
  - {id: my, engine: mysql, dsn_file: ./my.dsn}
  - {id: files, engine: files}
` + policy
	c, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	return New(c, nil)
}

// TestChunkParamsPerEngine: without policy.chunk_average a new PostgreSQL
// repository gets the row-delta chunk size and every other engine 16 KiB;
// with row deltas switched off PostgreSQL keeps 16 KiB too; an explicit
// chunk_average wins for every engine. PostgreSQL's chunks always end at
// row ends (chunk.CutRows).
func TestChunkParamsPerEngine(t *testing.T) {
	dir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	locs := [2]string{t.TempDir(), t.TempDir()}
	k32 := chunk.Params{Min: 8 << 10, Avg: 32 << 10, Max: 256 << 10}
	k16 := chunk.Params{Min: 4 << 10, Avg: 16 << 10, Max: 128 << 10}
	rows := func(p chunk.Params) chunk.Params { p.Cut = chunk.CutRows; return p }
	for _, tc := range []struct {
		name   string
		policy string
		want   map[string]chunk.Params
	}{
		{"default", "", map[string]chunk.Params{"pg": chunk.RowDeltaParams, "lite": chunk.DefaultParams,
			"maria": chunk.DefaultParams, "my": chunk.DefaultParams, "files": chunk.DefaultParams}},
		{"delta steps set", "policy: {delta_max_steps: 3}\n", map[string]chunk.Params{"pg": chunk.RowDeltaParams, "lite": chunk.DefaultParams}},
		{"no row deltas", "policy: {delta_max_steps: -1}\n", map[string]chunk.Params{"pg": rows(chunk.DefaultParams), "lite": chunk.DefaultParams}},
		{"explicit 32KiB", "policy: {chunk_average: 32KiB}\n", map[string]chunk.Params{"pg": rows(k32), "lite": k32, "maria": k32, "files": k32}},
		{"explicit 16KiB keeps PostgreSQL at 16 KiB", "policy: {chunk_average: 16KiB}\n", map[string]chunk.Params{"pg": rows(k16), "lite": k16}},
		{"explicit 1MiB", "policy: {chunk_average: 1MiB}\n", map[string]chunk.Params{"pg": {Min: 256 << 10, Avg: 1 << 20, Max: chunk.MaxChunkSize, Cut: chunk.CutRows}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := chunkAppliance(t, dir, locs, tc.policy)
			for id, want := range tc.want {
				tn, err := a.Cfg.Tenant(id)
				if err != nil {
					t.Fatal(err)
				}
				got := a.ChunkParams(tn)
				if got != want {
					t.Errorf("tenant %s (%s): chunk params %+v, want %+v", id, tn.Engine, got, want)
				}
				if err := got.Validate(); err != nil {
					t.Errorf("tenant %s: %v", id, err)
				}
			}
		})
	}
	if chunk.RowDeltaParams == chunk.DefaultParams {
		t.Fatal("RowDeltaParams equal DefaultParams: the per-engine default tells nothing")
	}
}

// TestChunkParamsRecordedAtInit: a new repository records its tenant's
// chunk parameters in its config, and a repository created before the
// per-engine default (a PostgreSQL tenant at 16 KiB) keeps its own after
// the upgrade: opening it reads the config, and its backups are cut with
// the parameters recorded there, not the new default.
func TestChunkParamsRecordedAtInit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	locs := [2]string{t.TempDir(), t.TempDir()}

	// Before: the config of an older kluis, whose default was 16 KiB
	// for every engine.
	old := chunkAppliance(t, dir, locs, "policy: {chunk_average: 16KiB}\n")
	if _, _, err := old.InitRepo(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	pgTenant, err := old.Cfg.Tenant("pg")
	if err != nil {
		t.Fatal(err)
	}
	oldPG := old.ChunkParams(pgTenant)
	now := chunkAppliance(t, dir, locs, "")
	for _, tc := range []struct {
		tenant string
		want   chunk.Params
	}{
		{"pg", oldPG}, // existing: keeps 16 KiB
		{"lite", chunk.DefaultParams},
		{"maria", chunk.DefaultParams},
	} {
		r, err := now.OpenOrInitRepo(ctx, tc.tenant)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Config().Chunker; got != tc.want {
			t.Errorf("tenant %s: config records %+v, want %+v", tc.tenant, got, tc.want)
		}
	}
	// A PostgreSQL tenant new to the config gets the row-delta size.
	freshDir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(freshDir, "master.key"), filepath.Join(freshDir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	fresh := chunkAppliance(t, freshDir, [2]string{t.TempDir(), t.TempDir()}, "")
	r, err := fresh.OpenOrInitRepo(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Config().Chunker; got != chunk.RowDeltaParams {
		t.Fatalf("new PostgreSQL repository records %+v, want %+v", got, chunk.RowDeltaParams)
	}

	// The backups follow the config: the same 4 MiB of random bytes is
	// cut into about 4× as many blobs in the old repository.
	data := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	blobs := func(a *Appliance) int {
		r, err := a.OpenRepo(ctx, "pg")
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "files"})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Stream(ctx, "db", repo.KindFile, bytes.NewReader(data), nil); err != nil {
			t.Fatal(err)
		}
		res, err := b.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := r.FindSnapshot(ctx, res.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		return len(snap.Manifest.Streams[0].Blobs)
	}
	small, large := blobs(now), blobs(fresh)
	// Mean chunk ≈ min + avg: ~20 KiB → ~200 blobs; ~80 KiB → ~50.
	if small < 120 || large > 90 {
		t.Fatalf("4 MiB cut into %d blobs in the 16 KiB repository and %d in the new one: want > 120 and < 90", small, large)
	}
}
