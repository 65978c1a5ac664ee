package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen feeds Open hostile input in two modes, chosen by the low bit of
// mode:
//
//   - 0, outsider: data is a sealed blob, as a location could serve it. It
//     must never panic, and must open only if it is byte for byte the golden
//     blob sealed for that ID: a changed blob never opens.
//   - 1, key holder: data is an inner plaintext (kind ‖ length ‖ payload ‖
//     padding) that is then encrypted under the data key, so the decoder
//     behind the AEAD is fuzzed too.
//
// In both modes Open either fails with ErrCorrupt or returns a plaintext
// whose ID is the ID it was asked for. The rest of mode picks the ID among
// the golden blobs.
func FuzzOpen(f *testing.F) {
	s := newTestSealer(f)
	goldens := loadGolden(f)
	for i, g := range goldens {
		f.Add(g.sealed, byte(i<<1))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		g := goldens[int(mode>>1)%len(goldens)]
		sealed := data
		if mode&1 == 1 {
			sealed = sealInner(s, g.id, data)
		}
		plain, err := s.Open(nil, g.id, sealed)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if s.ID(plain) != g.id {
			t.Fatalf("Open returned a plaintext whose ID is not %s", g.id)
		}
		if mode&1 == 0 && !bytes.Equal(sealed, g.sealed) {
			t.Fatalf("a changed blob opened (%d bytes, golden %d)", len(sealed), len(g.sealed))
		}
	})
}

// FuzzSealRoundTrip checks Open(Seal(x)) == x, the sealed length, and that
// the blob does not open under another ID.
func FuzzSealRoundTrip(f *testing.F) {
	s := newTestSealer(f)
	f.Add([]byte{})
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, plain []byte) {
		id := s.ID(plain)
		sealed, err := s.Seal(nil, id, plain)
		if len(plain) > MaxChunkSize {
			if err == nil {
				t.Fatal("Seal accepted an oversized plaintext")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) > MaxSealedSize || len(sealed) < Overhead {
			t.Fatalf("sealed length %d outside [%d, %d]", len(sealed), Overhead, MaxSealedSize)
		}
		got, err := s.Open(nil, id, sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("round trip changed %d bytes into %d", len(plain), len(got))
		}
		other := id
		other[0] ^= 0x80
		if _, err := s.Open(nil, other, sealed); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("blob opened under another ID: %v", err)
		}
	})
}

// seedCorpus is what testdata/fuzz holds; -update rewrites it.
func seedCorpus(t *testing.T) map[string]map[string][]any {
	s := newTestSealer(t)
	goldens := loadGolden(t)
	open := map[string][]any{}
	for i, g := range goldens {
		mode := byte(i << 1)
		inner, err := s.aead.Open(nil, g.sealed[:nonceSize], g.sealed[nonceSize:], additionalData(g.id))
		if err != nil {
			t.Fatalf("golden %s: %v", g.name, err)
		}
		flipped := bytes.Clone(g.sealed)
		flipped[len(flipped)/2] ^= 4
		open["golden-"+g.name] = []any{g.sealed, mode}
		open["truncated-"+g.name] = []any{g.sealed[:len(g.sealed)-1], mode}
		open["extended-"+g.name] = []any{append(bytes.Clone(g.sealed), 0), mode}
		open["flipped-"+g.name] = []any{flipped, mode}
		open["inner-"+g.name] = []any{inner, mode | 1}
	}
	zstdMode := byte(2<<1 | 1) // the "zstd" golden ID, key-holder mode
	open["empty"] = []any{[]byte{}, byte(0)}
	open["inner-empty"] = []any{[]byte{}, byte(1)}
	open["inner-length-overflow"] = []any{inner(kindRaw, 1<<32-1, []byte("abc"), 0), byte(3)}
	open["inner-unknown-kind"] = []any{inner(9, 3, []byte("abc"), 0), byte(3)}
	open["inner-zstd-garbage"] = []any{inner(kindZstd, 8, []byte("\x28\xb5\x2f\xfdgarb"), 0), zstdMode}
	// No decompression bomb here (TestOpenRejectsAuthenticatedGarbage has
	// them): at milliseconds per run, its mutants stall the fuzzer in
	// minimisation.

	round := map[string][]any{
		"empty":  {[]byte{}},
		"byte":   {[]byte{0}},
		"text":   {textBytes(400)},
		"zeros":  {make([]byte, 600)},
		"random": {randomBytes(40, 200)},
	}
	return map[string]map[string][]any{"FuzzOpen": open, "FuzzSealRoundTrip": round, "FuzzOpenDict": dictSeeds(t), "FuzzRowCut": rowCutSeeds()}
}

