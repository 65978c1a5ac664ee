package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"filippo.io/age"
)

// RecoverOptions say how Recover finds and authenticates a tenant's key.
type RecoverOptions struct {
	// Identities open the recovery copies: the private half of
	// appliance.recovery_recipient, from the offline recovery kit.
	Identities []age.Identity
	// Signers are the signing public keys a genuine key file is signed by:
	// the lost appliance's, from the recovery kit.
	Signers []ed25519.PublicKey
	// RequireSigned accepts only key files signed by one of Signers. Without
	// it every key file the identity opens must agree.
	RequireSigned bool
	// AllowUnreachable recovers although a location cannot be read; its
	// key files are then not compared with the others'.
	AllowUnreachable bool
}

// keyCandidate is one key file, at one location, that the recovery
// identity opens for this tenant and the config beside it.
type keyCandidate struct {
	loc, name string
	key       *TenantKey
	signed    bool
	// own: the key file opens with this appliance's master key.
	own      bool
	cfg      *Config
	cfgBytes []byte
}

func (c keyCandidate) String() string {
	s := "location " + c.loc + ": " + c.name
	if c.signed {
		return s + " (signed)"
	}
	return s + " (not signed by a trusted key)"
}

// Recover opens a tenant's repository with an offline recovery identity
// (the private half of appliance.recovery_recipient) instead of the master
// key, and writes a new key file wrapped under opts.Master (and, when set,
// opts.RecoveryRecipient; signed with opts.Signer) at every location. It
// is how the data of a lost appliance is brought under a new one.
//
// The recipient is public (it is in every key file) and age is anonymous,
// so anyone who can write to a location can plant a key file the identity
// opens. Recover therefore reads every key file at every location, and
// decides before it writes anything:
//
//   - with ro.RequireSigned (the lost appliance's signing public key from
//     the recovery kit), only key files signed by one of ro.Signers count;
//     the others are reported as planted and ignored;
//   - all remaining candidates must hold the same key and config, or it
//     refuses and names each key file and where it lies;
//   - the chosen key must open the sealed objects (snapshots or indexes)
//     that exist (key confirmation);
//   - every location must be readable, unless ro.AllowUnreachable.
//
// Existing key files are left as they are.
func Recover(ctx context.Context, tenant string, locs []Location, ro RecoverOptions, opts Options) (*Repo, []LocationResult, error) {
	opts.fill()
	if len(ro.Identities) == 0 {
		return nil, nil, errors.New("no recovery identity")
	}
	var cands []keyCandidate
	var rejected, unreachable []string
	for _, l := range locs {
		cs, rej, err := recoveryCandidates(ctx, tenant, l, ro, opts.Master)
		if err != nil {
			unreachable = append(unreachable, fmt.Sprintf("location %s: %v", l.Name(), err))
			continue
		}
		cands, rejected = append(cands, cs...), append(rejected, rej...)
	}
	refuse := func(format string, args ...any) (*Repo, []LocationResult, error) {
		return nil, nil, fmt.Errorf("tenant %s: recovery refused, nothing was written: %s", tenant, fmt.Sprintf(format, args...))
	}
	if len(unreachable) > 0 && !ro.AllowUnreachable {
		return refuse("every location's key files must be compared, and %s (retry when it answers, or allow an unreachable location explicitly)", strings.Join(unreachable, "; "))
	}
	if len(cands) == 0 {
		why := "no location holds a key file the recovery identity opens"
		if len(rejected) > 0 {
			why += ": " + strings.Join(rejected, "; ")
		}
		return refuse("%s", why)
	}
	pool, planted := cands, []keyCandidate(nil)
	if ro.RequireSigned {
		pool = nil
		for _, c := range cands {
			// This appliance's own key file (a recovery run again) is
			// trusted: only the master key's holder can have written it.
			if c.signed || c.own {
				pool = append(pool, c)
			} else {
				planted = append(planted, c)
			}
		}
		if len(pool) == 0 {
			return refuse("no key file is signed by the signing key given (%s)", describe(cands))
		}
	}
	if groups := keyGroups(pool); len(groups) > 1 {
		var parts []string
		for i, g := range groups {
			parts = append(parts, fmt.Sprintf("key %d is in %s", i+1, describe(g)))
		}
		return refuse("the key files disagree (one of them was planted; give the lost appliance's signing public key to tell them apart, or remove the planted one after checking): %s", strings.Join(parts, "; "))
	}
	chosen := pool[0]
	// The key files this recovery replaces: recorded in the new key file,
	// so check reports them as superseded (Object Lock keeps them), not as
	// planted. This appliance's own key files (a second recovery run) are
	// not superseded.
	for _, c := range pool {
		chosen.key.Supersedes = unionSorted(chosen.key.Supersedes, c.key.Supersedes)
		if !c.own {
			chosen.key.Supersedes = unionSorted(chosen.key.Supersedes, []string{c.name[strings.LastIndexByte(c.name, '/')+1:]})
		}
	}
	r, err := newRepo(tenant, chosen.cfg, chosen.key, locs, opts)
	if err != nil {
		return nil, nil, err
	}
	r.configBytes = chosen.cfgBytes
	if err := r.confirmKey(ctx); err != nil {
		return refuse("%v", err)
	}
	kb, err := encodeKeyFile(r.key, opts.Master, opts.RecoveryRecipient, opts.Signer)
	if err != nil {
		return nil, nil, err
	}
	r.keyBytes = kb
	r.keyName = objectName(tenant, kindKeys, sha256.Sum256(kb))
	res := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		return r.ensureRepoObjects(ctx, l)
	})
	for i := range res {
		for _, c := range planted {
			if c.loc == res[i].Location {
				res[i].Warnings = append(res[i].Warnings, fmt.Sprintf("%s opens with the recovery identity but is not signed by the appliance: planted, ignored; remove it", c.name))
			}
		}
	}
	for _, c := range planted {
		r.log.Warn("recovery: ignored a key file not signed by the appliance (planted)", "location", c.loc, "key_file", c.name)
	}
	if countOK(res) == 0 {
		return nil, res, fmt.Errorf("the new key file could not be written anywhere: %s", joinErrors(res))
	}
	return r, res, nil
}

