package repo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/chunk"
)

// Every candidate place of a blob is kept; lookups prefer a pack that is
// present, and a backup deduplicates only against a present one (issue 14,
// point 1: a replayed index must not hide a blob's new pack).
func TestIndexKeepsEveryCandidate(t *testing.T) {
	id := chunk.ID{1}
	old, cur := Hash{0xaa}, Hash{0xbb}
	for _, order := range [][]Hash{{old, cur}, {cur, old}} {
		x := newIndex()
		for i, p := range order {
			x.add(PackBlobs{Pack: p, Blobs: []BlobEntry{{ID: id, Offset: uint32(i), Length: 10, RawLength: 5}}})
		}
		oldAt := uint32(0)
		if order[1] == old {
			oldAt = 1
		}
		x.add(PackBlobs{Pack: old, Blobs: []BlobEntry{{ID: id, Offset: oldAt, Length: 10, RawLength: 5}}}) // a duplicate
		if n := len(x.Candidates(id)); n != 2 {
			t.Fatalf("%d candidates, want 2", n)
		}
		x.setPresent(map[Hash]bool{cur: true})
		if bl, ok := x.Lookup(id); !ok || bl.Pack != cur {
			t.Errorf("Lookup = %v, want the present pack %s", bl.Pack.Short(), cur.Short())
		}
		if c := x.Candidates(id); c[0].Pack != cur || c[1].Pack != old {
			t.Errorf("candidates not present-first: %v", c)
		}
		if !x.Has(id) {
			t.Error("Has = false with a present candidate")
		}
		x.setPresent(map[Hash]bool{})
		if x.Has(id) {
			t.Error("Has = true with every candidate's pack missing: a backup would dedup against lost data")
		}
		x.addPresent([]PackBlobs{{Pack: cur, Blobs: []BlobEntry{{ID: id, Offset: 1, Length: 10, RawLength: 5}}}})
		if !x.Has(id) {
			t.Error("a pack just written is not present")
		}
		if n := len(x.byPack()); n != 2 {
			t.Errorf("byPack has %d packs, want 2", n)
		}
	}
}

// Index objects and manifests are sealed under associated data that binds
// tenant and repository id: one sealed for another repository does not
// open here even under the same key, and is proven planted.
func TestSealedBoundToRepository(t *testing.T) {
	r := &Repo{tenant: fuzzTenant, meta: fuzzMeta(t)}
	r.adIndex = boundAD(adIndexV2, fuzzTenant, fuzzRepoID)
	r.adManifest = boundAD(adManifestV2, fuzzTenant, fuzzRepoID)
	plain := encodeIndex(nil, nil)
	for _, tc := range []struct {
		name string
		ad   string
		ok   bool
	}{
		{"this repository", r.adIndex, true},
		{"version 1", adIndex, true},
		{"another repository", boundAD(adIndexV2, fuzzTenant, "ffeeddccbbaa99887766554433221100"), false},
		{"another tenant", boundAD(adIndexV2, "praktijk-b", fuzzRepoID), false},
		{"a manifest", r.adManifest, false},
	} {
		sealed := r.meta.seal(tc.ad, plain)
		ok := false
		for _, ad := range r.spec(kindIndex).ads {
			if _, err := r.meta.open(ad, sealed); err == nil {
				ok = true
			}
		}
		if ok != tc.ok {
			t.Errorf("%s: opens = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

// TestKeyMaterialSupersedes: the key files a recovery superseded survive
// the key file's round trip, and only canonical (lower-case hex) names are
// accepted, so check's comparison with listed names cannot be fooled.
func TestKeyMaterialSupersedes(t *testing.T) {
	k, err := newTenantKey("t", "r", Hash{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var master MasterKey
	name := strings.Repeat("ab", 32)
	k.Supersedes = []string{name}
	kb, err := encodeKeyFile(k, master, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeKeyFile(kb, master, "t", "r")
	if err != nil || len(got.Supersedes) != 1 || got.Supersedes[0] != name || !sameKey(got, k) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{strings.ToUpper(name), name[:62], "t/keys/" + name} {
		k.Supersedes = []string{bad}
		kb, err := encodeKeyFile(k, master, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeKeyFile(kb, master, "t", "r"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("supersedes %q: %v, want ErrCorrupt", bad, err)
		}
	}
}
