package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
)

// cmdEvidenceContinue links this appliance's evidence log to the log of
// a previous signing key (the lost appliance's, after a disaster recovery
// with a new key): evidence.Store.Continue.
func cmdEvidenceContinue(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence continue", "--identity FILE [--previous-key FILE]... [--allow-unreachable] [--json]")
	identity := fs.String("identity", "", "an age identity `file` that opens the previous log's sealed reports: the offline recovery identity (required)")
	var prevFiles stringList
	fs.Var(&prevFiles, "previous-key", "the previous key's PEM public `file` (default: every trusted previous key, kluis keys previous); repeatable")
	allowUnreachable := fs.Bool("allow-unreachable", false, "continue although a location cannot be read (its copy of the previous log is not compared)")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	if *identity == "" {
		return usageErrorf("--identity FILE is required: the recovery identity opens the lost appliance's sealed reports")
	}
	data, err := readSmall(*identity, 64<<10)
	if err != nil {
		return err
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil {
		return fmt.Errorf("--identity %s: %v", *identity, err)
	}
	ring, err := a.KeyRing()
	if err != nil {
		return err
	}
	previous := ring.Previous()
	if len(prevFiles) > 0 {
		previous = nil
		for _, f := range prevFiles {
			b, err := readSmall(f, 64<<10)
			if err != nil {
				return err
			}
			k, err := repo.ParsePublicKey(b)
			if err != nil {
				return usageErrorf("--previous-key %s: %v", f, err)
			}
			previous = append(previous, k)
		}
	}
	if len(previous) == 0 {
		return usageErrorf("no previous signing key: give the lost appliance's public key with --previous-key FILE (or kluis keys previous --add FILE first)")
	}
	locs, err := a.Locations()
	if err != nil {
		return err
	}
	s, _, err := evidenceStore(a, locs)
	if err != nil {
		return err
	}
	var out []*evidence.ContinueResult
	for _, p := range previous {
		res, err := s.Continue(ctx, evidence.ContinueOptions{Previous: p, Identities: ids, AllowUnreachable: *allowUnreachable})
		if err != nil {
			return err
		}
		out = append(out, res)
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	for _, res := range out {
		for _, n := range res.Notes {
			fmt.Fprintf(g.stdout, "note: %s\n", n)
		}
		if res.Already {
			fmt.Fprintf(g.stdout, "record %d already continues the log of key %s (%s)\n", res.Seq, res.PreviousKey, plural(int(res.PreviousSize), "report", "reports"))
			continue
		}
		fmt.Fprintf(g.stdout, "record %d continues the log of key %s: its checkpoint of %s, root %s, verified at the locations; the log is imported for exports (auditors verify with --previous-key)\n", res.Seq, res.PreviousKey, plural(int(res.PreviousSize), "report", "reports"), res.PreviousRoot)
		for _, lr := range res.Locations {
			if !lr.OK {
				fmt.Fprintf(g.stderr, "warning: location %s: %s (run kluis sync)\n", lr.Location, lr.Error)
			}
		}
	}
	return nil
}

// evidenceContinuationProblem is set when the appliance trusts a previous
// signing key whose evidence log is at a location but that this
// appliance's log does not continue (a recovery with a new key, `kluis
// evidence continue` not yet run): auditors could not link the logs.
func evidenceContinuationProblem(ctx context.Context, a *appliance.Appliance) string {
	ring, err := a.KeyRing()
	if err != nil || len(ring.Previous()) == 0 {
		return ""
	}
	s, _, err := evidenceStore(a, nil)
	if err != nil {
		return "evidence: " + err.Error()
	}
	recs, err := s.Records()
	if err != nil {
		return "evidence: " + err.Error()
	}
	continued := map[string]bool{}
	for _, r := range recs {
		if c, ok := r.Continuation(); ok {
			continued[c.PreviousKey] = true
		}
	}
	locs, err := a.Locations()
	if err != nil {
		return ""
	}
	for _, p := range ring.Previous() {
		if continued[keyring.ID(p)] {
			continue
		}
		for _, l := range locs {
			found := false
			err := l.List(ctx, evidence.LogPrefix(a.Cfg.Appliance.ID, p)+"checkpoint/", func(repo.ObjectInfo) error { found = true; return errStopList })
			_ = err // an unreachable location is status's to report
			if found {
				return fmt.Sprintf("evidence: location %s holds the evidence log of the previous signing key %s, which this appliance's log does not continue: run kluis evidence continue --identity RECOVERY-IDENTITY", l.Name(), keyring.ID(p))
			}
		}
	}
	return ""
}

var errStopList = errors.New("stop listing")