// TestFuzzSeedCorpus checks that the seed corpora under testdata/fuzz exist
// under the right names, parse as `go test fuzz v1` files with the argument
// types of their targets, and (for FuzzOpen) still reach the paths where
// Open succeeds, so a format change cannot leave the fuzzer only garbage.
// With -update it rewrites them.
func TestFuzzSeedCorpus(t *testing.T) {
	if *update {
		for target, entries := range seedCorpus(t) {
			dir := filepath.Join("testdata", "fuzz", target)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, vals := range entries {
				if err := os.WriteFile(filepath.Join(dir, name), marshalCorpus(vals), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	s := newTestSealer(t)
	goldens := loadGolden(t)
	targets := []struct {
		name  string
		types string
		min   int
	}{
		{"FuzzOpen", "[]byte byte", 10},
		{"FuzzSealRoundTrip", "[]byte", 3},
		{"FuzzOpenDict", "[]byte byte", 5},
		{"FuzzRowCut", "[]byte byte byte byte", 6},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target.name, "*"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) < target.min {
				t.Fatalf("%d seed files, want at least %d (run with -update)", len(files), target.min)
			}
			var opened [2]int
			for _, file := range files {
				vals, err := readCorpusFile(file)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if got := corpusTypes(vals); got != target.types {
					t.Fatalf("%s: argument types %q, want %q", file, got, target.types)
				}
				if target.name != "FuzzOpen" {
					continue
				}
				data, mode := vals[0].([]byte), vals[1].(byte)
				g := goldens[int(mode>>1)%len(goldens)]
				if mode&1 == 1 {
					data = sealInner(s, g.id, data)
				}
				if _, err := s.Open(nil, g.id, data); err == nil {
					opened[mode&1]++
				}
			}
			if target.name == "FuzzOpen" && (opened[0] == 0 || opened[1] == 0) {
				t.Fatalf("seeds that open: %d sealed, %d inner; want some of each (golden blobs changed? run with -update)", opened[0], opened[1])
			}
		})
	}
}

// marshalCorpus encodes values the way `go test -fuzz` writes them.
func marshalCorpus(vals []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("unsupported corpus type %T", v))
		}
	}
	return b.Bytes()
}

// readCorpusFile decodes the []byte and byte values of a corpus file, a
// subset of what the go command accepts.
func readCorpusFile(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return nil, errors.New(`not a "go test fuzz v1" file with values`)
	}
	var vals []any
	for _, line := range lines[1:] {
		expr, err := parser.ParseExpr(line)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		call, ok := expr.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return nil, fmt.Errorf("%q: not a conversion", line)
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok {
			return nil, fmt.Errorf("%q: argument is not a literal", line)
		}
		switch fun := call.Fun.(type) {
		case *ast.ArrayType:
			if elt, ok := fun.Elt.(*ast.Ident); !ok || fun.Len != nil || (elt.Name != "byte" && elt.Name != "uint8") || lit.Kind != token.STRING {
				return nil, fmt.Errorf("%q: unsupported type", line)
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", line, err)
			}
			vals = append(vals, []byte(s))
		case *ast.Ident:
			if fun.Name != "byte" && fun.Name != "uint8" {
				return nil, fmt.Errorf("%q: unsupported type", line)
			}
			var v uint64
			switch lit.Kind {
			case token.CHAR:
				r, _, _, err := strconv.UnquoteChar(lit.Value[1:len(lit.Value)-1], '\'')
				if err != nil || r > 255 {
					return nil, fmt.Errorf("%q: bad byte", line)
				}
				v = uint64(r)
			case token.INT:
				if v, err = strconv.ParseUint(lit.Value, 0, 8); err != nil {
					return nil, fmt.Errorf("%q: %v", line, err)
				}
			default:
				return nil, fmt.Errorf("%q: bad byte", line)
			}
			vals = append(vals, byte(v))
		default:
			return nil, fmt.Errorf("%q: unsupported type", line)
		}
	}
	return vals, nil
}

func corpusTypes(vals []any) string {
	var types []string
	for _, v := range vals {
		switch v.(type) {
		case []byte:
			types = append(types, "[]byte")
		case byte:
			types = append(types, "byte")
		}
	}
	return strings.Join(types, " ")
}