// recoveryCandidates reads the config and every key file at l. The error
// is for a location that could not be read; a location without a
// repository has no candidates.
func recoveryCandidates(ctx context.Context, tenant string, l Location, ro RecoverOptions, master MasterKey) ([]keyCandidate, []string, error) {
	cb, err := ReadAll(ctx, l, tenant+"/"+kindConfig, maxConfig)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	cfg, err := decodeConfig(cb, tenant)
	if err != nil {
		return nil, []string{fmt.Sprintf("location %s: %s/config: %v", l.Name(), tenant, err)}, nil
	}
	var names []string
	if err := l.List(ctx, tenant+"/"+kindKeys+"/", func(oi ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var out []keyCandidate
	var rejected []string
	for _, name := range names {
		reject := func(err error) { rejected = append(rejected, fmt.Sprintf("location %s: %s: %v", l.Name(), name, err)) }
		kb, err := ReadAll(ctx, l, name, maxKeyFile)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
			reject(err)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if h, ok := parseObjectName(tenant, kindKeys, name); !ok || sha256.Sum256(kb) != h {
			reject(fmt.Errorf("content does not match its name: %w", ErrCorrupt))
			continue
		}
		key, kf, plain, err := openRecovery(kb, ro.Identities, tenant, cfg.ID)
		if err != nil {
			reject(err)
			continue
		}
		if key.ConfigSHA256 != Hash(sha256.Sum256(cb)).String() {
			reject(fmt.Errorf("binds another config than the one beside it: %w", ErrCorrupt))
			continue
		}
		_, merr := decodeKeyFile(kb, master, tenant, cfg.ID)
		out = append(out, keyCandidate{loc: l.Name(), name: name, key: key, signed: verifyKeyFile(kf, plain, ro.Signers), own: merr == nil, cfg: cfg, cfgBytes: cb})
	}
	return out, rejected, nil
}

// keyGroups partitions candidates by the key they hold.
func keyGroups(cs []keyCandidate) [][]keyCandidate {
	var groups [][]keyCandidate
next:
	for _, c := range cs {
		for i, g := range groups {
			if sameKey(g[0].key, c.key) && bytes.Equal(g[0].cfgBytes, c.cfgBytes) {
				groups[i] = append(groups[i], c)
				continue next
			}
		}
		groups = append(groups, []keyCandidate{c})
	}
	return groups
}

func describe(cs []keyCandidate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// confirmKey proves the key is this repository's before anything is
// written: when a location holds snapshots or indexes, the key must open
// some of them (at most a few are tried per kind and location).
func (r *Repo) confirmKey(ctx context.Context) error {
	const tries = 3
	sealed, opened := 0, 0
	for _, l := range r.locs {
		for _, kind := range []string{kindSnapshot, kindIndex} {
			names, err := r.listNames(ctx, l, kind)
			if err != nil {
				continue
			}
			sealed += len(names)
			n := 0
			for h := range names {
				if n == tries {
					break
				}
				n++
				// either associated data version (docs/format.md, "Index")
				if _, err := r.openAt(ctx, l, r.spec(kind), h); err == nil {
					opened++
				}
			}
		}
	}
	if sealed > 0 && opened == 0 {
		return fmt.Errorf("the key opens none of the %d sealed snapshots and indexes stored: it is not this repository's key (planted)", sealed)
	}
	return nil
}

// checkKeyFile names a key file that is not this repository's key under
// this appliance's master key: one that opens but holds another key is
// planted (an error); one that a recovery recorded as superseded is the
// lost appliance's, kept (a note); any other that does not open is planted,
// or a lost appliance's that a recovery by an older kluis did not record (a
// warning).
func (r *Repo) checkKeyFile(c *LocationCheck, name string, kb []byte) {
	k, err := decodeKeyFile(kb, r.master, r.tenant, r.cfg.ID)
	switch {
	case err == nil && !sameKey(k, r.key):
		c.errorf("%s: opens with this appliance's master key but holds another key (planted)", name)
	case err != nil && r.supersededKeyFile(name):
		c.notef("%s: the lost appliance's key file, superseded by this appliance's recovery; no longer used (kept until its Object Lock retention ends)", name)
	case err != nil:
		c.warnf("%s: does not open with this appliance's master key: planted, or a lost appliance's key file that the recovery did not record (recovered by an older kluis: run `kluis keys recover` again to record it)", name)
	}
}

// supersededKeyFile reports whether the key file name is one a recovery
// recorded as superseded (TenantKey.Supersedes).
func (r *Repo) supersededKeyFile(name string) bool {
	h, ok := parseObjectName(r.tenant, kindKeys, name)
	return ok && slices.Contains(r.key.Supersedes, h.String())
}

// ownKeyFile reports whether a key file holds this repository's key under
// this appliance's master key: the only key files sync copies, so a key
// file planted at one location never reaches another.
func (r *Repo) ownKeyFile(kb []byte) bool {
	k, err := decodeKeyFile(kb, r.master, r.tenant, r.cfg.ID)
	return err == nil && sameKey(k, r.key)
}

// unionSorted returns the sorted union of two lists without duplicates.
func unionSorted(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
