package repo

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Presence is where every snapshot is, from the locations' listings (no
// manifest is read) compared with the ledger: the one truth that `check`,
// `status`, the metrics, the daemon's sync and `restore latest` derive
// "degraded", "missing" and "unreachable" from.
type Presence struct {
	// Locations are the repository's locations, in order.
	Locations []string
	// At is, per location that could be listed, the snapshots it holds.
	At map[string]map[Hash]bool
	// Unreachable is, per location that could not be listed, why. An
	// unreachable location is not a location with no snapshots.
	Unreachable map[string]string
	// Ledger is the appliance's record (empty without a ledger).
	Ledger *LedgerState
	// LedgerErr says why the ledger could not be read ("" when it could).
	LedgerErr string
	// Unopened are manifests some locations list, not all, that open at no
	// location (planted or damaged everywhere): left out of At, so that
	// one location's junk is never "missing" at another (check reports
	// them at the locations that hold them).
	Unopened []Hash
}

// Presence lists the snapshot manifests at every location and reads the
// ledger.
func (r *Repo) Presence(ctx context.Context) (*Presence, error) {
	p := &Presence{At: map[string]map[Hash]bool{}, Unreachable: map[string]string{}}
	for _, l := range r.locs {
		p.Locations = append(p.Locations, l.Name())
		ns, err := r.listNames(ctx, l, kindSnapshot)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p.Unreachable[l.Name()] = err.Error()
			continue
		}
		set := make(map[Hash]bool, len(ns))
		for h := range ns {
			set[h] = true
		}
		p.At[l.Name()] = set
	}
	st, err := r.LedgerState()
	if err != nil {
		p.LedgerErr = err.Error()
		st = &LedgerState{Committed: map[Hash]CommittedSnapshot{}, Forgotten: map[Hash]bool{}}
	}
	p.Ledger = st
	// A manifest not at every listed location decides what is "missing":
	// it counts only if it opens somewhere (or the ledger knows it).
	count := map[Hash]int{}
	for _, set := range p.At {
		for h := range set {
			count[h]++
		}
	}
	for h, n := range count {
		if n == len(p.At) || st.Committed[h].ID == h || st.Forgotten[h] {
			continue
		}
		if _, err := r.LoadManifest(ctx, h); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p.Unopened = append(p.Unopened, h)
			for _, set := range p.At {
				delete(set, h)
			}
		}
	}
	sortHashes(p.Unopened)
	return p, nil
}

// Expected returns every snapshot that should be at every location: the
// ledger's committed snapshots and every snapshot any listed location
// holds, less those the ledger says were forgotten.
func (p *Presence) Expected() map[Hash]bool {
	out := map[Hash]bool{}
	for h := range p.Ledger.Committed {
		out[h] = true
	}
	for _, set := range p.At {
		for h := range set {
			if !p.Ledger.Forgotten[h] {
				out[h] = true
			}
		}
	}
	return out
}

// Missing returns, per listed location, the expected snapshots it lacks,
// sorted.
func (p *Presence) Missing() map[string][]Hash {
	exp := p.Expected()
	out := map[string][]Hash{}
	for _, name := range p.Locations {
		set, ok := p.At[name]
		if !ok {
			continue
		}
		for h := range exp {
			if !set[h] {
				out[name] = append(out[name], h)
			}
		}
		sortHashes(out[name])
	}
	return out
}

// Holders returns the listed locations that hold h.
func (p *Presence) Holders(h Hash) []string {
	var out []string
	for _, name := range p.Locations {
		if p.At[name][h] {
			out = append(out, name)
		}
	}
	return out
}

// UnderCopies returns the expected snapshots confirmed at fewer than want
// locations (one-copy snapshots with two locations, and committed
// snapshots no listed location holds), sorted. A copy at a location that
// cannot be listed is not confirmed; Unreachable says which those are.
func (p *Presence) UnderCopies(want int) []Hash {
	var out []Hash
	for h := range p.Expected() {
		if len(p.Holders(h)) < want {
			out = append(out, h)
		}
	}
	sortHashes(out)
	return out
}

// Lost returns the ledger's committed snapshots that no location holds
// (empty while a location cannot be listed: it may hold them).
func (p *Presence) Lost() []Hash {
	var out []Hash
	if len(p.Unreachable) > 0 {
		return nil
	}
	for h := range p.Ledger.Committed {
		if len(p.Holders(h)) == 0 {
			out = append(out, h)
		}
	}
	sortHashes(out)
	return out
}

// Converged reports whether every location was listed and holds every
// expected snapshot.
func (p *Presence) Converged() bool {
	if len(p.Unreachable) > 0 {
		return false
	}
	for _, m := range p.Missing() {
		if len(m) > 0 {
			return false
		}
	}
	return true
}

// LatestGuard refuses to resolve "latest" on a partial view: when a
// location could not be listed, or when the ledger's newest committed
// snapshot is at no reachable location (history erased, or the only
// holder is down). Either would silently roll back to an older snapshot.
func (p *Presence) LatestGuard() error {
	if len(p.Unreachable) > 0 {
		var names []string
		for n := range p.Unreachable {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("location %s cannot be listed (%s), so \"latest\" may not be the newest snapshot: give a snapshot ID, or --allow-partial to accept the newest one reachable",
			strings.Join(names, ", "), p.Unreachable[names[0]])
	}
	if n, ok := p.Ledger.Newest(); ok && len(p.Holders(n.ID)) == 0 {
		return fmt.Errorf("the newest committed snapshot %s (finished %s) is at no location: history was erased; give a snapshot ID, or --allow-partial to accept the newest one left",
			n.ID.Short(), n.Finished.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

func sortHashes(hs []Hash) {
	sort.Slice(hs, func(i, j int) bool { return hs[i].String() < hs[j].String() })
}

// AcknowledgeLost records the ledger's committed snapshots that no
// location holds as forgotten (the operator accepts that history was
// erased), so that check and status stop reporting them. It refuses while
// a location cannot be listed: it may still hold them. Nothing is deleted.
func (r *Repo) AcknowledgeLost(ctx context.Context, dryRun bool) ([]Hash, error) {
	p, err := r.Presence(ctx)
	if err != nil {
		return nil, err
	}
	if len(p.Unreachable) > 0 {
		return nil, fmt.Errorf("a location cannot be listed and may hold the snapshots: %v", p.Unreachable)
	}
	if p.LedgerErr != "" {
		return nil, fmt.Errorf("ledger: %s", p.LedgerErr)
	}
	lost := p.Lost()
	if dryRun || len(lost) == 0 {
		return lost, nil
	}
	return lost, r.recordForget(lost)
}

// dropForgotten removes from a set of manifests those the ledger says
// were forgotten: a copy left where forget could not delete it (the
// location was down) is not copied back to the others.
func (r *Repo) dropForgotten(snaps map[Hash]bool) {
	st, err := r.LedgerState()
	if err != nil {
		r.log.Warn("ledger unreadable: sync may copy back forgotten snapshots", "err", err)
		return
	}
	for h := range snaps {
		if st.Forgotten[h] {
			delete(snaps, h)
			r.log.Info("sync: not copying a forgotten snapshot", "snapshot", h.Short())
		}
	}
}
