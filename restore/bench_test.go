package restore

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// benchRegister is a register whose access log holds n lines signed by
// its key, with the appliance's checkpoint of them beside it, written
// directly (one write) rather than by n appends.
func benchRegister(b *testing.B, n int) (*Register, *keyring.Ring) {
	b.Helper()
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	g := &Register{StateDir: b.TempDir(), Key: key, Appliance: "ams-1"}
	ring, err := g.Ring()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(g.StateDir, dossier.AccessLogFileName)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = chain.AppendAfter(path, key, t0, func(*chain.Line) ([]any, error) {
		bodies := make([]any, n)
		for i := range bodies {
			bodies[i] = dossier.Access{Kind: "dossier-access", Time: t0, Operator: "alice", Tenant: "praktijk", ID: fmt.Sprint(i), Snapshot: "s1", Action: "show", Result: "ok"}
		}
		return bodies, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.sign(context.Background(), dossier.LogNameAccess, ring, nil, nil); err != nil {
		b.Fatal(err)
	}
	return g, ring
}

// BenchmarkRegisterAppend is one dossier view logged (Register.LogAccess
// without a repository: the local append and its signed checkpoint) on
// an access log of 1k, 10k and 100k lines.
func BenchmarkRegisterAppend(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g, _ := benchRegister(b, n)
			a := dossier.Access{Time: time.Now(), Operator: "alice", Tenant: "praktijk", ID: "42", Snapshot: "s1", Action: "show", Result: "ok"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := g.LogAccess(context.Background(), nil, a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckAnchored is the check every register command and every
// anchored append runs first (dossier.CheckAnchored of both logs, the
// access log of 1k, 10k and 100k lines, against its newest anchor).
func BenchmarkCheckAnchored(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g, ring := benchRegister(b, n)
			cp, err := dossier.ReadCheckpoint(g.StateDir, dossier.LogNameAccess)
			if err != nil {
				b.Fatal(err)
			}
			es, err := chain.Read(filepath.Join(g.StateDir, dossier.AccessLogFileName))
			if err != nil {
				b.Fatal(err)
			}
			rec, _, err := dossier.NewCheckpointedRecord(dossier.LogNameAccess, g.Key, es[len(es)-1], cp)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := dossier.CheckAnchored(g.StateDir, g.Appliance, ring, []dossier.Record{rec}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingLoc counts the objects a command reads from a location (Get
// calls and bytes) and its listings. Its Put writes like the local
// backend but without the fsyncs, so that the setup of 10,000 records
// takes seconds.
type countingLoc struct {
	*local.Location
	gets, bytes, lists atomic.Int64
}

func (c *countingLoc) Put(ctx context.Context, name string, data []byte) error {
	p := filepath.Join(c.Root(), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o600)
}

func (c *countingLoc) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	rc, err := c.Location.Get(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	c.gets.Add(1)
	return countingReader{rc, &c.bytes}, nil
}

func (c *countingLoc) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	c.lists.Add(1)
	return c.Location.List(ctx, prefix, fn)
}

// counts returns the objects read, bytes read and listings made so far
// at locs.
func counts(locs []*countingLoc) (gets, bytes, lists int64) {
	for _, l := range locs {
		gets, bytes, lists = gets+l.gets.Load(), bytes+l.bytes.Load(), lists+l.lists.Load()
	}
	return
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// benchAnchored is benchRegister with every access log line anchored as
// a version 2 record in the repository of tenant praktijk at two local
// locations (as n LogAccess calls would have left it).
func benchAnchored(b *testing.B, n int) (*Register, []*countingLoc, repo.Options) {
	b.Helper()
	ctx := context.Background()
	g, _ := benchRegister(b, n)
	locs := []*countingLoc{{Location: local.New("a", b.TempDir())}, {Location: local.New("b", b.TempDir())}}
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	opts := repo.Options{Master: mk, CacheDir: filepath.Join(g.StateDir, "cache")}
	r, _, err := repo.Init(ctx, "praktijk", []repo.Location{locs[0], locs[1]}, opts)
	if err != nil {
		b.Fatal(err)
	}
	es, err := chain.Read(filepath.Join(g.StateDir, dossier.AccessLogFileName))
	if err != nil {
		b.Fatal(err)
	}
	raw := make([][]byte, len(es))
	for i, e := range es {
		if raw[i], err = chain.Sign(g.Key, e); err != nil {
			b.Fatal(err)
		}
	}
	t, err := dossier.Tree(raw)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range es {
		cp, err := dossier.SignCheckpoint(g.Key, dossier.LogNameAccess, g.Appliance, t, int64(e.Seq))
		if err != nil {
			b.Fatal(err)
		}
		_, rec, err := dossier.NewCheckpointedRecord(dossier.LogNameAccess, g.Key, e, cp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.PutRegisterRecord(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	return g, locs, opts
}

// dossierCommand is the register work of one `kluis dossier show` in a
// new process: open the repository, check the erasure register against
// its anchors (the erasure refusal), and append the access record with
// its anchor (which checks again first). It returns what the register
// work read from the locations (counts), opening the repository aside.
func dossierCommand(b *testing.B, g *Register, locs []*countingLoc, opts repo.Options) (gets, bytes, lists int64) {
	ctx := context.Background()
	r, err := repo.Open(ctx, "praktijk", []repo.Location{locs[0], locs[1]}, opts)
	if err != nil {
		b.Fatal(err)
	}
	g0, b0, l0 := counts(locs)
	if _, err := g.Erasures(ctx, r); err != nil {
		b.Fatal(err)
	}
	a := dossier.Access{Time: time.Now().UTC(), Operator: "alice", Tenant: "praktijk", ID: "42", Snapshot: "s1", Action: "show", Result: "ok"}
	if err := g.LogAccess(ctx, r, a); err != nil {
		b.Fatal(err)
	}
	g1, b1, l1 := counts(locs)
	return g1 - g0, b1 - b0, l1 - l0
}

// BenchmarkDossierRegister is the register work of one dossier command
// (dossierCommand) on a tenant whose access log holds 100, 1,000 and
// 10,000 anchored lines: "first" is the first command after the
// upgrade (or with the cache directory lost), "next" the one after it,
// each in a new process; "daemon" is the next in the same process (the
// portal), which remembers the checkpoints it verified. It reports the
// objects and bytes read from the two locations and the listings made.
func BenchmarkDossierRegister(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000} {
		g, locs, opts := benchAnchored(b, n)
		for _, run := range []string{"first", "next", "daemon"} {
			b.Run(fmt.Sprintf("%d/%s", n, run), func(b *testing.B) {
				var gets, bytes, lists int64
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if run == "first" {
						os.RemoveAll(opts.CacheDir)
					}
					if run != "daemon" {
						dossier.ForgetOpenedCheckpoints()
					}
					b.StartTimer()
					g, by, l := dossierCommand(b, g, locs, opts)
					gets, bytes, lists = gets+g, bytes+by, lists+l
				}
				b.ReportMetric(float64(gets)/float64(b.N), "objects/op")
				b.ReportMetric(float64(bytes)/float64(b.N), "readbytes/op")
				b.ReportMetric(float64(lists)/float64(b.N), "lists/op")
			})
		}
	}
}
