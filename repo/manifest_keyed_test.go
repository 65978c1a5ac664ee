package repo

import (
	"slices"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
)

// TestManifestRowDeltaValidation: a manifest's row-delta description is
// checked when it is read; a bad one is corrupt, not a stream read wrongly.
func TestManifestRowDeltaValidation(t *testing.T) {
	link := strings.Repeat("ab", 32)
	good := `{"version":1,"tenant":"praktijk-a","engine":"postgres","started":"2025-01-01T00:00:00Z","finished":"2025-01-01T00:00:00Z","locations":[],"streams":[{"name":"table/t","kind":"table","size":10,"blobs":null,"keyed":KEYED}]}`
	for name, c := range map[string]struct {
		keyed string
		ok    bool
	}{
		"whole table":       {`{"key":{"fields":[0],"order":["int"]}}`, true},
		"delta":             {`{"key":{"fields":[1,0],"order":["bytes","int"]},"delta_size":4,"chain":[{"snapshot":"` + link + `","size":9,"blobs":null}]}`, true},
		"unknown order":     {`{"key":{"fields":[0],"order":["float"]}}`, false},
		"no key":            {`{"key":{"fields":[],"order":[]}}`, false},
		"repeated field":    {`{"key":{"fields":[0,0],"order":["int","int"]}}`, false},
		"orders != fields":  {`{"key":{"fields":[0,1],"order":["int"]}}`, false},
		"bad link":          {`{"key":{"fields":[0],"order":["int"]},"chain":[{"snapshot":"nope","size":1,"blobs":null}]}`, false},
		"negative size":     {`{"key":{"fields":[0],"order":["int"]},"chain":[{"snapshot":"` + link + `","size":-1,"blobs":null}]}`, false},
		"delta size, whole": {`{"key":{"fields":[0],"order":["int"]},"delta_size":5}`, false},
		"unknown field":     {`{"key":{"fields":[0],"order":["int"]},"base":"x"}`, false},
		"link row index":    {`{"key":{"fields":[0],"order":["int"]},"delta_size":4,"chain":[{"snapshot":"` + link + `","size":9,"blobs":null,"row_index":{"size":5,"blobs":null}}]}`, true},
		"link index size":   {`{"key":{"fields":[0],"order":["int"]},"delta_size":4,"chain":[{"snapshot":"` + link + `","size":9,"blobs":null,"row_index":{"size":-5,"blobs":null}}]}`, false},
		"link index huge":   {`{"key":{"fields":[0],"order":["int"]},"delta_size":4,"chain":[{"snapshot":"` + link + `","size":9,"blobs":null,"row_index":{"size":1099511627776,"blobs":null}}]}`, false},
	} {
		js := strings.Replace(good, "KEYED", c.keyed, 1)
		_, err := decodeManifest(manifestEnc.EncodeAll([]byte(js), nil), "praktijk-a")
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok = %v", name, err, c.ok)
		}
	}
}

// TestChainRowIndexesAreTheStreams: the row indexes of a delta's links
// are among the blobs the stream needs (AllBlobs: what prune keeps, sync
// copies and restore tests fetch) and among the row indexes check reads,
// so forgetting the snapshot that wrote a link never loses its index —
// nor the pages of a paged index.
func TestChainRowIndexesAreTheStreams(t *testing.T) {
	id := func(b byte) chunk.ID { return chunk.ID{b} }
	s := Stream{Name: "table/t", Kind: KindTable, Blobs: []chunk.ID{id(5)}, RowIndex: &RowIndexRef{Size: 1, Blobs: []chunk.ID{id(6)}, Pages: []chunk.ID{id(9)}},
		Keyed: &Keyed{Chain: []Link{
			{Snapshot: "a", Blobs: []chunk.ID{id(1)}, RowIndex: &RowIndexRef{Size: 1, Blobs: []chunk.ID{id(2)}, Pages: []chunk.ID{id(8), id(10)}}},
			{Snapshot: "b", Blobs: []chunk.ID{id(3)}},
			{Snapshot: "c", Blobs: []chunk.ID{id(4)}, RowIndex: &RowIndexRef{Size: 1, Blobs: []chunk.ID{id(7)}}},
		}}}
	all := s.AllBlobs()
	for b := range byte(11) {
		if b > 0 && !slices.Contains(all, id(b)) {
			t.Errorf("AllBlobs lacks blob %d", b)
		}
	}
	var idx []chunk.ID
	for _, ri := range s.RowIndexes() {
		idx = append(idx, ri.Blobs...)
	}
	if !slices.Equal(idx, []chunk.ID{id(2), id(7), id(6)}) {
		t.Errorf("RowIndexes: %v", idx)
	}
}
