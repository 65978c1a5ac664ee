package repo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/kluis-nl/kluis/chunk"
)

// TenantKey is a tenant's secret key material (docs/format.md, "Keys").
// It is generated at init and never shared between tenants, so destroying
// one tenant's key files shreds that tenant's data and no other's.
type TenantKey struct {
	Tenant  string    `json:"tenant"`
	RepoID  string    `json:"repo_id"`
	Created time.Time `json:"created"`
	// DataKey encrypts blobs and the repository's own structures.
	DataKey []byte `json:"data_key"`
	// IDKey keys the blob-ID MAC.
	IDKey []byte `json:"id_key"`
	// FingerprintKey keys table fingerprints, so a fingerprint in a public
	// report reveals nothing about the rows.
	FingerprintKey []byte `json:"fingerprint_key"`
	// Pol is the secret chunker polynomial.
	Pol chunk.Pol `json:"polynomial"`
	// ConfigSHA256 binds the plaintext repository config, so editing it is
	// detected.
	ConfigSHA256 string `json:"config_sha256"`
	// Supersedes names (by their SHA-256) the key files of a lost
	// appliance that a recovery (Recover) replaced: check reports them as
	// superseded, not as planted or tampered with, since Object Lock keeps
	// them. Inside the sealed (and signed) key material: only the holder of
	// the master key can record one.
	Supersedes []string `json:"supersedes,omitempty"`
}

