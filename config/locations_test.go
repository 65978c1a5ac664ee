package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// s3YAML is valid.yaml with its two locations replaced by S3 buckets at two
// providers, each with its own key files in dir.
func s3YAML(t *testing.T, dir string) string {
	t.Helper()
	for _, f := range []string{"a.id", "a.secret", "b.id", "b.secret"} {
		content := "MARKER-KEY-" + strings.TrimSuffix(f, filepath.Ext(f)) + filepath.Ext(f)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := validYAML(t)
	start, end := strings.Index(s, "locations:\n"), strings.Index(s, "tenants:\n")
	return s[:start] + `locations:
  - name: s3-ams
    type: s3
    endpoint: https://s3.ams.example.nl
    region: nl-ams
    bucket: kluis-backups
    prefix: kluis/
    path_style: true
    access_key_id_file: a.id
    secret_access_key_file: a.secret
    object_lock: {mode: compliance, days: 40}
    country: NL
    site: Amsterdam
    provider: Provider A
  - name: s3-gro
    type: s3
    endpoint: https://s3.gro.example.nl
    bucket: kluis-backups
    access_key_id_file: b.id
    secret_access_key_file: b.secret
    object_lock: {mode: governance, days: 40}
    country: NL
    site: Groningen
    provider: Provider B
` + s[end:]
}

func TestS3Locations(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, s, dir string) string
		want string // "" = accepted
	}{
		{"two S3 locations", func(t *testing.T, s, dir string) string { return s }, ""},
		{"http to loopback", func(t *testing.T, s, dir string) string {
			return edit(t, s, "https://s3.ams.example.nl", "http://127.0.0.1:7070")
		}, ""},
		{"plain http off this machine", func(t *testing.T, s, dir string) string {
			return edit(t, s, "https://s3.ams.example.nl", "http://s3.ams.example.nl")
		}, `locations[0].endpoint: "http://s3.ams.example.nl": plain http`},
		{"same endpoint and bucket twice", func(t *testing.T, s, dir string) string {
			return edit(t, edit(t, s, "https://s3.gro.example.nl", "https://s3.ams.example.nl"), "    bucket: kluis-backups\n    access_key_id_file: b.id", "    bucket: kluis-backups\n    prefix: kluis/x/\n    access_key_id_file: b.id")
		}, "locations[1].bucket: the same endpoint and bucket as locations[0]"},
		{"same bucket other prefix is fine", func(t *testing.T, s, dir string) string {
			s = edit(t, s, "https://s3.gro.example.nl", "https://s3.ams.example.nl")
			return edit(t, s, "    bucket: kluis-backups\n    access_key_id_file: b.id", "    bucket: kluis-backups\n    prefix: other/\n    access_key_id_file: b.id")
		}, ""},
		{"the same access key twice", func(t *testing.T, s, dir string) string {
			os.WriteFile(filepath.Join(dir, "b.id"), []byte("MARKER-KEY-a.id\n"), 0o600)
			return s
		}, "locations[1].access_key_id_file: the same access key as locations[0]"},
		{"key file readable by others", func(t *testing.T, s, dir string) string {
			os.Chmod(filepath.Join(dir, "b.secret"), 0o644)
			return s
		}, "locations[1].secret_access_key_file: b.secret is readable by group or others"},
		{"one key file only", func(t *testing.T, s, dir string) string {
			return edit(t, s, "    secret_access_key_file: b.secret\n", "")
		}, "locations[1]: give both access_key_id_file and secret_access_key_file"},
		{"no bucket", func(t *testing.T, s, dir string) string {
			return edit(t, s, "    bucket: kluis-backups\n    access_key_id_file: b.id", "    access_key_id_file: b.id")
		}, "locations[1].bucket: required"},
		{"bad object lock", func(t *testing.T, s, dir string) string {
			return edit(t, s, "{mode: governance, days: 40}", "{mode: strict, days: 0}")
		}, "locations[1].object_lock.mode"},
		{"object lock days zero", func(t *testing.T, s, dir string) string {
			return edit(t, s, "{mode: governance, days: 40}", "{mode: governance, days: 0}")
		}, "locations[1].object_lock.days: 0"},
		{"unknown object lock field", func(t *testing.T, s, dir string) string {
			return edit(t, s, "{mode: governance, days: 40}", "{mode: governance, dayz: 40}")
		}, "locations[1].object_lock.dayz"},
		{"s3 field on a dir location", func(t *testing.T, s, dir string) string {
			return edit(t, s, "  - name: s3-gro\n    type: s3\n", "  - name: s3-gro\n    type: dir\n    path: /srv/x\n")
		}, "locations[1].endpoint: only for a location of type s3"},
		{"one site only", func(t *testing.T, s, dir string) string {
			return edit(t, s, "site: Groningen", "site: Amsterdam")
		}, "locations: 1 distinct site in NL"},
		{"one site with required_copies 1", func(t *testing.T, s, dir string) string {
			return edit(t, edit(t, s, "site: Groningen", "site: Amsterdam"), "policy:\n", "policy:\n  required_copies: 1\n")
		}, "locations: 1 distinct site in NL: at least two are required"},
		{"prefix without slash", func(t *testing.T, s, dir string) string {
			return edit(t, s, "prefix: kluis/", "prefix: kluis")
		}, "locations[0].prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Parse([]byte(c.edit(t, s3YAML(t, dir), dir)), dir)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatal("accepted")
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("error does not contain %q:\n%v", c.want, err)
			}
			if err != nil && strings.Contains(err.Error(), "MARKER-KEY") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}
