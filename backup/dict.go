package backup

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
)

// Dictionary samples (docs/format.md, "Zstd dictionary"): the first rows
// a scan of each table finds, up to sampleBytes of each, cut into pieces
// of samplePiece bytes.
const (
	sampleRows  = 400
	sampleBytes = 128 << 10
	samplePiece = 4 << 10
)

// sampleForDictionary offers the repository a few rows of every table
// when it is to train the tenant's dictionary (the first backup), so that
// the first night is compressed with it too. Engines that cannot sample
// leave the training to the end of the backup, for the nights after.
func sampleForDictionary(ctx context.Context, b *repo.Backup, snap source.Snapshot) error {
	sm, ok := snap.(source.Sampler)
	if !ok || !b.WantsDictionary() {
		return nil
	}
	var pieces [][]byte
	for _, t := range snap.Tables() {
		var buf bytes.Buffer
		if err := sm.SampleTable(ctx, t, &buf, sampleRows); err != nil {
			return fmt.Errorf("sampling rows for the compression dictionary: %w", err)
		}
		data := buf.Bytes()[:min(buf.Len(), sampleBytes)]
		for len(data) > 0 {
			n := min(len(data), samplePiece)
			pieces = append(pieces, data[:n])
			data = data[n:]
		}
	}
	b.TrainDictionary(ctx, pieces)
	return nil
}