func newTenantKey(tenant, repoID string, configSHA Hash, now time.Time) (*TenantKey, error) {
	pol, err := chunk.RandomPol()
	if err != nil {
		return nil, err
	}
	k := &TenantKey{Tenant: tenant, RepoID: repoID, Created: now.UTC(), Pol: pol, ConfigSHA256: configSHA.String()}
	for _, b := range []*[]byte{&k.DataKey, &k.IDKey, &k.FingerprintKey} {
		*b = make([]byte, chunk.KeySize)
		if _, err := rand.Read(*b); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *TenantKey) validate() error {
	if len(k.DataKey) != chunk.KeySize || len(k.IDKey) != chunk.KeySize || len(k.FingerprintKey) != chunk.KeySize {
		return errors.New("key material has the wrong length")
	}
	if k.Pol.Deg() < 32 || k.Pol.Deg() > 53 || !k.Pol.Irreducible() {
		return errors.New("chunker polynomial is invalid")
	}
	for _, s := range k.Supersedes {
		if h, err := ParseHash(s); err != nil || h.String() != s {
			return errors.New("supersedes: not a lower-case hex key file name")
		}
	}
	return nil
}

// keyFile is the stored, wrapped form of a TenantKey.
type keyFile struct {
	Version int    `json:"version"`
	Tenant  string `json:"tenant"`
	RepoID  string `json:"repo_id"`
	// Master is the key material sealed under a KEK derived from the
	// appliance master key.
	Master *wrapped `json:"master"`
	// Recovery is the key material encrypted with age to an offline X25519
	// recipient, ASCII-armored.
	Recovery          string `json:"recovery,omitempty"`
	RecoveryRecipient string `json:"recovery_recipient,omitempty"`
	// Signer and Signature (version 2): the appliance's Ed25519 signing key
	// signs tenant, repository id and the SHA-256 of the key material
	// (keySignedMessage). Whoever holds only the recovery recipient (it is
	// in every key file) can make a key file that age decrypts, but not
	// one signed by the appliance.
	Signer    []byte `json:"signer,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

type wrapped struct {
	KDF    string `json:"kdf"`
	AEAD   string `json:"aead"`
	Salt   []byte `json:"salt"`
	Sealed []byte `json:"sealed"`
}

const (
	kdfName      = "hkdf-sha256"
	aeadName     = "xchacha20-poly1305"
	maxKeyFile   = 64 << 10
	keyFileV1    = 1
	keyFileV2    = 2
	kekInfoLabel = "kluis tenant kek v1"
)

// kek derives the key-encryption key of one tenant repository. Tenant and
// repository id are part of the derivation, so one tenant's key file cannot
// be opened as another tenant's.
func kek(master MasterKey, salt []byte, tenant, repoID string) []byte {
	info := kekInfoLabel + "\x00" + tenant + "\x00" + repoID
	r := hkdf.New(sha256.New, master[:], salt, []byte(info))
	k := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(r, k); err != nil {
		panic(err)
	}
	return k
}

func keyAD(tenant, repoID string) []byte {
	return []byte("kluis tenant key v1\x00" + tenant + "\x00" + repoID)
}

// keySignedMessage is what a version 2 key file's signature covers: the
// tenant, the repository id and the SHA-256 of the wrapped key material
// (the exact plaintext both copies wrap).
func keySignedMessage(tenant, repoID string, plain []byte) []byte {
	sum := sha256.Sum256(plain)
	return append([]byte("kluis key file v2\x00"+tenant+"\x00"+repoID+"\x00"), sum[:]...)
}

// verifyKeyFile reports whether kf is signed, over plain, by one of the
// trusted public keys.
func verifyKeyFile(kf *keyFile, plain []byte, trusted []ed25519.PublicKey) bool {
	if len(kf.Signature) != ed25519.SignatureSize || len(kf.Signer) != ed25519.PublicKeySize {
		return false
	}
	for _, pub := range trusted {
		if bytes.Equal(pub, kf.Signer) && ed25519.Verify(pub, keySignedMessage(kf.Tenant, kf.RepoID, plain), kf.Signature) {
			return true
		}
	}
	return false
}

// encodeKeyFile wraps k under the master key and, when recipient is set,
// to the recovery recipient; with a signer it signs the key material
// (version 2).
func encodeKeyFile(k *TenantKey, master MasterKey, recipient string, signer ed25519.PrivateKey) ([]byte, error) {
	plain, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(kek(master, salt, k.Tenant, k.RepoID))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	kf := keyFile{
		Version: keyFileV1, Tenant: k.Tenant, RepoID: k.RepoID,
		Master: &wrapped{KDF: kdfName, AEAD: aeadName, Salt: salt,
			Sealed: aead.Seal(nonce, nonce, plain, keyAD(k.Tenant, k.RepoID))},
	}
	if recipient != "" {
		r, err := age.ParseX25519Recipient(recipient)
		if err != nil {
			return nil, fmt.Errorf("recovery recipient: %w", err)
		}
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		w, err := age.Encrypt(aw, r)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
		kf.Recovery, kf.RecoveryRecipient = buf.String(), recipient
	}
	if signer != nil {
		kf.Version = keyFileV2
		kf.Signer = signer.Public().(ed25519.PublicKey)
		kf.Signature = ed25519.Sign(signer, keySignedMessage(k.Tenant, k.RepoID, plain))
	}
	return json.MarshalIndent(kf, "", "  ")
}

func decodeKeyFileEnvelope(data []byte) (*keyFile, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file larger than %d bytes: %w", maxKeyFile, ErrCorrupt)
	}
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("key file: %v: %w", err, ErrCorrupt)
	}
	switch {
	case kf.Version == keyFileV1 && kf.Signer == nil && kf.Signature == nil:
	case kf.Version == keyFileV2 && len(kf.Signer) == ed25519.PublicKeySize && len(kf.Signature) == ed25519.SignatureSize:
	case kf.Version == keyFileV1 || kf.Version == keyFileV2:
		return nil, fmt.Errorf("key file: signature fields do not fit version %d: %w", kf.Version, ErrCorrupt)
	default:
		return nil, fmt.Errorf("key file version %d is not supported by this kluis", kf.Version)
	}
	if kf.Master == nil || kf.Master.KDF != kdfName || kf.Master.AEAD != aeadName || len(kf.Master.Salt) != 32 {
		return nil, fmt.Errorf("key file: unknown or missing wrapping: %w", ErrCorrupt)
	}
	return &kf, nil
}

// decodeKeyFile unwraps a key file with the master key for the expected
// tenant and repository.
func decodeKeyFile(data []byte, master MasterKey, tenant, repoID string) (*TenantKey, error) {
	kf, err := decodeKeyFileEnvelope(data)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(kek(master, kf.Master.Salt, tenant, repoID))
	if err != nil {
		return nil, err
	}
	s := kf.Master.Sealed
	if len(s) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("key file: sealed key too short: %w", ErrCorrupt)
	}
	plain, err := aead.Open(nil, s[:aead.NonceSize()], s[aead.NonceSize():], keyAD(tenant, repoID))
	if err != nil {
		return nil, fmt.Errorf("the master key does not open tenant %s's key (wrong master key, a key file of another tenant, or a damaged key file): %w", tenant, ErrWrongKey)
	}
	return parseKeyMaterial(plain, tenant, repoID)
}

// decodeRecovery unwraps a key file's recovery copy with an age identity.
func decodeRecovery(data []byte, identities []age.Identity, tenant, repoID string) (*TenantKey, error) {
	k, _, _, err := openRecovery(data, identities, tenant, repoID)
	return k, err
}

// openRecovery unwraps a key file's recovery copy and also returns the
// envelope and the plaintext, which a signature covers.
func openRecovery(data []byte, identities []age.Identity, tenant, repoID string) (*TenantKey, *keyFile, []byte, error) {
	kf, err := decodeKeyFileEnvelope(data)
	if err != nil {
		return nil, nil, nil, err
	}
	if kf.Recovery == "" {
		return nil, nil, nil, errors.New("key file has no recovery copy (appliance.recovery_recipient was not set when it was written)")
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(kf.Recovery)), identities...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("recovery identity does not open tenant %s's key: %w", tenant, ErrWrongKey)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("recovery copy: %v: %w", err, ErrCorrupt)
	}
	k, err := parseKeyMaterial(plain, tenant, repoID)
	if err != nil {
		return nil, nil, nil, err
	}
	if kf.Tenant != tenant || kf.RepoID != repoID {
		return nil, nil, nil, fmt.Errorf("key file names tenant %q repository %s, not %q %s: %w", kf.Tenant, kf.RepoID, tenant, repoID, ErrWrongKey)
	}
	return k, kf, plain, nil
}

// sameKey reports whether two tenant keys hold the same key material.
func sameKey(a, b *TenantKey) bool {
	return bytes.Equal(a.DataKey, b.DataKey) && bytes.Equal(a.IDKey, b.IDKey) &&
		bytes.Equal(a.FingerprintKey, b.FingerprintKey) && a.Pol == b.Pol && a.ConfigSHA256 == b.ConfigSHA256
}

func parseKeyMaterial(plain []byte, tenant, repoID string) (*TenantKey, error) {
	var k TenantKey
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("key material: %v: %w", err, ErrCorrupt)
	}
	if k.Tenant != tenant || k.RepoID != repoID {
		return nil, fmt.Errorf("key belongs to tenant %q repository %s, not %q %s: %w", k.Tenant, k.RepoID, tenant, repoID, ErrWrongKey)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("key material: %v: %w", err, ErrCorrupt)
	}
	return &k, nil
}
