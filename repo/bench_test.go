package repo_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// Backup throughput as shipped: default chunk parameters and pack size, two
// local locations (fsync on every object) in a temporary directory.
//
//	go test ./repo -run '^$' -bench BenchmarkBackup -benchtime 3x

const benchSize = 64 << 20

func benchData(b *testing.B, kind string) []byte {
	b.Helper()
	var s stream
	switch kind {
	case "table":
		s = tableStream("t", benchSize, nil)
	case "random":
		s = randomStream("r", 1, benchSize)
	}
	data, err := io.ReadAll(s.open())
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchRepo(b *testing.B) *repo.Repo {
	b.Helper()
	var locs []repo.Location
	for i := range 2 {
		l := local.New(fmt.Sprintf("loc%d", i), b.TempDir())
		locs = append(locs, l)
	}
	r, _, err := repo.Init(context.Background(), testTenant, locs, repo.Options{Master: testMaster(b), Chunker: chunk.DefaultParams})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkBackupNew backs up data the repository has never seen.
func BenchmarkBackupNew(b *testing.B) {
	for _, kind := range []string{"table", "random"} {
		b.Run(kind, func(b *testing.B) {
			data := benchData(b, kind)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				r := benchRepo(b)
				b.StartTimer()
				res := backup(b, r, bytesStream(kind, data))
				if res.Stats.New != int64(len(data)) {
					b.Fatalf("%d of %d bytes new", res.Stats.New, len(data))
				}
			}
		})
	}
}

// BenchmarkBackupDedup backs up data the repository already holds: the
// cost of reading, chunking and identifying, with nothing to store.
func BenchmarkBackupDedup(b *testing.B) {
	for _, kind := range []string{"table", "random"} {
		b.Run(kind, func(b *testing.B) {
			data := benchData(b, kind)
			r := benchRepo(b)
			backup(b, r, bytesStream(kind, data))
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for range b.N {
				res := backup(b, r, bytesStream(kind, data))
				if res.Stats.New != 0 {
					b.Fatalf("%d bytes new on a repeat backup", res.Stats.New)
				}
			}
		})
	}
}
