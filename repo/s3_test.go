package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/s3"
)

// s3Fixture is a tenant repository at two S3 servers, each with its own
// credentials and a bucket under Object Lock.
type s3Fixture struct {
	t        *testing.T
	srv      [2]*s3test.Server
	bucket   string
	locs     []repo.Location
	master   repo.MasterKey
	log      *syncBuffer
	lockDays int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newS3Fixture(t *testing.T) *s3Fixture {
	a, b := s3test.StartPair(t)
	f := &s3Fixture{t: t, srv: [2]*s3test.Server{a, b}, bucket: "kluis", master: testMaster(t), log: &syncBuffer{}}
	for i, srv := range f.srv {
		srv.CreateBucket(t, f.bucket, true)
		name := []string{"s3-amsterdam", "s3-groningen"}[i]
		f.locs = append(f.locs, srv.Location(t, name, f.bucket, &s3.Options{Prefix: "backups/", Lock: &s3.Lock{Mode: "governance", Days: 1}}))
	}
	return f
}

func (f *s3Fixture) opts() repo.Options {
	return repo.Options{Master: f.master, Chunker: testParams, PackSize: testPackSize,
		Logger: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (f *s3Fixture) open(locs ...repo.Location) *repo.Repo {
	f.t.Helper()
	if len(locs) == 0 {
		locs = f.locs
	}
	r, err := repo.Open(context.Background(), testTenant, locs, f.opts())
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return r
}

// objects lists every object of the bucket at location i, name → size.
func (f *s3Fixture) objects(i int) map[string]int64 {
	f.t.Helper()
	out := map[string]int64{}
	err := f.locs[i].List(context.Background(), "", func(oi repo.ObjectInfo) error {
		out[oi.Name] = oi.Size
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestS3DegradedSyncRestore: one S3 server down, the backup completes at
// the other and is degraded; after a restart Sync makes the two buckets
// hold identical object sets, each passes Check alone and restores alone.
func TestS3DegradedSyncRestore(t *testing.T) {
	start := time.Now()
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, res, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil || countOK(res) != 2 {
		t.Fatalf("Init: %v %+v", err, res)
	}
	a, b := randomStream("a", 1, 3<<20), textStream("b", loremParagraph, 1<<20)
	res1 := backup(t, f.open(), a)
	if len(res1.Committed) != 2 {
		t.Fatalf("first backup committed at %v", res1.Committed)
	}

	f.srv[1].Stop()
	res2 := backup(t, f.open(), a, b)
	if !res2.Degraded(2) || strings.Join(res2.Committed, ",") != "s3-amsterdam" {
		t.Fatalf("backup with groningen down: committed at %v, degraded %v", res2.Committed, res2.Degraded(2))
	}
	f.srv[1].Restart(t)

	r := f.open()
	sr, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sr {
		if !s.Complete() {
			t.Fatalf("sync at %s incomplete: %+v", s.Location, s)
		}
	}
	if sr[0].Copied != 0 || sr[1].Copied == 0 || sr[1].Bytes == 0 {
		t.Errorf("sync copied %+v, want objects to groningen only", sr)
	}
	if fmt.Sprint(keys(f.objects(0))) != fmt.Sprint(keys(f.objects(1))) {
		t.Fatalf("after sync the buckets differ:\n%v\n%v", keys(f.objects(0)), keys(f.objects(1)))
	}
	if again, err := r.Sync(ctx); err != nil || again[0].Copied+again[1].Copied != 0 {
		t.Errorf("a second sync copied %+v, %v; want nothing", again, err)
	}
	checkAll(t, f.open())

	// Each location restores alone.
	for i := range f.locs {
		verifyRestore(t, f.open(f.locs[i]), res2.ID, a, b)
		verifyRestore(t, f.open(f.locs[i]), res1.ID, a)
	}
	t.Logf("S3 degraded/sync/restore: %v", time.Since(start).Round(time.Millisecond))
}

// TestS3CorruptFallback: a damaged pack at one S3 location; restore
// succeeds from the other and the log names the object and the location;
// check of the damaged location alone fails naming the pack.
func TestS3CorruptFallback(t *testing.T) {
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 7, 2<<20)
	res := backup(t, f.open(), a)
	var pack string
	for name := range f.objects(0) {
		if strings.Contains(name, "/data/") {
			pack = name
			break
		}
	}
	// Damage the stored bytes behind the server's back.
	p := f.srv[0].ObjectPath(f.bucket, "backups/"+pack)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	verifyRestore(t, f.open(), res.ID, a)
	if log := f.log.String(); !strings.Contains(log, pack) || !strings.Contains(log, "s3-amsterdam") {
		t.Errorf("the fallback was not logged naming %s at s3-amsterdam:\n%s", pack, log)
	}
	c := checkAt(t, f.open(), "s3-amsterdam")
	if c.OK() || !strings.Contains(strings.Join(c.Errors, "\n"), pack) {
		t.Errorf("check of s3-amsterdam: %v, want an error naming %s", c.Errors, pack)
	}
	if c := checkAt(t, f.open(), "s3-groningen"); !c.OK() {
		t.Errorf("check of s3-groningen: %v", c.Errors)
	}
}

// TestS3PruneSkipsLocked: prune cannot delete objects under Object Lock
// before their retention ends; it skips them with a note and succeeds,
// and the data stays.
func TestS3PruneSkipsLocked(t *testing.T) {
	f := newS3Fixture(t)
	ctx := context.Background()
	if _, _, err := repo.Init(ctx, testTenant, f.locs, f.opts()); err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 3, 1<<20)
	res := backup(t, f.open(), a)
	// A pack no index names: what an interrupted backup leaves.
	orphan := []byte("an orphaned pack")
	name := testTenant + "/data/" + fmt.Sprintf("%x", sha256.Sum256(orphan))[:2] + "/" + fmt.Sprintf("%x", sha256.Sum256(orphan))
	for _, l := range f.locs {
		if err := l.Put(ctx, name, orphan); err != nil {
			t.Fatal(err)
		}
	}
	pr, err := f.open().Prune(ctx, repo.PruneOptions{})
	if err != nil {
		t.Fatalf("prune with locked objects: %v", err)
	}
	if pr.Retained != 2 {
		t.Errorf("prune result %+v: want 2 retained objects", pr)
	}
	if !strings.Contains(f.log.String(), "retention") {
		t.Errorf("prune did not note the retained objects:\n%s", f.log.String())
	}
	for _, l := range f.locs {
		if _, err := l.Stat(ctx, name); err != nil {
			t.Errorf("locked pack at %s: %v", l.Name(), err)
		}
	}
	verifyRestore(t, f.open(), res.ID, a)
	// Check without reading data: the orphan is not a real pack.
	cs, err := f.open().Check(ctx, repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !c.OK() {
			t.Errorf("check at %s: %v", c.Location, c.Errors)
		}
	}
}

func countOK(rs []repo.LocationResult) int {
	n := 0
	for _, r := range rs {
		if r.OK {
			n++
		}
	}
	return n
}
