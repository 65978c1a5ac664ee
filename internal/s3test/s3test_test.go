package s3test

import (
	"context"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// A server answers with its own credentials, refuses another server's,
// and keeps its data across a stop and a restart on the same port.
func TestStartStopRestart(t *testing.T) {
	a, b := StartPair(t)
	if a.AccessKey == b.AccessKey || a.SecretKey == b.SecretKey || a.Endpoint == b.Endpoint {
		t.Fatal("the two servers share credentials or an endpoint")
	}
	a.CreateBucket(t, "bucket", true)
	l := a.Location(t, "a", "bucket", nil)
	ctx := context.Background()
	if err := l.Put(ctx, "t/x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	// b's credentials at a's endpoint are refused. (versitygw answers an
	// unknown access key with 404 XAdminUserNotFound; a HEAD has no body to
	// tell that from a missing object, so List shows it.)
	wrong := &Server{Endpoint: a.Endpoint, Region: a.Region, AccessKey: b.AccessKey, SecretKey: b.SecretKey}
	err := wrong.Location(t, "wrong", "bucket", nil).List(ctx, "t/", func(repo.ObjectInfo) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "XAdminUserNotFound") {
		t.Errorf("another server's credentials: List = %v, want refused", err)
	}
	a.Stop()
	if _, err := l.Stat(ctx, "t/x"); err == nil {
		t.Fatal("a stopped server answered")
	}
	a.Restart(t)
	if got, err := repo.ReadAll(ctx, l, "t/x", 10); err != nil || string(got) != "kept" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}
