package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
)

// A squatted prefix: tenant ids are predictable (a practice's name), so
// whoever holds one location's credential can plant a config under the id
// of a practice that has no repository yet. Such a location is reported
// and left alone; the tenant is initialised, and backed up, at the others
// (degraded at the squatted one) — see Init, Open and ensureRepoObjects.

// errConfigUnreadable marks an error about a config that was read but does
// not decode (a version or algorithm this kluis does not know, another
// tenant's): the location answered. It adds nothing to the message.
var errConfigUnreadable = errors.New("")

// existingAt decides whether the repository config under the tenant's
// prefix at l is this appliance's: nil when a key file there opens with
// the master key and binds that config; ErrWrongKey when a key file there
// is signed by this appliance's signing key but does not open (the master
// key is wrong, not the repository); ErrForeign otherwise. Any other error
// means l could not be read and nothing can be concluded.
func existingAt(ctx context.Context, tenant string, l Location, opts Options) error {
	foreign := func(why string) error {
		return fmt.Errorf("location %s: %s/config is not this appliance's repository (%s): planted under a predictable tenant prefix, or another installation's: %w", l.Name(), tenant, why, ErrForeign)
	}
	cb, err := ReadAll(ctx, l, tenant+"/"+kindConfig, maxConfig)
	if errors.Is(err, ErrCorrupt) {
		return foreign("oversized config")
	}
	if err != nil {
		return err
	}
	cfg, err := decodeConfig(cb, tenant)
	if err != nil {
		return foreign("config does not decode")
	}
	var names []string
	if err := l.List(ctx, tenant+"/"+kindKeys+"/", func(oi ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return err
	}
	var ours ed25519.PublicKey
	if opts.Signer != nil {
		ours = opts.Signer.Public().(ed25519.PublicKey)
	}
	for _, name := range names {
		kb, err := ReadAll(ctx, l, name, maxKeyFile)
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if h, ok := parseObjectName(tenant, kindKeys, name); !ok || sha256.Sum256(kb) != h {
			continue
		}
		key, err := decodeKeyFile(kb, opts.Master, tenant, cfg.ID)
		if err == nil && key.ConfigSHA256 == Hash(sha256.Sum256(cb)).String() {
			return nil
		}
		if kf, derr := decodeKeyFileEnvelope(kb); derr == nil && ours != nil && bytes.Equal(kf.Signer, ours) {
			return fmt.Errorf("location %s: %s is signed by this appliance but the master key does not open it (wrong master key?): %w", l.Name(), name, ErrWrongKey)
		}
	}
	if len(names) == 0 {
		return foreign("no key file")
	}
	return foreign("no key file opens with this appliance's master key")
}

// ensureRepoObjects writes the config and key file at a location that
// lacks them (it was down at init, or was added later), and refuses a
// location whose tenant prefix holds another config (ErrForeign): kluis
// never writes snapshots next to a config that is not its own, so that
// location is degraded, named, until the planted config is removed.
func (r *Repo) ensureRepoObjects(ctx context.Context, l Location) error {
	if _, ok := r.configAt.Load(l.Name()); ok {
		return l.Put(ctx, r.keyName, r.keyBytes)
	}
	name := r.tenant + "/" + kindConfig
	cb, err := ReadAll(ctx, l, name, maxConfig)
	if errors.Is(err, ErrNotFound) {
		// The key first: a location with a config but no key would look
		// like a repository nobody can open.
		if err := l.Put(ctx, r.keyName, r.keyBytes); err != nil {
			return err
		}
		if err := l.Put(ctx, name, r.configBytes); err != nil {
			return err
		}
		// Read back: another writer may have put its config first.
		cb, err = ReadAll(ctx, l, name, maxConfig)
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	if err != nil || !bytes.Equal(cb, r.configBytes) {
		return fmt.Errorf("location %s: %s/config is not this repository's (planted under a predictable tenant prefix, damaged, or another installation's); nothing is written there until it is removed: %w", l.Name(), r.tenant, ErrForeign)
	}
	r.configAt.Store(l.Name(), true)
	return l.Put(ctx, r.keyName, r.keyBytes)
}
