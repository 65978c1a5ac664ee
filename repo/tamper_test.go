package repo_test

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
)

// tamperFixture is a repository with one snapshot of several packs.
func tamperFixture(t *testing.T) (*fixture, []stream) {
	t.Helper()
	streams := []stream{
		randomStream("random", 11, 2<<20),
		textStream("text", loremParagraph, 1<<20),
		bytesStream("small", []byte("a small stream")),
	}
	f := newFixture(t)
	r := f.init()
	backup(t, r, streams...)
	for i := range f.mems {
		if n := len(f.names(i, "data")); n < 2 {
			t.Fatalf("only %d packs: the test wants several", n)
		}
	}
	return f, streams
}

// objectID is what an error must mention to name an object: the hash in
// its name, or "<tenant>/config".
func objectID(name string) string {
	if strings.HasSuffix(name, "/config") {
		return name
	}
	return path.Base(name)
}

// flip changes one bit of the object at location i, returning a function
// that restores it.
func (f *fixture) flip(i int, name string, pos string) (restore func()) {
	f.t.Helper()
	orig, ok := f.mems[i].Bytes(name)
	if !ok {
		f.t.Fatalf("no object %s at %s", name, f.mems[i].Name())
	}
	b := append([]byte(nil), orig...)
	switch pos {
	case "start":
		b[0] ^= 0x01
	case "middle":
		b[len(b)/2] ^= 0x01
	case "end":
		b[len(b)-1] ^= 0x01
	}
	f.mems[i].Replace(name, b)
	return func() { f.mems[i].Replace(name, orig) }
}

// A flipped byte in any object at one location is reported by Check at
// that location, naming the object, and is invisible to restore, which
// reads the other location's copy; flipped at both locations, restore
// fails naming the object.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	f, streams := tamperFixture(t)
	kinds := []string{"data", "index", "snapshots", "keys", "config"}
	for _, kind := range kinds {
		name := f.names(0, kind)[0]
		id := objectID(name)
		for _, pos := range []string{"start", "middle", "end"} {
			t.Run(kind+"/"+pos, func(t *testing.T) {
				t.Run("one location", func(t *testing.T) {
					defer f.flip(0, name, pos)()
					r := f.open() // falls back to groningen for a damaged config or key
					cs, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range cs {
						switch c.Location {
						case "amsterdam":
							if c.OK() {
								t.Fatalf("Check at amsterdam passed with %s damaged", name)
							}
							if !strings.Contains(strings.Join(c.Errors, "\n"), id) {
								t.Errorf("Check's errors do not name %s:\n%s", id, strings.Join(c.Errors, "\n"))
							}
						default:
							if !c.OK() {
								t.Errorf("Check at undamaged %s: %v", c.Location, c.Errors)
							}
						}
					}
					verifyRestore(t, f.open(), repo.Hash{}, streams...)
				})
				t.Run("both locations", func(t *testing.T) {
					defer f.flip(0, name, pos)()
					defer f.flip(1, name, pos)()
					if kind == "data" && pos == "end" {
						// The last byte of a pack is its header's length:
						// a restore reads only its blobs' bytes, each
						// authenticated, so it restores exactly; Check
						// (above) names the damaged pack.
						if err := openAndRestore(t, f, streams); err != nil {
							t.Fatalf("restore with only a pack header damaged: %v", err)
						}
						return
					}
					err := openAndRestore(t, f, streams)
					if err == nil {
						t.Fatalf("restore succeeded with %s damaged at both locations", name)
					}
					t.Logf("%v", err)
					if !strings.Contains(err.Error(), id) {
						t.Errorf("error does not name %s: %v", id, err)
					}
					if !errors.Is(err, repo.ErrCorrupt) {
						t.Errorf("error is not ErrCorrupt: %v", err)
					}
				})
			})
		}
	}
}

func openAndRestore(t *testing.T, f *fixture, streams []stream) error {
	r, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master})
	if err != nil {
		return err
	}
	return tryRestore(t, r, repo.Hash{}, streams...)
}

// Check without ReadData lists and reads the metadata only: a flipped
// byte inside a pack is, by design, not detected (that costs reading every
// pack). Restore still detects it, and ReadData does.
func TestTamperPackWithoutReadData(t *testing.T) {
	ctx := context.Background()
	f, streams := tamperFixture(t)
	defer f.flip(0, f.names(0, "data")[0], "middle")()
	r := f.open()
	cs, err := r.Check(ctx, repo.CheckOptions{Locations: []string{"amsterdam"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Check without ReadData at amsterdam: ok=%v (a damaged pack is not expected to be seen)", cs[0].OK())
	cs, err = r.Check(ctx, repo.CheckOptions{Locations: []string{"amsterdam"}, ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].OK() || cs[0].PacksRead != len(f.names(0, "data")) {
		t.Errorf("Check with ReadData: ok=%v, %d packs read", cs[0].OK(), cs[0].PacksRead)
	}
	verifyRestore(t, r, repo.Hash{}, streams...)
}

// A location that serves damaged bytes, or has lost objects, behind the
// repository's back: restore reads the other copy, Check names the
// location's problem.
func TestFaultyReads(t *testing.T) {
	ctx := context.Background()
	f, streams := tamperFixture(t)
	for _, tc := range []struct {
		name string
		set  func(*faulty.Location)
	}{
		{"corrupt packs", func(l *faulty.Location) { l.SetCorrupt(faulty.Contains("/data/")) }},
		{"corrupt everything", func(l *faulty.Location) { l.SetCorrupt(func(string) bool { return true }) }},
		{"lost packs", func(l *faulty.Location) { l.SetDrop(faulty.Contains("/data/")) }},
		{"lost indexes", func(l *faulty.Location) { l.SetDrop(faulty.Contains("/index/")) }},
		{"down", func(l *faulty.Location) { l.SetDown(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set(f.faults[0])
			defer f.faults[0].Reset()
			verifyRestore(t, f.open(), repo.Hash{}, streams...)
			cs, err := f.open().Check(ctx, repo.CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if c.Location == "amsterdam" && c.OK() {
					t.Errorf("Check at amsterdam passed")
				}
				if c.Location != "amsterdam" && !c.OK() {
					t.Errorf("Check at %s: %v", c.Location, c.Errors)
				}
			}
		})
	}
}

// An object missing at one location and unreachable at the other is not
// "not found": the location may come back.
func TestMissingVersusUnreachable(t *testing.T) {
	f, streams := tamperFixture(t)
	pack := f.names(0, "data")[0]
	f.mems[0].Remove(pack)
	err := func() error {
		r := f.open()
		f.faults[1].SetDown(errors.New("connection refused: object not found in cache"))
		defer f.faults[1].SetUp()
		return tryRestore(t, r, repo.Hash{}, streams...)
	}()
	if err == nil || errors.Is(err, repo.ErrNotFound) {
		t.Errorf("restore with the only copy unreachable = %v; want an error that is not ErrNotFound", err)
	}
	f.mems[1].Remove(pack)
	if err := tryRestore(t, f.open(), repo.Hash{}, streams...); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("restore with the pack gone everywhere = %v; want ErrNotFound", err)
	}
}
