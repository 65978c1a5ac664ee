package backup_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// TestStoredBytesStudy backs up the synthetic practice once and tells
// where the bytes of the full snapshot are (issue 19, "full snapshot ≤
// restic's size"): per stream kind (keyed tables, tables without a key,
// schema), the compressed payloads, the Padmé padding, the per-blob seal
// and pack header costs, the index and the manifest; and beside them what
// the same table streams would take cut into restic's 1 MiB chunks.
//
//	KLUIS_STUDY_BYTES_MB=50 go test ./backup -run StoredBytesStudy -v
//
// KLUIS_STUDY_BYTES_CHUNK_AVG creates the repository with another chunk
// average (bytes, a power of two; min avg/4, max avg×8, as
// policy.chunk_average does). KLUIS_STUDY_BYTES_SIZES (averages in bytes,
// e.g. 16384,32768,65536) compares chunk averages and zstd levels on
// identical data (chunkSizeStudy): night 1, night 2 after a working day,
// and the fresh base a table gets after a week of row deltas;
// KLUIS_STUDY_BYTES_POLS=N repeats night 1 under N-1 more polynomials;
// KLUIS_STUDY_BYTES_CUTS=rolling,rows compares the rolling hash (the
// default) with row ends (chunk.CutRows) on the same data.
func TestStoredBytesStudy(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_STUDY_BYTES_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_STUDY_BYTES_MB (e.g. 50) to run the stored-bytes study")
	}
	ctx := context.Background()
	_, dsn, db := studyPractice(t, "bytes", mb)
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := repo.Options{Master: mk}
	if avg, _ := strconv.Atoi(os.Getenv("KLUIS_STUDY_BYTES_CHUNK_AVG")); avg > 0 {
		opts.Chunker = chunk.Params{Min: uint(avg) / 4, Avg: uint(avg), Max: uint(avg) * 8}
	}
	r, _, err := repo.Init(ctx, "bytes", []repo.Location{local.New("a", dir)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Database(ctx, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}

	fastest, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	type part struct {
		streams, blobs                 int
		raw, payload, padding, perBlob int64
		sealed                         int64
	}
	parts := map[string]*part{}
	seen := map[chunk.ID]bool{}
	var tables bytes.Buffer // every table stream, for the restic-like row
	var blobLen int64
	for _, s := range snap.Manifest.Streams {
		kind := s.Kind
		if s.Kind == "table" {
			kind = "table, no key"
			if s.Keyed != nil {
				kind = "table, keyed"
			}
		}
		p := parts[kind]
		if p == nil {
			p = &part{}
			parts[kind] = p
		}
		p.streams++
		for _, id := range s.Blobs {
			plain, err := r.LoadBlob(ctx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind == "table" {
				tables.Write(plain)
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			loc, ok := idx.Lookup(id)
			if !ok {
				t.Fatalf("blob %s not in the index", id)
			}
			z := len(fastest.EncodeAll(plain, nil))
			if z >= len(plain)-len(plain)/16 {
				z = len(plain)
			}
			p.blobs++
			p.raw += int64(len(plain))
			p.payload += int64(z)
			p.perBlob += int64(chunk.Overhead)
			p.padding += int64(loc.Length) - int64(z) - int64(chunk.Overhead)
			p.sealed += int64(loc.Length)
			blobLen += int64(loc.Length)
		}
	}
	files := map[string]int64{}
	var total int64
	filepath.WalkDir(filepath.Join(dir, "bytes"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			rel, _ := filepath.Rel(filepath.Join(dir, "bytes"), path)
			top, _, _ := strings.Cut(rel, string(filepath.Separator))
			files[top] += fi.Size()
			total += fi.Size()
		}
		return nil
	})

	var out strings.Builder
	fmt.Fprintf(&out, "\n%d MB practice, one location: %.2f MB stored (%d blobs)\n", mb, float64(total)/1e6, len(seen))
	if d := snap.Manifest.Dictionary; d != nil {
		bl, _ := idx.Lookup(d.Blob)
		fmt.Fprintf(&out, "zstd dictionary %08x trained at the end of the night: %d bytes sealed\n", d.ZstdID, bl.Length)
		out.WriteString(resealed(t, r, snap.Manifest, d.Blob, nil))
		// Night 2, after a working day: what its new blobs (row deltas)
		// take with the dictionary and without.
		if _, err := synth.WorkingDay(ctx, db, synth.Postgres, synth.ScaleForBytes(int64(mb)<<20), 11, 1); err != nil {
			t.Fatal(err)
		}
		res2, err := backup.Database(ctx, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap2, err := r.FindSnapshot(ctx, res2.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "night 2 (row deltas) stored %d bytes of packs and %d of index\n", res2.Stats.Stored, res2.Stats.IndexSize)
		out.WriteString(resealed(t, r, snap2.Manifest, d.Blob, seen))
		if sizes := studySizes(); len(sizes) > 0 {
			// A week of working days (nights 3 to 7 would be row deltas),
			// then the tables whole, as the fresh base of night 8.
			for day := 2; day <= 7; day++ {
				if _, err := synth.WorkingDay(ctx, db, synth.Postgres, synth.ScaleForBytes(int64(mb)<<20), 11, day); err != nil {
					t.Fatal(err)
				}
			}
			res8, err := backup.Database(ctx, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{DeltaMaxSteps: -1})
			if err != nil {
				t.Fatal(err)
			}
			snap8, err := r.FindSnapshot(ctx, res8.Snapshot)
			if err != nil {
				t.Fatal(err)
			}
			dict, err := r.LoadBlob(ctx, d.Blob, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Metadata per blob of night 1: pack header, index and
			// manifest entries (the schema streams' share is small).
			perBlob := float64(files["data"]-blobLen+files["index"]+files["snapshots"]) / float64(len(seen))
			out.WriteString(chunkSizeStudy(t, sizes, dict, perBlob,
				tableStreams(t, r, snap.Manifest), tableStreams(t, r, snap2.Manifest), tableStreams(t, r, snap8.Manifest)))
		}
	}
	fmt.Fprintf(&out, "%-16s %7s %6s %10s %10s %9s %9s %10s %6s\n", "part", "streams", "blobs", "raw MB", "zstd MB", "pad MB", "seal MB", "sealed MB", "share")
	names := make([]string, 0, len(parts))
	for k := range parts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := parts[k]
		fmt.Fprintf(&out, "%-16s %7d %6d %10.2f %10.3f %9.3f %9.3f %10.3f %5.1f%%\n", k, p.streams, p.blobs,
			float64(p.raw)/1e6, float64(p.payload)/1e6, float64(p.padding)/1e6, float64(p.perBlob)/1e6, float64(p.sealed)/1e6, 100*float64(p.sealed)/float64(total))
	}
	other := func(name string, n int64) {
		fmt.Fprintf(&out, "%-16s %68.3f %5.1f%%\n", name, float64(n)/1e6, 100*float64(n)/float64(total))
	}
	other("pack headers", files["data"]-blobLen)
	other("index", files["index"])
	other("manifest", files["snapshots"])
	other("keys, config", files["keys"]+files["config"])

	// The same table streams as restic would store them: 1 MiB chunks,
	// zstd default, no per-blob padding.
	pol, _ := chunk.RandomPol()
	def, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	c := chunk.NewChunker(bytes.NewReader(tables.Bytes()), pol, 0, chunk.Params{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20})
	var big int64
	for {
		b, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		big += int64(len(def.EncodeAll(b, nil)))
	}
	fmt.Fprintf(&out, "table streams (%.2f MB) in 1 MiB chunks, zstd default, no padding: %.3f MB\n", float64(tables.Len())/1e6, float64(big)/1e6)
	if os.Getenv("KLUIS_STUDY_BYTES_VARIANTS") != "" {
		out.WriteString(compressionVariants(t, tables.Bytes(), pol))
	}
	t.Log(out.String())
}

// compressionVariants prints the sealed size (payload, Padmé padding and
// per-blob seal, not the pack header) of data cut at several chunk sizes
// and compressed at several zstd levels, with and without a dictionary.
func compressionVariants(t *testing.T, data []byte, pol chunk.Pol) string {
	var out strings.Builder
	chunks := cutChunks(t, data, pol, chunk.DefaultParams)
	first := 0
	for n := 0; first < len(chunks) && n < 8<<20; first++ {
		n += len(chunks[first])
	}
	for _, v := range []struct {
		name  string
		train [][]byte
	}{{"none", nil}, {"trained on all", chunks}, {"trained on the first 8 MiB", chunks[:first]}} {
		opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)}
		var dict []byte
		if v.train != nil {
			var err error
			if dict, err = chunk.TrainDict(v.train, chunk.MinDictTraining); err != nil {
				t.Fatal(err)
			}
			opts = append(opts, zstd.WithEncoderDict(dict))
		}
		e, _ := zstd.NewWriter(nil, opts...)
		start := time.Now()
		n := int64(len(dict))
		for _, c := range chunks {
			z := len(e.EncodeAll(c, nil))
			if z >= len(c)-len(c)/16 {
				z = len(c)
			}
			n += int64(padme(5+z) + chunk.Overhead - 5)
		}
		fmt.Fprintf(&out, "16 KiB chunks, zstd fastest, dictionary %-28s (%6d B): %8.3f MB %6.0f MB/s\n", v.name, len(dict), float64(n)/1e6, float64(len(data))/1e6/time.Since(start).Seconds())
	}
	return out.String()
}

// resealed seals the snapshot's table blobs again, with and without the
// dictionary, as a base written after the first night would be.
func resealed(t *testing.T, r *repo.Repo, m *repo.Manifest, dict chunk.ID, skip map[chunk.ID]bool) string {
	ctx := context.Background()
	plain, err := r.LoadBlob(ctx, dict, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := chunk.LoadDict(plain)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, chunk.KeySize)
	s, _ := chunk.NewSealer(key, key)
	var blobs [][]byte
	for _, st := range m.Streams {
		if st.Kind != "table" {
			continue
		}
		for _, id := range st.Blobs {
			if skip[id] {
				continue
			}
			b, err := r.LoadBlob(ctx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, b)
		}
	}
	var out strings.Builder
	for _, with := range []*chunk.Dict{nil, d} {
		var n, raw int64
		start := time.Now()
		for _, b := range blobs {
			sealed, err := s.SealDict(nil, chunk.ID{}, b, with)
			if err != nil {
				t.Fatal(err)
			}
			n += int64(len(sealed))
			raw += int64(len(b))
		}
		el := time.Since(start)
		fmt.Fprintf(&out, "%d new table blobs (%.2f MB) sealed again, dictionary %-5v: %.3f MB (%.0f MB/s on one core)\n", len(blobs), float64(raw)/1e6, with != nil, float64(n)/1e6, float64(raw)/1e6/el.Seconds())
	}
	return out.String()
}

// studySizes returns the chunk averages KLUIS_STUDY_BYTES_SIZES lists.
func studySizes() []uint {
	var out []uint
	for _, f := range strings.Split(os.Getenv("KLUIS_STUDY_BYTES_SIZES"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n >= 4<<10 {
			out = append(out, uint(n))
		}
	}
	return out
}

// studyStream is a table stream's own plaintext in a snapshot: the whole
// table, or a row delta's records.
type studyStream struct {
	name  string
	delta bool
	data  []byte
}

// tableStreams returns the snapshot's table streams' own plaintexts.
func tableStreams(t *testing.T, r *repo.Repo, m *repo.Manifest) []studyStream {
	var out []studyStream
	for _, s := range m.Streams {
		if s.Kind != "table" {
			continue
		}
		var data []byte
		for _, id := range s.Blobs {
			b, err := r.LoadBlob(context.Background(), id, nil)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, b...)
		}
		out = append(out, studyStream{name: s.Name, delta: s.IsDelta(), data: data})
	}
	return out
}

// chunkSizeStudy cuts the same table streams at each chunk average with
// one polynomial and seals every new chunk alone (Padmé padding and seal
// included, plus perBlob bytes of metadata per blob) with the tenant's
// dictionary at zstd fastest (kluis now), default, better and best:
// night 1 (every table whole), night 2 (row-delta records, and the tables
// stored whole: only the chunks night 1 did not store), and night 8, every
// table whole as a fresh base after a week of working days (only the
// chunks nights 1 and 2 did not store). Identical data for every size, so the
// random polynomial's noise between repositories does not enter.
func chunkSizeStudy(t *testing.T, sizes []uint, dict []byte, perBlob float64, nights ...[]studyStream) string {
	var out strings.Builder
	fmt.Fprintf(&out, "chunk averages on identical data, one polynomial, metadata %.0f B per blob (measured on night 1):\n", perBlob)
	fmt.Fprintf(&out, "%-8s %-16s %8s %10s %8s %10s %8s %10s %10s %10s %12s\n", "avg", "zstd", "n1 blobs", "n1 MB", "n2 blobs", "n2 MB", "n8 blobs", "n8 MB", "n2 no-key", "MB/s", "n1 no dict")
	pol, _ := chunk.RandomPol()
	levels := []struct {
		name  string
		level zstd.EncoderLevel
	}{{"fastest", zstd.SpeedFastest}, {"default", zstd.SpeedDefault}, {"better", zstd.SpeedBetterCompression}, {"best", zstd.SpeedBestCompression}}
	plain, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	sealed := func(c []byte, e *zstd.Encoder) int64 {
		z := len(e.EncodeAll(c, nil))
		if z >= len(c)-len(c)/16 {
			z = len(c)
		}
		return int64(padme(5+z) + chunk.Overhead - 5)
	}
	cuts := strings.Split(cmp.Or(os.Getenv("KLUIS_STUDY_BYTES_CUTS"), "rolling"), ",")
	for _, cut := range cuts {
		for _, avg := range sizes {
			p := chunk.Params{Min: avg / 4, Avg: avg, Max: min(avg*8, chunk.MaxChunkSize)}
			if cut == chunk.CutRows {
				p.Cut = cut
			}
			for _, lv := range levels {
				e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv.level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDict(dict))
				if err != nil {
					t.Fatal(err)
				}
				stored := map[[32]byte]bool{}
				var line strings.Builder
				var raw int64
				var took time.Duration
				var noDict, noKey int64
				for n, streams := range nights {
					var blobs, bytes int64
					for _, s := range streams {
						for _, c := range cutChunks(t, s.data, pol, p) {
							h := sha256.Sum256(c)
							if stored[h] {
								continue
							}
							stored[h] = true
							start := time.Now()
							z := sealed(c, e)
							took += time.Since(start)
							raw += int64(len(c))
							blobs++
							bytes += z
							if n == 0 && lv.level == zstd.SpeedFastest {
								noDict += sealed(c, plain) + int64(perBlob)
							}
							if n == 1 && !s.delta {
								noKey += z + int64(perBlob)
							}
						}
					}
					fmt.Fprintf(&line, " %8d %10.3f", blobs, (float64(bytes)+perBlob*float64(blobs))/1e6)
				}
				nd := "—"
				if noDict > 0 {
					nd = fmt.Sprintf("%.3f", float64(noDict)/1e6)
				}
				fmt.Fprintf(&out, "%-8s %-16s%s %10.3f %10.0f %12s\n", fmt.Sprintf("%d KiB", avg>>10), cut+" "+lv.name+" + dict", line.String(), float64(noKey)/1e6, float64(raw)/1e6/took.Seconds(), nd)
				e.Close()
			}
		}
	}
	// The chunk count swings with the random polynomial: night 1 again
	// under KLUIS_STUDY_BYTES_POLS-1 other polynomials (zstd fastest with
	// the dictionary, as kluis seals).
	pols, _ := strconv.Atoi(os.Getenv("KLUIS_STUDY_BYTES_POLS"))
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDict(dict))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for k := 1; k < pols; k++ {
		pol, _ := chunk.RandomPol()
		fmt.Fprintf(&out, "night 1, polynomial %d:", k+1)
		for _, avg := range sizes {
			p := chunk.Params{Min: avg / 4, Avg: avg, Max: min(avg*8, chunk.MaxChunkSize)}
			stored := map[[32]byte]bool{}
			var bytes float64
			for _, s := range nights[0] {
				for _, c := range cutChunks(t, s.data, pol, p) {
					if h := sha256.Sum256(c); !stored[h] {
						stored[h] = true
						bytes += float64(sealed(c, e)) + perBlob
					}
				}
			}
			fmt.Fprintf(&out, "  %d KiB %d blobs %.3f MB;", avg>>10, len(stored), bytes/1e6)
		}
		out.WriteString("\n")
	}
	return out.String()
}
