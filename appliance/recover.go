package appliance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"filippo.io/age"

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
	return repo.Recover(ctx, tenant, locs, ro, opts)
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
