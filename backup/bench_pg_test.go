package backup_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/synth"
)

// BenchmarkPostgresSideBySide runs kluis next to pg_dump, pg_restore and
// restic on one throwaway PostgreSQL server holding the synthetic practice
// (synth), and prints seconds, bytes stored and peak RSS of each command:
//
//	KLUIS_BENCH_PG_MB=50,150,500 KLUIS_BENCH_NIGHTS=30 \
//	  go test ./backup -run '^$' -bench PostgresSideBySide -benchtime 1x -timeout 3h -v
//
// KLUIS_BENCH_CHUNK_AVG sets policy.chunk_average (e.g. 65536).
// KLUIS_BENCH_KLUIS_BEFORE names another kluis binary whose backups (into
// a repository of its own, right after or before kluis's, the order
// turning each night) and restore are timed too (before/after a change). KLUIS_BENCH_PG_MB lists database sizes (the growth table over data);
// KLUIS_BENCH_NIGHTS the number of nights (default 2; the growth table over
// history reports nights 1, 7 and 30 when reached). Without
// KLUIS_BENCH_PG_MB nothing runs, so CI pays nothing. restic 0.18.1 is
// taken from ~/.cache/kluis/restic or $KLUIS_RESTIC, or built with `go
// install`; without it (or with KLUIS_RESTIC=off) the restic rows are
// left out, with a message. The restores run after the last night and
// after each night KLUIS_BENCH_RESTORE_AT lists (e.g. 1,7), each
// KLUIS_BENCH_RESTORES times (default 1): ratios are taken within a trio.
//
// Each night: a synthetic working day (synth.WorkingDay), then
// `kluis backup` to two local locations, then `restic backup
// --stdin-from-command -- pg_dump …` and `restic copy` to a second
// repository. After the last night: pg_dump -Fd -Z0 and `pg_restore -j 2`
// into a new database, and `kluis restore --parallel 2` into another
// (which proves every table's fingerprint).
func BenchmarkPostgresSideBySide(b *testing.B) {
	sizes := envList(b, "KLUIS_BENCH_PG_MB", nil)
	if len(sizes) == 0 {
		b.Skip("set KLUIS_BENCH_PG_MB (e.g. 50 or 50,150,500) to run the side-by-side benchmark")
	}
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Skip("needs GNU time (/usr/bin/time, Debian package time) for peak RSS")
	}
	nights := 2
	if n := envList(b, "KLUIS_BENCH_NIGHTS", nil); len(n) == 1 && n[0] >= 1 {
		nights = n[0]
	}
	restic := findRestic(b)
	bin := filepath.Join(b.TempDir(), "kluis")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kluis").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for _, mb := range sizes {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			for b.Loop() {
				sideBySide(b, bin, restic, mb, nights)
			}
		})
	}
}

func envList(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want positive numbers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

// findRestic returns a restic 0.18.1 binary, or "" (with a message).
func findRestic(b *testing.B) string {
	home, _ := os.UserHomeDir()
	cached := filepath.Join(home, ".cache", "kluis", "restic")
	if os.Getenv("KLUIS_RESTIC") == "off" {
		b.Log("KLUIS_RESTIC=off: restic rows left out")
		return ""
	}
	for _, p := range []string{os.Getenv("KLUIS_RESTIC"), cached} {
		if p == "" {
			continue
		}
		if out, err := exec.Command(p, "version").Output(); err == nil && strings.Contains(string(out), "0.18.1") {
			return p
		}
	}
	dir := b.TempDir()
	cmd := exec.Command("go", "install", "github.com/restic/restic/cmd/restic@v0.18.1")
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Logf("restic 0.18.1 not found and not built (%v: %s): restic rows left out", err, strings.TrimSpace(string(out)))
		return ""
	}
	return filepath.Join(dir, "restic")
}

