package repo_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// A stream that fails part way may have claimed blobs it never stored; a
// later stream of the same bytes must not refer to them. Committing such a
// backup is refused, and the repository stays sound.
func TestFailedStreamPoisonsBackup(t *testing.T) {
	ctx := context.Background()
	data := randomStream("data", 21, 4<<20)
	broken := errors.New("source connection lost")
	for attempt := range 3 {
		f := newFixture(t)
		r := f.init()
		b, err := r.NewBackup(ctx, repo.BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rd := io.MultiReader(data.open(), &failingReader{broken})
		if err := b.Stream(ctx, "first", repo.KindFile, rd, nil); !errors.Is(err, broken) {
			t.Fatalf("failed stream returned %v", err)
		}
		err = b.Stream(ctx, "data", repo.KindFile, data.open(), nil)
		if err == nil {
			var res *repo.Result
			res, err = b.Commit(ctx)
			if err == nil {
				// If it commits, it must be whole.
				if rerr := tryRestore(t, f.open(), res.ID, data); rerr != nil {
					t.Fatalf("attempt %d: a backup committed after a failed stream does not restore: %v", attempt, rerr)
				}
				continue
			}
		}
		if !errors.Is(err, broken) {
			t.Errorf("error after a failed stream does not carry its cause: %v", err)
		}
		res := backup(t, f.open(), data)
		verifyRestore(t, f.open(), res.ID, data)
	}
}

type failingReader struct{ err error }

func (r *failingReader) Read([]byte) (int, error) { return 0, r.err }

// A StreamWriter aborted by its producer fails the backup too, and its
// error names the stream.
func TestStreamWriterAbort(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	b, err := r.NewBackup(ctx, repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sw := b.StreamWriter(ctx, "table/clients", repo.KindTable)
	if _, err := io.Copy(sw, randomStream("", 3, 2<<20).open()); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("COPY failed")
	sw.CloseWithError(broken)
	if _, err := b.Commit(ctx); !errors.Is(err, broken) {
		t.Fatalf("Commit after an aborted stream = %v, want its cause", err)
	}
	sw2 := b.StreamWriter(ctx, "table/other", repo.KindTable)
	sw2.Write([]byte("x"))
	sw2.CloseWithError(broken)
	if err := sw2.Close(nil); err == nil || !errors.Is(err, broken) {
		t.Errorf("Close after CloseWithError = %v", err)
	}
	if n := f.snapshotsAt(0); n != 0 {
		t.Fatalf("%d snapshots after an aborted backup", n)
	}
}

// cancelAfter cancels a context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// Cancelling a backup part way returns context.Canceled promptly, commits
// nothing, and leaves the repository sound; cancelling a restore stops it.
func TestCancel(t *testing.T) {
	f := newFixture(t)
	r := f.init()
	data := randomStream("data", 31, 8<<20)
	first := backup(t, r, data)

	ctx, cancel := context.WithCancel(context.Background())
	b, err := r.NewBackup(ctx, repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Stream(ctx, "big", repo.KindFile, &cancelAfter{r: randomStream("", 32, 64<<20).open(), n: 3 << 20, cancel: cancel}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream with its context cancelled = %v", err)
	}
	if _, err := b.Commit(context.Background()); err == nil {
		t.Fatal("a cancelled backup committed")
	}
	if n := f.snapshotsAt(0); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
	f.settle()
	checkAll(t, f.open())

	ctx, cancel = context.WithCancel(context.Background())
	si, err := r.FindSnapshot(ctx, first.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	rc := r.StreamReader(ctx, &si.Manifest.Streams[0])
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("reading a cancelled restore = %v, want context.Canceled", err)
	}
	rc.Close()
}

// Snapshots are found by "latest", a full ID or a unique prefix.
func TestFindSnapshot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	if _, err := r.FindSnapshot(ctx, "latest"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("latest of an empty repository = %v", err)
	}
	var results []*repo.Result
	for i := range 3 {
		results = append(results, backup(t, r, bytesStream("s", []byte{byte(i)})))
	}
	for ref, want := range map[string]*repo.Result{
		"latest": results[2], "": results[2], results[0].Snapshot: results[0], results[1].Snapshot[:10]: results[1],
	} {
		si, err := r.FindSnapshot(ctx, ref)
		if err != nil || si.ID != want.ID {
			t.Errorf("FindSnapshot(%q) = %v, %v", ref, si.ID.Short(), err)
		}
	}
	if _, err := r.FindSnapshot(ctx, "abc"); err == nil {
		t.Error("a 3-digit prefix was accepted")
	}
	if _, err := r.FindSnapshot(ctx, "ffffffffff"); !errors.Is(err, repo.ErrNotFound) && !strings.HasPrefix(results[0].Snapshot, "ffffffffff") {
		t.Errorf("unknown prefix = %v", err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 3 {
		t.Fatal(err)
	}
	for i, s := range snaps {
		if s.ID != results[i].ID || len(s.Locations) != 2 {
			t.Errorf("snapshot %d: %s at %v", i, s.ID.Short(), s.Locations)
		}
		if i > 0 && s.Manifest.Parent != snaps[i-1].ID.String() {
			t.Errorf("snapshot %d's parent is %s, want %s", i, s.Manifest.Parent, snaps[i-1].ID)
		}
	}
}
