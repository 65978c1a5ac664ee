package restoretest

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
)

// Recorded is a restore test written to the evidence log.
type Recorded struct {
	Report *evidence.Report
	// Record is the signed record (zero when the report was not written).
	Record evidence.Record
	// Locations says which locations received a copy of the record.
	Locations []repo.LocationResult
}

// RunAndRecord is what `kluis restore-test` and the daemon do: read the
// evidence log (so the default location is the least recently tested),
// run the test, and append its report to the log. The caller opens the
// store with the appliance's signing key: this package signs nothing. A test that could not
// start returns only an error; an interrupted one returns its report and
// the error, unrecorded; a report that could not be written returns the
// report and the error.
func RunAndRecord(ctx context.Context, a *appliance.Appliance, store *evidence.Store, opts Options) (Recorded, error) {
	recs, err := store.Records()
	if err != nil {
		return Recorded{}, fmt.Errorf("evidence log: %w (the restore test did not run: run `kluis evidence verify`)", err)
	}
	opts.Previous = append([]evidence.Report(nil), opts.Previous...)
	for _, r := range evidence.Reports(recs) { // not continuation records
		opts.Previous = append(opts.Previous, r.Report)
	}
	rep, err := Run(ctx, a, opts)
	out := Recorded{Report: rep}
	if rep == nil || err != nil {
		return out, err
	}
	rec, locs, err := store.Append(context.WithoutCancel(ctx), rep)
	if err != nil {
		return out, fmt.Errorf("restore test report not written to the evidence log: %w", err)
	}
	out.Record, out.Locations = rec, locs
	return out, nil
}
