package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/locationtest"
	"github.com/kluis-nl/kluis/repo/s3"
)

var bucketSeq atomic.Int64

func newBucket(t *testing.T, srv *s3test.Server, lock bool) string {
	t.Helper()
	b := fmt.Sprintf("b%d-%d", time.Now().UnixNano()%1e6, bucketSeq.Add(1))
	srv.CreateBucket(t, b, lock)
	return b
}

// TestConformance runs the Location contract against a real S3 server:
// plain, with a prefix and small multipart parts (so the 1 MiB objects of
// the suite go up in parts), and under Object Lock.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	cases := []struct {
		name string
		lock bool
		opts s3.Options
	}{
		{"plain", false, s3.Options{}},
		{"prefix multipart", false, s3.Options{Prefix: "kluis/", MultipartThreshold: 600 << 10, PartSize: 5 << 20}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			locationtest.Run(t, func(t *testing.T) repo.Location {
				o := c.opts
				return srv.Location(t, "s3", newBucket(t, srv, c.lock), &o)
			})
		})
	}
}

func TestObjectLockRetention(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, true)
	l := srv.Location(t, "locked", bucket, &s3.Options{Lock: &s3.Lock{Mode: "governance", Days: 1}})
	ctx := context.Background()
	if err := l.Put(ctx, "t/data/ab/ab01", []byte("pack")); err != nil {
		t.Fatal(err)
	}
	until, err := l.Retention(ctx, "t/data/ab/ab01")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(until); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("retain until %v: want about a day from now", until)
	}
	err = l.Delete(ctx, "t/data/ab/ab01")
	if !errors.Is(err, repo.ErrRetained) {
		t.Fatalf("Delete of a locked object = %v, want ErrRetained", err)
	}
	if got, err := repo.ReadAll(ctx, l, "t/data/ab/ab01", 100); err != nil || string(got) != "pack" {
		t.Fatalf("locked object after Delete: %q, %v", got, err)
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, false)
	l := srv.Location(t, "s3", bucket, nil)
	ctx := context.Background()
	// A wrong secret: the server refuses; the error must not show either key.
	dir := t.TempDir()
	idf, sf := srv.KeyFiles(t, dir)
	bad := srv.SecretKey + "WRONG"
	writeFile(t, sf, bad)
	wrong, err := s3.New(ctx, s3.Options{Name: "wrong", Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKeyIDFile: idf, SecretAccessKeyFile: sf, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	err = wrong.Put(ctx, "t/x", []byte("x"))
	if err == nil {
		t.Fatal("Put with a wrong secret succeeded")
	}
	msgs = append(msgs, err.Error())
	_, err = wrong.Stat(ctx, "t/x")
	msgs = append(msgs, fmt.Sprint(err))
	err = wrong.List(ctx, "t/", func(repo.ObjectInfo) error { return nil })
	msgs = append(msgs, fmt.Sprint(err))
	_ = l
	for _, m := range msgs {
		for _, secret := range []string{srv.SecretKey, bad, srv.AccessKey} {
			if strings.Contains(m, secret) {
				t.Errorf("error shows a credential: %s", m)
			}
		}
	}
	// A key file others can read is refused.
	writeFile(t, sf, srv.SecretKey)
	chmod(t, sf, 0o644)
	if _, err := s3.New(ctx, s3.Options{Name: "loose", Endpoint: srv.Endpoint, Bucket: bucket, AccessKeyIDFile: idf, SecretAccessKeyFile: sf}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a group-readable secret file: %v", err)
	} else if strings.Contains(err.Error(), srv.SecretKey) {
		t.Errorf("error shows the secret: %v", err)
	}
}

func TestMultipartLarge(t *testing.T) {
	srv := s3test.Start(t)
	l := srv.Location(t, "s3", newBucket(t, srv, true), &s3.Options{MultipartThreshold: 6 << 20, PartSize: 5 << 20, Lock: &s3.Lock{Mode: "compliance", Days: 1}})
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), (13<<20)/16+3)
	if err := l.Put(ctx, "t/data/cd/big", data); err != nil {
		t.Fatal(err)
	}
	got, err := repo.ReadAll(ctx, l, "t/data/cd/big", int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("multipart object read back: %d bytes, %v", len(got), err)
	}
	if until, err := l.Retention(ctx, "t/data/cd/big"); err != nil || until.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("multipart object retention %v, %v", until, err)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// TestLockedVersionCannotBeDeleted: with the location's own credentials,
// deleting the locked version fails before retention ends; a plain delete
// only adds a delete marker, and Undelete brings the data back.
func TestLockedVersionCannotBeDeleted(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, true)
	l := srv.Location(t, "locked", bucket, &s3.Options{Prefix: "p/", Lock: &s3.Lock{Mode: "compliance", Days: 1}})
	ctx := context.Background()
	name := "t/data/ab/ab01"
	if err := l.Put(ctx, name, []byte("locked pack")); err != nil {
		t.Fatal(err)
	}
	c := l.Client()
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/" + name)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/" + name), VersionId: head.VersionId})
	if err == nil {
		t.Fatal("deleting the locked version succeeded")
	}
	t.Logf("deleting the locked version: %v", err)
	// A plain delete hides the object behind a delete marker…
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/" + name)}); err != nil {
		t.Fatalf("plain delete: %v", err)
	}
	// …and the data is still there: reads, Stat and List see through the
	// marker, so restore still finds it.
	if info, err := l.Stat(ctx, name); err != nil || info.Size != int64(len("locked pack")) {
		t.Fatalf("after a plain delete Stat = %+v, %v; want the hidden version", info, err)
	}
	if got, err := repo.ReadAll(ctx, l, name, 100); err != nil || string(got) != "locked pack" {
		t.Fatalf("after a plain delete Get = %q, %v; want the hidden version", got, err)
	}
	listed := false
	if err := l.List(ctx, "t/", func(oi repo.ObjectInfo) error { listed = listed || oi.Name == name; return nil }); err != nil || !listed {
		t.Fatalf("after a plain delete List does not show %s (%v)", name, err)
	}
	n, err := l.Undelete(ctx, "t/")
	if err != nil || n != 1 {
		t.Fatalf("Undelete = %d, %v; want 1", n, err)
	}
	if got, err := repo.ReadAll(ctx, l, name, 100); err != nil || string(got) != "locked pack" {
		t.Fatalf("after Undelete: %q, %v", got, err)
	}
}

