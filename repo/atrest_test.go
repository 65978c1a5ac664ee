package repo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// Only ciphertext at rest: after backing up data full of BSNs and a marker
// string, no file at any location holds any of them. The marker stream is
// highly compressible, so the check covers blobs that were compressed
// before sealing, and the marker also appears in stream metadata, which
// lives in the sealed manifest.
func TestOnlyCiphertextAtRest(t *testing.T) {
	ctx := context.Background()
	const marker = "KLUIS-MARKER-geheim-dossier-7f3a"
	rng := rand.New(rand.NewPCG(7, 7))
	var bsns []string
	for range 200 {
		b := fakeBSN(rng)
		if !validBSN(b) {
			t.Fatalf("fakeBSN made %s, which fails the eleven test", b)
		}
		bsns = append(bsns, b)
	}
	var table bytes.Buffer
	for i := 0; table.Len() < 2<<20; i++ {
		fmt.Fprintf(&table, "%d\t%s\tJan de Vries\t1970-01-%02d\t%s notitie %d\n", i, bsns[i%len(bsns)], i%28+1, marker, i)
	}
	markerText := strings.Repeat(marker+" ", 1<<20/(len(marker)+1))

	dirs := []string{t.TempDir(), t.TempDir()}
	var locs []repo.Location
	for i, d := range dirs {
		l := local.New(fmt.Sprintf("loc%d", i), d)
		locs = append(locs, l)
	}
	r, _, err := repo.Init(ctx, testTenant, locs, repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "postgres", ServerVersion: marker, Appliance: "appliance-1"})
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"columns": []string{"id", "bsn", marker}, "example": bsns[0]})
	if err := b.Stream(ctx, "public.clients", repo.KindTable, bytes.NewReader(table.Bytes()), meta); err != nil {
		t.Fatal(err)
	}
	if err := b.Stream(ctx, "marker", repo.KindFile, strings.NewReader(markerText), nil); err != nil {
		t.Fatal(err)
	}
	res, err := b.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Committed) != 2 {
		t.Fatalf("committed at %v", res.Committed)
	}
	if res.Stats.Stored > res.Stats.Read/4 {
		t.Fatalf("stored %d of %d bytes: the streams were not compressed, so this test would not cover compressed blobs", res.Stats.Stored, res.Stats.Read)
	}

	leak := func(data []byte) string {
		if bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(marker))) {
			return "the marker"
		}
		for _, bsn := range bsns {
			if bytes.Contains(data, []byte(bsn)) {
				return "BSN " + bsn
			}
		}
		return ""
	}
	if leak(table.Bytes()) == "" || leak([]byte(markerText)) == "" {
		t.Fatal("the leak check does not see the plaintext")
	}
	files := 0
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			files++
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if what := leak(data); what != "" {
				rel, _ := filepath.Rel(d, p)
				t.Errorf("%s holds %s in the clear", rel, what)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// config, key, index, snapshot and at least one pack per location.
	if files < 2*5 {
		t.Fatalf("only %d files checked", files)
	}
	// And the data is really there.
	verifyRestore(t, r, res.ID, bytesStream("public.clients", table.Bytes()), bytesStream("marker", []byte(markerText)))
}
