package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/kluis-nl/kluis/keyring"
)

// genuineContinuation is a continuation body of the log of testKey(1).
func genuineContinuation(t testing.TB) []byte {
	prev := testKey(1)
	var root [32]byte
	root[0] = 7
	n, err := SignLogCheckpoint(prev, LogCheckpoint{Origin: Origin("ams-1"), Size: 3, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	pub := prev.Public().(ed25519.PublicKey)
	b, _ := json.Marshal(Continuation{Schema: ContinuationSchema, Appliance: "ams-1", PreviousOrigin: Origin("ams-1"),
		PreviousKey: keyring.ID(pub), PreviousPublicKey: base64.StdEncoding.EncodeToString(pub), PreviousSize: 3,
		PreviousRoot: base64.StdEncoding.EncodeToString(root[:]), PreviousCheckpoint: string(n)})
	return b
}

// FuzzDecodeContinuation: a continuation that decodes names exactly the
// size and root its embedded note, signed by its embedded key, says, and
// re-encodes to the same fields.
func FuzzDecodeContinuation(f *testing.F) {
	g := genuineContinuation(f)
	seeds := [][]any{{g}, {[]byte(`{}`)}, {bytes.Replace(g, []byte(`"previous_size":3`), []byte(`"previous_size":4`), 1)},
		{bytes.Replace(g, []byte(`"appliance":"ams-1"`), []byte(`"appliance":"ams-2"`), 1)}}
	writeSeeds(f, "FuzzDecodeContinuation", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, prev, err := decodeContinuation(body)
		if err != nil {
			return
		}
		cp, _, err := OpenLogCheckpoint([]byte(c.PreviousCheckpoint), c.Appliance, prev)
		if err != nil || cp.Size != c.PreviousSize || base64.StdEncoding.EncodeToString(cp.Root[:]) != c.PreviousRoot {
			t.Fatalf("accepted a continuation its note does not back: %q", body)
		}
		again, _, err := decodeContinuation(mustJSON(c))
		if err != nil || again != c {
			t.Fatalf("does not round-trip: %v", err)
		}
	})
}
