package postgres

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// benchRows is the size of the benchmark table: KLUIS_BENCH_PG_ROWS, or
// 200,000 rows (about 60 MB of COPY text).
func benchRows(b *testing.B) int {
	if s := os.Getenv("KLUIS_BENCH_PG_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("KLUIS_BENCH_PG_ROWS: %v", err)
		}
		return n
	}
	return 200_000
}

// benchTable creates a table shaped like a practice's notes table.
func benchTable(b *testing.B, srv *pgtest.Server) (dsn string, rows int) {
	rows = benchRows(b)
	dsn = srv.CreateDB(b, "bench")
	pgtest.ExecDSN(b, dsn, `
CREATE TABLE notes (
  id bigint PRIMARY KEY, client_id int NOT NULL, created timestamptz NOT NULL,
  amount numeric(12,2), note text);
INSERT INTO notes
SELECT i, i % 5000, '2020-01-01 00:00:00+00'::timestamptz + i * interval '17 seconds',
       (i % 100000) / 100.0, repeat(md5(i::text), 5) || E'\t' || i
FROM generate_series(1, `+strconv.Itoa(rows)+`) i;`)
	pgtest.ExecDSN(b, dsn, "VACUUM ANALYZE notes")
	return dsn, rows
}

// BenchmarkWriteTable measures streaming one table (COPY TO plus
// fingerprint) in MB/s of COPY text.
func BenchmarkWriteTable(b *testing.B) {
	srv := pgtest.Start(b)
	dsn, rows := benchTable(b, srv)
	ctx := context.Background()
	snap, err := New(dsn, testKey, Options{PgDumpPath: srv.Tool(b, "pg_dump")}).Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	tb := snap.Tables()[0]
	var n countingWriter
	if _, err := snap.WriteTable(ctx, tb, &n); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n))
	b.ReportMetric(float64(rows), "rows/op")
	b.ResetTimer()
	for b.Loop() {
		res, err := snap.WriteTable(ctx, tb, io.Discard)
		if err != nil || res.Rows != int64(rows) {
			b.Fatalf("rows %d, err %v", res.Rows, err)
		}
	}
}

// BenchmarkLoadTable measures COPY FROM of one table stream into a Target.
func BenchmarkLoadTable(b *testing.B) {
	srv := pgtest.Start(b)
	dsn, _ := benchTable(b, srv)
	ctx := context.Background()
	snap, err := New(dsn, testKey, Options{PgDumpPath: srv.Tool(b, "pg_dump")}).Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var stream, pre, post bytes.Buffer
	tb := snap.Tables()[0]
	want, err := snap.WriteTable(ctx, tb, &stream)
	if err != nil {
		b.Fatal(err)
	}
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		b.Fatal(err)
	}
	snap.Close()
	dst := srv.CreateDB(b, "bench restored")
	tg, err := NewTarget(ctx, dst, testKey, TargetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	if err := tg.ApplySchema(ctx, &pre); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(stream.Len()))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		pgtest.ExecDSN(b, dst, "TRUNCATE notes")
		b.StartTimer()
		if err := tg.LoadTable(ctx, tb, bytes.NewReader(stream.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	got, err := tg.Fingerprint(ctx, tb)
	if err != nil || got != want {
		b.Fatalf("fingerprint %v, want %v (%v)", got, want, err)
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
