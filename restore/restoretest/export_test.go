package restoretest

import (
	"context"
	"database/sql"

	"github.com/kluis-nl/kluis/source"
)

// SetBeforeFingerprint makes Run call f on a writable connection to the
// scratch database after the load and before the first fingerprint: tests
// damage the restored data there.
func SetBeforeFingerprint(o *Options, f func(ctx context.Context, db *sql.DB) error) {
	o.beforeFingerprint = f
}

// PGSystemID is pgSystemID.
var PGSystemID = pgSystemID

// SetWrapTarget makes Run restore through f(target, db), db a writable
// connection to the scratch database: tests make the load fail there.
func SetWrapTarget(o *Options, f func(tg source.Target, db *sql.DB) source.Target) {
	o.wrapTarget = f
}

// SetBeforeCheck makes Run call f as each check starts.
func SetBeforeCheck(o *Options, f func(check string)) { o.beforeCheck = f }

// SetReadBudget makes Run read the repository under a read budget of n
// bytes.
func SetReadBudget(o *Options, n int64) { o.readBudget = n }
