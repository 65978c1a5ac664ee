package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestEvidenceVersionsS3CLI: the evidence log at two S3 locations under
// Object Lock. The auditor verifies the bucket itself (s3://, read-only
// credentials, their age identity) and an export against the period they
// asked for; then someone with a location's credential PUTs a new version
// over a sealed report and a checkpoint: `evidence check`, `sync` and the
// auditor's verify of the bucket each name the overwritten objects.
func TestEvidenceVersionsS3CLI(t *testing.T) {
	t.Parallel()
	e, srv := newS3Env(t)
	e.keysInit()
	auditor, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := e.path("auditor.age")
	if err := os.WriteFile(idFile, []byte(auditor.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.cfg)
	cfg = append(cfg, []byte("evidence:\n  auditor_recipient: "+auditor.Recipient().String()+"\n")...)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	e.appendEvidence(4, time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)) // one a day, 1 to 4 March
	e.mustRun(0, "init", "--tenant", tenant)
	e.mustRun(0, "sync")
	if r := e.run("evidence", "check"); r.code != 0 || strings.Count(r.stdout, "matches the appliance's") != 2 {
		t.Fatalf("evidence check before the attack: %v", r)
	}
	pub := e.path("appliance.pub")
	if err := os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o644); err != nil {
		t.Fatal(err)
	}

	// The period the auditor asked for, 2 to 3 March: the export carries
	// the reports just before and after it.
	export := e.path("export")
	if r := e.mustRun(0, "evidence", "export", "--out", export, "--from", "2026-03-02", "--to", "2026-03-03"); !strings.Contains(r.stdout, "exported reports 1 to 4") {
		t.Errorf("export of 2 to 3 March: %v", r)
	}
	if r := e.runNoConfig("evidence", "verify", "--public-key", pub, "--expect-period", "2026-03-02..2026-03-03", export); r.code != 0 || !strings.Contains(r.stdout, "2 reports here were signed within it") {
		t.Errorf("verify --expect-period of the period exported: %v", r)
	}
	short := e.path("short")
	e.mustRun(0, "evidence", "export", "--out", short, "--from", "2026-03-03", "--to", "2026-03-03")
	if r := e.runNoConfig("evidence", "verify", "--public-key", pub, "--expect-period", "2026-03-01..2026-03-03", short); r.code != 1 || !strings.Contains(r.stdout, "the first report here, report 2, was signed 2026-03-02") {
		t.Errorf("verify --expect-period of a shorter export: %v", r)
	}
	if r := e.runNoConfig("evidence", "verify", "--public-key", pub, "--expect-period", "2026-03-03..2026-03-01", export); r.code != 2 || !strings.Contains(r.stderr, "FROM is not before TO") {
		t.Errorf("verify --expect-period backwards: %v", r)
	}

	verifyBucket := func(i int) result {
		args := []string{"evidence", "verify", "--public-key", pub, "--identity", idFile, "--s3-endpoint", srv[i].Endpoint, "s3://kluis/backups"}
		c, stdout, stderr := e.command(args...)
		c.Env = append(c.Env, "AWS_ACCESS_KEY_ID="+srv[i].AccessKey, "AWS_SECRET_ACCESS_KEY="+srv[i].SecretKey, "AWS_REGION="+srv[i].Region)
		r, err := e.finish(args, stdout, stderr, c.Run())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := verifyBucket(0); r.code != 0 || !strings.Contains(r.stdout, "VERIFIED s3://kluis/backups: reports 1 to 4 of appliance ams-1") {
		t.Fatalf("the auditor's verify of the bucket: %v", r)
	}

	// The attack: a PUT over a sealed report and over a checkpoint at the
	// first location, with its credential.
	ctx := context.Background()
	client := srv[0].Client(t)
	var leaf, cp string
	for _, k := range bucketNames(t, srv[0]) {
		k = strings.TrimPrefix(k, "backups/") // the location's prefix
		switch {
		case leaf == "" && strings.Contains(k, "/leaf/"):
			leaf = k
		case cp == "" && strings.Contains(k, "/checkpoint/"):
			cp = k
		}
	}
	if leaf == "" || cp == "" {
		t.Fatalf("no sealed report or checkpoint in the bucket: %v", bucketNames(t, srv[0]))
	}
	for _, k := range []string{leaf, cp} {
		if _, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("kluis"), Key: aws.String("backups/" + k), Body: bytes.NewReader([]byte("forged"))}); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run("evidence", "check")
	if r.code != 1 || !strings.Contains(r.stdout, leaf+" has 2 data versions") || !strings.Contains(r.stdout, cp+" has 2 data versions") || !strings.Contains(r.stdout, "s3-gro: the evidence log there matches") {
		t.Errorf("evidence check after the attack: %v", r)
	}
	if r := e.run("sync"); r.code == 0 || !strings.Contains(r.stdout, leaf+" has 2 data versions") {
		t.Errorf("sync after the attack: %v", r)
	}
	r = verifyBucket(0)
	if r.code != 1 || !strings.Contains(r.stdout, "2 data versions of a write-once object: a new version was PUT over it") || !strings.Contains(r.stdout, leaf) {
		t.Errorf("the auditor's verify of the bucket after the attack: %v", r)
	}
	if r := verifyBucket(1); r.code != 0 {
		t.Errorf("the other bucket: %v", r)
	}
}
