package repo_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// dirLocations makes two local-directory locations.
func dirLocations(t *testing.T) ([]repo.Location, []string) {
	t.Helper()
	dirs := []string{t.TempDir(), t.TempDir()}
	return []repo.Location{local.New("amsterdam", dirs[0]), local.New("groningen", dirs[1])}, dirs
}

// tree lists every file under dir with its SHA-256, to show nothing was
// written.
func tree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// plantKeyFile is the attack of issue 14 point 3: with write access to one
// location, and the recovery recipient (it is in every key file), make a
// key file of one's own that the recovery identity opens, named so that it
// sorts before the genuine one. It returns the planted key and the name.
func plantKeyFile(t *testing.T, dir string, genuineName string) (*repo.TenantKey, string) {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, testTenant, "config"))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, genuineName))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		RepoID            string `json:"repo_id"`
		RecoveryRecipient string `json:"recovery_recipient"`
	}
	if err := json.Unmarshal(kb, &env); err != nil {
		t.Fatal(err)
	}
	k, err := repo.NewTenantKey(testTenant, env.RepoID, sha256.Sum256(cb), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for {
		var junk repo.MasterKey
		rand.Read(junk[:])
		pb, err := repo.EncodeKeyFile(k, junk, env.RecoveryRecipient, nil)
		if err != nil {
			t.Fatal(err)
		}
		name := testTenant + "/keys/" + repo.Hash(sha256.Sum256(pb)).String()
		if name < genuineName {
			if err := os.WriteFile(filepath.Join(dir, name), pb, 0o600); err != nil {
				t.Fatal(err)
			}
			return k, name
		}
	}
}

// TestRecoverRefusesPlantedKeyFile (issue 14 point 3): an attacker who can
// write to one location plants a key file the offline recovery identity
// opens. Normal open still uses the genuine key; recovery without the lost
// appliance's signing public key refuses, names both key files and writes
// nothing; with it, it recovers the genuine key, reports the planted file,
// every snapshot restores from each location alone, and check names the
// planted key file.
func TestRecoverRefusesPlantedKeyFile(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pub, signer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	locs, dirs := dirLocations(t)
	oldOpts := repo.Options{Master: testMaster(t), RecoveryRecipient: id.Recipient().String(), Signer: signer, Chunker: testParams, PackSize: testPackSize}
	r, _, err := repo.Init(ctx, testTenant, locs, oldOpts)
	if err != nil {
		t.Fatal(err)
	}
	a := randomStream("a", 21, 300<<10)
	res := backup(t, r, a)
	genuine := keyFileNames(t, dirs[0])[0]

	planted, plantedName := plantKeyFile(t, dirs[0], genuine)

	// Normal open is not hijacked: the planted file sorts first, but only
	// the master key's own copy opens.
	ro, err := repo.Open(ctx, testTenant, locs, oldOpts)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ro.FingerprintKey(), planted.FingerprintKey) {
		t.Fatal("Open took the planted key")
	}
	verifyRestore(t, ro, res.ID, a)
	// Sync never spreads the planted key file to the other location.
	if _, err := ro.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs[1], plantedName)); err == nil {
		t.Fatal("sync copied the planted key file to groningen")
	}

	// The appliance is lost; a new one recovers.
	newOpts := repo.Options{Master: testMaster(t), RecoveryRecipient: id.Recipient().String(), Chunker: testParams, PackSize: testPackSize}
	before := []map[string][32]byte{tree(t, dirs[0]), tree(t, dirs[1])}
	_, _, err = repo.Recover(ctx, testTenant, locs, repo.RecoverOptions{Identities: []age.Identity{id}}, newOpts)
	if err == nil {
		t.Fatal("recovery with a planted key file at one location succeeded without the signing key")
	}
	for _, want := range []string{plantedName, genuine, "disagree", "nothing was written"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal does not name %q: %v", want, err)
		}
	}
	for i, d := range dirs {
		if after := tree(t, d); !sameTree(before[i], after) {
			t.Errorf("refused recovery wrote at location %d", i)
		}
	}

	// With the lost appliance's signing public key from the recovery kit.
	rr, lr, err := repo.Recover(ctx, testTenant, locs, repo.RecoverOptions{Identities: []age.Identity{id}, Signers: []ed25519.PublicKey{pub}, RequireSigned: true}, newOpts)
	if err != nil {
		t.Fatalf("recovery with the signing key: %v", err)
	}
	if bytes.Equal(rr.FingerprintKey(), planted.FingerprintKey) || !bytes.Equal(rr.FingerprintKey(), r.FingerprintKey()) {
		t.Fatal("recovery did not take the genuine key")
	}
	if len(lr[0].Warnings) != 1 || !strings.Contains(lr[0].Warnings[0], plantedName) {
		t.Errorf("recovery results do not report the planted key file at amsterdam: %+v", lr)
	}
	for _, l := range locs {
		rl, err := repo.Open(ctx, testTenant, []repo.Location{l}, newOpts)
		if err != nil {
			t.Fatalf("open at %s with the new master key: %v", l.Name(), err)
		}
		verifyRestore(t, rl, res.ID, a)
	}
	c := checkAt(t, rr, "amsterdam")
	if !strings.Contains(strings.Join(c.Warnings, "\n"), plantedName) {
		t.Errorf("check of amsterdam does not name the planted key file: %v %v", c.Errors, c.Warnings)
	}
	// The lost appliance's genuine key file is recorded as superseded (a
	// note); the planted one is not (it stays a warning).
	if notes := strings.Join(c.Notes, "\n"); !strings.Contains(notes, genuine+": the lost appliance's key file, superseded") || strings.Contains(notes, plantedName) {
		t.Errorf("check of amsterdam: notes %q, want %s superseded and not %s", c.Notes, genuine, plantedName)
	}
	if strings.Contains(strings.Join(c.Warnings, "\n"), genuine) {
		t.Errorf("check of amsterdam warns about the superseded key file: %q", c.Warnings)
	}
	if g := checkAt(t, rr, "groningen"); len(g.Warnings) > 0 || len(g.Errors) > 0 || len(g.Notes) != 1 {
		t.Errorf("check of groningen: %+v, want one note (the superseded key file)", g)
	}
}

