package restore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// Register is the appliance's erasure register and dossier access log
// (files in StateDir, signed with Key): transparency logs, each line a
// leaf of a Merkle tree whose checkpoint the appliance signs after every
// append (dossier.SignCheckpoint). Each line is also sealed into the
// repository of the tenant it concerns at every location: an encrypted
// replica and an anchor of the log's length, head and signed checkpoint
// (dossier.Record). A missing, truncated, rolled back or replaced log is
// then an error wherever the register is read, and a replacement
// appliance rebuilds it from the locations (Recover).
//
// Lines and records verify with the appliance's key ring
// (keyring.Load(StateDir, Key's public key)): after a disaster recovery
// with a new signing key, the lost appliance's lines verify with its
// public key, given as a previous key, up to the key rotation line the
// new key appends after them.
type Register struct {
	StateDir string
	Key      ed25519.PrivateKey
	// Appliance is the appliance id: the logs' checkpoints are signed
	// under origins that name it (dossier.Origin).
	Appliance string
	// Witnesses, when set, are asked to cosign each log's newest
	// checkpoint after an append (as the evidence log's are).
	Witnesses []evidence.WitnessClient
	// Now is the time of the key rotation lines Recover appends
	// (default time.Now).
	Now func() time.Time
}

func (g *Register) pub() ed25519.PublicKey { return g.Key.Public().(ed25519.PublicKey) }

// Ring is the key ring the logs verify with.
func (g *Register) Ring() (*keyring.Ring, error) {
	ring, err := keyring.Load(g.StateDir, g.pub())
	if err != nil {
		return nil, fmt.Errorf("the appliance's key ring: %w", err)
	}
	return ring, nil
}

func (g *Register) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Records returns the verified register records in r.
func (g *Register) Records(ctx context.Context, r *repo.Repo) ([]dossier.Record, error) {
	ring, err := g.Ring()
	if err != nil {
		return nil, err
	}
	return g.records(ctx, r, ring)
}

func (g *Register) records(ctx context.Context, r *repo.Repo, ring *keyring.Ring) ([]dossier.Record, error) {
	raw, err := r.RegisterRecords(ctx)
	if err != nil {
		return nil, err
	}
	out, err := dossier.ParseRecords(raw, ring)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.Tenant(), err)
	}
	return out, nil
}

// Erasures verifies both logs, checks them against the anchors in r (so
// a deleted or shortened log is an error, dossier.ErrUnanchored) and
// returns every erasure of r's tenant, whatever its date.
func (g *Register) Erasures(ctx context.Context, r *repo.Repo) ([]dossier.Erasure, error) {
	ring, err := g.Ring()
	if err != nil {
		return nil, err
	}
	a, err := g.check(ctx, r, ring)
	if err != nil {
		return nil, err
	}
	all, err := a.Erasures()
	if err != nil {
		return nil, err
	}
	var out []dossier.Erasure
	for _, e := range all {
		if e.Tenant == r.Tenant() {
			out = append(out, e)
		}
	}
	return out, nil
}

// check reads the register records in r and checks the local logs
// against them (dossier.CheckRecords), returning the logs it loaded.
func (g *Register) check(ctx context.Context, r *repo.Repo, ring *keyring.Ring) (*dossier.Anchored, error) {
	raw, err := r.RegisterRecords(ctx)
	if err != nil {
		return nil, err
	}
	a, err := dossier.CheckRecords(g.StateDir, g.Appliance, ring, raw)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.Tenant(), err)
	}
	return a, nil
}

// AddErasure appends e to the register and seals its record into r (e's
// tenant) at every location. The local append is the record; a location
// that failed is in the results and gets the record at the next sync.
func (g *Register) AddErasure(ctx context.Context, r *repo.Repo, e dossier.Erasure) ([]repo.LocationResult, error) {
	if e.Tenant != r.Tenant() {
		return nil, fmt.Errorf("erasure of tenant %s anchored in the repository of %s", e.Tenant, r.Tenant())
	}
	ring, err := g.Ring()
	if err != nil {
		return nil, err
	}
	// The register must be whole before it grows: an append to a
	// truncated log would anchor the truncation.
	a, err := g.check(ctx, r, ring)
	if err != nil {
		return nil, err
	}
	if _, err := a.Erasures(); err != nil {
		return nil, err
	}
	ens, err := dossier.AddErasure(g.StateDir, g.Key, ring, e)
	if err != nil {
		return nil, err
	}
	cps, err := g.sign(ctx, dossier.LogNameErasures, ring, ens, g.grown(a.Logs[dossier.LogNameErasures], ens))
	if err != nil {
		return nil, err
	}
	return g.anchor(ctx, r, dossier.LogNameErasures, ens, cps)
}

