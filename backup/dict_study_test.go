package backup_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/synth"
)

// TestDictionaryStudy measures what a per-tenant zstd dictionary would
// save on the synthetic practice's table data cut into kluis's chunks
// (issue 19, "compression that pays at small chunks"). It prints the
// compressed size of the data with each compressor, per chunk, against
// the same data cut into restic-sized (1 MiB) chunks:
//
//	KLUIS_STUDY_DICT_MB=50 go test ./backup -run DictionaryStudy -v
//
// Sizes are of the compressed payloads plus kluis's per-blob costs
// (Padmé padding, 45 bytes of seal, 44 bytes of pack header entry), so
// the rows compare with the full snapshot's bytes stored.
func TestDictionaryStudy(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_STUDY_DICT_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_STUDY_DICT_MB (e.g. 50) to run the dictionary study")
	}
	srv, dsn, _ := studyPractice(t, "dict", mb)
	cfg, _ := pgx.ParseConfig(dsn)
	cmd := exec.Command(srv.Tool(t, "pg_dump"), "--data-only", "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, cfg.Database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password)
	data, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := chunk.RandomPol()
	if err != nil {
		t.Fatal(err)
	}
	small := cutChunks(t, data, pol, chunk.DefaultParams)
	large := cutChunks(t, data, pol, chunk.Params{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20})

	// The dictionary: 112 KiB of history (1 KiB slices of chunks spread
	// over the whole night) and the statistics of up to 2,000 chunks.
	hist := dictHistory(small, 112<<10)
	sample := small
	if len(sample) > 2000 {
		sample = sample[:2000]
	}
	dict, err := zstd.BuildDict(zstd.BuildDictOptions{ID: 1, Contents: sample, History: hist, Offsets: [3]int{1, 4, 8}, Level: zstd.SpeedFastest})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(level zstd.EncoderLevel, dict []byte) *zstd.Encoder {
		opts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1)}
		if dict != nil {
			opts = append(opts, zstd.WithEncoderDict(dict))
		}
		e, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	total := func(chunks [][]byte, e *zstd.Encoder, perBlob bool) int64 {
		var n int64
		for _, c := range chunks {
			z := len(e.EncodeAll(c, nil))
			if z >= len(c)-len(c)/16 {
				z = len(c)
			}
			if perBlob {
				n += int64(padme(5+z) + 24 + 16 + 44)
			} else {
				n += int64(z)
			}
		}
		return n
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d MB practice: pg_dump --data-only %.1f MB, %d chunks of ~16 KiB, %d of ~1 MiB, dictionary %d bytes\n",
		mb, float64(len(data))/1e6, len(small), len(large), len(dict))
	fmt.Fprintf(&out, "%-52s %10s %8s\n", "compressor", "MB", "vs now")
	now := total(small, enc(zstd.SpeedFastest, nil), true)
	row := func(name string, n int64) {
		fmt.Fprintf(&out, "%-52s %10.2f %7.2f×\n", name, float64(n)/1e6, float64(n)/float64(now))
	}
	row("16 KiB chunks, zstd fastest (kluis now)", now)
	row("16 KiB chunks, zstd default", total(small, enc(zstd.SpeedDefault, nil), true))
	row("16 KiB chunks, zstd better", total(small, enc(zstd.SpeedBetterCompression, nil), true))
	row("16 KiB chunks, dictionary + zstd fastest", total(small, enc(zstd.SpeedFastest, dict), true)+int64(len(dict)))
	row("16 KiB chunks, dictionary + zstd default", total(small, enc(zstd.SpeedDefault, dict), true)+int64(len(dict)))
	row("16 KiB chunks, dictionary + zstd better", total(small, enc(zstd.SpeedBetterCompression, dict), true)+int64(len(dict)))
	row("1 MiB chunks, zstd default (restic's auto)", total(large, enc(zstd.SpeedDefault, nil), false))
	t.Log(out.String())
}

// dictHistory takes 1 KiB from chunks spread evenly over chunks, up to n
// bytes.
func dictHistory(chunks [][]byte, n int) []byte {
	var hist []byte
	step := max(1, len(chunks)/(n>>10))
	for i := 0; i < len(chunks) && len(hist) < n; i += step {
		c := chunks[i]
		off := len(c) / 3
		hist = append(hist, c[off:min(len(c), off+1<<10)]...)
	}
	return hist
}

// studyPractice starts a throwaway server holding the synthetic practice
// of mb MB (seed 11) for the studies.
func studyPractice(t *testing.T, name string, mb int) (*pgtest.Server, string, *sql.DB) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, name)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := synth.Generate(context.Background(), db, synth.Postgres, synth.ScaleForBytes(int64(mb)<<20), 11); err != nil {
		t.Fatal(err)
	}
	return srv, dsn, db
}

// padme is chunk's Padmé rounding (docs/format.md, "Sealed blob").
func padme(n int) int {
	if n < 2 {
		return n
	}
	e := 63
	for n>>e == 0 {
		e--
	}
	s := 0
	for x := e; x > 0; x >>= 1 {
		s++
	}
	mask := (1 << (e - s)) - 1
	return (n + mask) &^ mask
}

// cutChunks cuts data into chunks with polynomial pol and parameters p.
func cutChunks(t *testing.T, data []byte, pol chunk.Pol, p chunk.Params) [][]byte {
	var out [][]byte
	c := chunk.NewChunker(bytes.NewReader(data), pol, 0, p)
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), b...))
	}
}
