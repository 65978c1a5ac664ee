package appliance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
)

// TestRecoverAfterApplianceLoss: an appliance with a recovery recipient
// backs up; the appliance (and its master key) is lost; a new appliance
// with a new master key recovers the tenant with the offline identity and
// restores the data.
func TestRecoverAfterApplianceLoss(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	locA, locB := t.TempDir(), t.TempDir()
	newAppliance := func(dir string) *Appliance {
		yaml := `
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key,
            recovery_recipient: ` + id.Recipient().String() + `}
locations:
  - {name: a, type: dir, path: ` + locA + `, country: NL, site: Amsterdam, provider: p1}
  - {name: b, type: dir, path: ` + locB + `, country: NL, site: Groningen, provider: p2}
tenants:
  - {id: praktijk-a, engine: files}
`
		if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse([]byte(yaml), dir)
		if err != nil {
			t.Fatal(err)
		}
		return New(c, nil)
	}

	old := newAppliance(t.TempDir())
	r, _, err := old.InitRepo(ctx, "praktijk-a")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("dossier 123456782 Jan de Vries\n"), 10000)
	b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "files"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stream(ctx, "db", repo.KindFile, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	fresh := newAppliance(t.TempDir())
	if _, err := fresh.OpenRepo(ctx, "praktijk-a"); !errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("a new master key must not open the old repository, got %v", err)
	}
	idFile := filepath.Join(t.TempDir(), "recovery.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fresh.RecoverRepo(ctx, "praktijk-a", RecoverOptions{IdentityFile: idFile}); err != nil {
		t.Fatal(err)
	}
	r2, err := fresh.OpenRepo(ctx, "praktijk-a")
	if err != nil {
		t.Fatalf("after recovery the new master key opens the repository: %v", err)
	}
	snap, err := r2.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := snap.Manifest.Stream("db")
	rd := r2.StreamReader(ctx, s)
	got, err := io.ReadAll(rd)
	rd.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore after recovery: err %v, equal %v", err, bytes.Equal(got, data))
	}

	wrong, _ := age.GenerateX25519Identity()
	os.WriteFile(idFile, []byte(wrong.String()+"\n"), 0o600)
	other := newAppliance(t.TempDir())
	if _, _, err := other.RecoverRepo(ctx, "praktijk-a", RecoverOptions{IdentityFile: idFile}); err == nil {
		t.Fatal("a wrong recovery identity must not recover")
	}
}
