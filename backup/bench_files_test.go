package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// tableLike returns n bytes of deterministic COPY-format rows: ids, BSN-like
// numbers, names, dates and free text of varying length.
func tableLike(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"patiënt", "klachten", "rug", "schouder", "behandeling", "oefeningen", "pijn", "verbeterd", "controle", "afspraak", "huisarts", "verwijzing", "fysiotherapie", "nacontrole"}
	var b bytes.Buffer
	b.Grow(n + 1024)
	for id := 1; b.Len() < n; id++ {
		fmt.Fprintf(&b, "%d\t%09d\tJan\tde Vries\t2024-%02d-%02d\t", id, 100000000+rng.IntN(900000000), 1+rng.IntN(12), 1+rng.IntN(28))
		for w := 3 + rng.IntN(40); w > 0; w-- {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

func randomBytes(n int, seed uint64) []byte {
	c := rand.NewChaCha8([32]byte{byte(seed)})
	b := make([]byte, n)
	c.Read(b)
	return b
}

// BenchmarkBackup measures a files backup through chunk → ID → seal →
// packs at two local locations: "new" data never stored before and
// "stored" data already in the repository (dedup). The locations are in
// KLUIS_BENCH_DIR when set (e.g. /dev/shm, to measure the pipeline rather
// than the disk: new data is written twice, fsynced), else in the test's
// temporary directory.
//
//	go test ./backup -run '^$' -bench Backup -benchtime 3x
//	KLUIS_BENCH_DIR=/dev/shm go test ./backup -run '^$' -bench Backup -benchtime 3x
func BenchmarkBackup(b *testing.B) {
	const size = 256 << 20
	for _, kind := range []struct {
		name string
		gen  func(int, uint64) []byte
	}{{"table", tableLike}, {"random", randomBytes}} {
		b.Run(kind.name+"/new", func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				data := kind.gen(size, uint64(i))
				r := benchRepo(b)
				b.StartTimer()
				backupBytes(b, r, data)
			}
		})
		b.Run(kind.name+"/stored", func(b *testing.B) {
			data := kind.gen(size, 99)
			r := benchRepo(b)
			backupBytes(b, r, data)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				backupBytes(b, r, data)
			}
		})
	}
}

func backupBytes(b testing.TB, r *repo.Repo, data []byte) *repo.Result {
	res, err := backup.Files(context.Background(), r, []backup.Input{{Name: "db", Reader: bytes.NewReader(data)}}, repo.BackupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return res
}

func benchRepo(b *testing.B) *repo.Repo {
	dir := os.Getenv("KLUIS_BENCH_DIR")
	if dir == "" {
		return newRepo(b, "bench")
	}
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	var locs []repo.Location
	for _, name := range []string{"a", "b"} {
		d, err := os.MkdirTemp(dir, "kluis-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		locs = append(locs, local.New(name, d))
	}
	r, _, err := repo.Init(context.Background(), "bench", locs, repo.Options{Master: mk})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
