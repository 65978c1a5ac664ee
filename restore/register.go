package restore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// Register is the appliance's erasure register and dossier access log
// (files in StateDir, signed with Key), each line also sealed into the
// repository of the tenant it concerns at every location: an encrypted
// replica and an anchor of the log's length and head (dossier.Record). A
// missing, truncated or replaced log is then an error wherever the
// register is read, and a replacement appliance rebuilds it from the
// locations (Recover).
type Register struct {
	StateDir string
	Key      ed25519.PrivateKey
}

func (g *Register) pub() ed25519.PublicKey { return g.Key.Public().(ed25519.PublicKey) }

// Records returns the verified register records in r.
func (g *Register) Records(ctx context.Context, r *repo.Repo) ([]dossier.Record, error) {
	raw, err := r.RegisterRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]dossier.Record, 0, len(raw))
	for _, b := range raw {
		rec, err := dossier.ParseRecord(b, g.pub())
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", r.Tenant(), err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Erasures verifies both logs, checks them against the anchors in r (so
// a deleted or shortened log is an error, dossier.ErrUnanchored) and
// returns every erasure of r's tenant, whatever its date.
func (g *Register) Erasures(ctx context.Context, r *repo.Repo) ([]dossier.Erasure, error) {
	recs, err := g.Records(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := dossier.CheckAnchored(g.StateDir, g.pub(), recs); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.Tenant(), err)
	}
	all, err := dossier.Erasures(g.StateDir, g.pub())
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

// AddErasure appends e to the register and seals its record into r (e's
// tenant) at every location. The local append is the record; a location
// that failed is in the results and gets the record at the next sync.
func (g *Register) AddErasure(ctx context.Context, r *repo.Repo, e dossier.Erasure) ([]repo.LocationResult, error) {
	if e.Tenant != r.Tenant() {
		return nil, fmt.Errorf("erasure of tenant %s anchored in the repository of %s", e.Tenant, r.Tenant())
	}
	// The register must be whole before it grows: an append to a
	// truncated log would anchor the truncation.
	if _, err := g.Erasures(ctx, r); err != nil {
		return nil, err
	}
	en, err := dossier.AddErasure(g.StateDir, g.Key, e)
	if err != nil {
		return nil, err
	}
	return g.anchor(ctx, r, dossier.LogNameErasures, en)
}

// LogAccess appends a to the access log and, when r is not nil, seals its
// record into r at every location. With r, the logs are first checked
// against their anchors: an append to a truncated log would fork it.
func (g *Register) LogAccess(ctx context.Context, r *repo.Repo, a dossier.Access) error {
	if r != nil {
		if _, err := g.Erasures(ctx, r); err != nil {
			return err
		}
	}
	en, err := dossier.LogAccess(g.StateDir, g.Key, a)
	if err != nil || r == nil {
		return err
	}
	_, err = g.anchor(ctx, r, dossier.LogNameAccess, en)
	return err
}

func (g *Register) anchor(ctx context.Context, r *repo.Repo, log string, en chain.Entry) ([]repo.LocationResult, error) {
	_, b, err := dossier.NewRecord(log, g.Key, en)
	if err != nil {
		return nil, err
	}
	// The local line is written; the anchor must reach a location even
	// when the command's context is ending.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	rs, err := r.PutRegisterRecord(actx, b)
	if err != nil {
		return rs, fmt.Errorf("the %s line is written locally but not anchored at any location (run kluis sync): %w", log, err)
	}
	return rs, nil
}

// Recover rebuilds the local logs from the register records in repos (the
// repositories of every configured tenant): what a replacement appliance
// runs after recovering its keys. It returns the lines per log written.
func (g *Register) Recover(ctx context.Context, repos []*repo.Repo) (map[string]uint64, error) {
	var all []dossier.Record
	var errs []error
	for _, r := range repos {
		recs, err := g.Records(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, recs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return dossier.Rebuild(g.StateDir, g.pub(), all)
}
