package repo

import (
	"crypto/ed25519"
	"time"

	"filippo.io/age"
)

// Internals the external tests (package repo_test) need. They cannot live
// in package repo's own tests: those cannot import repo/locationtest or
// repo/local, which import repo.

// DecodeRecovery is decodeRecovery: the lead's recovery CLI will call it.
func DecodeRecovery(keyFile []byte, identities []age.Identity, tenant, repoID string) (*TenantKey, error) {
	return decodeRecovery(keyFile, identities, tenant, repoID)
}

// DecodeKeyFile is decodeKeyFile.
func DecodeKeyFile(keyFile []byte, master MasterKey, tenant, repoID string) (*TenantKey, error) {
	return decodeKeyFile(keyFile, master, tenant, repoID)
}

// EncodeKeyFile is encodeKeyFile: tests plant key files as an attacker who
// knows the format (it is public) would.
func EncodeKeyFile(k *TenantKey, master MasterKey, recipient string, signer ed25519.PrivateKey) ([]byte, error) {
	return encodeKeyFile(k, master, recipient, signer)
}

// NewTenantKey is newTenantKey.
func NewTenantKey(tenant, repoID string, configSHA Hash, now time.Time) (*TenantKey, error) {
	return newTenantKey(tenant, repoID, configSHA, now)
}
