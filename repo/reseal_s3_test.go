package repo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// TestResealAtS3: a backup at two S3 locations is re-sealed when neither
// bucket has Object Lock, and skipped, naming the location, when one has
// (its old packs would stay until their retention ends).
func TestResealAtS3(t *testing.T) {
	a, b := s3test.StartPair(t)
	ctx := context.Background()
	for _, locked := range []bool{false, true} {
		bucket := "plain"
		var lock *s3.Lock
		if locked {
			bucket, lock = "locked", &s3.Lock{Mode: "governance", Days: 1}
		}
		var locs []repo.Location
		for i, srv := range []*s3test.Server{a, b} {
			srv.CreateBucket(t, bucket, locked)
			locs = append(locs, srv.Location(t, []string{"s3-a", "s3-b"}[i], bucket, &s3.Options{Prefix: "backups/", Lock: lock}))
		}
		master := testMaster(t)
		r, _, err := repo.Init(ctx, testTenant, locs, repo.Options{Master: master, Chunker: testParams, PackSize: testPackSize})
		if err != nil {
			t.Fatal(err)
		}
		night := []stream{tableStream("patients", 3<<20, nil)}
		_, rs, err := backupAndReseal(t, ctx, r, night...)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !locked && (rs.Skipped != "" || rs.Packs == 0):
			t.Fatalf("no Object Lock: re-seal %+v", rs)
		case locked && !strings.Contains(rs.Skipped, "s3-a has Object Lock"):
			t.Fatalf("Object Lock: re-seal %+v, want it skipped naming s3-a", rs)
		}
		if n, err := r.DropResealed(ctx, rs); err != nil || n != rs.Packs {
			t.Fatalf("DropResealed: %d, %v", n, err)
		}
		fresh, err := repo.Open(ctx, testTenant, locs, repo.Options{Master: master})
		if err != nil {
			t.Fatal(err)
		}
		verifyRestore(t, fresh, repo.Hash{}, night...)
	}
}