// TestConditionalPut: the server itself refuses to replace an object
// when the PUT carries If-None-Match: * (the guard Put relies on when
// another writer slips in between its HEAD and its PUT).
func TestConditionalPut(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, false)
	l := srv.Location(t, "s3", bucket, nil)
	ctx := context.Background()
	if err := l.Put(ctx, "t/config", []byte("first")); err != nil {
		t.Fatal(err)
	}
	_, err := l.Client().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("t/config"),
		Body: strings.NewReader("second"), IfNoneMatch: aws.String("*")})
	if err == nil {
		t.Fatal("a conditional PUT replaced an existing object")
	}
	if got, _ := repo.ReadAll(ctx, l, "t/config", 100); string(got) != "first" {
		t.Fatalf("object is %q, want first", got)
	}
}

// TestFaults: through a fault-injecting proxy, 5xx answers are retried,
// and an outage, a slow server, a truncated or a corrupted body are
// errors or wrong bytes the caller sees (the repository verifies every
// object against its name and falls back), never a success with silently
// short data and never "not found".
func TestFaults(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, false)
	p := s3test.NewProxy(t, srv)
	l := srv.Via(p).Location(t, "flaky", bucket, &s3.Options{MaxAttempts: 4, Timeout: 2 * time.Second})
	ctx := context.Background()
	data := bytes.Repeat([]byte("kluis "), 10000)

	p.Set(s3test.Faults{Status: 503, StatusCount: 2})
	if err := l.Put(ctx, "t/data/ab/ab01", data); err != nil {
		t.Fatalf("Put through two 503s: %v", err)
	}
	p.Set(s3test.Faults{Corrupt: true})
	if got, err := repo.ReadAll(ctx, l, "t/data/ab/ab01", 1<<20); err == nil && bytes.Equal(got, data) {
		t.Error("the corrupting proxy did not corrupt")
	}
	for _, c := range []struct {
		name string
		f    s3test.Faults
	}{
		{"truncated body", s3test.Faults{Truncate: true}},
		{"down", s3test.Faults{Down: true}},
		{"slow", s3test.Faults{Delay: 5 * time.Second}},
		{"500 forever", s3test.Faults{Status: 500, StatusCount: 1000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.Set(c.f)
			defer p.Set(s3test.Faults{})
			cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			got, err := repo.ReadAll(cctx, l, "t/data/ab/ab01", 1<<20)
			if err == nil {
				t.Fatalf("read %d bytes without error", len(got))
			}
			if errors.Is(err, repo.ErrNotFound) {
				t.Errorf("a fault looks like a missing object: %v", err)
			}
		})
	}
	p.Set(s3test.Faults{})
	if got, err := repo.ReadAll(ctx, l, "t/data/ab/ab01", 1<<20); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the faults: %d bytes, %v", len(got), err)
	}
}

// TestProbe: what `config check --online` reports per location.
func TestProbe(t *testing.T) {
	srv := s3test.Start(t)
	plain, locked := newBucket(t, srv, false), newBucket(t, srv, true)
	lock := &s3.Lock{Mode: "compliance", Days: 30}
	ctx := context.Background()
	cases := []struct {
		name, bucket string
		lock         *s3.Lock
		want         string // "" = ok
	}{
		{"plain bucket", plain, nil, ""},
		{"locked bucket with object_lock", locked, lock, ""},
		{"object_lock on a bucket without it", plain, lock, "has no Object Lock"},
		{"missing bucket", "no-such-bucket", nil, "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := srv.Location(t, "probe", c.bucket, &s3.Options{Lock: c.lock}).Probe(ctx)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Probe: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Probe = %v, want %q", err, c.want)
			}
		})
	}
}

// TestExtendRetention: a pack written long ago and reused by a new
// snapshot gets its retention lengthened to what a new write would get;
// it is never shortened.
func TestExtendRetention(t *testing.T) {
	srv := s3test.Start(t)
	bucket := newBucket(t, srv, true)
	now := time.Now()
	l := srv.Location(t, "locked", bucket, &s3.Options{Lock: &s3.Lock{Mode: "governance", Days: 2}, Now: func() time.Time { return now }})
	ctx := context.Background()
	name := "t/data/cd/cd01"
	if err := l.Put(ctx, name, []byte("reused pack")); err != nil {
		t.Fatal(err)
	}
	first, err := l.Retention(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(36 * time.Hour) // a day and a half later a snapshot reuses it
	if err := l.ExtendRetention(ctx, name); err != nil {
		t.Fatal(err)
	}
	second, err := l.Retention(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if want := l.RetainUntil(now); second.Before(want.Add(-time.Second)) || !second.After(first) {
		t.Fatalf("retention after reuse %v (was %v), want about %v", second, first, want)
	}
	now = now.Add(-30 * time.Hour) // an older clock never shortens it
	if err := l.ExtendRetention(ctx, name); err != nil {
		t.Fatal(err)
	}
	if third, _ := l.Retention(ctx, name); third.Before(second) {
		t.Fatalf("retention shortened from %v to %v", second, third)
	}
}
