package appliance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
)

// keyFileSigner is the appliance's signing key, which signs every tenant
// key file it writes (so recovery can tell them from planted ones); nil
// when the key file does not exist (`kluis keys init` makes it).
func (a *Appliance) keyFileSigner() (ed25519.PrivateKey, error) {
	path := a.Cfg.Resolve(a.Cfg.Appliance.SigningKeyFile)
	if a.Cfg.Appliance.SigningKeyFile == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return repo.LoadSigningKey(path)
}

// RecoverOptions are the operator's choices for RecoverRepo.
type RecoverOptions struct {
	// IdentityFile holds the age identity (the private half of
	// appliance.recovery_recipient), from the offline recovery kit.
	IdentityFile string
	// SigningPublicKeyFiles are PEM public keys of the lost appliance (from
	// the recovery kit): only key files signed by one of them are accepted.
	SigningPublicKeyFiles []string
	// AllowUnreachable recovers although a location cannot be read.
	AllowUnreachable bool
	// Signers are trusted signing public keys besides those files (this
	// appliance's own, when only its master key was lost).
	Signers []ed25519.PublicKey
	// Gone recovers a tenant the config no longer declares (its snapshots
	// are still under retention, daemon.GoneTenants).
	Gone bool
}

// RecoverRepo brings a tenant's repository under this appliance's master
// key using an offline recovery identity file (age X25519 identities). Key
// files are authenticated as repo.Recover describes: signed by the lost
// appliance (its public key from the recovery kit) when one is given, and
// in agreement at every location.
func (a *Appliance) RecoverRepo(ctx context.Context, tenant string, o RecoverOptions) (*repo.Repo, []repo.LocationResult, error) {
	if _, err := a.Cfg.Tenant(tenant); err != nil && !o.Gone {
		return nil, nil, err
	}
	ids, err := ParseIdentityFile(o.IdentityFile)
	if err != nil {
		return nil, nil, err
	}
	ro := repo.RecoverOptions{Identities: ids, Signers: o.Signers, RequireSigned: len(o.SigningPublicKeyFiles)+len(o.Signers) > 0, AllowUnreachable: o.AllowUnreachable}
	for _, p := range o.SigningPublicKeyFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		pub, err := repo.ParsePublicKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		ro.Signers = append(ro.Signers, pub)
	}
	opts, err := a.repoOptions()
	if err != nil {
		return nil, nil, err
	}
	locs, err := a.Locations()
	if err != nil {
		return nil, nil, err
	}
	r, res, err := repo.Recover(ctx, tenant, locs, ro, opts)
	if err != nil {
		return r, res, err
	}
	// The lost appliance's key also signed the erasure register, the
	// access log and the evidence log: trust it as this appliance's
	// previous key (keyring), before anything is appended with the new one.
	for _, pub := range ro.Signers {
		if _, err := a.TrustPreviousKey(pub); err != nil {
			return r, res, fmt.Errorf("tenant %s is recovered, but the previous signing key %s could not be recorded: %w", tenant, keyring.ID(pub), err)
		}
	}
	return r, res, nil
}

// TrustPreviousKey records pub, a public key from the offline recovery
// kit, as a previous signing key of this appliance
// (state_dir/keys/previous, keyring.AddPrevious), so that what the lost
// appliance signed before the key changed keeps verifying. It reports
// false when there was nothing to do (already trusted, or the current
// key).
func (a *Appliance) TrustPreviousKey(pub ed25519.PublicKey) (bool, error) {
	key, err := a.keyFileSigner()
	if err != nil {
		return false, err
	}
	if key == nil {
		return false, errors.New("no signing key yet: run kluis keys init first")
	}
	return keyring.AddPrevious(a.StateDir(), key, pub, a.Now())
}

// SigningKey is the appliance's signing key (appliance.signing_key_file).
func (a *Appliance) SigningKey() (ed25519.PrivateKey, error) {
	key, err := a.keyFileSigner()
	if err == nil && key == nil {
		err = errors.New("no signing key (appliance.signing_key_file): run kluis keys init")
	}
	return key, err
}

// KeyRing is the appliance's key ring: its signing key's public half and
// the previous keys in the state directory.
func (a *Appliance) KeyRing() (*keyring.Ring, error) {
	key, err := a.keyFileSigner()
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("no signing key (appliance.signing_key_file): run kluis keys init")
	}
	return keyring.Load(a.StateDir(), key.Public().(ed25519.PublicKey))
}

// ParseIdentityFile reads the offline recovery identity (age X25519
// identities). Its errors never show the file's contents.
func ParseIdentityFile(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ids, nil
}
