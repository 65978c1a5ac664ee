package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/schedule"
)

// KindVerify is the nightly integrity check of a tenant at every
// location (issue 14): `check` without reading packs (listings, sizes, key
// files, indexes and manifests opened, every location compared with the
// others and the ledger), plus a rolling slice of the packs read back in
// full, so that every pack is read within policy.verify.read_data_period.
const KindVerify = "verify"

// historyJobs are a tenant's nightly reconcile and verify jobs, at the
// retention time (after the backup window), each tenant at its own offset
// within the hour after it.
func (d *Daemon) historyJobs(tenant string, after schedule.Spec, last lastOK) []schedule.Job {
	h := fnv.New64a()
	h.Write([]byte(KindVerify + "/" + tenant))
	spec := shiftedSpec{inner: after, offset: time.Duration(h.Sum64()%3600) * time.Second}
	rname, vname := JobName(KindReconcile, tenant), JobName(KindVerify, tenant)
	return []schedule.Job{
		{Name: rname, Tenant: tenant, Kind: KindReconcile, Spec: after, CatchUp: true, LastSuccess: last[rname], MaxAge: DailyMaxAge + time.Hour,
			Run: func(ctx context.Context) error { return d.runReconcile(ctx, tenant) }},
		{Name: vname, Tenant: tenant, Kind: KindVerify, Spec: spec, CatchUp: !last[vname].IsZero(), LastSuccess: last[vname], MaxAge: DailyMaxAge + time.Hour,
			Run: func(ctx context.Context) error { return d.runVerify(ctx, tenant) }},
	}
}

// packSlot is the night (modulo the period in days) a pack is read back.
func packSlot(h repo.Hash, days int) int {
	return int(binary.BigEndian.Uint64(h[:8]) % uint64(days))
}

// verifySlots returns the slots tonight's verify reads: one per night
// since the last verify (all of them after a long pause), plus every slot
// a previous verify found damaged (so that status stays red until the
// damage is repaired, not until the next slice happens to be clean).
func verifySlots(prev *appliance.Record, day, days int) []int {
	set := map[int]bool{}
	n := 1
	if prev != nil {
		if pd, ok := prev.Extra["day"].(float64); ok && int(pd) < day {
			n = min(day-int(pd), days)
		}
		if fs, ok := prev.Extra["failed_slots"].([]any); ok {
			for _, v := range fs {
				if f, ok := v.(float64); ok && int(f) >= 0 && int(f) < days {
					set[int(f)] = true
				}
			}
		}
	}
	for k := 0; k < n; k++ {
		set[((day-k)%days+days)%days] = true
	}
	out := make([]int, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// lastVerify returns a tenant's newest verify record (nil: none).
func lastVerify(hist []appliance.Record, tenant string) *appliance.Record {
	var out *appliance.Record
	for i := range hist {
		r := &hist[i]
		if r.Job == KindVerify && r.Tenant == tenant && (out == nil || !r.Time.Before(out.Time)) {
			out = r
		}
	}
	return out
}

// runVerify checks one tenant at every location under its exclusive lock.
// Any error at any location fails the job, sets kluis_verify_ok to 0 and
// makes `kluis status` fail until a later verify passes.
func (d *Daemon) runVerify(ctx context.Context, tenant string) (err error) {
	a := d.Appliance()
	if _, err := a.Cfg.Tenant(tenant); err != nil {
		return err
	}
	log := d.log.With("tenant", tenant, "job", KindVerify)
	started := d.clock.Now()
	days := a.Cfg.Policy.Verify.ReadDataDays()
	day := int(started.Unix() / 86400)
	hist, herr := a.History()
	if herr != nil {
		log.Warn("cannot read the job history: reading tonight's slice only", "err", herr)
	}
	slots := verifySlots(lastVerify(hist, tenant), day, days)
	rec := appliance.Record{Tenant: tenant, Job: KindVerify, Extra: map[string]any{"day": day, "slots": slots, "period_days": days}}
	packsRead := 0
	defer func() {
		if err != nil && shutDown(ctx) {
			return // cut off by shutdown: not a verdict
		}
		rec.Time, rec.OK, rec.Duration = d.clock.Now().UTC(), err == nil, d.clock.Now().Sub(started).Seconds()
		if err != nil {
			rec.Error = timedOut(ctx, err).Error()
			rec.Extra["failed_slots"] = slots
		}
		rec.Extra["packs_read"] = packsRead
		if werr := a.AppendHistory(rec); werr != nil {
			log.Warn("cannot record job history", "err", werr)
		}
		d.metrics.verify(tenant, err == nil, packsRead)
	}()
	// Exclusive: a backup by hand committing between the listings of the
	// two locations would look like a snapshot missing at one.
	lock, err := a.Lock(ctx, tenant, true)
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
	want := map[int]bool{}
	for _, s := range slots {
		want[s] = true
	}
	checks, err := r.Check(ctx, repo.CheckOptions{ReadData: true, ReadDataSample: func(h repo.Hash) bool { return want[packSlot(h, days)] }})
	if err != nil {
		return err
	}
	d.observe(ctx, a, tenant, r)
	var failed []string
	for _, c := range checks {
		packsRead += c.PacksRead
		if !c.OK() {
			failed = append(failed, fmt.Sprintf("%s: %d errors, e.g. %s", c.Location, len(c.Errors), c.Errors[0]))
			log.Error("verify FAILED", "location", c.Location, "errors", len(c.Errors), "first", c.Errors[0])
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("verify: %s; run `kluis check --tenant %s --read-data`", strings.Join(failed, "; "), tenant)
	}
	log.Info("verify passed", "packs_read", packsRead, "slots", len(slots), "period_days", days)
	return nil
}

// verifyProblem is a tenant's status problem from its last verify ("" when
// it passed or never ran).
func verifyProblem(hist []appliance.Record, tenant string) string {
	r := lastVerify(hist, tenant)
	if r == nil || r.OK {
		return ""
	}
	return fmt.Sprintf("last verify (%s) failed: %s", r.Time.UTC().Format(time.RFC3339), r.Error)
}
