package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/testenv"
)

const module = "github.com/kluis-nl/kluis"

// pkg is what the rules need of one package from `go list -json`.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string // direct imports
	Deps       []string // every package it depends on, transitively (as go list -deps)
}

// testOnly are the test-only packages outside internal/: the Location
// contract suite with its memory location, and the fault injector.
// (restore/restoretest is production: the scheduled restore tests.)
var testOnly = map[string]bool{"repo/locationtest": true, "repo/faulty": true}

// harness reports whether path (relative to the module) is test-only code:
// everything under internal/, and testOnly.
func harness(path string) bool { return under(path, "internal") || testOnly[path] }

// evidenceForbidden are the packages holding tenant keys or database
// credentials that evidence must not depend on.
var evidenceForbidden = []string{"source", "backup", "restore", "appliance", "daemon", "config"}

// repoKeyAPI is repo's key and repository-handle API, which evidence must
// not use: with it, evidence code could open a tenant's data.
var repoKeyAPI = map[string]bool{
	"TenantKey": true, "MasterKey": true, "MasterKeySize": true, "GenerateMasterKey": true,
	"ParseMasterKey": true, "LoadMasterKey": true, "InitApplianceKeys": true,
	"Repo": true, "Open": true, "Init": true, "Options": true,
}

func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func under(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }

// violations applies the package-level rules to the import graph. The
// harness and cmd rules look at direct imports (a production package that
// reaches a harness through others has a first production → harness
// import, which is the one to report); the chunk and evidence rules look at
// every dependency, direct or not.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		for _, d := range p.Imports {
			to, ok := rel(d)
			if !ok {
				continue
			}
			if !harness(from) && harness(to) {
				out = append(out, from+" (production) imports the test harness "+to)
			}
			if !under(from, "cmd") && under(to, "cmd") {
				out = append(out, from+" imports "+to+": nothing imports cmd")
			}
		}
		for _, d := range p.Deps {
			to, ok := rel(d)
			if !ok {
				continue
			}
			if under(from, "chunk") && under(to, "repo") {
				out = append(out, from+" depends on "+to+": chunk imports no repo")
			}
			if under(from, "evidence") {
				for _, f := range evidenceForbidden {
					if under(to, f) {
						out = append(out, from+" depends on "+to+": evidence sees no tenant key or database credential")
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// keyUses returns the uses of repo's key API in one Go file of evidence.
func keyUses(name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	local := ""
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == module+"/repo" {
			local = "repo"
			if im.Name != nil {
				local = im.Name.Name
			}
		}
	}
	if local == "" {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && repoKeyAPI[sel.Sel.Name] {
				out = append(out, name+" uses repo."+sel.Sel.Name+": evidence sees no tenant key")
			}
		}
		return true
	})
	return out, nil
}

func goList(t *testing.T) []pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		testenv.SkipOrFail(t, "no go command to list the import graph: %v", err)
	}
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayering checks the module's real import graph.
func TestLayering(t *testing.T) {
	pkgs := goList(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		r, _ := rel(p.ImportPath)
		seen[r] = true
	}
	// The rules must see what they guard, or they pass vacuously.
	for _, want := range []string{"chunk", "evidence", "repo", "cmd/kluis", "internal/pgtest", "internal/mariadbtest", "internal/s3test", "internal/testenv"} {
		if !seen[want] {
			t.Fatalf("go list did not report %s", want)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
	for _, p := range pkgs {
		if r, _ := rel(p.ImportPath); !under(r, "evidence") {
			continue
		}
		for _, f := range p.GoFiles {
			src, err := readFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			uses, err := keyUses(f, src)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range uses {
				t.Error(u)
			}
		}
	}
}

// TestRules shows that each rule catches what it forbids, on made-up graphs.
func TestRules(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	for _, tc := range []struct {
		name string
		pkgs []pkg
		want string
	}{
		{name: "production imports a server harness", pkgs: []pkg{{ImportPath: m("source/postgres"), Imports: []string{m("internal/pgtest"), "context"}}},
			want: "source/postgres (production) imports the test harness internal/pgtest"},
		{name: "production imports the harness core", pkgs: []pkg{{ImportPath: m("daemon"), Imports: []string{m("repo"), m("internal/testenv")}}},
			want: "daemon (production) imports the test harness internal/testenv"},
		{name: "production imports the memory location", pkgs: []pkg{{ImportPath: m("backup"), Imports: []string{m("repo/locationtest")}}},
			want: "backup (production) imports the test harness repo/locationtest"},
		{name: "chunk reaches repo", pkgs: []pkg{{ImportPath: m("chunk"), Deps: []string{m("repo/local")}}},
			want: "chunk depends on repo/local: chunk imports no repo"},
		{name: "evidence reaches a tenant source", pkgs: []pkg{{ImportPath: m("evidence/chain"), Deps: []string{m("source/postgres")}}},
			want: "evidence/chain depends on source/postgres: evidence sees no tenant key or database credential"},
		{name: "a package imports cmd", pkgs: []pkg{{ImportPath: m("restore"), Imports: []string{m("cmd/kluis/internal/out")}}},
			want: "restore imports cmd/kluis/internal/out: nothing imports cmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := violations(tc.pkgs)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("violations = %q, want [%q]", got, tc.want)
			}
		})
	}
	allowed := []pkg{
		{ImportPath: m("internal/s3test"), Imports: []string{m("internal/testenv"), m("repo/s3")}, Deps: []string{m("internal/testenv"), m("repo/s3"), m("repo")}},
		{ImportPath: m("evidence"), Imports: []string{m("repo")}, Deps: []string{m("repo"), m("chunk"), m("evidence/chain")}},
		{ImportPath: m("cmd/kluis"), Imports: []string{m("cmd/kluis/internal/out"), m("daemon")}},
	}
	if got := violations(allowed); len(got) != 0 {
		t.Fatalf("allowed arrows reported: %q", got)
	}

	src := []byte(`package evidence
import r "github.com/kluis-nl/kluis/repo"
func f(l r.Location, k r.TenantKey) { _ = r.ErrNotFound; _, _ = r.Open(nil, "", nil, r.Options{}) }
`)
	uses, err := keyUses("x.go", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x.go uses repo.TenantKey: evidence sees no tenant key", "x.go uses repo.Open: evidence sees no tenant key", "x.go uses repo.Options: evidence sees no tenant key"}
	if strings.Join(uses, "\n") != strings.Join(want, "\n") {
		t.Fatalf("key uses = %q, want %q", uses, want)
	}
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
