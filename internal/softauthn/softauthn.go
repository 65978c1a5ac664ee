// Package softauthn is a software WebAuthn authenticator for tests: it
// answers a relying party's creation and request options with responses
// a browser would send (attestation "none", ECDSA P-256 keys), and can
// sign any challenge, so a test can forge what a compromised web process
// would. It is for tests only.
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator holds credentials (one key per credential id).
type Authenticator struct {
	// Origin is what the "browser" puts into clientDataJSON.
	Origin string
	// ZeroCount makes it a synced passkey that keeps no sign counter:
	// every assertion reports 0, so the counter stops no replay.
	ZeroCount bool
	creds     map[string]*cred
}

type cred struct {
	id    []byte
	key   *ecdsa.PrivateKey
	rpID  string
	user  []byte
	count uint32
}

// New returns an authenticator used from origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, creds: map[string]*cred{}}
}

var b64 = base64.RawURLEncoding

func decode(s string) ([]byte, error) {
	if b, err := b64.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge        string `json:"challenge"`
		RPID             string `json:"rpId"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// Create answers creation options (navigator.credentials.create) with a
// new credential.
func (a *Authenticator) Create(options []byte) (json.RawMessage, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	chal, err := decode(o.PublicKey.Challenge)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	user, _ := decode(o.PublicKey.User.ID)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &cred{id: random(32), key: key, rpID: o.PublicKey.RP.ID, user: user}
	a.creds[string(c.id)] = c
	cd := a.clientData("webauthn.create", chal)
	ecdh, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := ecdh.Bytes() // 0x04 || X || Y
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]})
	if err != nil {
		return nil, err
	}
	ad := authData(c.rpID, 0x01|0x04|0x40, 0)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(c.id)))
	ad = append(ad, c.id...)
	ad = append(ad, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": b64.EncodeToString(c.id), "rawId": b64.EncodeToString(c.id), "type": "public-key",
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{}})
}

// Get answers request options (navigator.credentials.get) with an
// assertion of the first allowed credential it holds.
func (a *Authenticator) Get(options []byte) (json.RawMessage, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	chal, err := decode(o.PublicKey.Challenge)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	for _, ac := range o.PublicKey.AllowCredentials {
		id, _ := decode(ac.ID)
		if c := a.creds[string(id)]; c != nil {
			return a.assert(c, o.PublicKey.RPID, chal, a.Origin), nil
		}
	}
	return nil, errors.New("softauthn: no allowed credential")
}

// Sign returns an assertion by any credential this authenticator holds
// over any challenge, for any relying party and origin: what an
// attacker with this authenticator could produce.
func (a *Authenticator) Sign(rpID, origin string, challenge []byte) (json.RawMessage, error) {
	for _, c := range a.creds {
		return a.assert(c, rpID, challenge, origin), nil
	}
	return nil, errors.New("softauthn: no credential")
}

// IDs returns the credential ids held.
func (a *Authenticator) IDs() [][]byte {
	var out [][]byte
	for _, c := range a.creds {
		out = append(out, c.id)
	}
	return out
}

func (a *Authenticator) assert(c *cred, rpID string, chal []byte, origin string) json.RawMessage {
	if rpID == "" {
		rpID = c.rpID
	}
	if !a.ZeroCount {
		c.count++
	}
	cd := clientData("webauthn.get", chal, origin)
	ad := authData(rpID, 0x01|0x04, c.count)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(c.id), "rawId": b64.EncodeToString(c.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(c.user)},
		"clientExtensionResults": map[string]any{}})
	return b
}

func (a *Authenticator) clientData(typ string, chal []byte) []byte {
	return clientData(typ, chal, a.Origin)
}

func clientData(typ string, chal []byte, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64.EncodeToString(chal), "origin": origin, "crossOrigin": false})
	return b
}

func authData(rpID string, flags byte, count uint32) []byte {
	h := sha256.Sum256([]byte(rpID))
	ad := append([]byte{}, h[:]...)
	ad = append(ad, flags)
	return binary.BigEndian.AppendUint32(ad, count)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
