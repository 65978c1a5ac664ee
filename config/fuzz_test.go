package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// FuzzConfigParse: Parse never panics on any input; what it accepts
// validates, and survives being written out and parsed again unchanged.
func FuzzConfigParse(f *testing.F) {
	dir := f.TempDir()
	f.Add([]byte("appliance:\n  id: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, dir)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		c2, err := Parse(out, dir)
		if err != nil {
			t.Fatalf("an accepted config, written out, is refused: %v\n%s", err, out)
		}
		// Compared as written: an empty list and no list are the same.
		out2, err := yaml.Marshal(c2)
		if err != nil || !bytes.Equal(out, out2) || c.Dir != c2.Dir {
			t.Fatalf("config changed in a round trip:\n%s\n%s", out, out2)
		}
	})
}

// seedCorpus is what testdata/fuzz/FuzzConfigParse holds: the valid test
// config and near misses of it.
func seedCorpus(t *testing.T) map[string][]byte {
	valid := validYAML(t)
	return map[string][]byte{
		"valid":            []byte(valid),
		"unknown-key":      []byte(edit(t, valid, "    path: backup/groningen", "    pth: backup/groningen")),
		"bad-size":         []byte(edit(t, valid, "pack_size: 16MiB", "pack_size: 16 furlongs")),
		"same-site":        []byte(edit(t, valid, "site: Groningen-Zernike", "site: Amsterdam-Science-Park")),
		"outside-nl":       []byte(edit(t, valid, "    country: NL\n    site: Groningen", "    country: BE\n    site: Groningen")),
		"flow-style":       []byte(`{appliance: {id: k, master_key_file: m, signing_key_file: s}, locations: [{name: a, type: dir, path: /a, country: NL, site: A, provider: P}, {name: b, type: dir, path: /b, country: NL, site: B, provider: Q}]}`),
		"anchors":          []byte("appliance: &a {id: k, master_key_file: m, signing_key_file: s}\nlocations:\n  - &l {name: a, type: dir, path: /a, country: NL, site: A, provider: P}\n  - {<<: *l, name: b, site: B}\n"),
		"empty":            {},
		"scalar":           []byte("kluis"),
		"duplicate-tenant": []byte(edit(t, valid, "id: praktijk-b", "id: praktijk-a")),
		// Found by the fuzzer: made yaml.v3 panic inside Parse.
		"merge-unhashable-key": []byte("0: {0}\nlocations:\n  - &l {e,0,1,2}\n  - {<<, *l,000000}"),
	}
}

func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzConfigParse")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seedCorpus(t) {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("%d seed files in %s, want at least 5 (run with -update)", len(files), dir)
	}
	valid := 0
	for _, file := range files {
		data, err := readSeed(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, err := Parse(data, t.TempDir()); err == nil {
			valid++
		}
	}
	if valid == 0 || valid == len(files) {
		t.Errorf("%d of %d seeds parse; want some valid ones and some near misses", valid, len(files))
	}
}

// readSeed reads a `go test fuzz v1` file holding one []byte.
func readSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		return nil, errors.New("not a `go test fuzz v1` file of one []byte")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	return []byte(s), err
}
