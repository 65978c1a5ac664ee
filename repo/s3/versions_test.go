package s3_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// TestVersionedBucketWithoutLock: on a bucket with versioning but no
// Object Lock, the location reads through someone else's delete marker and
// newer version, names both in VersionAnomalies, and its Delete removes
// every version and marker, so the name is gone from List.
func TestVersionedBucketWithoutLock(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, false)
	ctx := context.Background()
	c := srv.Client(t)
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	l := srv.Location(t, "versioned", bucket, &s3.Options{Prefix: "p/"})
	hidden, shadowed := "t/snapshots/aa", "t/data/bb/bb"
	for _, n := range []string{hidden, shadowed} {
		if err := l.Put(ctx, n, []byte("kluis wrote "+n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/" + hidden)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/" + shadowed), Body: strings.NewReader("attacker")}); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.ReadAll(ctx, l, hidden, 100); err != nil || string(got) != "kluis wrote "+hidden {
		t.Errorf("read through the delete marker: %q, %v", got, err)
	}
	want := sha256.Sum256([]byte("kluis wrote " + shadowed))
	found, err := l.ReadVersions(ctx, shadowed, 100, func(b []byte) bool { return sha256.Sum256(b) == want })
	if err != nil || !found {
		t.Errorf("ReadVersions did not find kluis's version under the newer one: %v", err)
	}
	as, err := l.VersionAnomalies(ctx, "t/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]repo.VersionAnomaly{}
	for _, a := range as {
		got[a.Name] = a
	}
	if a := got[hidden]; !a.Hidden || a.DeleteMarkers != 1 {
		t.Errorf("anomaly of %s: %+v", hidden, a)
	}
	if a := got[shadowed]; a.DataVersions != 2 {
		t.Errorf("anomaly of %s: %+v", shadowed, a)
	}
	for _, n := range []string{hidden, shadowed} {
		if err := l.Delete(ctx, n); err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
		if _, err := l.Stat(ctx, n); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("%s after Delete: %v, want not found", n, err)
		}
	}
	listed := 0
	if err := l.List(ctx, "t/", func(repo.ObjectInfo) error { listed++; return nil }); err != nil || listed != 0 {
		t.Errorf("after Delete %d objects listed (%v)", listed, err)
	}
	vs, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String("p/t/")})
	if err != nil || len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("after Delete: %d versions and %d markers left (%v)", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
}
