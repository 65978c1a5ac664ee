package evidence

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParsePeriod: --expect-period decodes or is refused, never panics;
// what decodes is a non-empty period that prints back to itself.
func FuzzParsePeriod(f *testing.F) {
	seeds := [][]any{{[]byte("2026-01-01..2026-03-31")}, {[]byte("2026-01-01T00:00:00Z..2026-04-01T00:00:00+02:00")},
		{[]byte("2026-03-31..2026-01-01")}, {[]byte("..")}, {[]byte("0000-01-01..9999-12-31")}}
	writeSeeds(f, "FuzzParsePeriod", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePeriod(string(data))
		if err != nil {
			return
		}
		if !p.From.Before(p.To) {
			t.Fatalf("%q: an empty period %s", data, p)
		}
		q, err := ParsePeriod(p.String())
		if err != nil || !q.From.Equal(p.From) || !q.To.Equal(p.To) {
			t.Fatalf("%q prints as %q, which reads as %v %v", data, p, q, err)
		}
	})
}

// FuzzParseVersions: a .versions file decodes or is refused, never
// panics; what decodes has no empty name or id and encodes back to an
// equal record.
func FuzzParseVersions(f *testing.F) {
	seeds := [][]any{{[]byte(`{"schema":"kluis-evidence-versions/v1","locations":{"gro":{"_evidence/a/key-1/leaf/00":"v1"}}}` + "\n")},
		{[]byte(`{"schema":"kluis-evidence-versions/v1","locations":{}}`)}, {[]byte(`{"schema":"x"}`)}, {[]byte(`{"locations":{"a":{"":""}}}`)}}
	writeSeeds(f, "FuzzParseVersions", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseVersions(data)
		if err != nil {
			return
		}
		for _, names := range v.Locations {
			for name, id := range names {
				if name == "" || id == "" {
					t.Fatalf("%q: an empty name or id", data)
				}
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w, err := parseVersions(b)
		if err != nil {
			t.Fatalf("%q re-encodes as %q, which is refused: %v", data, b, err)
		}
		if b2, _ := json.Marshal(w); !bytes.Equal(b, b2) {
			t.Fatalf("%q does not round-trip", data)
		}
	})
}
