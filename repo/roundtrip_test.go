package repo_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// Every stream comes back byte for byte, read through a repository opened
// afresh (nothing cached from the backup), from either location.
func TestRoundTrip(t *testing.T) {
	mib := int64(1 << 20)
	streams := []stream{
		bytesStream("empty", nil),
		bytesStream("one-byte", []byte{0x7f}),
		randomStream("random", 1, size(100*mib, 4*mib)),
		textStream("redundant", loremParagraph, size(100*mib, 4*mib)),
	}
	f := newFixture(t)
	r := f.init()
	res := backup(t, r, streams...)
	if len(res.Committed) != 2 || res.Degraded(2) {
		t.Fatalf("committed at %v, want both locations", res.Committed)
	}
	t.Logf("stats: %+v", res.Stats)
	for _, name := range []string{"amsterdam", "groningen"} {
		t.Run("from "+name, func(t *testing.T) {
			r := f.open()
			if err := r.Prefer(name); err != nil {
				t.Fatal(err)
			}
			verifyRestore(t, r, res.ID, streams...)
		})
	}
	checkAll(t, f.open())
}

// A snapshot of only an empty stream, and a stream fed through a
// StreamWriter, round-trip too.
func TestRoundTripEdgeCases(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	backup(t, r, bytesStream("empty", nil))
	verifyRestore(t, f.open(), [32]byte{}, bytesStream("empty", nil))

	b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "files"})
	if err != nil {
		t.Fatal(err)
	}
	sw := b.StreamWriter(ctx, "piped", "table")
	text := strings.Repeat(loremParagraph, 20000)
	for i := 0; i < len(text); i += 1000 {
		if _, err := io.WriteString(sw, text[i:min(i+1000, len(text))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close([]byte(`{"rows":20000}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Stream(ctx, "piped", "file", strings.NewReader("x"), nil); err == nil {
		t.Error("a second stream of the same name was accepted")
	}
	res, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2 := f.open()
	verifyRestore(t, r2, res.ID, bytesStream("piped", []byte(text)))
	si, err := r2.FindSnapshot(ctx, res.Snapshot[:8])
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := si.Manifest.Stream("piped"); string(s.Meta) != `{"rows":20000}` || s.Kind != "table" {
		t.Errorf("stream meta %s kind %s", s.Meta, s.Kind)
	}
	if si.Manifest.Parent == "" {
		t.Error("second snapshot has no parent")
	}
}

// Progress reports running totals while packs upload (run with -race).
func TestProgress(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	var mu sync.Mutex
	var last repo.Stats
	calls := 0
	b, err := r.NewBackup(ctx, repo.BackupOptions{Progress: func(s repo.Stats) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if s.Read > last.Read {
			last = s
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Stream(ctx, fmt.Sprint(i), repo.KindFile, randomStream("", uint64(i), 3<<20).open(), nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 3 || last.Read != 9<<20 {
		t.Errorf("%d progress calls, last %+v", calls, last)
	}
	if res.Stats.Read != 9<<20 || res.Stats.New != 9<<20 || res.Stats.Streams != 3 || res.Stats.Packs == 0 || res.Stats.IndexSize == 0 {
		t.Errorf("result stats %+v", res.Stats)
	}
}
