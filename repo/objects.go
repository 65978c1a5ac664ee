package repo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Object kinds and their names under a tenant's prefix (docs/format.md,
// "Layout"). Every name but config is the SHA-256 of the object's bytes,
// so any location can verify an object without keys.
const (
	kindConfig   = "config"
	kindKeys     = "keys"
	kindData     = "data"
	kindIndex    = "index"
	kindSnapshot = "snapshots"
)

// Hash is a SHA-256 content address.
type Hash [sha256.Size]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 8 hex digits, for display.
func (h Hash) Short() string { return h.String()[:8] }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("%q is not a 64-digit hex name", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%q is not a hex name", s)
	}
	return h, nil
}

// objectName returns the location-relative name of an object of a tenant.
func objectName(tenant, kind string, h Hash) string {
	if kind == kindData {
		s := h.String()
		return tenant + "/data/" + s[:2] + "/" + s
	}
	return tenant + "/" + kind + "/" + h.String()
}

// parseObjectName returns the hash in a listed name of the given kind.
func parseObjectName(tenant, kind, name string) (Hash, bool) {
	rest, ok := strings.CutPrefix(name, tenant+"/"+kind+"/")
	if !ok {
		return Hash{}, false
	}
	if kind == kindData {
		if len(rest) < 3 || rest[2] != '/' {
			return Hash{}, false
		}
		if !strings.HasPrefix(rest[3:], rest[:2]) {
			return Hash{}, false
		}
		rest = rest[3:]
	}
	h, err := ParseHash(rest)
	return h, err == nil
}

// metaSealer seals the repository's own structures (pack headers, indexes,
// manifests) under the tenant's data key. The associated data names the
// structure and its format version, so one kind can never be opened as
// another.
type metaSealer struct {
	key  []byte // for sealedVerifier
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// Version 1 associated data. Indexes and manifests are now sealed under
// version 2, bound to tenant and repository (boundAD); version 1 objects
// are still read.
const (
	adPackHeader = "kluis pack header v1"
	adIndex      = "kluis index v1"
	adManifest   = "kluis manifest v1"
)

func newMetaSealer(key []byte) (*metaSealer, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &metaSealer{key: bytes.Clone(key), aead: a}, nil
}

func (m *metaSealer) seal(ad string, plain []byte) []byte {
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plain)+chacha20poly1305.Overhead)
	if _, err := rand.Read(out); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return m.aead.Seal(out, out, plain, []byte(ad))
}

func (m *metaSealer) open(ad string, sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, ErrCorrupt
	}
	n := chacha20poly1305.NonceSizeX
	plain, err := m.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// openInPlace is open, decrypting into sealed's own storage.
func (m *metaSealer) openInPlace(ad string, sealed []byte) ([]byte, error) {
	n := chacha20poly1305.NonceSizeX
	if len(sealed) < n+chacha20poly1305.Overhead {
		return nil, ErrCorrupt
	}
	plain, err := m.aead.Open(sealed[n:n], sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}
