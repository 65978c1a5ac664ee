package mariadb

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/synth"
)

// envMB reads a size in MB from the environment, skipping the test when
// it is not set: these measurements take minutes.
func envMB(t *testing.T, name string) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("set %s=<MB> to run this measurement", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number of MB", name, v)
	}
	return n
}

// generated returns a synthetic practice database of about mb MB.
func generated(t *testing.T, srv *mariadbtest.Server, mb int64) string {
	t.Helper()
	src := srv.CreateDB(t, "bench_src")
	t0 := time.Now()
	if err := synth.Generate(context.Background(), mariadbtest.OpenDSN(t, src), synth.MariaDB, synth.ScaleForBytes(mb<<20), 7); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d MB (synth.ScaleForBytes) in %v", mb, time.Since(t0).Round(time.Millisecond))
	return src
}

// restoreTimed restores b into a new database with tables loaded by
// parallel connections, returning the time from NewTarget to the end of the
// post-data schema. extraPost runs after the post-data stream.
func restoreTimed(t *testing.T, srv *mariadbtest.Server, b *backupData, pre []string, extraPost []string, parallel int) time.Duration {
	t.Helper()
	ctx := testCtx(t)
	dst := srv.CreateDB(t, "bench_dst")
	mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+quoteIdent(dbName(t, dst)))
	t0 := time.Now()
	tg, err := NewTarget(ctx, dst, testKey, TargetOptions{Parallel: parallel})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	var preBuf bytes.Buffer
	if err := writeDDL(&preBuf, pre); err != nil {
		t.Fatal(err)
	}
	if err := tg.ApplySchema(ctx, &preBuf); err != nil {
		t.Fatal(err)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(b.tables))
	for i, tb := range b.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = tg.LoadTable(ctx, tb, bytes.NewReader(b.streams[tb.Name]))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.ApplySchema(ctx, bytes.NewReader(b.post)); err != nil {
		t.Fatal(err)
	}
	if len(extraPost) > 0 {
		var buf bytes.Buffer
		writeDDL(&buf, extraPost)
		if err := tg.ApplySchema(ctx, &buf); err != nil {
			t.Fatal(err)
		}
	}
	d := time.Since(t0)
	for _, tb := range b.tables {
		got, err := tg.Fingerprint(ctx, tb)
		if err != nil {
			t.Fatal(err)
		}
		if got != b.results[tb.Name] {
			t.Fatalf("table %s: fingerprint differs", tb.Name)
		}
	}
	mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+quoteIdent(dbName(t, dst)))
	return d
}

var secondaryKeyLine = regexp.MustCompile("^  (UNIQUE |FULLTEXT |SPATIAL )?KEY ")

// splitIndexes moves the secondary indexes out of CREATE TABLE statements
// into ALTER TABLE … ADD statements, for the measurement of index
// placement (foreign keys keep an index InnoDB creates for them).
func splitIndexes(pre []string) (out, alters []string) {
	for _, s := range pre {
		if !strings.HasPrefix(s, "CREATE TABLE ") {
			out = append(out, s)
			continue
		}
		lines := strings.Split(s, "\n")
		head, tail := lines[0], lines[len(lines)-1]
		var keep, keys []string
		for _, l := range lines[1 : len(lines)-1] {
			l = strings.TrimSuffix(l, ",")
			if secondaryKeyLine.MatchString(l) {
				keys = append(keys, "ADD "+strings.TrimSpace(l))
			} else {
				keep = append(keep, l)
			}
		}
		out = append(out, head+"\n"+strings.Join(keep, ",\n")+"\n"+tail)
		if len(keys) > 0 {
			name := strings.TrimSuffix(strings.TrimPrefix(head, "CREATE TABLE "), " (")
			alters = append(alters, "ALTER TABLE "+name+" "+strings.Join(keys, ", "))
		}
	}
	return out, alters
}

// TestMeasureLoad compares the ways LoadTable could send rows and where
// secondary indexes could be built, on a synthetic practice database of
// KLUIS_BENCH_MARIADB_LOAD_MB MB. The numbers are in the package
// documentation ("Loading").
func TestMeasureLoad(t *testing.T) {
	mb := envMB(t, "KLUIS_BENCH_MARIADB_LOAD_MB")
	srv := mariadbtest.Start(t)
	b := takeBackup(t, generated(t, srv, mb))
	var size int
	for _, s := range b.streams {
		size += len(s)
	}
	t.Logf("%d tables, %.1f MB of kluis-row-v1", len(b.tables), float64(size)/1e6)
	split, alters := splitIndexes(b.cat())
	defer func(m loadMethod) { forceLoad = m }(forceLoad)
	for round := 0; round < 3; round++ {
		for _, m := range []struct {
			name string
			m    loadMethod
		}{{"prepared INSERT", loadInsert}, {"LOAD DATA LOCAL", loadInfile}} {
			forceLoad = m.m
			inline := restoreTimed(t, srv, b, b.cat(), nil, 4)
			post := restoreTimed(t, srv, b, split, alters, 4)
			t.Logf("round %d: %-16s indexes inline %6.2fs, added after the load %6.2fs", round+1, m.name, inline.Seconds(), post.Seconds())
		}
	}
}

