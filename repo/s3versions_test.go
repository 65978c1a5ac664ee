package repo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// attackerPut writes a new version of an object at location i with the
// bucket's credential: Object Lock protects versions, not names.
func (f *s3Fixture) attackerPut(i int, name string, data []byte) {
	f.t.Helper()
	_, err := f.srv[i].Client(f.t).PutObject(context.Background(), &awss3.PutObjectInput{
		Bucket: aws.String(f.bucket), Key: aws.String("backups/" + name), Body: strings.NewReader(string(data)),
	})
	if err != nil {
		f.t.Fatalf("attacker PUT %s: %v", name, err)
	}
}

// attackerDelete is a plain DELETE with the bucket's credential: on a
// versioned bucket it adds a delete marker.
func (f *s3Fixture) attackerDelete(i int, name string) {
	f.t.Helper()
	_, err := f.srv[i].Client(f.t).DeleteObject(context.Background(), &awss3.DeleteObjectInput{
		Bucket: aws.String(f.bucket), Key: aws.String("backups/" + name),
	})
	if err != nil {
		f.t.Fatalf("attacker DELETE %s: %v", name, err)
	}
}

func (f *s3Fixture) first(i int, kind string) string {
	f.t.Helper()
	for _, n := range keys(f.objects(i)) {
		if strings.HasPrefix(n, testTenant+"/"+kind+"/") {
			return n
		}
	}
	f.t.Fatalf("no %s object at location %d", kind, i)
	return ""
}

// TestS3NewVersionOverLocked (issue 14 point 5): with one location's
// credential an attacker PUTs newer versions over a locked pack, index and
// manifest. Reads take the newest version that matches its content
// address, so that location alone still restores the snapshot, and check
// (without --read-data) names each shadowed object there.
func TestS3NewVersionOverLocked(t *testing.T) {
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 11, 1<<20)
	res := backup(t, f.open(), a)
	shadowed := []string{f.first(0, "data"), f.first(0, "index"), f.first(0, "snapshots")}
	for _, name := range shadowed {
		f.attackerPut(0, name, []byte("attacker's newer version"))
	}
	// The attacked location alone: nothing to fall back to.
	verifyRestore(t, f.open(f.locs[0]), res.ID, a)
	c := checkAt(t, f.open(), "s3-amsterdam")
	errs := strings.Join(c.Errors, "\n")
	for _, name := range shadowed {
		if !strings.Contains(errs, name+": 2 versions") {
			t.Errorf("check of s3-amsterdam does not name the shadowed %s:\n%s", name, errs)
		}
	}
	if c := checkAt(t, f.open(), "s3-groningen"); !c.OK() {
		t.Errorf("check of s3-groningen: %v", c.Errors)
	}
	// Reading every byte at the attacked location finds the good versions:
	// the only findings are the extra versions.
	cs, err := f.open().Check(ctx, repo.CheckOptions{ReadData: true, Locations: []string{"s3-amsterdam"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cs[0].Errors); n != len(shadowed) {
		t.Errorf("check --read-data of s3-amsterdam: %d errors, want %d (the versions):\n%s", n, len(shadowed), strings.Join(cs[0].Errors, "\n"))
	}
}

// TestS3ForgetThroughDeleteMarker (issue 14 point 6): an attacker's plain
// DELETE hides a locked manifest behind a delete marker. kluis's own
// delete of it is not a silent success: while the manifest is retained
// forget reports it as retained and hidden at that location, and check
// names the marker.
func TestS3ForgetThroughDeleteMarker(t *testing.T) {
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 12, 256<<10)
	res := backup(t, f.open(), a)
	manifest := f.first(0, "snapshots")
	f.attackerDelete(0, manifest)
	lr, err := f.open().Forget(ctx, []repo.Hash{res.ID})
	if err == nil {
		t.Fatal("forget of a retained, hidden snapshot reported success")
	}
	if lr[0].OK || !strings.Contains(lr[0].Error, "delete marker") || !strings.Contains(lr[0].Error, "Object Lock") {
		t.Errorf("forget at s3-amsterdam: %+v, want retained and hidden behind a delete marker", lr[0])
	}
	// Nothing was lost: the snapshot restores from the attacked location.
	verifyRestore(t, f.open(f.locs[0]), res.ID, a)
	c := checkAt(t, f.open(), "s3-amsterdam")
	if !strings.Contains(strings.Join(c.Errors, "\n"), manifest+": hidden behind a delete marker") {
		t.Errorf("check of s3-amsterdam does not name the hidden manifest:\n%s", strings.Join(c.Errors, "\n"))
	}
}

// TestS3DeleteThroughMarkerAfterRetention (issue 14 point 6): once
// retention has ended, forget and prune delete what an attacker only hid
// behind delete markers: the forgotten snapshot and the pruned indexes are
// no longer listed, the markers are gone, and the kept snapshot restores
// from each location alone.
func TestS3DeleteThroughMarkerAfterRetention(t *testing.T) {
	f := newS3Fixture(t)
	// Objects retained for a few seconds: written "a day ago, minus 3 s".
	const retain = 3 * time.Second
	now := func() time.Time { return time.Now().Add(-24*time.Hour + retain) }
	for i, srv := range f.srv {
		name := []string{"s3-amsterdam", "s3-groningen"}[i]
		f.locs[i] = srv.Location(t, name, f.bucket, &s3.Options{Prefix: "backups/", Lock: &s3.Lock{Mode: "governance", Days: 1}, Now: now})
	}
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 13, 256<<10)
	first := backup(t, f.open(), a)
	b := randomStream("b", 14, 256<<10)
	second := backup(t, f.open(), a, b)
	var hiddenIndexes []string
	for _, n := range keys(f.objects(0)) {
		if strings.HasPrefix(n, testTenant+"/index/") {
			hiddenIndexes = append(hiddenIndexes, n)
			f.attackerDelete(0, n)
		}
	}
	firstManifest := testTenant + "/snapshots/" + first.ID.String()
	f.attackerDelete(0, firstManifest)
	// Wait until every retain-until date has passed.
	deadline := time.Now().Add(retain + 2*time.Second)
	time.Sleep(time.Until(deadline))
	// A day later, as far as the locations' clocks go.
	for i, srv := range f.srv {
		f.locs[i] = srv.Location(t, f.locs[i].Name(), f.bucket, &s3.Options{Prefix: "backups/", Lock: &s3.Lock{Mode: "governance", Days: 1}})
	}

	lr, err := f.open().Forget(ctx, []repo.Hash{first.ID})
	if err != nil {
		t.Fatalf("forget after retention: %v %+v", err, lr)
	}
	snaps, err := f.open().Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || snaps[0].ID != second.ID {
		t.Fatalf("after forget %d snapshots listed, want only %s", len(snaps), second.ID.Short())
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	listed := f.objects(0)
	for _, n := range append(hiddenIndexes, firstManifest) {
		if _, ok := listed[n]; ok {
			t.Errorf("%s still listed at s3-amsterdam after forget and prune", n)
		}
	}
	for i, l := range f.locs {
		verifyRestore(t, f.open(l), second.ID, a, b)
		if c := checkAt(t, f.open(), l.Name()); !c.OK() {
			t.Errorf("check of %s (location %d) after the repair: %v", l.Name(), i, c.Errors)
		}
	}
}