// LogAccess appends a to the access log and, when r is not nil, seals its
// record into r at every location. With r, the logs are first checked
// against their anchors: an append to a truncated log would fork it.
func (g *Register) LogAccess(ctx context.Context, r *repo.Repo, a dossier.Access) error {
	ring, err := g.Ring()
	if err != nil {
		return err
	}
	var checked *dossier.LocalLog
	if r != nil {
		anc, err := g.check(ctx, r, ring)
		if err != nil {
			return err
		}
		if _, err := anc.Erasures(); err != nil {
			return err
		}
		checked = anc.Logs[dossier.LogNameAccess]
	}
	ens, err := dossier.LogAccess(g.StateDir, g.Key, ring, a)
	if err != nil {
		return err
	}
	cps, err := g.sign(ctx, dossier.LogNameAccess, ring, ens, g.grown(checked, ens))
	if err != nil || r == nil {
		return err
	}
	_, err = g.anchor(ctx, r, dossier.LogNameAccess, ens, cps)
	return err
}

// grown is the tree of l, a log as the check before an append loaded and
// verified it, with the lines ens just appended to it (signed by g's
// key: their bytes are chain.Sign's), or nil when they do not follow its
// last line (another append came between, or the file changed: sign
// then loads the log again).
func (g *Register) grown(l *dossier.LocalLog, ens []chain.Entry) *evidence.Tree {
	if l == nil || len(ens) == 0 {
		return nil
	}
	head := chain.ZeroHash
	if n := len(l.Lines); n > 0 {
		head = chain.Hash(l.Lines[n-1].Raw)
	}
	if ens[0].Seq != uint64(len(l.Lines))+1 || ens[0].Prev != head {
		return nil
	}
	t := l.Tree
	for _, en := range ens {
		raw, err := chain.Sign(g.Key, en)
		if err != nil {
			return nil
		}
		if err := t.Add(dossier.LeafHash(raw)); err != nil {
			return nil
		}
	}
	return t
}

// anchor seals the record of each entry just appended to log, with its
// checkpoint (cps, in the same order), into r at every location; the
// results are those of the last.
func (g *Register) anchor(ctx context.Context, r *repo.Repo, log string, ens []chain.Entry, cps [][]byte) ([]repo.LocationResult, error) {
	var rs []repo.LocationResult
	for i, en := range ens {
		_, b, err := dossier.NewCheckpointedRecord(log, g.Key, en, cps[i])
		if err != nil {
			return nil, err
		}
		// The local line is written; the anchor must reach a location even
		// when the command's context is ending.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		rs, err = r.PutRegisterRecord(actx, b)
		cancel()
		if err != nil {
			return rs, fmt.Errorf("the %s line is written locally but not anchored at any location (run kluis sync): %w", log, err)
		}
	}
	return rs, nil
}

// Recover rebuilds the local logs from the register records in repos (the
// repositories of every configured tenant): what a replacement appliance
// runs after recovering its keys. It returns the lines per log written.
//
// When the key ring holds previous keys (a recovery with a new signing
// key), each log then gets a key rotation line signed by the new key
// right after the lost appliance's lines (an empty log gets one too),
// anchored in every repository: from then on a line the lost key signs is
// refused wherever it appears, so whoever holds that key cannot add to
// the register.
func (g *Register) Recover(ctx context.Context, repos []*repo.Repo) (map[string]uint64, error) {
	ring, err := g.Ring()
	if err != nil {
		return nil, err
	}
	var all []dossier.Record
	var errs []error
	for _, r := range repos {
		recs, err := g.records(ctx, r, ring)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, recs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n, err := dossier.Rebuild(g.StateDir, g.Appliance, ring, all)
	if err != nil {
		return nil, err
	}
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		ens, err := ring.Append(filepath.Join(g.StateDir, dossier.FileOf(log)), g.Key, g.now(), nil)
		if err != nil {
			return n, fmt.Errorf("%s log: key rotation: %w", log, err)
		}
		cps, err := g.sign(ctx, log, ring, ens, nil)
		if err != nil {
			return n, err
		}
		for _, r := range repos {
			if _, err := g.anchor(ctx, r, log, ens, cps); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
