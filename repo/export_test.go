package repo

import "filippo.io/age"

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
