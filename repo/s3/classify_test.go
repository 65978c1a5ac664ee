package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// TestMisconfiguredIsNotAnOutage: a missing bucket, refused credentials, a
// region mismatch and Object Lock on a bucket without it are configuration
// problems, named with the setting to check (issue 18.5) — not "degraded,
// run sync when the location is back". A missing object in a good bucket
// and a stopped server are not.
func TestMisconfiguredIsNotAnOutage(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	plain := newBucket(t, srv, false)

	// Servers that differ only in what the client is told (no lock copied).
	wrongSecret := &s3test.Server{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: "not-the-secret"}
	wrongRegion := &s3test.Server{Endpoint: srv.Endpoint, Region: "eu-west-9", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	cases := []struct {
		name string
		loc  *s3.Location
		want string
	}{
		{"missing bucket", srv.Location(t, "a", "no-such-bucket", nil), "check `bucket:`"},
		{"wrong secret", wrongSecret.Location(t, "b", plain, nil), "credentials"},
		{"wrong region", wrongRegion.Location(t, "c", plain, nil), "check `region:`"},
		{"object lock without lock", srv.Location(t, "d", plain, &s3.Options{Lock: &s3.Lock{Mode: "governance", Days: 1}}), "has no Object Lock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.loc.Put(ctx, "t/data/ab/ab01", []byte("pack"))
			if !errors.Is(err, repo.ErrMisconfigured) || !strings.Contains(err.Error(), c.want) || !repo.Misconfigured(err.Error()) {
				t.Errorf("Put: %v\nwant a configuration problem mentioning %q", err, c.want)
			}
		})
	}
	t.Run("stat in a missing bucket", func(t *testing.T) {
		_, err := srv.Location(t, "e", "no-such-bucket", nil).Stat(ctx, "t/config")
		if errors.Is(err, repo.ErrNotFound) || !errors.Is(err, repo.ErrMisconfigured) {
			t.Errorf("Stat in a missing bucket = %v: a gone bucket must not read as a missing object", err)
		}
	})
	t.Run("missing object", func(t *testing.T) {
		_, err := srv.Location(t, "f", plain, nil).Stat(ctx, "t/none")
		if !errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrMisconfigured) {
			t.Errorf("Stat of a missing object = %v, want ErrNotFound only", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		l := srv.Location(t, "g", plain, &s3.Options{MaxAttempts: 1})
		srv.Stop()
		err := l.Put(ctx, "t/data/cd/cd01", []byte("pack"))
		if err == nil || errors.Is(err, repo.ErrMisconfigured) {
			t.Errorf("Put with the server down = %v, want an outage, not a configuration problem", err)
		}
	})
}
