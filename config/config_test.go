package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "time/tzdata" // time zones on machines without a zoneinfo database
)

// validYAML is testdata/valid.yaml: every test edits a copy.
func validYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces old (which must occur) by new.
func edit(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("test config has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestParseValid(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(validYAML(t)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != dir || len(c.Locations) != 2 || len(c.Tenants) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	if c.Policy.PackSize != 16<<20 || c.Policy.ChunkAverage != 64<<10 || c.Policy.Retention.KeepDaily != 7 {
		t.Errorf("policy %+v", c.Policy)
	}
	// Defaults.
	if c.Policy.RequiredCopies != DefaultRequiredCopies || c.Policy.Residency.Country != "NL" || c.Appliance.StateDir != "state" {
		t.Errorf("defaults not applied: %+v %+v", c.Policy, c.Appliance)
	}
	if tn, err := c.Tenant("praktijk-b"); err != nil || tn.Engine != "postgres" {
		t.Errorf("Tenant: %v, %v", tn, err)
	}
	if _, err := c.Tenant("nobody"); err == nil {
		t.Error("Tenant of an unknown id succeeded")
	}
	if l, err := c.Location("groningen"); err != nil || l.Site != "Groningen-Zernike" {
		t.Errorf("Location: %v, %v", l, err)
	}
	if _, err := c.Location("utrecht"); err == nil {
		t.Error("Location of an unknown name succeeded")
	}
}

