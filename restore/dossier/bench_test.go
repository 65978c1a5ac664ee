package dossier

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

// counting is a Location that counts what is read from it.
type counting struct {
	repo.Location
	bytes, gets, lists atomic.Int64
	// kinds counts bytes per object kind (data, index, snapshots, …).
	mu    sync.Mutex
	kinds map[string]*atomic.Int64
}

func (c *counting) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	rc, err := c.Location.Get(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	c.gets.Add(1)
	kind := strings.Split(name, "/")[min(1, len(strings.Split(name, "/"))-1)]
	c.mu.Lock()
	if c.kinds == nil {
		c.kinds = map[string]*atomic.Int64{}
	}
	k := c.kinds[kind]
	if k == nil {
		k = &atomic.Int64{}
		c.kinds[kind] = k
	}
	c.mu.Unlock()
	return countingReader{rc, &c.bytes, k}, nil
}

func (c *counting) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	c.lists.Add(1)
	return c.Location.List(ctx, prefix, fn)
}

type countingReader struct {
	io.ReadCloser
	n, kind *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	r.kind.Add(int64(n))
	return n, err
}

// byKind describes the bytes read per object kind.
func byKind(cl []*counting) string {
	sum := map[string]int64{}
	for _, c := range cl {
		c.mu.Lock()
		for k, v := range c.kinds {
			sum[k] += v.Load()
		}
		c.mu.Unlock()
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sum)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, sum[k]))
	}
	return strings.Join(parts, ", ")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envInts(name, def string) []int {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// BenchmarkDossier measures what the commands cost on the synthetic
// practice as the tenant and its history grow: a cold `dossier show`
// (open the repository, find the snapshot, extract), a `dossier restore`
// to an SQL file, and the parent lookup a backup does (list the
// snapshots), after 1, 7 and 30 nights of working days, each night a
// backup with the row index. It reports the bytes read from the location
// per operation (B_read/op) and the chunks of the member tables read.
// show-fullscan is the same dossier read as before the row index (every
// member table whole, through whole packs).
//
//	KLUIS_BENCH_DOSSIER_MB=500 KLUIS_BENCH_DOSSIER_SCALES=1,5 KLUIS_BENCH_DOSSIER_NIGHTS=1,7,30 \
//	KLUIS_BENCH_DOSSIER_ENGINE=postgres go test ./restore/dossier -run '^$' -bench Dossier -benchtime 5x
//
// Defaults: a 2 MB practice, scales 1 and 5, nights 1 and 7, SQLite.
// KLUIS_BENCH_DOSSIER_CHUNK_AVG creates the repository with another chunk
// average (bytes; min avg/4, max avg×8, as policy.chunk_average does; cut at
// row ends for PostgreSQL, as a PostgreSQL tenant's repository is).
func BenchmarkDossier(b *testing.B) {
	mb := envInt("KLUIS_BENCH_DOSSIER_MB", 2)
	engine := os.Getenv("KLUIS_BENCH_DOSSIER_ENGINE")
	if engine == "" {
		engine = "sqlite"
	}
	nights := envInts("KLUIS_BENCH_DOSSIER_NIGHTS", "1,7")
	for _, scale := range envInts("KLUIS_BENCH_DOSSIER_SCALES", "1,5") {
		b.Run(fmt.Sprintf("%s/%dMB", engine, mb*scale), func(b *testing.B) {
			benchHistory(b, engine, synth.ScaleForBytes(int64(mb*scale)<<20), nights)
		})
	}
}

func benchHistory(b *testing.B, engine string, sc synth.Scale, nights []int) {
	// Thirty nights of a large practice outlast testCtx's ten minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	var db *sql.DB
	var eng func(key []byte) source.Engine
	var d synth.Dialect
	switch engine {
	case "sqlite":
		d = synth.SQLite
		src := filepath.Join(b.TempDir(), "praktijk.db")
		if err := synth.GenerateSQLiteFile(ctx, src, sc, 1); err != nil {
			b.Fatal(err)
		}
		db = openSQLite(b, src)
		eng = func(key []byte) source.Engine { return sqlite.New(src, key) }
	case "postgres":
		d = synth.Postgres
		srv := pgtest.Start(b)
		dsn := srv.CreateDB(b, srv.UniqueName("bench_dossier"))
		var err error
		if db, err = sql.Open("pgx", dsn); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		if err := synth.Generate(ctx, db, synth.Postgres, sc, 1); err != nil {
			b.Fatal(err)
		}
		eng = func(key []byte) source.Engine { return postgres.New(dsn, key, postgres.Options{}) }
	default:
		b.Fatalf("KLUIS_BENCH_DOSSIER_ENGINE=%s: want sqlite or postgres", engine)
	}
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	dirs := []string{b.TempDir(), b.TempDir()}
	cache := b.TempDir() // the appliance's state_dir/cache
	var cl []*counting
	open := func(opts repo.Options, init bool) *repo.Repo {
		cl = []*counting{{Location: local.New("amsterdam", dirs[0])}, {Location: local.New("groningen", dirs[1])}}
		locs := []repo.Location{cl[0], cl[1]}
		opts.Master, opts.CacheDir = mk, cache
		if init {
			r, _, err := repo.Init(ctx, "praktijk", locs, opts)
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
		r, err := repo.Open(ctx, "praktijk", locs, opts)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	initOpts := repo.Options{}
	if avg := envInt("KLUIS_BENCH_DOSSIER_CHUNK_AVG", 0); avg > 0 {
		initOpts.Chunker = chunk.Params{Min: uint(avg) / 4, Avg: uint(avg), Max: uint(avg) * 8}
		if engine == "postgres" {
			initOpts.Chunker.Cut = chunk.CutRows // as appliance.ChunkParams gives
		}
	}
	r := open(initOpts, true)
	profile := practiceProfile()
	done := 0
	for _, n := range nights {
		for ; done < n; done++ {
			if done > 0 {
				if _, err := synth.WorkingDay(ctx, db, d, sc, 1, done); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := backup.DatabaseIndexed(ctx, r, eng(r.FingerprintKey()), repo.BackupOptions{}, IndexColumns(engine, profile)); err != nil {
				b.Fatal(err)
			}
		}
		read := func() int64 { return cl[0].bytes.Load() + cl[1].bytes.Load() }
		op := func(b *testing.B, name string, fn func(r *repo.Repo, i int)) {
			b.Run(fmt.Sprintf("nights=%d/%s", n, name), func(b *testing.B) {
				var bytes int64
				for i := 0; b.Loop(); i++ {
					r := open(repo.Options{}, false)
					fn(r, i)
					bytes += read()
				}
				b.ReportMetric(float64(bytes)/float64(b.N), "B_read/op")
				b.Logf("last op read: %s", byKind(cl))
			})
		}
		var chunks, all int64
		full := map[string]string{} // tables read whole, and why
		extract := func(r *repo.Repo, i int, sink func() Sink) {
			snap, err := r.FindSnapshot(ctx, "latest")
			if err != nil {
				b.Fatal(err)
			}
			tables, err := backup.Tables(snap.Manifest)
			if err != nil {
				b.Fatal(err)
			}
			plan, err := NewPlan(engine, tables, profile)
			if err != nil {
				b.Fatal(err)
			}
			id := strconv.Itoa(1 + (i*7919)%sc.Clients)
			pc := &pageServer{Repo: r}
			res, err := Extract(ctx, pc, snap.Manifest, plan, id, sink())
			if err != nil {
				b.Fatalf("dossier %s: %v", id, err)
			}
			if i == 0 {
				// What the member tables' row indexes (and their chains')
				// weigh: a filter index is read whole, a paged one's head
				// whole and one page per key.
				var ix int64
				var np, read int
				for _, tc := range res.Tables {
					s, _ := snap.Manifest.Stream(backup.TableStream(tc.Table))
					for _, ri := range s.RowIndexes() {
						ix += ri.Size
						np += len(ri.Pages)
						read += pc.reads[ri]
					}
				}
				b.Logf("row indexes of the member tables: %d bytes of heads or filter indexes (plaintext), %d pages of which %d read (%d bytes)", ix, np, read, pc.bytes)
			}
			for _, tc := range res.Tables {
				chunks += int64(tc.ChunksRead)
				all += int64(tc.Chunks)
				if tc.Read != "index" {
					full[tc.Table] = tc.ReadReason
				}
			}
		}
		op(b, "show", func(r *repo.Repo, i int) { extract(r, i, func() Sink { return nil }) })
		b.Logf("nights=%d: show read %d of %d chunks of the member tables (with their delta chains); read whole: %v", n, chunks, all, full)
		op(b, "restore-sql", func(r *repo.Repo, i int) {
			extract(r, i, func() Sink {
				w, err := NewSQLWriter(io.Discard, engine, nil, ConflictFail)
				if err != nil {
					b.Fatal(err)
				}
				return w
			})
		})
		// The same dossier as kluis read it before the row index: every
		// member table whole, through whole packs
		// (KLUIS_BENCH_DOSSIER_FULLSCAN=0 leaves it out).
		// The same dossier as kluis read it before delta chains had
		// indexes: every table stored as a row delta read whole, merged.
		op(b, "show-deltas-whole", func(r *repo.Repo, i int) {
			snap, err := r.FindSnapshot(ctx, "latest")
			if err != nil {
				b.Fatal(err)
			}
			m := *snap.Manifest
			m.Streams = slices.Clone(m.Streams)
			for j := range m.Streams {
				if m.Streams[j].IsDelta() {
					m.Streams[j].RowIndex = nil
				}
			}
			tables, _ := backup.Tables(&m)
			plan, err := NewPlan(engine, tables, profile)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Extract(ctx, r, &m, plan, strconv.Itoa(1+(i*7919)%sc.Clients), nil); err != nil {
				b.Fatal(err)
			}
		})
		fullscan := op
		if os.Getenv("KLUIS_BENCH_DOSSIER_FULLSCAN") == "0" {
			fullscan = func(*testing.B, string, func(*repo.Repo, int)) {}
		}
		fullscan(b, "show-fullscan", func(r *repo.Repo, i int) {
			snap, err := r.FindSnapshot(ctx, "latest")
			if err != nil {
				b.Fatal(err)
			}
			tables, _ := backup.Tables(snap.Manifest)
			plan, err := NewPlan(engine, tables, profile)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Extract(ctx, fullScan{r}, snap.Manifest, plan, strconv.Itoa(1+(i*7919)%sc.Clients), nil); err != nil {
				b.Fatal(err)
			}
		})
		op(b, "parent", func(r *repo.Repo, _ int) {
			if _, err := r.FindSnapshot(ctx, "latest"); err != nil {
				b.Fatal(err)
			}
		})
	}
}
