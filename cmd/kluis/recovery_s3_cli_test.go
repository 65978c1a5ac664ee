package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestRecoveryObjectLockSupersededKeyFiles (new-user trial, 2026-12-02):
// the documented disaster recovery on two buckets under Object Lock. The
// lost appliance's key files cannot be removed there (a delete only adds a
// delete marker; under compliance mode nothing removes them before their
// retention ends), so the recovered appliance records them as superseded:
// `check` passes and names them in notes, not as planted (a warning) and —
// after someone deleted them by hand as older docs said — not as
// tampering (an error). A second `keys recover` does not call the first
// one's key file planted, and `sync --repair` does not write the deleted
// key files back.
func TestRecoveryObjectLockSupersededKeyFiles(t *testing.T) {
	t.Parallel()
	e, srv := newS3Env(t)
	id := e.withRecoveryRecipient()
	e.keysInit()
	e.mustRun(0, "init", "--tenant", tenant)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	snap := e.backup(0, input)
	lostKeys := keyObjects(t, e, srv[0].Client(t))
	if len(lostKeys) != 1 {
		t.Fatalf("key files before the loss: %v", lostKeys)
	}

	kit := e.path("kit")
	if err := os.MkdirAll(kit, 0o700); err != nil {
		t.Fatal(err)
	}
	pub := e.mustRun(0, "keys", "public")
	writeFile(t, filepath.Join(kit, "signing.pub"), pub.stdout)
	writeFile(t, filepath.Join(kit, "recovery.txt"), id.String()+"\n")
	e.secrets["recovery identity"] = id.String()

	// The appliance is lost (its key files; the S3 credentials are the
	// recovery kit's, kept in the same place here), a new one recovers.
	for _, f := range []string{"master.key", "signing.key"} {
		if err := os.Remove(e.path("secrets", f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(e.path("state")); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	recoverArgs := []string{"keys", "recover", "--tenant", tenant, "--identity", filepath.Join(kit, "recovery.txt"),
		"--signing-public-key", filepath.Join(kit, "signing.pub")}
	e.mustRun(0, recoverArgs...)
	e.restoreEqual(snap, input)

	wantNotes := func(when string) {
		t.Helper()
		for _, l := range e.checkOK() {
			if len(l.Warnings) > 0 {
				t.Errorf("%s: check warns at %s: %q", when, l.Location, l.Warnings)
			}
			notes := strings.Join(l.Notes, "\n")
			for _, k := range lostKeys {
				if !strings.Contains(notes, k+": the lost appliance's key file, superseded") {
					t.Errorf("%s: check at %s does not name %s as superseded: %q", when, l.Location, k, l.Notes)
				}
			}
		}
	}
	wantNotes("after the recovery")

	// Run again (an operator unsure whether it worked): the first
	// recovery's key file is this appliance's own, not planted.
	r := e.mustRun(0, recoverArgs...)
	if strings.Contains(r.stdout, "planted") {
		t.Errorf("second keys recover calls a key file planted: %v", r)
	}
	wantNotes("after a second recovery")

	// Someone follows the old procedure and deletes the lost appliance's
	// key files: on an Object Lock bucket that is a delete marker.
	for i := range srv {
		for _, k := range lostKeys {
			if _, err := srv[i].Client(t).DeleteObject(context.Background(), &awss3.DeleteObjectInput{
				Bucket: aws.String("kluis"), Key: aws.String("backups/" + k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantNotes("after deleting the lost key files")
	for _, l := range e.checkOK() {
		if notes := strings.Join(l.Notes, "\n"); !strings.Contains(notes, "delete marker") {
			t.Errorf("check at %s does not say the superseded key file was deleted: %q", l.Location, l.Notes)
		}
	}
	e.mustRun(0, "sync", "--repair")
	for i := range srv {
		if got := keyObjects(t, e, srv[i].Client(t)); containsAll(got, lostKeys) {
			t.Errorf("sync --repair wrote the deleted superseded key files back at server %d: %v", i, got)
		}
	}
	e.restoreEqual(snap, input)
}

// keyObjects lists the tenant's key file names visible (not behind a
// delete marker) in the bucket.
func keyObjects(t *testing.T, e *env, c *awss3.Client) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String("kluis"), Prefix: aws.String("backups/" + tenant + "/keys/")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range out.Contents {
		names = append(names, strings.TrimPrefix(aws.ToString(o.Key), "backups/"))
	}
	return names
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
