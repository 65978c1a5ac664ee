package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
)

// newS3Env is an appliance whose two locations are buckets (under Object
// Lock) at two S3 servers, each with its own credentials in its own key
// files. The credentials are registered as secrets: no command may print
// them.
func newS3Env(t *testing.T) (*env, [2]*s3test.Server) {
	t.Helper()
	a, b := s3test.StartPair(t)
	srv := [2]*s3test.Server{a, b}
	e := newEnv(t)
	var locs strings.Builder
	for i, s := range srv {
		s.CreateBucket(t, "kluis", true)
		name, site := []string{"s3-ams", "s3-gro"}[i], []string{"Amsterdam", "Groningen"}[i]
		dir := e.path("secrets", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		idf, sf := s.KeyFiles(t, dir)
		e.secrets["S3 secret key of "+name] = s.SecretKey
		e.secrets["S3 access key of "+name] = s.AccessKey
		fmt.Fprintf(&locs, "  - {name: %s, type: s3, endpoint: %q, bucket: kluis, prefix: backups/, path_style: true, access_key_id_file: %s, secret_access_key_file: %s, object_lock: {mode: governance, days: 1}, country: NL, site: %s, provider: p%d}\n",
			name, s.Endpoint, idf, sf, site, i)
	}
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	start, end := strings.Index(s, "locations:\n"), strings.Index(s, "tenants:\n")
	s = s[:start] + "locations:\n" + locs.String() + s[end:]
	if err := os.WriteFile(e.cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, srv
}

func bucketNames(t *testing.T, s *s3test.Server) []string {
	t.Helper()
	l := s.Location(t, "list", "kluis", nil)
	var out []string
	if err := l.List(context.Background(), "", func(oi repo.ObjectInfo) error {
		out = append(out, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestS3Locations: a backup lands at both S3 servers; with one stopped the
// backup exits 3 and advises `kluis sync`; after a restart sync makes the
// buckets identical; each location then passes check alone and restores
// alone; config check --online reaches both. No credential is printed.
func TestS3Locations(t *testing.T) {
	t.Parallel()
	e, srv := newS3Env(t)
	e.keysInit()
	r := e.mustRun(0, "config", "check", "--online")
	if !strings.Contains(r.stdout, "location s3-ams: ok") || !strings.Contains(r.stdout, "location s3-gro: ok") {
		t.Fatalf("config check --online: %v", r)
	}
	// --json gives one document with both parts of the online check.
	r = e.mustRun(0, "config", "check", "--online", "--json")
	var verdict struct {
		OK        bool              `json:"ok"`
		Locations []json.RawMessage `json:"locations_online"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &verdict); err != nil || !verdict.OK || len(verdict.Locations) != 2 {
		t.Fatalf("config check --online --json is not one verdict with both locations (%v): %s", err, r.stdout)
	}
	e.mustRun(0, "init", "--tenant", tenant)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 3<<20)
	first := e.backup(0, input)
	if rows := e.snapshots(); len(rows) != 1 || !equalStrings(rows[0].Locations, []string{"s3-ams", "s3-gro"}) {
		t.Fatalf("snapshots: %+v, want one at both", rows)
	}

	srv[1].Stop()
	input2 := e.path("in2.bin")
	writeData(t, seededRand(t), input2, 2<<20)
	r = e.mustRun(3, "backup", "--tenant", tenant, "--file", "db="+input2)
	if !strings.Contains(r.stderr, "degraded") || !strings.Contains(r.stderr, "kluis sync") {
		t.Errorf("degraded backup does not advise kluis sync: %v", r)
	}
	e.mustRun(1, "sync", "--tenant", tenant) // groningen still down
	e.mustRun(1, "config", "check", "--online")
	srv[1].Restart(t)

	var out struct {
		OK      bool `json:"ok"`
		Tenants []struct {
			Locations []repo.SyncResult `json:"locations"`
		} `json:"tenants"`
	}
	e.mustJSON(0, &out, "sync", "--json")
	if !out.OK || len(out.Tenants) != 1 || out.Tenants[0].Locations[1].Copied == 0 {
		t.Errorf("sync --json: %+v", out)
	}
	if a, b := bucketNames(t, srv[0]), bucketNames(t, srv[1]); !equalStrings(a, b) {
		t.Fatalf("after sync the buckets differ:\n%v\n%v", a, b)
	}
	e.mustRun(0, "sync")
	for _, rows := range [][]snapshotRow{e.snapshots()} {
		for _, row := range rows {
			if row.Degraded {
				t.Errorf("snapshot %s still degraded after sync", row.ID)
			}
		}
	}
	e.checkOK("--location", "s3-ams")
	e.checkOK("--location", "s3-gro")
	// Each location restores alone ("latest" with one location down only
	// when asked for: it could be a rollback).
	for i := range srv {
		srv[i].Stop()
		e.restoreEqual(first, input)
		e.restoreEqual("latest", input2, "--allow-partial")
		srv[i].Restart(t)
	}

	// A corrupted pack at amsterdam: restore reads groningen and names
	// the object and the location; check of amsterdam fails naming it.
	names := bucketNames(t, srv[0])
	var pack string
	for _, n := range names {
		if strings.Contains(n, "/data/") {
			pack = n
			break
		}
	}
	p := srv[0].ObjectPath("kluis", pack)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r1, r2 := e.restoreEqual(first, input), e.restoreEqual("latest", input2)
	if logs := r1.stderr + r2.stderr; !strings.Contains(logs, filepath.Base(pack)) || !strings.Contains(logs, "s3-ams") {
		t.Errorf("restore with a corrupt pack at s3-ams does not name it: %v\n%v", r1, r2)
	}
	r = e.run("check", "--tenant", tenant, "--location", "s3-ams", "--read-data")
	if r.code != 1 || !strings.Contains(r.stdout, filepath.Base(pack)) {
		t.Errorf("check of s3-ams with a corrupt pack: want exit 1 naming %s, got %v", pack, r)
	}
}
