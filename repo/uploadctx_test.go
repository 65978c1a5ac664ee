package repo_test

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// TestPackUploadOutlivesItsStream: a stream's context ends when the stream
// does (backup.tables cancels its context on return), while the stream's
// last packs may still be on their way to the locations. The uploads run
// under the backup's context, so the backup commits. Before, a slow
// location (or one behind a deadline decorator that honours cancellation
// mid-write) failed it with "pack … not stored: context canceled" — a
// flaky restore-test fixture showed it under load.
func TestPackUploadOutlivesItsStream(t *testing.T) {
	f := newFixture(t)
	r := f.init()
	for _, fl := range f.faults {
		fl.SetDelay(150 * time.Millisecond) // every Put is still running when the stream returns
	}
	data := make([]byte, 3*testPackSize)
	rand.New(rand.NewSource(1)).Read(data)

	ctx := context.Background()
	b, err := r.NewBackup(ctx, repo.BackupOptions{Appliance: "ams-1"})
	if err != nil {
		t.Fatal(err)
	}
	streamCtx, cancel := context.WithCancel(ctx)
	if err := b.Stream(streamCtx, "db", repo.KindFile, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	cancel() // the stream is done; its context ends, as in backup.tables
	res, err := b.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit after the stream's context ended: %v", err)
	}
	if len(res.Committed) != 2 {
		t.Fatalf("committed at %v", res.Committed)
	}
}
