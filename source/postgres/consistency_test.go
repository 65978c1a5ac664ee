package postgres

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// TestConsistentUnderConcurrentWrites moves money between two tables in a
// loop of transactions while the two tables are streamed at different
// moments: only a consistent snapshot keeps the total.
func TestConsistentUnderConcurrentWrites(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	dsn := srv.CreateDB(t, "ledger")
	const accounts, start = 500, 1000
	pgtest.ExecDSN(t, dsn, `
CREATE TABLE ledger_a (id int PRIMARY KEY, amount bigint NOT NULL);
CREATE TABLE ledger_b (id int PRIMARY KEY, amount bigint NOT NULL);
INSERT INTO ledger_a SELECT i, `+strconv.Itoa(start)+` FROM generate_series(1, `+strconv.Itoa(accounts)+`) i;
INSERT INTO ledger_b SELECT i, `+strconv.Itoa(start)+` FROM generate_series(1, `+strconv.Itoa(accounts)+`) i;`)
	const total = 2 * accounts * start

	var commits atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	writer := pgtest.ConnectDSN(t, dsn)
	go func() {
		writerDone <- func() error {
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				from, to, amount := 1+rand.IntN(accounts), 1+rand.IntN(accounts), 1+rand.IntN(50)
				aToB := rand.IntN(2) == 0
				src, dst := "ledger_a", "ledger_b"
				if !aToB {
					src, dst = dst, src
				}
				err := pgx.BeginFunc(ctx, writer, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "UPDATE "+src+" SET amount = amount - $1 WHERE id = $2", amount, from); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE "+dst+" SET amount = amount + $1 WHERE id = $2", amount, to)
					return err
				})
				if err != nil {
					return err
				}
				commits.Add(1)
			}
		}()
	}()
	waitCommits := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for commits.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("writer made only %d commits", commits.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	waitCommits(20)
	snap, err := newEngine(t, srv, dsn).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tables := map[string]source.Table{}
	for _, tb := range snap.Tables() {
		tables[tb.Table] = tb
	}
	b := &backup{tables: snap.Tables(), streams: map[string][]byte{}, results: map[string]source.TableResult{}}
	stream := func(name string) {
		var buf bytes.Buffer
		res, err := snap.WriteTable(ctx, tables[name], &buf)
		if err != nil {
			t.Fatal(err)
		}
		b.streams[tables[name].Name], b.results[tables[name].Name] = buf.Bytes(), res
	}
	stream("ledger_a")
	waitCommits(commits.Load() + 100) // the writer moves on between the two tables
	stream("ledger_b")
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatal(err)
	}
	b.pre, b.post = pre.Bytes(), post.Bytes()
	snap.Close()
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}

	if got := sumAmounts(t, b.streams["public.ledger_a"]) + sumAmounts(t, b.streams["public.ledger_b"]); got != total {
		t.Fatalf("backed-up total %d, want %d (inconsistent snapshot)", got, total)
	}
	dst := srv.CreateDB(t, "ledger restored")
	restoreInto(t, b, dst, TargetOptions{})
	var got int64
	conn := pgtest.ConnectDSN(t, dst)
	if err := conn.QueryRow(ctx, "SELECT (SELECT sum(amount) FROM ledger_a) + (SELECT sum(amount) FROM ledger_b)").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != total {
		t.Fatalf("restored total %d, want %d", got, total)
	}
	t.Logf("%d concurrent transfers during the backup", commits.Load())
}

func sumAmounts(t *testing.T, stream []byte) int64 {
	var sum int64
	for _, line := range strings.Split(strings.TrimSuffix(string(stream), "\n"), "\n") {
		_, amount, ok := strings.Cut(line, "\t")
		n, err := strconv.ParseInt(amount, 10, 64)
		if !ok || err != nil {
			t.Fatalf("row %q", line)
		}
		sum += n
	}
	return sum
}

// TestDropWaitsForSnapshot: once the snapshot holds its locks, DROP TABLE
// waits for it, and the table streams completely.
func TestDropWaitsForSnapshot(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	dsn := srv.CreateDB(t, "drop during backup")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE victim (id int PRIMARY KEY, v text);
INSERT INTO victim SELECT i, 'row ' || i FROM generate_series(1, 1000) i;`)
	snap, err := newEngine(t, srv, dsn).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()

	dropper := pgtest.ConnectDSN(t, dsn)
	dropped := make(chan error, 1)
	go func() {
		_, err := dropper.Exec(ctx, "DROP TABLE victim")
		dropped <- err
	}()
	select {
	case err := <-dropped:
		t.Fatalf("DROP TABLE did not wait for the snapshot's lock (err=%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	res, err := snap.WriteTable(ctx, snap.Tables()[0], &bytes.Buffer{})
	if err != nil || res.Rows != 1000 {
		t.Fatalf("write table while a DROP waits: rows=%d err=%v", res.Rows, err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dropped:
		if err != nil {
			t.Fatalf("DROP TABLE after the snapshot closed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DROP TABLE still waiting after the snapshot closed")
	}
}

// TestDDLBeforeLocks: DDL committed between the exported snapshot and the
// snapshot's locks is detected, never silently backed up wrong.
func TestDDLBeforeLocks(t *testing.T) {
	srv := pgtest.Start(t)
	for _, tc := range []struct {
		name, ddl string
	}{
		{name: "truncate", ddl: "TRUNCATE victim"},
		{name: "rewrite", ddl: "ALTER TABLE victim ALTER COLUMN v TYPE varchar(100)"},
		{name: "rename and recreate", ddl: "ALTER TABLE victim RENAME TO old_victim; CREATE TABLE victim (id int PRIMARY KEY, v text)"},
		{name: "drop", ddl: "DROP TABLE victim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			dsn := srv.CreateDB(t, "ddl "+tc.name)
			pgtest.ExecDSN(t, dsn, `CREATE TABLE victim (id int PRIMARY KEY, v text);
INSERT INTO victim SELECT i, 'row ' || i FROM generate_series(1, 100) i;`)
			e := newEngine(t, srv, dsn)
			e.opts.afterExport = func() { pgtest.ExecDSN(t, dsn, tc.ddl) }
			snap, err := e.Snapshot(ctx)
			if err == nil {
				snap.Close()
				t.Fatal("snapshot succeeded despite concurrent DDL")
			}
			if !errors.Is(err, ErrConcurrentDDL) {
				t.Fatalf("want ErrConcurrentDDL, got %v", err)
			}
			if !strings.Contains(err.Error(), "victim") {
				t.Errorf("error does not name the table: %v", err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestWriteTableCancelled: cancelling the context stops a stream.
func TestWriteTableCancelled(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "cancel")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i;`)
	snap, err := newEngine(t, srv, dsn).Snapshot(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 64 << 10, cancel: cancel}
	_, err = snap.WriteTable(ctx, snap.Tables()[0], w)
	if err == nil {
		t.Fatal("cancelled WriteTable returned no error")
	}
}

// cancelAfter cancels after n bytes and keeps accepting writes.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n -= len(p)
	if c.n <= 0 {
		c.cancel()
	}
	return len(p), nil
}