// cat returns the pre-data statements of a backup.
func (b *backupData) cat() []string {
	r := NewDDLReader(bytes.NewReader(b.pre))
	var out []string
	for {
		s, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			panic(err)
		}
		out = append(out, s)
	}
}

// TestBenchmarkVersusDump compares kluis with mariadb-dump on a synthetic
// practice database of KLUIS_BENCH_MARIADB_MB MB: backup (Snapshot and
// every table to /dev/null) against `mariadb-dump --single-transaction >
// /dev/null`, and restore (Target, 4 connections) against loading that dump
// with the mariadb client.
func TestBenchmarkVersusDump(t *testing.T) {
	mb := envMB(t, "KLUIS_BENCH_MARIADB_MB")
	srv := mariadbtest.Start(t)
	src := generated(t, srv, mb)
	args, env := srv.ClientArgs()
	ctx := testCtx(t)

	for round := 0; round < 2; round++ {
		t0 := time.Now()
		snap, err := New(src, testKey, Options{}).Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n countWriter
		if err := snap.Schema(ctx, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, tb := range snap.Tables() {
			if _, err := snap.WriteTable(ctx, tb, &n); err != nil {
				t.Fatal(err)
			}
		}
		snap.Close()
		kluis := time.Since(t0)

		dumpFile := t.TempDir() + "/dump.sql"
		f, err := os.Create(dumpFile)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(srv.Tool(t, "mariadb-dump"), append(args, dumpArgs(dbName(t, src))...)...)
		cmd.Env, cmd.Stdout = env, f
		t0 = time.Now()
		if out, err := runCmd(cmd); err != nil {
			t.Fatalf("mariadb-dump: %v: %s", err, out)
		}
		dump := time.Since(t0)
		f.Close()
		fi, _ := os.Stat(dumpFile)
		cmd = exec.Command(srv.Tool(t, "mariadb-dump"), append(args, dumpArgs(dbName(t, src))...)...)
		cmd.Env = env
		cmd.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		t0 = time.Now()
		if out, err := runCmd(cmd); err != nil {
			t.Fatalf("mariadb-dump: %v: %s", err, out)
		}
		dumpNull := time.Since(t0)
		t.Logf("round %d backup: kluis %6.2fs (%.1f MB of rows), mariadb-dump > /dev/null %6.2fs, > file %6.2fs (%.1f MB)",
			round+1, kluis.Seconds(), float64(n)/1e6, dumpNull.Seconds(), dump.Seconds(), float64(fi.Size())/1e6)

		b := takeBackup(t, src)
		restore := restoreTimed(t, srv, b, b.cat(), nil, 4)
		restore1 := restoreTimed(t, srv, b, b.cat(), nil, 1)

		dst := srv.CreateDB(t, "bench_client")
		in, _ := os.Open(dumpFile)
		cmd = exec.Command(srv.Tool(t, "mariadb"), append(args, dbName(t, dst))...)
		cmd.Env, cmd.Stdin = env, in
		t0 = time.Now()
		if out, err := runCmd(cmd); err != nil {
			t.Fatalf("mariadb < dump: %v: %s", err, out)
		}
		client := time.Since(t0)
		in.Close()
		mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+quoteIdent(dbName(t, dst)))
		t.Logf("round %d restore: kluis %6.2fs (4 connections), %6.2fs (1 connection), mariadb < dump %6.2fs",
			round+1, restore.Seconds(), restore1.Seconds(), client.Seconds())
	}
}

// dumpArgs are mariadb-dump's options for the comparison. Without
// --skip-add-locks the dump does not load: its LOCK TABLES around each
// table's INSERTs leaves out the sequence a DEFAULT NEXT VALUE FOR names
// ("Table 'invoice_number_seq' was not locked with LOCK TABLES").
func dumpArgs(db string) []string {
	return []string{"--single-transaction", "--routines", "--triggers", "--skip-add-locks", db}
}

// runCmd runs cmd and returns the end of its standard error.
func runCmd(cmd *exec.Cmd) (string, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	s := stderr.String()
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return s, err
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
