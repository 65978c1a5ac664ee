package repo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/secretfile"
)

// MasterKeySize is the length of the appliance master key.
const MasterKeySize = 32

const masterKeyPrefix = "KLUIS-MASTER-KEY-1-"

// MasterKey is the appliance secret from which each tenant's key-encryption
// key is derived. It never leaves the appliance.
type MasterKey [MasterKeySize]byte

// GenerateMasterKey returns a new random master key.
func GenerateMasterKey() (MasterKey, error) {
	var k MasterKey
	_, err := rand.Read(k[:])
	return k, err
}

// Encode returns the key file contents.
func (k MasterKey) Encode() []byte {
	return []byte("# kluis appliance master key: keep secret; losing it loses every tenant key not wrapped to a recovery recipient\n" +
		masterKeyPrefix + base64.RawURLEncoding.EncodeToString(k[:]) + "\n")
}

// ParseMasterKey decodes a master key file. Its errors never echo the
// file's contents.
func ParseMasterKey(data []byte) (MasterKey, error) {
	var k MasterKey
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, masterKeyPrefix) {
			return k, errors.New("not a kluis master key file")
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(line, masterKeyPrefix))
		if err != nil || len(b) != MasterKeySize {
			return k, errors.New("master key file is damaged")
		}
		copy(k[:], b)
		return k, nil
	}
	return k, errors.New("master key file is empty")
}

// LoadMasterKey reads a master key file, refusing one that group or others
// can read.
func LoadMasterKey(path string) (MasterKey, error) {
	data, err := readSecretFile(path)
	if err != nil {
		return MasterKey{}, err
	}
	k, err := ParseMasterKey(data)
	if err != nil {
		return k, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadSigningKey reads the appliance's Ed25519 signing key (PKCS #8 PEM).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return ek, nil
}

// EncodePublicKey returns the PKIX PEM of an Ed25519 public key: what an
// auditor holds (OpenSSL reads it too).
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey decodes a PKIX PEM Ed25519 public key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 public key")
	}
	return ek, nil
}

// InitApplianceKeys creates the master key and signing key files with mode
// 0600. It refuses to overwrite either file, and creates neither when one
// exists.
func InitApplianceKeys(masterPath, signingPath string) (ed25519.PublicKey, error) {
	if _, err := os.Lstat(masterPath); err == nil {
		return nil, fmt.Errorf("%s already exists: refusing to overwrite a key", masterPath)
	}
	if _, err := os.Lstat(signingPath); err == nil {
		return nil, fmt.Errorf("%s already exists: refusing to overwrite a key (only the master key is missing? `kluis keys init --master-only`)", signingPath)
	}
	mk, err := GenerateMasterKey()
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeSecretFile(masterPath, mk.Encode()); err != nil {
		return nil, err
	}
	if err := writeSecretFile(signingPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		os.Remove(masterPath)
		return nil, err
	}
	return pub, nil
}

// CreateMasterKey creates only a new master key file (mode 0600), refusing
// to overwrite one: for an appliance that lost its master key but kept its
// signing key (`kluis keys init --master-only`).
func CreateMasterKey(path string) error {
	mk, err := GenerateMasterKey()
	if err != nil {
		return err
	}
	if err := writeSecretFile(path, mk.Encode()); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite a key", path)
	} else if err != nil {
		return err
	}
	return nil
}

// writeSecretFile creates path with mode 0600, failing if it exists, and
// makes it durable.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// readSecretFile reads a small secret file, refusing one that anybody but
// the kluis user could read or replace (secretfile: no symbolic
// link, owner, mode, parent directory, checked on the descriptor read).
func readSecretFile(path string) ([]byte, error) {
	b, err := secretfile.Read(path, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		// Wraps fs.ErrNotExist: the appliance adds what to do, which
		// depends on whether it already has backups (appliance.KeyAdvice):
		// `kluis keys init` on a fresh one only.
		return nil, fmt.Errorf("%s does not exist: %w", path, fs.ErrNotExist)
	}
	return b, err
}

// syncDir fsyncs a directory (package durable).
func syncDir(dir string) error { return durable.SyncDir(dir) }
