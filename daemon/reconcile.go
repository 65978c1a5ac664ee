package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/repo"
)

// KindReconcile is the nightly job that makes every location hold every
// snapshot: a full sync, whatever the daemon remembers.
const KindReconcile = "reconcile"

// Convergence is derived from facts, never from memory (issue 21): the
// locations' listings and the appliance's ledger (repo.Presence). The
// hourly sync job runs only when the listings differ; the nightly
// reconcile runs a full sync regardless, so a one-copy snapshot left by a
// kill between the two manifest writes — which no job history records —
// is found and healed within a day, and status and the metrics show it
// until then.

// observe lists where a tenant's snapshots are and publishes it to the
// metrics; it returns the presence (nil when the repository cannot be
// opened or listed).
func (d *Daemon) observe(ctx context.Context, a *appliance.Appliance, tenant string, r *repo.Repo) *repo.Presence {
	if r == nil {
		var err error
		if r, err = a.OpenRepo(ctx, tenant); err != nil {
			if !errors.Is(err, repo.ErrNotFound) {
				d.log.Warn("cannot open the repository to list snapshots", "tenant", tenant, "err", err)
			}
			return nil
		}
	}
	p, err := r.Presence(ctx)
	if err != nil {
		d.log.Warn("cannot list snapshots", "tenant", tenant, "err", err)
		return nil
	}
	req := a.Cfg.Policy.RequiredCopies
	d.metrics.presence(tenant, p, req)
	d.setDegraded(tenant, degradedPresence(p, req))
	return p
}

// degradedPresence: a location could not be listed, or a snapshot is at
// fewer than required locations (any snapshot, not only the newest).
func degradedPresence(p *repo.Presence, required int) bool {
	return len(p.Unreachable) > 0 || len(p.UnderCopies(required)) > 0
}

// needsSync reports whether a sync can change anything the listings
// show: a listed location lacks a snapshot another listed location holds,
// or a location could not be listed (it may be back). Snapshots the
// ledger records at no location are for status, not for sync.
func needsSync(p *repo.Presence) bool {
	if len(p.Unreachable) > 0 {
		return true
	}
	for _, hs := range p.Missing() {
		for _, h := range hs {
			if len(p.Holders(h)) > 0 {
				return true
			}
		}
	}
	return false
}

// runReconcile is the nightly full sync of one tenant under its shared
// lock: every object a location lacks is copied from one whose copy
// authenticates. It fails while a location stays incomplete or a
// committed snapshot is missing everywhere.
func (d *Daemon) runReconcile(ctx context.Context, tenant string) (err error) {
	a := d.Appliance()
	if _, err := a.Cfg.Tenant(tenant); err != nil {
		return err
	}
	rec, record := d.jobRecord(a, tenant, KindReconcile)
	defer func() { record(timedOut(ctx, err)) }()
	lock, err := a.Lock(ctx, tenant, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, tenant)
	if errors.Is(err, repo.ErrNotFound) {
		return nil // nothing backed up yet
	}
	if err != nil {
		return err
	}
	before := d.observe(ctx, a, tenant, r)
	res, err := r.Sync(ctx)
	if err != nil {
		return err
	}
	copied := 0
	var incomplete []string
	for _, l := range res {
		copied += l.Copied
		if !l.Complete() {
			incomplete = append(incomplete, l.Location)
			d.log.Warn("reconcile: location incomplete", "tenant", tenant, "job", KindReconcile, "location", l.Location, "missing", l.Missing, "err", l.Error)
		}
	}
	rec.Extra["objects_copied"] = copied
	after := d.observe(ctx, a, tenant, r)
	if before != nil {
		if n := len(before.UnderCopies(a.Cfg.Policy.RequiredCopies)); n > 0 {
			rec.Extra["under_copies_before"] = n
			d.log.Warn("reconcile found snapshots at too few locations", "tenant", tenant, "job", KindReconcile, "snapshots", n)
		}
	}
	if len(incomplete) > 0 {
		return fmt.Errorf("reconcile: %s still incomplete", strings.Join(incomplete, ", "))
	}
	if after != nil {
		if lost := after.Lost(); len(lost) > 0 {
			return fmt.Errorf("reconcile: %d committed snapshots are at no location (history erased), e.g. %s: see `kluis check`", len(lost), lost[0].Short())
		}
		if n := len(after.UnderCopies(a.Cfg.Policy.RequiredCopies)); n > 0 {
			return fmt.Errorf("reconcile: %d snapshots still at too few locations", n)
		}
	}
	d.log.Info("reconcile complete: every location holds every snapshot", "tenant", tenant, "job", KindReconcile, "objects_copied", copied)
	return nil
}
