package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// TestReplacedVersionOnS3: with the bypass permission of governance mode
// an attacker deletes the version of a sealed report the appliance wrote
// and PUTs another in its place, and deletes every version of a
// checkpoint. Each name then has one data version, so counting versions
// shows nothing; the version ids the appliance recorded after writing
// them do: check and sync name the replaced and the deleted object.
func TestReplacedVersionOnS3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "evidence", true)
	loc := srv.Location(t, "gro-s3", "evidence", &s3.Options{Lock: &s3.Lock{Mode: "governance", Days: 1}})
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{loc})
	appendN(t, s, 4)
	if res, err := s.CheckLocations(ctx); err != nil || !res[0].OK {
		t.Fatalf("check before the attack: %+v %v", res, err)
	}
	client := srv.Client(t)
	prefix := LogPrefix("ams-1", testKey(1).Public().(ed25519.PublicKey))
	var leaf, cp string
	for _, k := range listKeys(t, client, "evidence") {
		switch {
		case leaf == "" && strings.HasPrefix(k, prefix+"leaf/"):
			leaf = k
		case cp == "" && strings.HasPrefix(k, prefix+"checkpoint/"):
			cp = k
		}
	}
	if leaf == "" || cp == "" {
		t.Fatal("no leaf or checkpoint at the location")
	}
	deleteVersions := func(key string) {
		out, err := client.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("evidence"), Prefix: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Versions {
			if _, err := client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("evidence"), Key: v.Key, VersionId: v.VersionId, BypassGovernanceRetention: aws.Bool(true)}); err != nil {
				t.Fatalf("the attacker's DELETE of %s (bypassing governance): %v", key, err)
			}
		}
	}
	// The leaf: its version deleted, another sealed report (report 1,
	// whatever it is) written in its place under its name.
	other := getObject(t, client, "evidence", leaf)
	deleteVersions(leaf)
	if _, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("evidence"), Key: aws.String(leaf), Body: bytes.NewReader(append(other, 0))}); err != nil {
		t.Fatal(err)
	}
	deleteVersions(cp)

	res, err := s.CheckLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("check: %s", res[0].Error)
	if res[0].OK || !strings.Contains(res[0].Error, leaf+": version ") || !strings.Contains(res[0].Error, "which the appliance wrote, is gone and version") ||
		!strings.Contains(res[0].Error, cp+" is gone: every version of it was deleted") {
		t.Errorf("check misses the replaced leaf or the deleted checkpoint: %+v", res[0])
	}
	if strings.Contains(res[0].Error, "data versions") {
		t.Errorf("check counts more than one version: the attack left one: %s", res[0].Error)
	}
	sres, err := s.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sres[0].OK {
		t.Errorf("sync passes a location whose objects were replaced: %+v", sres[0])
	}

	// Without the record, the count alone does not see it: this is what
	// the record adds.
	os.RemoveAll(filepath.Join(s.Dir(), CheckpointDir))
	if _, _, err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	recorded, err := s.recordedVersions()
	if err != nil || len(recorded) != 0 {
		t.Fatalf("records left: %v %v", recorded, err)
	}
	tree, _, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.auditLocation(ctx, loc, tree, recorded) {
		if strings.Contains(p, leaf) {
			t.Errorf("without the record the audit still names the replaced leaf: %s", p)
		}
	}
}

func TestParseVersions(t *testing.T) {
	for _, tc := range []struct {
		in  string
		bad bool
	}{
		{in: `{"schema":"kluis-evidence-versions/v1","locations":{"gro":{"_evidence/a/key-1/leaf/00":"v1"}}}` + "\n"},
		{in: `{"schema":"kluis-evidence-versions/v2","locations":{}}`, bad: true},
		{in: `{"schema":"kluis-evidence-versions/v1","locations":{"gro":{"x":""}}}`, bad: true},
		{in: `{"schema":"kluis-evidence-versions/v1","locations":{},"extra":1}`, bad: true},
		{in: `{"schema":"kluis-evidence-versions/v1","locations":{}}{}`, bad: true},
		{in: `[]`, bad: true},
	} {
		_, err := parseVersions([]byte(tc.in))
		if (err != nil) != tc.bad {
			t.Errorf("%s: %v", tc.in, err)
		}
	}
}
