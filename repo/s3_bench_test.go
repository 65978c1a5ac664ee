package repo_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/s3"
)

// TestBenchS3VsLocal backs up the same synthetic tenant (table-like data,
// default chunking and pack size) to two S3 servers and to two local
// directories, and reports the ratio. Off by default:
//
//	KLUIS_BENCH_S3_MB=500 go test ./repo -run TestBenchS3VsLocal -v
func TestBenchS3VsLocal(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_S3_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_BENCH_S3_MB to run")
	}
	size := int64(mb) << 20
	a, b := s3test.StartPair(t)
	run := func(name string, locs []repo.Location) time.Duration {
		r, _, err := repo.Init(context.Background(), testTenant, locs, repo.Options{Master: testMaster(t), Chunker: chunk.DefaultParams})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := backup(t, r, tableStream("t", size, nil))
		d := time.Since(start)
		t.Logf("%s: %d MiB read, %d MiB stored per location in %d packs, %v (%.0f MiB/s)", name,
			res.Stats.Read>>20, res.Stats.Stored>>20, res.Stats.Packs, d.Round(time.Millisecond), float64(res.Stats.Read)/(1<<20)/d.Seconds())
		return d
	}
	var s3locs, dirs []repo.Location
	for i, srv := range []*s3test.Server{a, b} {
		srv.CreateBucket(t, "bench", false)
		s3locs = append(s3locs, srv.Location(t, fmt.Sprintf("s3-%d", i), "bench", &s3.Options{}))
		dirs = append(dirs, local.New(fmt.Sprintf("dir-%d", i), t.TempDir()))
	}
	dl := run("two local directories", dirs)
	ds := run("two S3 servers", s3locs)
	t.Logf("S3 / local = %.2f", ds.Seconds()/dl.Seconds())
}
