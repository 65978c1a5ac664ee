package restore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/restore/dossier"
)

func newSigningKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// drRegister is a register of the lost appliance (key old) with one
// erasure and one access record anchored in r, and the register of its
// replacement (a new key and an empty state directory) that trusts old
// as its previous key and has recovered the logs from r.
func drRegister(t *testing.T, withRecords bool) (*repo.Repo, ed25519.PrivateKey, *Register) {
	t.Helper()
	ctx := context.Background()
	mk, _ := repo.GenerateMasterKey()
	r, _, err := repo.Init(ctx, "praktijk", []repo.Location{local.New("a", t.TempDir()), local.New("b", t.TempDir())}, repo.Options{Master: mk})
	if err != nil {
		t.Fatal(err)
	}
	old := newSigningKey(t)
	lost := &Register{StateDir: t.TempDir(), Key: old, Appliance: "ams-1"}
	if withRecords {
		if _, err := lost.AddErasure(ctx, r, dossier.Erasure{Tenant: "praktijk", ID: "3", Time: time.Now().UTC(), Reason: "AVG"}); err != nil {
			t.Fatal(err)
		}
		if err := lost.LogAccess(ctx, r, dossier.Access{Time: time.Now().UTC(), Tenant: "praktijk", ID: "4", Action: "show", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	cur := newSigningKey(t)
	g := &Register{StateDir: t.TempDir(), Key: cur, Appliance: "ams-1"}
	// Before the previous key is trusted, its records are refused.
	if _, err := g.Recover(ctx, []*repo.Repo{r}); withRecords && !errors.Is(err, keyring.ErrUntrusted) {
		t.Fatalf("recover without the previous key: want ErrUntrusted, got %v", err)
	}
	if _, err := keyring.AddPrevious(g.StateDir, cur, old.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Recover(ctx, []*repo.Repo{r}); err != nil {
		t.Fatalf("recover: %v", err)
	}
	list, err := g.Erasures(ctx, r)
	if err != nil || (withRecords && len(list) != 1) {
		t.Fatalf("erasures after the recovery: %v %+v", err, list)
	}
	return r, old, g
}

// plant seals into r a record of log whose line is signed by key, as the
// next line after the last the repository anchors (or at count when not
// 0): what a holder of the tenant key and of key can write at a location.
func plant(t *testing.T, r *repo.Repo, key ed25519.PrivateKey, log string, count uint64, body string) {
	t.Helper()
	ctx := context.Background()
	raw, err := r.RegisterRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var prev dossier.Record
	for _, b := range raw {
		// The attacker reads what is there: no signature checked.
		var rec dossier.Record
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Log == log && rec.Count > prev.Count && (count == 0 || rec.Count < count) {
			prev = rec
		}
	}
	e := chain.Entry{Seq: prev.Count + 1, Prev: prev.Head, Time: time.Now().UTC(), Body: []byte(body)}
	if prev.Count == 0 {
		e.Prev = chain.ZeroHash
	}
	_, b, err := dossier.NewRecord(log, key, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutRegisterRecord(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// TestRegisterAfterKeyRotationRefusesPlantedRecords: after a disaster
// recovery with a new key, records signed by an unknown key, or by the
// lost appliance's key after the rotation (its thief, who also holds the
// tenant key), are refused by every read of the register and by a
// rebuild; nothing of them reaches the local logs.
func TestRegisterAfterKeyRotationRefusesPlantedRecords(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		records bool
		signer  func(old ed25519.PrivateKey) ed25519.PrivateKey
		log     string
		want    error
	}{
		{"an unknown key adds an erasure", true, func(ed25519.PrivateKey) ed25519.PrivateKey { return newSigningKey(t) }, dossier.LogNameErasures, keyring.ErrUntrusted},
		{"the lost key adds an access record after the rotation", true, func(old ed25519.PrivateKey) ed25519.PrivateKey { return old }, dossier.LogNameAccess, dossier.ErrUnanchored},
		{"the lost key adds an erasure after the rotation", true, func(old ed25519.PrivateKey) ed25519.PrivateKey { return old }, dossier.LogNameErasures, dossier.ErrUnanchored},
		{"the lost key starts a log that was empty at the recovery", false, func(old ed25519.PrivateKey) ed25519.PrivateKey { return old }, dossier.LogNameErasures, dossier.ErrUnanchored},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, old, g := drRegister(t, c.records)
			before, _ := os.ReadFile(filepath.Join(g.StateDir, dossier.FileOf(c.log)))
			plant(t, r, c.signer(old), c.log, 0, `{"kind":"erasure","tenant":"praktijk","dossier_id":"7","erased_at":"2026-12-02T10:00:00Z","reason":"x","operator":"thief"}`)
			if _, err := g.Erasures(ctx, r); !errors.Is(err, c.want) {
				t.Fatalf("read of the register: want %v, got %v", c.want, err)
			}
			if err := g.LogAccess(ctx, r, dossier.Access{Time: time.Now().UTC(), Tenant: "praktijk", ID: "4", Action: "show", Result: "ok"}); err == nil {
				t.Fatal("an append after a planted record succeeded")
			}
			// A replacement appliance's rebuild refuses too.
			fresh := &Register{StateDir: t.TempDir(), Key: g.Key, Appliance: "ams-1"}
			ring, _ := g.Ring()
			for _, p := range ring.Previous() {
				keyring.AddPrevious(fresh.StateDir, g.Key, p, time.Now())
			}
			if _, err := fresh.Recover(ctx, []*repo.Repo{r}); err == nil {
				t.Fatal("a rebuild took the planted record")
			}
			after, _ := os.ReadFile(filepath.Join(g.StateDir, dossier.FileOf(c.log)))
			if string(after) != string(before) || strings.Contains(string(after), "thief") {
				t.Fatal("the planted record reached the local log")
			}
		})
	}
}
