package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testKey = []byte("kluis test fingerprint key")

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newEngine(t *testing.T, srv *pgtest.Server, dsn string) *Engine {
	return New(dsn, testKey, Options{PgDumpPath: srv.Tool(t, "pg_dump")})
}

// backup is everything a snapshot produced, kept in memory.
type backup struct {
	version   string
	tables    []source.Table
	pre, post []byte
	streams   map[string][]byte
	results   map[string]source.TableResult
}

func takeBackup(t *testing.T, e *Engine) *backup {
	t.Helper()
	ctx := testContext(t)
	snap, err := e.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Close()
	b := &backup{version: snap.ServerVersion(), tables: snap.Tables(), streams: map[string][]byte{}, results: map[string]source.TableResult{}}
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatalf("schema: %v", err)
	}
	b.pre, b.post = pre.Bytes(), post.Bytes()
	for _, tb := range b.tables {
		var buf bytes.Buffer
		res, err := snap.WriteTable(ctx, tb, &buf)
		if err != nil {
			t.Fatalf("write table %s: %v", tb.Name, err)
		}
		// The fingerprint covers exactly the bytes written.
		if again, err := source.FingerprintStream(testKey, bytes.NewReader(buf.Bytes())); err != nil || again != res {
			t.Fatalf("table %s: stream fingerprint %v (%v), WriteTable said %v", tb.Name, again, err, res)
		}
		b.streams[tb.Name], b.results[tb.Name] = buf.Bytes(), res
	}
	if err := snap.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return b
}

// restoreInto restores b through a Target at dsn, loading tables
// concurrently, and checks every fingerprint.
func restoreInto(t *testing.T, b *backup, dsn string, opts TargetOptions) {
	t.Helper()
	ctx := testContext(t)
	tg, err := NewTarget(ctx, dsn, testKey, opts)
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	defer tg.Close()
	if err := tg.ApplySchema(ctx, bytes.NewReader(b.pre)); err != nil {
		t.Fatalf("apply pre-data: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(b.tables))
	var mu sync.Mutex
	proved := map[string]source.TableResult{}
	for _, tb := range b.tables {
		wg.Go(func() {
			// A small-read reader so that a row crosses CopyData messages.
			res, stale, err := tg.LoadAndFingerprint(ctx, tb, &slowReader{r: bytes.NewReader(b.streams[tb.Name])})
			if err != nil {
				errs <- err
				return
			}
			if stale {
				errs <- fmt.Errorf("table %s: load reported writes elsewhere", tb.Name)
			}
			mu.Lock()
			proved[tb.Name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("load: %v", err)
	}
	stale, err := tg.ApplyPostData(ctx, bytes.NewReader(b.post), 3)
	if err != nil {
		t.Fatalf("apply post-data: %v", err)
	}
	if stale {
		t.Errorf("post-data reported changed rows")
	}
	for _, tb := range b.tables {
		if proved[tb.Name] != b.results[tb.Name] {
			t.Errorf("table %s: fingerprint read back at load %+v, backed up %+v", tb.Name, proved[tb.Name], b.results[tb.Name])
		}
		got, err := tg.Fingerprint(ctx, tb)
		if err != nil {
			t.Fatalf("fingerprint: %v", err)
		}
		if got != b.results[tb.Name] {
			t.Errorf("table %s: restored fingerprint %+v, backed up %+v", tb.Name, got, b.results[tb.Name])
		}
	}
	if err := tg.Close(); err != nil {
		t.Fatalf("close target: %v", err)
	}
}

// slowReader returns at most 7 bytes per Read.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	return s.r.Read(p)
}
