package repo_test

import (
	"context"
	"crypto/sha256"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kluis-nl/kluis/repo"
)

// damageByte flips one byte in the middle of a file behind the location's
// back (bit rot, a bad disk).
func damageByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestS3SyncRepairUnderObjectLock (issue 18 point 8): at one S3 location
// under Object Lock a pack rots on disk (its only version is damaged) and
// an attacker writes a damaged newer version over a locked index. Plain
// Sync calls the location complete; check --read-data names the pack;
// Sync with Repair writes a good version of each from the other location
// (the damaged versions cannot be deleted: they stay), and reads prefer
// it: the current version matches, check --read-data is clean at both
// locations, and the repaired location alone restores.
func TestS3SyncRepairUnderObjectLock(t *testing.T) {
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 21, 1<<20)
	res := backup(t, f.open(), a)
	pack, index := f.first(0, "data"), f.first(0, "index")
	damageByte(t, f.srv[0].ObjectPath(f.bucket, "backups/"+pack))
	f.attackerPut(0, index, []byte("attacker's newer version"))

	plain, err := f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !plain[0].Complete() {
		t.Fatalf("plain sync: %+v (it compares names only)", plain[0])
	}
	cs, err := f.open().Check(ctx, repo.CheckOptions{ReadData: true, Locations: []string{"s3-amsterdam"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cs[0].Errors, "\n"), pack) {
		t.Fatalf("check --read-data does not name the rotten pack:\n%s", strings.Join(cs[0].Errors, "\n"))
	}

	rep, err := f.open().SyncWith(ctx, repo.SyncOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep[0].Complete() || rep[0].Repaired != 2 || !rep[1].Complete() || rep[1].Repaired != 0 {
		t.Fatalf("sync --repair: %+v", rep)
	}
	// The damaged versions are still there (Object Lock), but not current.
	for _, name := range []string{pack, index} {
		out, err := f.srv[0].Client(t).ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(f.bucket), Prefix: aws.String("backups/" + name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Versions) < 2 {
			t.Errorf("%s: %d versions after the repair, want the damaged one kept", name, len(out.Versions))
		}
		data, err := repo.ReadAll(ctx, f.locs[0], name, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got := repo.Hash(sha256.Sum256(data)).String(); !strings.HasSuffix(name, got) {
			t.Errorf("%s: the current version after the repair does not match its name", name)
		}
	}
	cs, err = f.open().Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !c.OK() {
			t.Errorf("check --read-data of %s after the repair: %v", c.Location, c.Errors)
		}
	}
	if w := strings.Join(cs[0].Warnings, "\n"); !strings.Contains(w, "current one matches") {
		t.Errorf("check of s3-amsterdam does not say the older versions stay:\n%s", w)
	}
	verifyRestore(t, f.open(f.locs[0]), res.ID, a)
	if again, _ := f.open().SyncWith(ctx, repo.SyncOptions{Repair: true}); again[0].Repaired+again[0].Copied != 0 {
		t.Errorf("a second sync --repair did something: %+v", again[0])
	}
}
