package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
)

// withRecoveryRecipient adds appliance.recovery_recipient to the env's
// config and returns the identity (the offline recovery kit's secret).
func (e *env) withRecoveryRecipient() *age.X25519Identity {
	e.t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	old := "signing_key_file: ./secrets/signing.key}"
	if !bytes.Contains(b, []byte(old)) {
		e.t.Fatalf("testdata/config/cli.yaml changed: no %q", old)
	}
	b = bytes.Replace(b, []byte(old), []byte("signing_key_file: ./secrets/signing.key, recovery_recipient: "+id.Recipient().String()+"}"), 1)
	if err := os.WriteFile(e.cfg, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// dirTree maps every file under dir to its SHA-256.
func dirTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			out[p] = hex.EncodeToString(s[:])
		}
		return nil
	})
	return out
}

// forgeKeyFile writes, at one location, the key file an attacker holding
// that location's credential can make from public information alone: key
// material of their own, encrypted with age to the recovery recipient
// named in the genuine key file, bound to the config beside it. The name
// is ground to sort before every genuine key file.
func forgeKeyFile(t *testing.T, locDir string) string {
	t.Helper()
	keysDir := filepath.Join(locDir, tenant, "keys")
	ents, err := os.ReadDir(keysDir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no key files at %s: %v", keysDir, err)
	}
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	genuine, err := os.ReadFile(filepath.Join(keysDir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(genuine, &env); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(locDir, tenant, "config"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := chunk.RandomPol()
	if err != nil {
		t.Fatal(err)
	}
	k := repo.TenantKey{Tenant: tenant, RepoID: env["repo_id"].(string), Created: time.Now().UTC(), Pol: pol,
		DataKey: random(t, 32), IDKey: random(t, 32), FingerprintKey: random(t, 32), ConfigSHA256: hexSum(cfg)}
	plain, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	rcpt, err := age.ParseX25519Recipient(env["recovery_recipient"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for {
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		w, err := age.Encrypt(aw, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		aw.Close()
		forged, err := json.MarshalIndent(map[string]any{
			"version": 1, "tenant": tenant, "repo_id": k.RepoID,
			"master":   map[string]any{"kdf": "hkdf-sha256", "aead": "xchacha20-poly1305", "salt": random(t, 32), "sealed": random(t, 120)},
			"recovery": buf.String(), "recovery_recipient": env["recovery_recipient"],
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		name := hexSum(forged)
		if name < names[0] {
			if err := os.WriteFile(filepath.Join(keysDir, name), forged, 0o600); err != nil {
				t.Fatal(err)
			}
			return tenant + "/keys/" + name
		}
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestKeysRecoverPlantedKeyFile (issue 14 point 3, through the CLI): the
// appliance is lost after someone with amsterdam's credential planted a
// key file the recovery identity opens. `kluis keys recover` refuses,
// naming both key files, and writes nothing; with the lost appliance's
// signing public key from the recovery kit it recovers the genuine key and
// warns about the planted file; the snapshot restores from each location
// alone, and check names the planted key file.
func TestKeysRecoverPlantedKeyFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.withRecoveryRecipient()
	initRepo(e)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	snap := e.backup(0, input)
	kit := e.path("kit")
	if err := os.MkdirAll(kit, 0o700); err != nil {
		t.Fatal(err)
	}
	pub := e.mustRun(0, "keys", "public")
	if err := os.WriteFile(filepath.Join(kit, "signing.pub"), []byte(pub.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kit, "recovery.txt"), []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.secrets["recovery identity"] = id.String()

	planted := forgeKeyFile(t, e.path("loc-a"))

	// The appliance is lost: a new one, with new keys.
	if err := os.Rename(e.path("secrets"), e.path("secrets-lost")); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	before := []map[string]string{dirTree(t, e.path("loc-a")), dirTree(t, e.path("loc-g"))}
	r := e.run("keys", "recover", "--tenant", tenant, "--identity", filepath.Join(kit, "recovery.txt"))
	if r.code != 1 {
		t.Fatalf("keys recover with a planted key file: want exit 1, got %v", r)
	}
	for _, want := range []string{filepath.Base(planted), "disagree", "nothing was written", "amsterdam", "groningen"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal does not name %q: %v", want, r)
		}
	}
	for i, loc := range []string{"loc-a", "loc-g"} {
		after := dirTree(t, e.path(loc))
		if len(after) != len(before[i]) {
			t.Errorf("refused recovery wrote at %s", loc)
		}
		for p, h := range before[i] {
			if after[p] != h {
				t.Errorf("refused recovery changed %s", p)
			}
		}
	}

	var out struct {
		Locations []repo.LocationResult `json:"locations"`
	}
	e.mustJSON(0, &out, "keys", "recover", "--tenant", tenant, "--identity", filepath.Join(kit, "recovery.txt"),
		"--signing-public-key", filepath.Join(kit, "signing.pub"))
	if len(out.Locations) != 2 || !out.Locations[0].OK || !out.Locations[1].OK {
		t.Fatalf("recover with the signing key: %+v", out.Locations)
	}
	if w := strings.Join(out.Locations[0].Warnings, "\n"); !strings.Contains(w, planted) {
		t.Errorf("recover does not warn about the planted key file at amsterdam: %+v", out.Locations)
	}
	for _, loc := range []string{"amsterdam", "groningen"} {
		e.restoreEqual(snap, input, "--location", loc)
	}
	var chk checkOutput
	e.mustJSON(0, &chk, "check", "--tenant", tenant)
	if w := strings.Join(checkOf(t, chk, "amsterdam").Warnings, "\n"); !strings.Contains(w, planted) {
		t.Errorf("check does not name the planted key file at amsterdam: %+v", chk.Locations)
	}
}

// TestInitSquattedPrefix (issue 14 point 7, through the CLI): another
// installation's repository sits under the tenant's id at amsterdam
// (planted with amsterdam's credential). `kluis init` reports amsterdam
// and creates the repository at groningen (exit 3, degraded); backups run
// degraded; the snapshot restores from groningen; check names amsterdam's
// config.
func TestInitSquattedPrefix(t *testing.T) {
	t.Parallel()
	squatter := newEnv(t)
	initRepo(squatter)
	e := newEnv(t)
	e.keysInit()
	if err := os.CopyFS(e.path("loc-a", tenant), os.DirFS(squatter.path("loc-a", tenant))); err != nil {
		t.Fatal(err)
	}
	var initOut struct {
		Locations []repo.LocationResult `json:"locations"`
	}
	e.mustJSON(3, &initOut, "init", "--tenant", tenant)
	if len(initOut.Locations) != 2 || initOut.Locations[0].OK || !strings.Contains(initOut.Locations[0].Error, "not this appliance's repository") || !initOut.Locations[1].OK {
		t.Fatalf("init with a squatted amsterdam: %+v", initOut.Locations)
	}
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	snap := e.backup(3, input)
	e.restoreEqual(snap, input, "--location", "groningen")
	e.restoreEqual(snap, input)
	var chk checkOutput
	e.mustJSON(1, &chk, "check", "--tenant", tenant)
	ams, gro := checkOf(t, chk, "amsterdam"), checkOf(t, chk, "groningen")
	if errs := strings.Join(ams.Errors, "\n"); !strings.Contains(errs, tenant+"/config") || !strings.Contains(errs, "planted") {
		t.Errorf("check does not name amsterdam's config: %+v", ams)
	}
	if len(gro.Errors) != 0 {
		t.Errorf("check of groningen: %v", gro.Errors)
	}
}

func checkOf(t *testing.T, out checkOutput, location string) checkLocation {
	t.Helper()
	for _, l := range out.Locations {
		if l.Location == location {
			return l
		}
	}
	t.Fatalf("check output has no location %s: %+v", location, out)
	return checkLocation{}
}
