package repo

import (
	"strings"
	"testing"
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
	} {
		js := strings.Replace(good, "KEYED", c.keyed, 1)
		_, err := decodeManifest(manifestEnc.EncodeAll([]byte(js), nil), "praktijk-a")
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok = %v", name, err, c.ok)
		}
	}
}
