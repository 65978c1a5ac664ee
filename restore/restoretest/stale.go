package restoretest

import (
	"context"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis/evidence"
)

// checkStale compares the tested location with the appliance's ledger of
// committed snapshots (repo.FileLedger): a location whose newest snapshot
// is older than the newest one the appliance committed has lost history
// (erased, or never caught up), and a PASS for its older "latest" would
// sign a rollback as fine. A snapshot newer than the ledger knows (a lost
// state directory) is not stale.
func (rt *run) checkStale() {
	const name = evidence.CheckStale
	if !rt.ready(context.Background(), name, evidence.CheckSnapshot) {
		return
	}
	st, err := rt.a.Ledger().State(rt.t.ID)
	if err != nil {
		rt.record(name, false, 0, fmt.Sprintf("the ledger cannot be read: %v", err))
		return
	}
	newest, ok := st.Newest()
	if !ok {
		rt.record(name, true, 0, "the ledger records no snapshot of this tenant: nothing to compare with")
		return
	}
	here := rt.snaps[len(rt.snaps)-1]
	for _, s := range rt.snaps {
		if s.ID == newest.ID {
			rt.record(name, true, 0, fmt.Sprintf("the newest committed snapshot %s is at %s", newest.ID.Short(), rt.loc.Name))
			return
		}
	}
	if here.Manifest.Finished.Before(newest.Finished) {
		rt.record(name, false, 0, fmt.Sprintf("the newest snapshot at %s, %s (finished %s), is older than the newest committed snapshot %s (finished %s): history is missing at this location; run `kluis check` and `kluis sync`",
			rt.loc.Name, here.ID.Short(), here.Manifest.Finished.UTC().Format(time.RFC3339), newest.ID.Short(), newest.Finished.UTC().Format(time.RFC3339)))
		return
	}
	rt.record(name, true, 0, fmt.Sprintf("the newest snapshot at %s, %s, is not older than the newest the ledger records (%s)",
		rt.loc.Name, here.ID.Short(), newest.ID.Short()))
}