// Relative paths are resolved against the config file's directory, never
// the working directory.
func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kluis.yaml")
	if err := os.WriteFile(path, []byte(validYAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Load from another working directory, by a relative path.
	t.Chdir(filepath.Dir(dir))
	c, err := Load(filepath.Join(filepath.Base(dir), "kluis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != dir {
		t.Fatalf("Dir = %s, want %s", c.Dir, dir)
	}
	cases := map[string]string{
		c.Locations[1].Path:          filepath.Join(dir, "backup", "groningen"),
		c.Locations[0].Path:          "/srv/kluis/amsterdam",
		c.Appliance.MasterKeyFile:    filepath.Join(dir, "keys", "master.key"),
		c.Tenants[0].Path:            filepath.Join(dir, "db", "praktijk-a.sqlite"),
		c.Tenants[1].DSNFile:         filepath.Join(dir, "secrets", "praktijk-b.dsn"),
		c.Appliance.StateDir:         filepath.Join(dir, "state"),
		"":                           "",
		"../elsewhere/master.key":    filepath.Join(filepath.Dir(dir), "elsewhere", "master.key"),
		"./keys/../keys/signing.pem": filepath.Join(dir, "keys", "signing.pem"),
	}
	for in, want := range cases {
		if got := c.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
	// The secret-file check looks in the config's directory too.
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "master.key"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "appliance.master_key_file") {
		t.Errorf("a 0644 master key next to the config was not found: %v", err)
	}
}

// Unknown keys are errors naming the line and the field path.
func TestUnknownKeys(t *testing.T) {
	cases := []struct {
		name, old, new string
		want           []string
	}{
		{"misspelled location path", "    path: backup/groningen", "    pth: backup/groningen", []string{"line 16", "locations[1].pth", "field pth not found"}},
		{"misspelled appliance key", "  master_key_file:", "  master_key:", []string{"line 4", "appliance.master_key"}},
		{"nested in retention", "    keep_daily: 7", "    keep_dayly: 7", []string{"policy.retention.keep_dayly"}},
		{"top level", "policy:", "polcy:", []string{"polcy", "not found"}},
		{"tenant", "    dsn_file: secrets", "    dsn: secrets", []string{"tenants[1].dsn"}},
		{"first location", "    site: Amsterdam-Science-Park", "    sitе: Amsterdam-Science-Park", []string{"locations[0]"}}, // Cyrillic е
		{"wrong type", "    keep_daily: 7", "    keep_daily: seven", []string{"policy.retention.keep_daily", "seven"}},
		{"bad size", "  pack_size: 16MiB", "  pack_size: 16 furlongs", []string{"line 32", "policy.pack_size", `"16 furlongs"`}},
		{"repeated key", "  - id: praktijk-b\n", "  - id: praktijk-b\n    id: praktijk-c\n", []string{"tenants[1].id", "already defined"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(edit(t, validYAML(t), c.old, c.new)), t.TempDir())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// Validation reports every problem, each with its field path.
func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, s string) string
		want []string
	}{
		{"no appliance id", func(t *testing.T, s string) string { return edit(t, s, "  id: kluis-1\n", "") }, []string{"appliance.id: required"}},
		{"bad appliance id", func(t *testing.T, s string) string { return edit(t, s, "id: kluis-1", "id: kluis 1") }, []string{"appliance.id"}},
		{"no master key file", func(t *testing.T, s string) string { return edit(t, s, "  master_key_file: keys/master.key\n", "") }, []string{"appliance.master_key_file: required", "kluis keys init"}},
		{"no signing key file", func(t *testing.T, s string) string { return edit(t, s, "  signing_key_file: keys/signing.pem\n", "") }, []string{"appliance.signing_key_file: required"}},
		{"no locations", func(t *testing.T, s string) string {
			return s[:strings.Index(s, "locations:")] + s[strings.Index(s, "tenants:"):]
		}, []string{"locations: at least one location is required"}},
		{"location without name, path, country, site, provider", func(t *testing.T, s string) string {
			for _, line := range []string{"  - name: groningen\n", "    path: backup/groningen\n", "    site: Groningen-Zernike\n", "    provider: Provider B\n"} {
				s = edit(t, s, line, "")
			}
			s = edit(t, s, "    type: dir\n    country: NL\n", "  - type: dir\n")
			return s
		}, []string{"locations[1].name: required", "locations[1].path: required", "locations[1].country: required", "locations[1].site: required", "locations[1].provider: required"}},
		{"unknown location type", func(t *testing.T, s string) string { return edit(t, s, "type: dir", "type: ftp") }, []string{`locations[0].type: "ftp"`}},
		{"duplicate location names", func(t *testing.T, s string) string { return edit(t, s, "name: groningen", "name: amsterdam") }, []string{`locations[1].name: "amsterdam" is also the name of locations[0]`}},
		{"duplicate tenant ids", func(t *testing.T, s string) string { return edit(t, s, "id: praktijk-b", "id: praktijk-a") }, []string{`tenants[1].id: "praktijk-a" is also the id of tenants[0]`}},
		{"bad tenant id", func(t *testing.T, s string) string { return edit(t, s, "id: praktijk-b", "id: Praktijk/B") }, []string{"tenants[1].id"}},
		{"sqlite without path", func(t *testing.T, s string) string { return edit(t, s, "    path: db/praktijk-a.sqlite\n", "") }, []string{"tenants[0].path: required for engine sqlite"}},
		{"postgres without dsn file", func(t *testing.T, s string) string { return edit(t, s, "    dsn_file: secrets/praktijk-b.dsn\n", "") }, []string{"tenants[1].dsn_file: required"}},
		{"unknown engine", func(t *testing.T, s string) string { return edit(t, s, "engine: sqlite", "engine: oracle") }, []string{`tenants[0].engine: "oracle"`}},
		{"pack size too small", func(t *testing.T, s string) string { return edit(t, s, "pack_size: 16MiB", "pack_size: 512KiB") }, []string{"policy.pack_size"}},
		{"chunk average not a power of two", func(t *testing.T, s string) string { return edit(t, s, "chunk_average: 64KiB", "chunk_average: 60KiB") }, []string{"policy.chunk_average"}},
		{"delta max steps below -1", func(t *testing.T, s string) string {
			return edit(t, s, "chunk_average: 64KiB", "chunk_average: 64KiB\n  delta_max_steps: -2")
		}, []string{"policy.delta_max_steps"}},
		{"reseal neither off nor a size", func(t *testing.T, s string) string {
			return edit(t, s, "chunk_average: 64KiB", "chunk_average: 64KiB\n  reseal: sometimes")
		}, []string{"policy.reseal"}},
		{"reseal of zero bytes", func(t *testing.T, s string) string {
			return edit(t, s, "chunk_average: 64KiB", "chunk_average: 64KiB\n  reseal: 0")
		}, []string{"policy.reseal"}},
		{"negative retention", func(t *testing.T, s string) string { return edit(t, s, "keep_weekly: 4", "keep_weekly: -4") }, []string{"policy.retention"}},
		{"bad time zone", func(t *testing.T, s string) string { return edit(t, s, "Europe/Amsterdam", "Europe/Atlantis") }, []string{"appliance.time_zone"}},
		{"bad recovery recipient", func(t *testing.T, s string) string {
			return edit(t, s, "  time_zone:", "  recovery_recipient: age1notakey\n  time_zone:")
		}, []string{"appliance.recovery_recipient"}},
		{"several problems at once", func(t *testing.T, s string) string {
			return edit(t, edit(t, s, "engine: sqlite", "engine: oracle"), "type: dir", "type: ftp")
		}, []string{"tenants[0].engine", "locations[0].type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.edit(t, validYAML(t))), t.TempDir())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// Two copies at distinct sites in the Netherlands (policy.residency), and
// no location elsewhere.
func TestResidency(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, s string) string
		want string // "" = accepted
	}{
		{"two sites in NL", func(t *testing.T, s string) string { return s }, ""},
		{"country in lower case", func(t *testing.T, s string) string { return edit(t, s, "country: NL", "country: nl") }, ""},
		{"same site twice", func(t *testing.T, s string) string {
			return edit(t, s, "site: Groningen-Zernike", "site: amsterdam-science-park")
		}, "locations: 1 distinct site in NL, but policy.required_copies is 2"},
		{"a location outside NL", func(t *testing.T, s string) string {
			return edit(t, s, "    country: NL\n    site: Groningen", "    country: BE\n    site: Groningen")
		}, `locations[1].country: "BE" is outside the required country NL`},
		{"more copies required than locations", func(t *testing.T, s string) string {
			return edit(t, s, "policy:\n", "policy:\n  required_copies: 3\n")
		}, "policy.required_copies: 3 copies required but only 2 locations"},
		{"only one location", func(t *testing.T, s string) string {
			return s[:strings.Index(s, "  - name: groningen")] + s[strings.Index(s, "tenants:"):]
		}, "locations: 1 distinct site in NL"},
		{"another required country", func(t *testing.T, s string) string {
			return edit(t, s, "policy:\n", "policy:\n  residency:\n    country: DE\n")
		}, `locations[0].country: "NL" is outside the required country DE`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.edit(t, validYAML(t))), t.TempDir())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatal("accepted")
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("error does not contain %q:\n%v", c.want, err)
			}
		})
	}
}