// benchPolicy returns a policy section for the benchmark's kluis.yaml:
// KLUIS_BENCH_CHUNK_AVG sets policy.chunk_average (bytes, a power of two),
// to compare chunk sizes on the same data.
func benchPolicy() string {
	if avg := os.Getenv("KLUIS_BENCH_CHUNK_AVG"); avg != "" {
		return "policy: {chunk_average: " + avg + "}\n"
	}
	return ""
}

type benchRow struct {
	name  string
	secs  float64
	cpu   float64 // user + system seconds of the command
	rssKB int64
	bytes int64 // stored after the command; 0 when not applicable
	// after is the part of secs a kluis backup spent after its snapshot
	// was committed: re-sealing its packs and deleting the old ones.
	after float64
}

func sideBySide(b *testing.B, bin, restic string, mb, nights int) {
	ctx := context.Background()
	srv := pgtest.Start(b)
	dsn := srv.CreateDB(b, "bench")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	scale := synth.ScaleForBytes(int64(mb) << 20)
	t0 := time.Now()
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 11); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d MB: generated %d clients in %s", mb, scale.Clients, time.Since(t0).Round(time.Second))

	dir := b.TempDir()
	cfg, _ := pgx.ParseConfig(dsn)
	host, port := cfg.Host, fmt.Sprint(cfg.Port)
	env := append(os.Environ(), "PGPASSWORD="+cfg.Password, "KLUIS_CONFIG="+filepath.Join(dir, "kluis.yaml"),
		"RESTIC_PASSWORD=bench", "RESTIC_FROM_PASSWORD=bench", "RESTIC_CACHE_DIR="+filepath.Join(dir, "restic-cache"))
	os.WriteFile(filepath.Join(dir, "src.dsn"), []byte(fmt.Sprintf("host=%s port=%s user=%s dbname=%s password=%s\n", host, port, cfg.User, cfg.Database, cfg.Password)), 0o600)
	// The before binary (KLUIS_BENCH_KLUIS_BEFORE) backs up into its own
	// appliance: own keys, state and locations, the same database.
	for _, a := range []struct{ file, suffix, locs string }{{"kluis.yaml", "", "a"}, {"kluis-before.yaml", "-before", "c"}} {
		other := string(rune(a.locs[0] + 1))
		os.WriteFile(filepath.Join(dir, a.file), []byte(`
appliance: {id: bench, state_dir: ./state`+a.suffix+`, master_key_file: ./master`+a.suffix+`.key, signing_key_file: ./signing`+a.suffix+`.key}
locations:
  - {name: a, type: dir, path: ./loc-`+a.locs+`, country: NL, site: A, provider: p1}
  - {name: b, type: dir, path: ./loc-`+other+`, country: NL, site: B, provider: p2}
tenants:
  - {id: bench, engine: postgres, dsn_file: ./src.dsn}
`+benchPolicy()), 0o644)
	}
	beforeEnv := append(slices.Clone(env), "KLUIS_CONFIG="+filepath.Join(dir, "kluis-before.yaml"))
	var lastStdout strings.Builder
	runEnv := func(env []string, args ...string) (float64, float64, int64) {
		b.Helper()
		// GNU time reports the peak RSS of the command (the largest of a
		// pipeline's processes) and its CPU seconds.
		rssFile := filepath.Join(dir, "rss")
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", rssFile}, args...)...)
		cmd.Env, cmd.Dir = env, dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		lastStdout.Reset()
		cmd.Stdout = &lastStdout
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		d := time.Since(start)
		out, _ := os.ReadFile(rssFile)
		f := strings.Fields(string(out))
		var kb int64
		var cpu float64
		if len(f) == 3 {
			kb, _ = strconv.ParseInt(f[0], 10, 64)
			u, _ := strconv.ParseFloat(f[1], 64)
			s, _ := strconv.ParseFloat(f[2], 64)
			cpu = u + s
		}
		return d.Seconds(), cpu, kb
	}
	run := func(args ...string) (float64, int64) {
		s, _, kb := runEnv(env, args...)
		return s, kb
	}
	var rows []benchRow
	addEnv := func(env []string, name string, stored func() int64, args ...string) benchRow {
		s, cpu, rss := runEnv(env, args...)
		r := benchRow{name: name, secs: s, cpu: cpu, rssKB: rss}
		if stored != nil {
			r.bytes = stored()
		}
		rows = append(rows, r)
		return r
	}
	add := func(name string, stored func() int64, args ...string) benchRow {
		return addEnv(env, name, stored, args...)
	}
	beforeBin := os.Getenv("KLUIS_BENCH_KLUIS_BEFORE")
	pgDump, pgRestore := srv.Tool(b, "pg_dump"), srv.Tool(b, "pg_restore")
	conn := []string{"-h", host, "-p", port, "-U", cfg.User}
	kluisBytes := func() int64 { return duBytes(b, filepath.Join(dir, "loc-a")) }
	resticBytes := func() int64 { return duBytes(b, filepath.Join(dir, "restic-a")) }
	run(bin, "keys", "init")
	run(bin, "init", "--tenant", "bench")
	if beforeBin != "" {
		runEnv(beforeEnv, beforeBin, "keys", "init")
		runEnv(beforeEnv, beforeBin, "init", "--tenant", "bench")
	}
	if restic != "" {
		run(restic, "init", "-q", "-r", filepath.Join(dir, "restic-a"))
		run(restic, "init", "-q", "-r", filepath.Join(dir, "restic-b"), "--from-repo", filepath.Join(dir, "restic-a"), "--copy-chunker-params")
	}

	restoreAt := envList(b, "KLUIS_BENCH_RESTORE_AT", nil)
	repeats := 1
	if n := envList(b, "KLUIS_BENCH_RESTORES", nil); len(n) == 1 {
		repeats = n[0]
	}
	var restores []restoreRun
	restoreTrio := func(n int) {
		dumpDir := filepath.Join(dir, fmt.Sprintf("dump%d", n))
		add(fmt.Sprintf("after night %d: pg_dump -Fd -Z0 (for pg_restore)", n), nil, append([]string{pgDump, "-Fd", "-Z0", "-f", dumpDir}, append(conn, cfg.Database)...)...)
		for k := 1; k <= repeats; k++ {
			rr := restoreRun{night: n}
			load, _ := os.ReadFile("/proc/loadavg")
			rr.load = strings.Fields(string(load))[0]
			// Each restore starts from a checkpoint (what the one before
			// wrote is not flushed on its time), and the order turns each
			// repeat, so that no command always runs after the same one.
			// The database a restore made is dropped right after it is
			// timed: left, autovacuum vacuums and analyzes its freshly
			// loaded tables during the next command (on two cores, the
			// second restore paid for the first one's).
			var made string
			into := func(prefix, name string) string {
				if made != "" {
					srv.DropDB(b, made)
				}
				if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
					b.Fatal(err)
				}
				c, _ := pgx.ParseConfig(srv.CreateDB(b, fmt.Sprintf("%s%d_%d", prefix, n, k)))
				os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("host=%s port=%s user=%s dbname=%s password=%s\n", host, port, cfg.User, c.Database, cfg.Password)), 0o600)
				made = c.Database
				return c.Database
			}
			trio := []func(){
				func() {
					d := into("pgrestore", "pgr.dsn")
					rr.pgr = add(fmt.Sprintf("after night %d: pg_restore -j 2", n), nil, append([]string{pgRestore, "-j", "2", "-d", d}, append(conn, dumpDir)...)...)
				},
				func() {
					into("kluisrestore", "dst.dsn")
					rr.kluis = add(fmt.Sprintf("after night %d: kluis restore --parallel 2 (proof)", n), nil, bin, "restore", "--tenant", "bench", "--snapshot", "latest", "--target-dsn-file", "dst.dsn", "--parallel", "2")
				},
			}
			if beforeBin != "" {
				// The same restore with another kluis binary (before a change),
				// of its own repository (the same nights).
				trio = append(trio, func() {
					into("kluisbefore", "before.dsn")
					rr.before = addEnv(beforeEnv, fmt.Sprintf("after night %d: kluis restore, BEFORE binary", n), nil, beforeBin, "restore", "--tenant", "bench", "--snapshot", "latest", "--target-dsn-file", "before.dsn", "--parallel", "2")
				})
			}
			for j := range trio {
				trio[(j+k-1)%len(trio)]()
			}
			srv.DropDB(b, made)
			restores = append(restores, rr)
		}
	}

	type night struct {
		n                               int
		dump, kluis, restic, before     benchRow
		kluisStored, resticStored       int64
		kluisIncrement, resticIncrement int64
	}
	var history []night
	for n := 1; n <= nights; n++ {
		if n > 1 {
			if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 11, n-1); err != nil {
				b.Fatal(err)
			}
		}
		nt := night{n: n}
		nt.dump = add(fmt.Sprintf("night %d: pg_dump > /dev/null", n), nil, append([]string{pgDump, "-f", "/dev/null"}, append(conn, cfg.Database)...)...)
		before := kluisBytes()
		backups := []func(){func() {
			nt.kluis = add(fmt.Sprintf("night %d: kluis backup (2 locations)", n), kluisBytes, bin, "backup", "--tenant", "bench", "--json")
			var res struct {
				Reseal *struct {
					Seconds     float64 `json:"seconds"`
					DropSeconds float64 `json:"drop_seconds"`
					Packs       int     `json:"packs"`
					Before      int64   `json:"bytes_before"`
					After       int64   `json:"bytes_after"`
				} `json:"reseal"`
			}
			if err := json.Unmarshal([]byte(lastStdout.String()), &res); err != nil {
				b.Fatalf("kluis backup --json: %v", err)
			}
			if rs := res.Reseal; rs != nil && rs.Packs > 0 {
				nt.kluis.after = rs.Seconds + rs.DropSeconds
				rows = append(rows, benchRow{name: fmt.Sprintf("night %d: of which re-seal (%.1f -> %.1f MB)", n, float64(rs.Before)/1e6, float64(rs.After)/1e6), secs: nt.kluis.after})
			}
		}}
		if beforeBin != "" {
			// The order turns each night, so that neither always runs
			// right after pg_dump.
			backups = append(backups, func() {
				nt.before = addEnv(beforeEnv, fmt.Sprintf("night %d: kluis backup, BEFORE binary", n), nil, beforeBin, "backup", "--tenant", "bench")
			})
		}
		for j := range backups {
			backups[(j+n-1)%len(backups)]()
		}
		nt.kluisStored, nt.kluisIncrement = nt.kluis.bytes, nt.kluis.bytes-before
		if restic != "" {
			before := resticBytes()
			r := add(fmt.Sprintf("night %d: pg_dump | restic backup --stdin", n), resticBytes,
				append([]string{restic, "-q", "-r", filepath.Join(dir, "restic-a"), "backup", "--stdin-filename", "bench.sql", "--stdin-from-command", "--", pgDump}, append(conn, cfg.Database)...)...)
			c := add(fmt.Sprintf("night %d: restic copy (second repository)", n), resticBytes,
				restic, "-q", "-r", filepath.Join(dir, "restic-b"), "copy", "--from-repo", filepath.Join(dir, "restic-a"))
			nt.restic = benchRow{name: "restic backup + copy", secs: r.secs + c.secs, rssKB: max(r.rssKB, c.rssKB), bytes: r.bytes}
			nt.resticStored, nt.resticIncrement = r.bytes, r.bytes-before
		}
		history = append(history, nt)
		if n == nights || slices.Contains(restoreAt, n) {
			restoreTrio(n)
		}
	}

	load, _ := os.ReadFile("/proc/loadavg")
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d MB synthetic practice (%d clients), %d nights; load average %s\n", mb, scale.Clients, nights, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&out, "%-46s %9s %8s %10s %12s\n", "command", "seconds", "CPU s", "RSS MiB", "stored MB")
	for _, r := range rows {
		stored := ""
		if r.bytes > 0 {
			stored = fmt.Sprintf("%.1f", float64(r.bytes)/1e6)
		}
		fmt.Fprintf(&out, "%-46s %9.2f %8.2f %10.1f %12s\n", r.name, r.secs, r.cpu, float64(r.rssKB)/1024, stored)
	}
	fmt.Fprintf(&out, "\nnight  kluis s  /pg_dump  committed s  /pg_dump  restic s  /pg_dump  kluis stored MB  restic stored MB  kluis incr MB  restic incr MB  incr ratio\n")
	for _, h := range history {
		if h.n != 1 && h.n != 2 && h.n != 7 && h.n != 30 && h.n != nights {
			continue
		}
		ratio := ""
		if h.resticIncrement > 0 {
			ratio = fmt.Sprintf("%.2f", float64(h.kluisIncrement)/float64(h.resticIncrement))
		}
		committed := h.kluis.secs - h.kluis.after
		fmt.Fprintf(&out, "%5d %8.2f %9.2f %12.2f %9.2f %9.2f %9.2f %16.1f %17.1f %14.2f %15.2f %11s\n", h.n,
			h.kluis.secs, h.kluis.secs/h.dump.secs, committed, committed/h.dump.secs, h.restic.secs, h.restic.secs/h.dump.secs,
			float64(h.kluisStored)/1e6, float64(h.resticStored)/1e6, float64(h.kluisIncrement)/1e6, float64(h.resticIncrement)/1e6, ratio)
	}
	if beforeBin != "" {
		fmt.Fprintf(&out, "\nnight  pg_dump s  kluis s (÷)  kluis CPU s  before s (÷)  before CPU s\n")
		for _, h := range history {
			fmt.Fprintf(&out, "%5d %9.2f %7.2f (%.2f×) %11.2f %8.2f (%.2f×) %12.2f\n", h.n, h.dump.secs,
				h.kluis.secs, h.kluis.secs/h.dump.secs, h.kluis.cpu, h.before.secs, h.before.secs/h.dump.secs, h.before.cpu)
		}
	}
	fmt.Fprintf(&out, "\nafter night  load  pg_restore -j 2 s  kluis restore s (÷)  RSS MiB  before s (÷)  before RSS MiB\n")
	for _, rr := range restores {
		before := ""
		if rr.before.secs > 0 {
			before = fmt.Sprintf("%6.2f (%.2f×) %14.1f", rr.before.secs, rr.before.secs/rr.pgr.secs, float64(rr.before.rssKB)/1024)
		}
		fmt.Fprintf(&out, "%11d %5s %17.2f %11.2f (%.2f×) %8.1f  %s\n", rr.night, rr.load, rr.pgr.secs, rr.kluis.secs, rr.kluis.secs/rr.pgr.secs, float64(rr.kluis.rssKB)/1024, before)
	}
	b.Log(out.String())
	first := history[0]
	b.ReportMetric((first.kluis.secs-first.kluis.after)/first.dump.secs, "first/pg_dump")
	b.ReportMetric(first.kluis.secs/first.dump.secs, "first+reseal/pg_dump")
	if len(history) > 1 {
		last := history[len(history)-1]
		b.ReportMetric((last.kluis.secs-last.kluis.after)/last.dump.secs, "next/pg_dump")
		if last.resticIncrement > 0 {
			b.ReportMetric(float64(last.kluisIncrement)/float64(last.resticIncrement), "incr/restic")
		}
	}
	if first.resticStored > 0 {
		b.ReportMetric(float64(first.kluisStored)/float64(first.resticStored), "full/restic")
	}
	last := restores[len(restores)-1]
	b.ReportMetric(last.kluis.secs/last.pgr.secs, "restore/pg_restore")
	b.ReportMetric(float64(last.kluis.rssKB)/1024, "restore-RSS-MiB")
}

// restoreRun is one side-by-side restore: pg_restore, kluis, and the
// KLUIS_BENCH_KLUIS_BEFORE binary when set.
type restoreRun struct {
	night              int
	load               string
	pgr, kluis, before benchRow
}

// duBytes is the size of the files under dir.
func duBytes(b *testing.B, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
