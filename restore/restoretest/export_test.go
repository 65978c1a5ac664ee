package restoretest

import (
	"context"
	"database/sql"
)

// SetBeforeFingerprint makes Run call f on a writable connection to the
// scratch database after the load and before the first fingerprint: tests
// damage the restored data there.
func SetBeforeFingerprint(o *Options, f func(ctx context.Context, db *sql.DB) error) {
	o.beforeFingerprint = f
}

// PGSystemID is pgSystemID.
var PGSystemID = pgSystemID
