package restore

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
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
	if _, err := g.sign(context.Background(), dossier.LogNameAccess, ring, nil); err != nil {
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
