package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// Location copies of reports are sealed with age (docs/format.md,
// "Evidence log"): to the appliance itself (a key derived from its
// signing key, stanza type "kluis-evidence-seal") and to any further
// recipients (the auditor's, the offline recovery recipient). A bucket
// thief reads no tenant, table name or row count; the appliance, the
// auditor and a disaster recovery can.

const sealStanza = "kluis-evidence-seal"

// maxSealed bounds a sealed report at a location.
const maxSealed = MaxRecordSize + 64<<10

// sealKey is the appliance's own sealing key: HKDF-SHA256 of the signing
// key's seed.
type sealKey [chacha20poly1305.KeySize]byte

func newSealKey(key ed25519.PrivateKey) (sealKey, error) {
	var k sealKey
	if len(key) != ed25519.PrivateKeySize {
		return k, errors.New("evidence: no signing key to derive the sealing key from")
	}
	_, err := io.ReadFull(hkdf.New(sha256.New, key.Seed(), nil, []byte("kluis evidence seal v1")), k[:])
	return k, err
}

// Wrap implements age.Recipient.
func (k sealKey) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return []*age.Stanza{{Type: sealStanza, Args: []string{base64.RawStdEncoding.EncodeToString(nonce)}, Body: aead.Seal(nil, nonce, fileKey, []byte(sealStanza))}}, nil
}

// Unwrap implements age.Identity.
func (k sealKey) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	for _, s := range stanzas {
		if s.Type != sealStanza || len(s.Args) != 1 {
			continue
		}
		nonce, err := base64.RawStdEncoding.DecodeString(s.Args[0])
		if err != nil || len(nonce) != aead.NonceSize() {
			continue
		}
		if fk, err := aead.Open(nil, nonce, s.Body, []byte(sealStanza)); err == nil {
			return fk, nil
		}
	}
	return nil, age.ErrIncorrectIdentity
}

// seal encrypts a report file for its location copy.
func (s *Store) seal(data []byte) ([]byte, error) {
	k, err := newSealKey(s.key)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w, err := age.Encrypt(&b, append([]age.Recipient{k}, s.Recipients...)...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// OpenSealed decrypts a location copy with any of ids (the auditor's age
// identity, or the recovery identity). Errors wrap ErrMalformed.
func OpenSealed(data []byte, ids ...age.Identity) ([]byte, error) {
	if len(data) > maxSealed {
		return nil, fmt.Errorf("sealed report larger than %d bytes: %w", maxSealed, ErrMalformed)
	}
	r, err := age.Decrypt(bytes.NewReader(data), ids...)
	if err != nil {
		return nil, fmt.Errorf("sealed report: %v: %w", err, ErrMalformed)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("sealed report: %v: %w", err, ErrMalformed)
	}
	return out, nil
}

// openSealed decrypts a location copy with the appliance's own key.
func (s *Store) openSealed(data []byte) ([]byte, error) {
	k, err := newSealKey(s.key)
	if err != nil {
		return nil, err
	}
	return OpenSealed(data, k)
}
