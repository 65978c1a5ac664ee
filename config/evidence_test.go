package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/evidence"
)

// TestEvidenceWitnesses: witnesses and the auditor recipient are checked,
// each problem naming its field.
func TestEvidenceWitnesses(t *testing.T) {
	const key = "witness.example/w1+5d7ab0a2+BMlWr8tGvCFVqlFWCDPZWJtCWqjBTKPNk8VsFhvRXhZb"
	dir := t.TempDir()
	good := validYAML(t) + "evidence:\n  witnesses:\n    - {url: \"https://witness.example/\", key: \"" + key + "\"}\n"
	c, err := Parse([]byte(good), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Evidence.Witnesses) != 1 {
		t.Fatalf("witnesses: %+v", c.Evidence)
	}
	for _, tc := range []struct{ name, add, want string }{
		{"plain http", "  witnesses: [{url: \"http://witness.example/\", key: \"" + key + "\"}]\n", "evidence.witnesses[0].url: plain http"},
		{"no key", "  witnesses: [{url: \"https://witness.example/\"}]\n", "evidence.witnesses[0].key: required"},
		{"bad key", "  witnesses: [{url: \"https://witness.example/\", key: \"w+00+AA==\"}]\n", "evidence.witnesses[0].key: not a witness key"},
		// evidence.ParseWitnessKey takes only the canonical spelling.
		{"upper-case key hash", "  witnesses: [{url: \"https://witness.example/\", key: \"" + strings.Replace(key, "5d7ab0a2", "5D7AB0A2", 1) + "\"}]\n", "evidence.witnesses[0].key: not a witness key"},
		{"twice", "  witnesses: [{url: \"https://a.example/\", key: \"" + key + "\"}, {url: \"https://b.example/\", key: \"" + key + "\"}]\n", "evidence.witnesses[1].key: witness \"witness.example/w1\" is also"},
		{"bad recipient", "  auditor_recipient: age1nope\n", "evidence.auditor_recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(validYAML(t)+"evidence:\n"+tc.add), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestWitnessKeyWithPlusInBase64: the key's base64 may itself contain
// '+' (about half of all keys); such a key is valid.
func TestWitnessKeyWithPlusInBase64(t *testing.T) {
	for _, k := range []string{
		"witness.example/auditor+d5313075+BN4t6eZsaM+vWKD9/KiOuVPwNSK6jQMZKiGh2h3f7+Vd",
		"witness.example/auditor+1ab744d4+BAmz3DoJtCIo1/DW8RhFW8zl2rbYqT6SO45j1iZLtshv",
	} {
		if name, ok := witnessKeyName(k); !ok || name != "witness.example/auditor" {
			t.Errorf("witnessKeyName(%q) = %q, %v", k, name, ok)
		}
	}
}

// TestWitnessKeyAgreesWithEvidence: config check accepts exactly the
// witness keys the evidence code parses (it accepted an upper-case key
// hash that evidence.ParseWitnessKey refuses), up to the key hash, which
// only evidence checks.
func TestWitnessKeyAgreesWithEvidence(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.WitnessVerifier("witness.example/w1", pub)
	if err != nil {
		t.Fatal(err)
	}
	hash := fmt.Sprintf("%08x", v.KeyHash())
	b64 := base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...))
	key := "witness.example/w1+" + hash + "+" + b64
	for _, k := range []string{
		key,
		" " + key + "\n",
		"witness.example/w1+" + strings.ToUpper(hash) + "+" + b64,
		"a name+" + hash + "+" + b64,
		"witness.example/w1+" + hash + "+" + strings.TrimRight(b64, "="),
	} {
		_, cfgOK := witnessKeyName(k)
		_, err := evidence.ParseWitnessKey(k)
		if cfgOK != (err == nil) {
			t.Errorf("%q: config accepts %v, evidence.ParseWitnessKey: %v", k, cfgOK, err)
		}
	}
}
