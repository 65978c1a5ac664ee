package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"

	"filippo.io/age"
)

// Recover opens a tenant's repository with an offline recovery identity
// (the private half of appliance.recovery_recipient) instead of the master
// key, and writes a new key file wrapped under opts.Master (and, when set,
// opts.RecoveryRecipient) at every location. It is how the data of a lost
// appliance is brought under a new one. Existing key files are left as
// they are.
func Recover(ctx context.Context, tenant string, locs []Location, identities []age.Identity, opts Options) (*Repo, []LocationResult, error) {
	opts.fill()
	var problems []string
	for _, l := range locs {
		r, err := recoverAt(ctx, tenant, l, locs, identities, opts)
		if err != nil {
			problems = append(problems, fmt.Sprintf("location %s: %v", l.Name(), err))
			continue
		}
		kb, err := encodeKeyFile(r.key, opts.Master, opts.RecoveryRecipient)
		if err != nil {
			return nil, nil, err
		}
		r.keyBytes = kb
		r.keyName = objectName(tenant, kindKeys, sha256.Sum256(kb))
		res := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
			return r.ensureRepoObjects(ctx, l)
		})
		if countOK(res) == 0 {
			return nil, res, fmt.Errorf("the new key file could not be written anywhere: %s", joinErrors(res))
		}
		return r, res, nil
	}
	return nil, nil, fmt.Errorf("tenant %s: no location could be recovered: %s", tenant, strings.Join(problems, "; "))
}

func recoverAt(ctx context.Context, tenant string, l Location, locs []Location, identities []age.Identity, opts Options) (*Repo, error) {
	cb, err := ReadAll(ctx, l, tenant+"/"+kindConfig, maxConfig)
	if err != nil {
		return nil, err
	}
	cfg, err := decodeConfig(cb, tenant)
	if err != nil {
		return nil, err
	}
	var names []string
	if err := l.List(ctx, tenant+"/"+kindKeys+"/", func(oi ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, err
	}
	sort.Strings(names)
	lastErr := errors.New("no key file")
	for _, name := range names {
		kb, err := ReadAll(ctx, l, name, maxKeyFile)
		if err != nil {
			lastErr = err
			continue
		}
		if h, ok := parseObjectName(tenant, kindKeys, name); !ok || sha256.Sum256(kb) != h {
			lastErr = fmt.Errorf("key file %s: content does not match its name: %w", name, ErrCorrupt)
			continue
		}
		key, err := decodeRecovery(kb, identities, tenant, cfg.ID)
		if err != nil {
			lastErr = fmt.Errorf("key file %s: %w", name, err)
			continue
		}
		if sum := sha256.Sum256(cb); key.ConfigSHA256 != Hash(sum).String() {
			return nil, fmt.Errorf("%s/config: content differs from what the key binds: %w", tenant, ErrCorrupt)
		}
		r, err := newRepo(tenant, cfg, key, reorder(locs, l), opts)
		if err != nil {
			return nil, err
		}
		r.configBytes = cb
		return r, nil
	}
	return nil, lastErr
}
