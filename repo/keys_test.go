package repo_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/repo"
)

func TestWrongMasterKey(t *testing.T) {
	f := newFixture(t)
	f.init()
	_, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: testMaster(t)})
	if !errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("Open with another master key = %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "master key does not open") {
		t.Errorf("message does not say what is wrong: %v", err)
	}
	t.Logf("%v", err)
}

func TestNoRepository(t *testing.T) {
	f := newFixture(t)
	_, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master})
	if !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "kluis init") {
		t.Fatalf("Open without a repository = %v, want ErrNotFound with a hint", err)
	}
	f.init()
	if _, _, err := repo.Init(context.Background(), f.tenant, f.locs, f.opts); err == nil {
		t.Fatal("a second Init succeeded")
	}
}

// One tenant's key file (or config) put into another tenant's repository
// never opens it: the key-encryption key and the sealed key bind tenant and
// repository id.
func TestKeyFileOfAnotherTenant(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.init()
	g := &fixture{t: t, tenant: "praktijk-b", master: f.master, mems: f.mems, faults: f.faults, locs: f.locs, opts: f.opts}
	g.init()
	keyA, keyB := f.names(0, "keys")[0], g.names(0, "keys")[0]
	kbA, _ := f.mems[0].Bytes(keyA)
	kbB, _ := f.mems[0].Bytes(keyB)

	t.Run("key file swapped in", func(t *testing.T) {
		for i := range g.mems {
			g.mems[i].Remove(keyB)
			g.mems[i].Replace("praktijk-b/keys/"+path.Base(keyA), kbA)
		}
		defer func() {
			for i := range g.mems {
				g.mems[i].Remove("praktijk-b/keys/" + path.Base(keyA))
				g.mems[i].Replace(keyB, kbB)
			}
		}()
		_, err := repo.Open(ctx, g.tenant, g.locs, repo.Options{Master: g.master})
		if !errors.Is(err, repo.ErrWrongKey) && !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("Open with tenant a's key file = %v, want ErrWrongKey or ErrCorrupt", err)
		}
		t.Logf("%v", err)
	})
	t.Run("key file added", func(t *testing.T) {
		for i := range g.mems {
			g.mems[i].Replace("praktijk-b/keys/"+path.Base(keyA), kbA)
		}
		defer func() {
			for i := range g.mems {
				g.mems[i].Remove("praktijk-b/keys/" + path.Base(keyA))
			}
		}()
		// The stranger is skipped; tenant b's own key opens the repository.
		r := g.open()
		backup(t, r, bytesStream("x", []byte("b's data")))
	})
	t.Run("config swapped in", func(t *testing.T) {
		cfgA, _ := f.mems[0].Bytes("praktijk-a/config")
		cfgB, _ := f.mems[0].Bytes("praktijk-b/config")
		for i := range g.mems {
			g.mems[i].Replace("praktijk-b/config", cfgA)
		}
		defer func() {
			for i := range g.mems {
				g.mems[i].Replace("praktijk-b/config", cfgB)
			}
		}()
		_, err := repo.Open(ctx, g.tenant, g.locs, repo.Options{Master: g.master})
		if !errors.Is(err, repo.ErrWrongKey) && !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("Open with tenant a's config = %v, want ErrWrongKey or ErrCorrupt", err)
		}
	})
	t.Run("key file decoded as another tenant's", func(t *testing.T) {
		cfgB := g.open().Config()
		_, err := repo.DecodeKeyFile(kbA, f.master, g.tenant, cfgB.ID)
		if !errors.Is(err, repo.ErrWrongKey) {
			t.Fatalf("decode = %v, want ErrWrongKey", err)
		}
	})
}

// The recovery copy of a key file opens with the offline age identity and
// yields the same key; another identity gets ErrWrongKey.
func TestRecovery(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	f := newFixture(t)
	f.opts.RecoveryRecipient = id.Recipient().String()
	r := f.init()
	kb, _ := f.mems[0].Bytes(f.names(0, "keys")[0])
	if bytes.Contains(kb, []byte("AGE-SECRET-KEY")) {
		t.Fatal("key file holds a secret age key")
	}
	k, err := repo.DecodeRecovery(kb, []age.Identity{id}, f.tenant, r.Config().ID)
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if !bytes.Equal(k.FingerprintKey, r.FingerprintKey()) || k.RepoID != r.Config().ID || k.Tenant != f.tenant {
		t.Fatal("recovered key differs from the repository's")
	}
	master, err := repo.DecodeKeyFile(kb, f.master, f.tenant, r.Config().ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(master.DataKey, k.DataKey) || !bytes.Equal(master.IDKey, k.IDKey) || master.Pol != k.Pol {
		t.Fatal("recovery and master copies hold different keys")
	}
	if _, err := repo.DecodeRecovery(kb, []age.Identity{other}, f.tenant, r.Config().ID); !errors.Is(err, repo.ErrWrongKey) {
		t.Errorf("recovery with another identity = %v, want ErrWrongKey", err)
	}
	if _, err := repo.DecodeRecovery(kb, []age.Identity{id}, "praktijk-b", r.Config().ID); !errors.Is(err, repo.ErrWrongKey) {
		t.Errorf("recovery for another tenant = %v, want ErrWrongKey", err)
	}

	g := newFixture(t)
	rg := g.init()
	kb2, _ := g.mems[0].Bytes(g.names(0, "keys")[0])
	if _, err := repo.DecodeRecovery(kb2, []age.Identity{id}, g.tenant, rg.Config().ID); err == nil || !strings.Contains(err.Error(), "no recovery copy") {
		t.Errorf("recovery of a key file without a recovery copy = %v", err)
	}

	h := newFixture(t)
	h.opts.RecoveryRecipient = "age1notarecipient"
	if _, _, err := repo.Init(context.Background(), h.tenant, h.locs, h.opts); err == nil {
		t.Error("Init with an invalid recovery recipient succeeded")
	}
}

func TestApplianceKeys(t *testing.T) {
	dir := t.TempDir()
	mp, sp := filepath.Join(dir, "keys", "master.key"), filepath.Join(dir, "keys", "signing.pem")
	pub, err := repo.InitApplianceKeys(mp, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.InitApplianceKeys(mp, sp); err == nil {
		t.Fatal("InitApplianceKeys overwrote existing keys")
	}
	for _, p := range []string{mp, sp} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v", p, fi.Mode(), err)
		}
	}
	mk, err := repo.LoadMasterKey(mp)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := repo.ParseMasterKey(mk.Encode()); err != nil || again != mk {
		t.Fatalf("master key does not round-trip: %v", err)
	}
	sk, err := repo.LoadSigningKey(sp)
	if err != nil {
		t.Fatal(err)
	}
	if !sk.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("signing key does not match the public key returned")
	}
	pem, err := repo.EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := repo.ParsePublicKey(pem); err != nil || !back.Equal(pub) {
		t.Fatalf("public key does not round-trip: %v", err)
	}

	// A key file others can read is refused, with the fix in the message.
	if err := os.Chmod(mp, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.LoadMasterKey(mp); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadMasterKey of a 0644 file = %v", err)
	}
	for _, bad := range []string{"", "# only a comment\n", "KLUIS-MASTER-KEY-1-tooshort\n", "something else\n"} {
		if _, err := repo.ParseMasterKey([]byte(bad)); err == nil {
			t.Errorf("ParseMasterKey(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "tooshort") {
			t.Errorf("error echoes the key file: %v", err)
		}
	}
}