// TestRecoverKeyConfirmation (issue 14 point 3): an attacker who can write
// to the only reachable copy replaces the key file by their own. Without
// a signing key to check, recovery still refuses before writing: the key
// does not open the sealed snapshots and indexes stored.
func TestRecoverKeyConfirmation(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	locs, dirs := dirLocations(t)
	opts := repo.Options{Master: testMaster(t), RecoveryRecipient: id.Recipient().String(), Chunker: testParams, PackSize: testPackSize}
	r, _, err := repo.Init(ctx, testTenant, locs, opts)
	if err != nil {
		t.Fatal(err)
	}
	backup(t, r, randomStream("a", 22, 100<<10))
	genuine := keyFileNames(t, dirs[0])[0]
	plantKeyFile(t, dirs[0], genuine)
	if err := os.Remove(filepath.Join(dirs[0], genuine)); err != nil {
		t.Fatal(err)
	}
	// The other location is gone for good.
	one := locs[:1]
	before := tree(t, dirs[0])
	_, _, err = repo.Recover(ctx, testTenant, one, repo.RecoverOptions{Identities: []age.Identity{id}}, repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize})
	if err == nil || !strings.Contains(err.Error(), "opens none of the") {
		t.Fatalf("recovery of a planted key that opens nothing = %v, want a refusal", err)
	}
	if !sameTree(before, tree(t, dirs[0])) {
		t.Error("refused recovery wrote")
	}
}

func keyFileNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, testTenant, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, testTenant+"/keys/"+e.Name())
	}
	sort.Strings(out)
	return out
}

func sameTree(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOpenRefusesTwoMasterKeys: two key files that both open with the
// master key but hold different keys (what an accepted forgery would have
// left) make open refuse that location's copy, naming both.
func TestOpenRefusesTwoMasterKeys(t *testing.T) {
	ctx := context.Background()
	locs, dirs := dirLocations(t)
	opts := repo.Options{Master: testMaster(t), Chunker: testParams, PackSize: testPackSize}
	r, _, err := repo.Init(ctx, testTenant, locs, opts)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(filepath.Join(dirs[0], testTenant, "config"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := repo.NewTenantKey(testTenant, r.Config().ID, sha256.Sum256(cb), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kb, err := repo.EncodeKeyFile(other, opts.Master, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	name := testTenant + "/keys/" + repo.Hash(sha256.Sum256(kb)).String()
	if err := os.WriteFile(filepath.Join(dirs[0], name), kb, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Open(ctx, testTenant, locs[:1], opts)
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "different keys") {
		t.Fatalf("Open with two different keys under the master key = %v", err)
	}
	if _, err := repo.Open(ctx, testTenant, locs, opts); err != nil {
		t.Fatalf("Open falls back to the other location: %v", err)
	}
}