// Secret files that group or others can read are refused; a missing one
// is not (keys init creates it).
func TestSecretFiles(t *testing.T) {
	cases := []struct {
		name string
		file string
		mode os.FileMode
		dir  bool
		want string
	}{
		{"master key 0600", "keys/master.key", 0o600, false, ""},
		{"master key 0400", "keys/master.key", 0o400, false, ""},
		{"master key 0644", "keys/master.key", 0o644, false, "appliance.master_key_file: keys/master.key is readable by group or others (mode 0644): run chmod 600"},
		{"signing key 0640", "keys/signing.pem", 0o640, false, "appliance.signing_key_file"},
		{"dsn file 0604", "secrets/praktijk-b.dsn", 0o604, false, "tenants[1].dsn_file"},
		{"dsn file is a directory", "secrets/praktijk-b.dsn", 0o700, true, "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, filepath.FromSlash(c.file))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if c.dir {
				if err := os.Mkdir(p, c.mode); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, []byte("pw=Zu1ker-GEHEIM"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse([]byte(validYAML(t)), dir)
			if strings.HasPrefix(c.want, "tenants[") || c.want == "is a directory" {
				// A tenant's own file fails that tenant, not the config.
				if err != nil {
					t.Fatalf("a tenant's dsn_file made the whole config invalid: %v", err)
				}
				err = cfg.TenantProblems()["praktijk-b"].Err()
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatal("accepted")
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("error does not contain %q:\n%v", c.want, err)
			}
			if err != nil && strings.Contains(err.Error(), "GEHEIM") {
				t.Errorf("error shows the file's contents: %v", err)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "4096": 4096, "1B": 1, "16MiB": 16 << 20, "64KiB": 64 << 10, "1GiB": 1 << 30,
		"500KB": 500_000, "2MB": 2_000_000, "1GB": 1_000_000_000, " 16 MiB ": 16 << 20, "1048576B": 1 << 20,
		"1048576GiB": 1 << 50,
	}
	for in, want := range good {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-1MiB", "1.5MiB", "16mib", "16 furlongs", "1TiB", "0x10", "1048577GiB", "99999999999999999999", "16MiB16"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), in) {
			t.Errorf("ParseByteSize(%q): error %q does not quote the input", in, err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"empty", "", "empty config"},
		{"only a comment", "# nothing\n", "empty config"},
		{"not YAML", "appliance: [\n", "invalid YAML"},
		{"a scalar", "hello\n", "cannot unmarshal"},
		{"a list", "- a\n- b\n", "cannot unmarshal"},
		{"tabs", "appliance:\n\tid: x\n", "invalid YAML"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, c.want)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "kluis.yaml")
		if err := os.WriteFile(p, make([]byte, MaxFileSize+1), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("Load of a huge file = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
			t.Error("Load of a missing file succeeded")
		}
	})
}

// Input on which yaml.v3 panics is an error, not a crash.
func TestParseNeverPanics(t *testing.T) {
	for _, in := range []string{
		"locations:\n  - &l {e,0}\n  - {<<, *l}\n",
		"0: {0}\nlocations:\n  - &l {e,0,1,2}\n  - {<<, *l,000000}",
	} {
		if _, err := Parse([]byte(in), t.TempDir()); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestResealAbove(t *testing.T) {
	for in, want := range map[string]int64{"": DefaultResealAbove, "off": 0, "64MiB": 64 << 20, " 1GB ": 1e9} {
		p := Policy{Reseal: in}
		if got := p.ResealAbove(); got != want {
			t.Errorf("reseal %q: %d bytes, want %d", in, got, want)
		}
	}
}
