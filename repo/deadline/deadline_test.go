package deadline_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/deadline"
	"github.com/kluis-nl/kluis/repo/locationtest"
)

// Unhung, the decorator keeps the whole Location contract.
func TestConformance(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) repo.Location {
		return deadline.New(locationtest.NewMemLocation("mem"), deadline.Options{Timeout: time.Minute, State: &deadline.State{}})
	})
}

// hanging is a Location whose operations block until their context ends,
// as on an endpoint that accepts and never answers; it counts the calls
// that reached it.
type hanging struct {
	repo.Location
	calls atomic.Int32
}

func (h *hanging) wait(ctx context.Context) error {
	h.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func (h *hanging) Put(ctx context.Context, name string, data []byte) error { return h.wait(ctx) }
func (h *hanging) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	return repo.ObjectInfo{}, h.wait(ctx)
}
func (h *hanging) List(ctx context.Context, p string, fn func(repo.ObjectInfo) error) error {
	return h.wait(ctx)
}

// stallingBody answers Get at once and then stalls in the body.
type stallingBody struct {
	ctx context.Context
}

func (b stallingBody) Read(p []byte) (int, error) { <-b.ctx.Done(); return 0, b.ctx.Err() }
func (b stallingBody) Close() error               { return nil }

func (h *hanging) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	h.calls.Add(1)
	return stallingBody{ctx}, nil
}

// An operation that outlives the timeout fails with ErrHung; the next
// ones, within the cool-off, fail at once without reaching the endpoint; a
// caller's own cancellation is not a hang.
func TestHungThenSkipped(t *testing.T) {
	h := &hanging{Location: locationtest.NewMemLocation("s3")}
	st := &deadline.State{}
	l := deadline.New(h, deadline.Options{Timeout: 20 * time.Millisecond, CoolOff: time.Hour, State: st})
	ctx := context.Background()
	err := l.Put(ctx, "t/data/x", []byte("x"))
	if !errors.Is(err, deadline.ErrHung) || !strings.Contains(err.Error(), "location s3") {
		t.Fatalf("put on a hung endpoint: %v", err)
	}
	if hung, _ := st.Hung(time.Now()); !hung {
		t.Fatal("state not hung")
	}
	for i := 0; i < 5; i++ {
		if _, err := l.Stat(ctx, "t/config"); !errors.Is(err, deadline.ErrHung) {
			t.Fatalf("stat within the cool-off: %v", err)
		}
	}
	if n := h.calls.Load(); n != 1 {
		t.Errorf("%d calls reached the hung endpoint, want 1", n)
	}

	// A body that stalls is cut off too.
	st2 := &deadline.State{}
	l2 := deadline.New(h, deadline.Options{Timeout: 20 * time.Millisecond, State: st2})
	rc, err := l2.Get(ctx, "t/data/x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, deadline.ErrHung) {
		t.Errorf("stalled body: %v", err)
	}
	rc.Close()

	// The caller cancelling is not the endpoint hanging.
	st3 := &deadline.State{}
	l3 := deadline.New(h, deadline.Options{Timeout: time.Hour, State: st3})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l3.List(cctx, "t/", func(repo.ObjectInfo) error { return nil }); errors.Is(err, deadline.ErrHung) {
		t.Errorf("a cancelled caller marked the location hung: %v", err)
	}
	if hung, _ := st3.Hung(time.Now()); hung {
		t.Error("state hung after a caller's cancellation")
	}
}

// versioned is a Location with the versioned-bucket extras.
type versioned struct{ repo.Location }

func (versioned) ReadVersions(ctx context.Context, name string, max int64, fn func([]byte) bool) (bool, error) {
	return false, nil
}
func (versioned) VersionAnomalies(ctx context.Context, prefix string) ([]repo.VersionAnomaly, error) {
	return nil, nil
}
func (versioned) ExtendRetention(ctx context.Context, name string) error { return nil }

// The decorator hides no backend extra from repo: reading through a
// version written over a locked one, check's version anomalies and
// retention extension all find the S3 location through it (repo.As).
func TestExtrasReachable(t *testing.T) {
	l := deadline.New(versioned{locationtest.NewMemLocation("s3")}, deadline.Options{Timeout: time.Minute, State: &deadline.State{}})
	if _, ok := repo.As[repo.VersionedLocation](l); !ok {
		t.Error("VersionedLocation hidden by the decorator")
	}
	if _, ok := repo.As[interface {
		ExtendRetention(context.Context, string) error
	}](l); !ok {
		t.Error("ExtendRetention hidden by the decorator")
	}
}
