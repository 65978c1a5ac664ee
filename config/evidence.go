package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"filippo.io/age"
)

// Evidence is the evidence: section: who else holds the evidence log
// (docs/evidence.md, "Witnesses").
type Evidence struct {
	// AuditorRecipient is an age X25519 public key ("age1…") of the
	// auditor: the evidence copies at the locations are sealed to it as
	// well as to the appliance, so the auditor can read a location's copy
	// and a bucket thief cannot.
	AuditorRecipient string `yaml:"auditor_recipient"`
	// Witnesses cosign every checkpoint of the evidence log. A checkpoint
	// without the cosignature of every witness listed turns status red.
	Witnesses []Witness `yaml:"witnesses"`
}

// Witness is one witness of the evidence log (C2SP tlog-witness).
type Witness struct {
	// URL is the witness's base URL (POST URL/add-checkpoint): https, or
	// http on a loopback address.
	URL string `yaml:"url"`
	// Key is the witness's public key as `kluis witness` prints it:
	// NAME+KEYHASH+BASE64.
	Key string `yaml:"key"`
}

func (c *Config) validateEvidence(p *Problems) {
	e := c.Evidence
	if e.AuditorRecipient != "" {
		if _, err := age.ParseX25519Recipient(e.AuditorRecipient); err != nil {
			p.addf("evidence.auditor_recipient", "not an age X25519 recipient (age1…): %v", err)
		}
	}
	names := map[string]int{}
	for i, w := range e.Witnesses {
		path := fmt.Sprintf("evidence.witnesses[%d]", i)
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			p.addf(path+".url", "required")
		case err != nil || u.Host == "":
			p.addf(path+".url", "%q is not a URL", w.URL)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			p.addf(path+".url", "plain http to %s: use https (http only on a loopback address)", u.Hostname())
		case u.Scheme != "http" && u.Scheme != "https":
			p.addf(path+".url", "scheme %q: want https", u.Scheme)
		}
		name, ok := witnessKeyName(w.Key)
		switch {
		case w.Key == "":
			p.addf(path+".key", "required (the NAME+KEYHASH+BASE64 line `kluis witness` prints)")
		case !ok:
			p.addf(path+".key", "not a witness key: want NAME+KEYHASH+BASE64 of an Ed25519 cosignature key, as `kluis witness` prints it")
		default:
			if j, dup := names[name]; dup {
				p.addf(path+".key", "witness %q is also evidence.witnesses[%d]", name, j)
			}
			names[name] = i
		}
	}
}

// witnessKeyName checks the shape of a witness key and returns its name
// (the evidence package checks the key hash). It accepts what
// evidence.ParseWitnessKey accepts: only the canonical spelling (lower-case
// hex, canonical base64), a name without spaces, '+' or invalid UTF-8, at
// most 1024 bytes in all — so a key config check passes is one the
// evidence code takes.
func witnessKeyName(s string) (string, bool) {
	s = strings.TrimSpace(s)
	parts := strings.SplitN(s, "+", 3) // base64 has its own '+'
	if len(parts) != 3 || len(s) > 1024 || parts[0] == "" || len(parts[0]) > 200 ||
		strings.ContainsAny(parts[0], " \n\t") || strings.ToValidUTF8(parts[0], "") != parts[0] {
		return "", false
	}
	h, err := hex.DecodeString(parts[1])
	raw, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || err2 != nil || len(h) != 4 || len(raw) != 33 || raw[0] != 0x04 ||
		parts[1] != hex.EncodeToString(h) || parts[2] != base64.StdEncoding.EncodeToString(raw) {
		return "", false
	}
	return parts[0], true
}
