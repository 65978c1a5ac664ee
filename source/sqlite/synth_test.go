package sqlite

import (
	"context"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kluis-nl/kluis/synth"
)

// TestRoundTripSynthetic backs up and restores a synthetic practice
// database (hostile identifiers, a view, a trigger, attachments).
func TestRoundTripSynthetic(t *testing.T) {
	src := filepath.Join(t.TempDir(), "praktijk.db")
	if err := synth.GenerateSQLiteFile(context.Background(), src, synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	b := takeBackup(t, src)
	var rows int64
	for _, r := range b.results {
		rows += r.Rows
	}
	if len(b.tables) < 5 || rows < 100 {
		t.Fatalf("synthetic database has %d tables, %d rows", len(b.tables), rows)
	}
	dst := filepath.Join(t.TempDir(), "hersteld.db")
	restore(t, b, dst)
	if want, got := dumpDB(t, src), dumpDB(t, dst); !reflect.DeepEqual(want, got) {
		t.Errorf("restored synthetic database differs (%d dump lines, original %d)", len(got), len(want))
	}
}

// BenchmarkSQLiteSnapshotSynthetic streams every table of a synthetic
// practice database of about 10 MiB (synth.Small).
func BenchmarkSQLiteSnapshotSynthetic(b *testing.B) {
	src := filepath.Join(b.TempDir(), "praktijk.db")
	ctx := context.Background()
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Small, 7); err != nil {
		b.Fatal(err)
	}
	snap, err := New(src, testKey).Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	var n countWriter
	for _, t := range snap.Tables() {
		if _, err := snap.WriteTable(ctx, t, &n); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for b.Loop() {
		for _, t := range snap.Tables() {
			if _, err := snap.WriteTable(ctx, t, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	}
}
