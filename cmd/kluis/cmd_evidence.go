package main

import (
	"context"

	"crypto/ed25519"
	"errors"
	"filippo.io/age"
	"flag"
	"fmt"
	"github.com/kluis-nl/kluis/display"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/s3"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// evidenceStore opens the appliance's evidence chain, signed with its
// key; locs receive copies of new reports (nil: for reading and exporting).
func evidenceStore(a *appliance.Appliance, locs []repo.Location) (*evidence.Store, ed25519.PrivateKey, error) {
	key, err := signingKey(a)
	if err != nil {
		return nil, nil, fmt.Errorf("appliance.signing_key_file: %w", err)
	}
	s := evidence.OpenStore(a.StateDir(), a.Cfg.Appliance.ID, key, locs)
	s.Now = a.Now
	if locs != nil {
		if s.Witnesses, err = witnessClients(a); err != nil {
			return nil, nil, err
		}
	}
	for _, r := range []string{a.Cfg.Evidence.AuditorRecipient, a.Cfg.Appliance.RecoveryRecipient} {
		if r == "" {
			continue
		}
		rc, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, nil, fmt.Errorf("age recipient %q: %v", r, err)
		}
		s.Recipients = append(s.Recipients, rc)
	}
	return s, key, nil
}

// witnessClients are the configured witnesses (evidence.witnesses).
func witnessClients(a *appliance.Appliance) ([]evidence.WitnessClient, error) {
	var out []evidence.WitnessClient
	for i, w := range a.Cfg.Evidence.Witnesses {
		v, err := evidence.ParseWitnessKey(w.Key)
		if err != nil {
			return nil, fmt.Errorf("evidence.witnesses[%d].key: %v", i, err)
		}
		out = append(out, evidence.WitnessClient{URL: w.URL, Verifier: v, Client: &http.Client{Timeout: 30 * time.Second}})
	}
	return out, nil
}

// evidencePeriod is the state directory's chain, every record verified,
// and the stretch of it signed within --from..--to.
type evidencePeriod struct {
	all, sel []evidence.Record
	from, to time.Time
	key      ed25519.PrivateKey
	store    *evidence.Store
}

// loadPeriod parses --from and --to and reads the chain.
func loadPeriod(a *appliance.Appliance, from, to string) (*evidencePeriod, error) {
	f, t, err := period(a.TimeZone(), from, to)
	if err != nil {
		return nil, err
	}
	return loadPeriodTimes(a, f, t)
}

// loadPeriodTimes reads the chain and selects [f, t) (zero: open).
func loadPeriodTimes(a *appliance.Appliance, f, t time.Time) (*evidencePeriod, error) {
	s, key, err := evidenceStore(a, nil)
	if err != nil {
		return nil, err
	}
	recs, err := s.Records()
	if err != nil {
		return nil, err
	}
	return &evidencePeriod{all: recs, sel: evidence.Select(recs, f, t), from: f, to: t, key: key, store: s}, nil
}

// export writes the period's reports to dir as `evidence export` does
// (the CLI and the portal's download share it): with the signed log
// checkpoint and the witnesses' cosignatures, the reports just before and
// after the period (they show the auditor that nothing of the period is
// missing at either end: verify --expect-period), and the logs of
// previous keys a continuation among them leads to.
func (p *evidencePeriod) export(a *appliance.Appliance, dir, tenant string) (*evidence.ExportResult, error) {
	tree, cp, err := p.store.Checkpoint()
	if err != nil {
		return nil, err
	}
	ws, err := witnessClients(a)
	if err != nil {
		return nil, err
	}
	var wvs []note.Verifier
	for _, w := range ws {
		wvs = append(wvs, w.Verifier)
	}
	return evidence.Export(dir, evidence.WithBorders(p.all, p.sel), evidence.ExportOptions{Appliance: a.Cfg.Appliance.ID, Key: p.key, Tenant: tenant,
		From: p.from, To: p.to, TimeZone: a.TimeZone(), Now: a.Now(), Kluis: Version(), Locations: restoretest.EvidenceLocations(a.Cfg),
		Log: tree, LogCheckpoint: cp, Witnesses: wvs, PreviousDir: p.store.PreviousDir()})
}

// period parses --from and --to (days in the appliance's time zone, both
// inclusive) into [from, to).
func period(tz *time.Location, from, to string) (time.Time, time.Time, error) {
	var f, t time.Time
	var err error
	if from != "" {
		if f, err = time.ParseInLocation("2006-01-02", from, tz); err != nil {
			return f, t, usageErrorf("--from %q: want YYYY-MM-DD", from)
		}
	}
	if to != "" {
		if t, err = time.ParseInLocation("2006-01-02", to, tz); err != nil {
			return f, t, usageErrorf("--to %q: want YYYY-MM-DD", to)
		}
		t = t.AddDate(0, 0, 1)
	}
	if !f.IsZero() && !t.IsZero() && !f.Before(t) {
		return f, t, usageErrorf("--from %s is after --to %s", from, to)
	}
	return f, t, nil
}

// parseWithArgs parses flags that may come before or after positional
// arguments (kluis evidence verify DIR --public-key K).
func (g *globals) parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := g.parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type evidenceRow struct {
	Seq                uint64    `json:"seq"`
	Time               time.Time `json:"time"`
	Tenant             string    `json:"tenant"`
	Engine             string    `json:"engine"`
	Location           string    `json:"location"`
	Snapshot           string    `json:"snapshot"`
	Verdict            string    `json:"verdict"`
	Cause              string    `json:"cause,omitempty"` // ERROR: the test rig that failed
	FailedChecks       []string  `json:"failed_checks"`
	RTOSeconds         float64   `json:"rto_seconds"`
	RTOTargetSeconds   float64   `json:"rto_target_seconds"`
	SnapshotAgeSeconds float64   `json:"snapshot_age_seconds"`
	LargestGapSeconds  float64   `json:"largest_gap_seconds"`
	RPOTargetSeconds   float64   `json:"rpo_target_seconds"`
	Hash               string    `json:"hash"`
}

func cmdEvidenceList(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence list", "[--tenant T] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--json]")
	tenant := fs.String("tenant", "", "only this tenant's reports")
	from := fs.String("from", "", "reports signed on or after this `day` (YYYY-MM-DD, appliance time zone)")
	to := fs.String("to", "", "reports signed on or before this `day` (YYYY-MM-DD)")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	p, err := loadPeriod(a, *from, *to)
	if err != nil {
		return err
	}
	rows := []evidenceRow{}
	var links []string
	for _, r := range p.sel {
		if c, ok := r.Continuation(); ok {
			links = append(links, fmt.Sprintf("record %d continues the log of previous key %s (%s, root %s): kluis evidence export carries that log", r.Seq, c.PreviousKey, plural(int(c.PreviousSize), "report", "reports"), c.PreviousRoot))
			continue
		}
		rep := r.Report
		if *tenant != "" && rep.Tenant != *tenant {
			continue
		}
		rows = append(rows, evidenceRow{Seq: r.Seq, Time: r.Time, Tenant: rep.Tenant, Engine: rep.Engine, Location: rep.Location.Name,
			Snapshot: rep.Snapshot.ID, Verdict: rep.Verdict, Cause: rep.Cause, FailedChecks: rep.FailedChecks,
			RTOSeconds: rep.RTO.MeasuredSeconds, RTOTargetSeconds: rep.RTO.TargetSeconds,
			SnapshotAgeSeconds: rep.RPO.SnapshotAgeSeconds, LargestGapSeconds: rep.RPO.LargestGapSeconds, RPOTargetSeconds: rep.RPO.TargetSeconds,
			Hash: r.Hash})
	}
	if g.jsonOut {
		return g.printJSON(rows)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTENANT\tLOCATION\tSNAPSHOT\tVERDICT\tFAILED\tRTO\tRPO (AGE/GAP)")
	failed, notRun := 0, 0
	for _, r := range rows {
		fc := strings.Join(r.FailedChecks, ",")
		if fc == "" {
			fc = "-"
		}
		switch r.Verdict {
		case evidence.Pass:
		case evidence.Error:
			notRun++
			fc = "could not run"
		default:
			failed++
		}
		snap := r.Snapshot
		if len(snap) > 8 {
			snap = snap[:8]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s / %s\n", r.Seq, humanTime(r.Time, a.TimeZone()), r.Tenant, r.Location,
			snap, r.Verdict, fc, evidence.Duration(r.RTOSeconds), evidence.Duration(r.SnapshotAgeSeconds), evidence.Duration(r.LargestGapSeconds))
	}
	tw.Flush()
	for _, l := range links {
		fmt.Fprintln(g.stdout, l)
	}
	if notRun > 0 {
		fmt.Fprintf(g.stdout, "%s, %d failed, %d could not run (the test rig, not the backup: kluis evidence show SEQ); the chain of %s verifies\n", plural(len(rows), "report", "reports"), failed, notRun, plural(len(p.all), "report", "reports"))
		return nil
	}
	fmt.Fprintf(g.stdout, "%s, %d failed; the chain of %s verifies\n", plural(len(rows), "report", "reports"), failed, plural(len(p.all), "report", "reports"))
	return nil
}

func cmdEvidenceShow(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence show", "SEQ [--json]")
	g.jsonFlag(fs)
	seq, a, s, err := g.reportCommand(fs, args)
	if err != nil {
		return err
	}
	recs, err := s.Records()
	if err != nil {
		return err
	}
	if seq > uint64(len(recs)) {
		return fmt.Errorf("no report %d: the chain has %d reports", seq, len(recs))
	}
	rec := recs[seq-1]
	if c, ok := rec.Continuation(); ok {
		if g.jsonOut {
			return g.printJSON(struct {
				Seq          uint64                 `json:"seq"`
				Time         time.Time              `json:"time"`
				Hash         string                 `json:"hash"`
				Continuation *evidence.Continuation `json:"continuation"`
			}{rec.Seq, rec.Time, rec.Hash, c})
		}
		fmt.Fprintf(g.stdout, "Record %d of appliance %s: continues the log of previous key %s\n", rec.Seq, c.Appliance, c.PreviousKey)
		fmt.Fprintf(g.stdout, "  signed   %s\n  hash     %s\n  previous log %s: checkpoint of %s, root %s\n", humanTime(rec.Time, a.TimeZone()), rec.Hash, c.PreviousOrigin, plural(int(c.PreviousSize), "report", "reports"), c.PreviousRoot)
		return nil
	}
	if g.jsonOut {
		return g.printJSON(rec)
	}
	printReport(g.stdout, rec, a.TimeZone())
	return nil
}

// printReport is the human view of one report.
func printReport(w io.Writer, rec evidence.Record, tz *time.Location) {
	r := rec.Report
	const stamp = "2006-01-02 15:04:05 MST"
	okText := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	fmt.Fprintf(w, "Report %d of appliance %s: %s", rec.Seq, r.Appliance, r.Verdict)
	if len(r.FailedChecks) > 0 {
		fmt.Fprintf(w, " (failed: %s)", strings.Join(r.FailedChecks, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  signed\t%s\n", rec.Time.In(tz).Format(stamp))
	fmt.Fprintf(tw, "  hash\t%s\n", rec.Hash)
	fmt.Fprintf(tw, "  prev\t%s\n", rec.Prev)
	fmt.Fprintf(tw, "  tenant\t%s (%s)\n", r.Tenant, r.Engine)
	fmt.Fprintf(tw, "  snapshot\t%s, taken %s: %d tables, %d rows, %s\n", r.Snapshot.ID, r.Snapshot.Time.In(tz).Format(stamp), r.Snapshot.Tables, r.Snapshot.Rows, humanBytes(r.Snapshot.Bytes))
	fmt.Fprintf(tw, "  location\t%s: %s, %s (%s)\n", r.Location.Name, r.Location.Site, r.Location.Country, r.Location.Provider)
	fmt.Fprintf(tw, "  test\t%s to %s (%s), kluis %s\n", r.Started.In(tz).Format(stamp), r.Finished.In(tz).Format(stamp), evidence.Duration(r.Finished.Sub(r.Started).Seconds()), r.Kluis)
	fmt.Fprintf(tw, "  RTO\t%s, target %s: %s\n", evidence.Duration(r.RTO.MeasuredSeconds), evidence.Duration(r.RTO.TargetSeconds), okText(r.RTO.OK))
	gap := ""
	if !r.RPO.LargestGapFrom.IsZero() {
		gap = fmt.Sprintf(" (%s to %s)", humanTime(r.RPO.LargestGapFrom, tz), humanTime(r.RPO.LargestGapTo, tz))
	}
	fmt.Fprintf(tw, "  RPO\tsnapshot age %s; largest gap %s%s over %g days, %d snapshots; target %s: %s\n",
		evidence.Duration(r.RPO.SnapshotAgeSeconds), evidence.Duration(r.RPO.LargestGapSeconds), gap, r.RPO.WindowDays, r.RPO.SnapshotsInWindow,
		evidence.Duration(r.RPO.TargetSeconds), okText(r.RPO.OK))
	tw.Flush()

	fmt.Fprintln(w, "\nChecks")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", okText(c.OK), c.Name, evidence.Duration(c.Seconds), display.Escape(c.Detail))
	}
	tw.Flush()
	if len(r.Tables) > 0 {
		fmt.Fprintln(w, "\nTables")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TABLE\tROWS\tRESTORED\tSIZE\tFINGERPRINT\tRESTORED FINGERPRINT\tMATCH")
		for _, t := range r.Tables {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\n", display.Escape(t.Name), t.Rows, t.RowsRestored, humanBytes(t.Bytes), short(t.Fingerprint), short(t.RestoredFingerprint), okText(t.Match))
		}
		tw.Flush()
	}
	if len(r.Probes) > 0 {
		fmt.Fprintln(w, "\nProbes")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range r.Probes {
			got := p.Got
			if got == "" {
				got = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\texpected %s\tgot %s\t%s\n", okText(p.OK), display.Escape(p.Name), display.Escape(p.Expected), display.Escape(got), display.Escape(p.Detail))
		}
		tw.Flush()
	}
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func cmdEvidenceExport(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence export", "--out DIR [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--tenant T] [--json]")
	out := fs.String("out", "", "write the export to this new `directory`, which kluis creates (mode 0700; it must not exist) (required)")
	tenant := fs.String("tenant", "", "the HTML summary covers only this tenant (the export holds every report of the period: the chain needs them)")
	from := fs.String("from", "", "reports signed on or after this `day` (YYYY-MM-DD, appliance time zone)")
	to := fs.String("to", "", "reports signed on or before this `day` (YYYY-MM-DD)")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageErrorf("--out DIR is required")
	}
	p, err := loadPeriod(a, *from, *to)
	if err != nil {
		return err
	}
	sel := p.sel
	if len(sel) == 0 {
		return fmt.Errorf("no restore-test reports in the period (the chain has %d)", len(p.all))
	}
	if *tenant != "" {
		found := false
		for _, r := range sel {
			found = found || r.Report.Tenant == *tenant
		}
		if !found {
			return fmt.Errorf("no restore-test report of tenant %s in the period", *tenant)
		}
	}
	res, err := p.export(a, *out, *tenant)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.stdout, "exported reports %d to %d of appliance %s to %s, verified\n", res.First, res.Last, a.Cfg.Appliance.ID, res.Dir)
	fmt.Fprintf(g.stdout, "public key fingerprint %s\n", res.PublicKey)
	fmt.Fprintf(g.stdout, "checkpoint: reports %d to %d, first hash %s, last hash %s\n", res.Checkpoint.First, res.Checkpoint.Count, res.Checkpoint.FirstHash, res.Checkpoint.Hash)
	fmt.Fprintf(g.stdout, "log checkpoint (checkpoint.note): %d reports, root %s", res.Verification.LogSize, res.Verification.LogRoot)
	if len(res.Verification.Cosigned) > 0 {
		fmt.Fprintf(g.stdout, ", cosigned by %s", strings.Join(res.Verification.Cosigned, ", "))
	}
	fmt.Fprintln(g.stdout)
	fmt.Fprintln(g.stdout, "Give the auditor the directory; send the public key (kluis keys public) through another channel.")
	return nil
}

func cmdEvidenceVerify(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("evidence verify", "--public-key FILE [--previous-key FILE]... [--checkpoint FILE] [--witness-key KEY]... [--expect-last N] [--expect-period FROM..TO] [--identity FILE [--appliance ID] [--s3-endpoint URL]] [--json] DIR|PROOF|s3://BUCKET/PREFIX", globalLog)
	var prevFiles listFlag
	fs.Var(&prevFiles, "previous-key", "the PEM public key `file` of an earlier signing key of the same appliance (the lost appliance's, before a disaster recovery): check the continuation to its log carried in the export; repeatable")
	pubFile := fs.String("public-key", "", "the appliance's PEM public key `file`, obtained out of band (required; no config is read)")
	cpFile := fs.String("checkpoint", "", "a checkpoint.note (or older checkpoint.json) `file` kept from an earlier export: prove the log up to it is unchanged")
	var wkeys listFlag
	fs.Var(&wkeys, "witness-key", "a witness's public `key` (NAME+KEYHASH+BASE64, or a file holding it) whose cosignature the checkpoint must carry; repeatable")
	expectLast := fs.Uint64("expect-last", 0, "fail unless the reports reach report `N` (the number you were told the log has)")
	expectPeriod := fs.String("expect-period", "", "fail unless the reports cover the period `FROM..TO` you asked for (UTC days YYYY-MM-DD, both inclusive, or RFC 3339 times): nothing of it may be missing at either end")
	identity := fs.String("identity", "", "an age identity `file` (the auditor's): DIR is then a download of a location (holding _evidence/), whose sealed copies are opened and verified")
	applianceID := fs.String("appliance", "", "with --identity: the appliance `id` whose log to verify (default: the only one in DIR)")
	s3Endpoint := fs.String("s3-endpoint", "", "with s3://BUCKET/PREFIX: the S3 service `URL` (default: AWS); credentials from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	s3Region := fs.String("s3-region", "", "with s3://BUCKET/PREFIX: the bucket's `region` (default us-east-1)")
	g.jsonFlag(fs)
	pos, err := g.parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("give one directory: an export, or a copy of a location's _evidence/APPLIANCE/")
	}
	if *pubFile == "" {
		return usageErrorf("--public-key FILE is required: the appliance's public key as you received it from the vendor, not only the copy in the export")
	}
	// Exit 2 for everything that keeps verify from verifying at all, so
	// a script tells it from NOT VERIFIED (exit 1).
	pemData, err := readSmall(*pubFile, 64<<10)
	if err != nil {
		return usageErrorf("--public-key: cannot read the key, nothing verified: %v", err)
	}
	pub, err := repo.ParsePublicKey(pemData)
	if err != nil {
		return usageErrorf("--public-key %s: %v; nothing verified", *pubFile, err)
	}
	witnesses, err := witnessKeys(wkeys)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(pos[0]); err == nil && fi.Mode().IsRegular() {
		if *expectLast != 0 || *expectPeriod != "" || *identity != "" {
			return usageErrorf("%s is one report's proof: --expect-last, --expect-period and --identity are for an export or a location's copy", pos[0])
		}
		return verifyProofFile(g, pos[0], pub, witnesses)
	}
	opts := evidence.VerifyOptions{CheckpointName: *cpFile, Witnesses: witnesses, RequireLog: true, ExpectLast: *expectLast}
	if *expectPeriod != "" {
		p, err := evidence.ParsePeriod(*expectPeriod)
		if err != nil {
			return usageErrorf("--expect-period: %v; nothing verified", strings.TrimSuffix(err.Error(), ": "+evidence.ErrMalformed.Error()))
		}
		opts.ExpectPeriod = &p
	}
	if *cpFile != "" {
		if opts.Checkpoint, err = readSmall(*cpFile, 64<<10); err != nil {
			return usageErrorf("--checkpoint: cannot read the checkpoint, nothing verified: %v", err)
		}
	}
	var previous []ed25519.PublicKey
	for _, f := range prevFiles {
		b, err := readSmall(f, 64<<10)
		if err != nil {
			return usageErrorf("--previous-key: cannot read the key, nothing verified: %v", err)
		}
		k, err := repo.ParsePublicKey(b)
		if err != nil {
			return usageErrorf("--previous-key %s: %v; nothing verified", f, err)
		}
		previous = append(previous, k)
	}
	// A kept checkpoint of an earlier key's log is checked against that
	// log (in previous-KEYID/), not against this key's.
	var heldPrev []byte
	if opts.Checkpoint != nil && evidence.SignedByPrevious(opts.Checkpoint, previous) {
		heldPrev, opts.Checkpoint = opts.Checkpoint, nil
	} else if opts.Checkpoint != nil {
		// A checkpoint.json kept from an export of the lost appliance
		// verifies with a previous key, not this one: say that, rather
		// than "edited, or signed by another key".
		if sc, err := evidence.ParseCheckpoint(opts.Checkpoint); err == nil {
			for _, k := range previous {
				if sc.Verify(k) {
					return usageErrorf("--checkpoint %s is a %s signed by the previous key given with --previous-key: for the log of a previous key give the %s kept from that export; nothing verified", *cpFile, evidence.CheckpointFile, evidence.CheckpointNoteFile)
				}
			}
		}
	}
	dir := pos[0]
	var v *evidence.Verification
	if *identity != "" {
		v, err = verifyLocationCopy(ctx, dir, *identity, *applianceID, s3.Options{Endpoint: *s3Endpoint, Region: *s3Region}, pub, opts)
		if err != nil {
			return err
		}
	} else if strings.HasPrefix(dir, "s3://") {
		return usageErrorf("%s: give --identity, the age identity that opens the sealed copies", dir)
	} else if v, err = evidence.VerifyDir(dir, pub, opts); err != nil {
		return usageErrorf("cannot read %s, nothing verified: %v", dir, err)
	} else if !evidence.CheckContinuations(dir, v, previous, heldPrev, *cpFile) && heldPrev != nil {
		v.Problems = append(v.Problems, evidence.Problem{Kind: evidence.BadCheckpoint, Reason: fmt.Sprintf("checkpoint %s is of the log of a previous key, but no continuation here leads to that log", *cpFile)})
	}
	if g.jsonOut {
		if err := g.printJSON(struct {
			Dir string `json:"dir"`
			OK  bool   `json:"ok"`
			*evidence.Verification
		}{dir, v.OK(), v}); err != nil {
			return err
		}
	} else {
		printVerification(g.stdout, dir, v)
	}
	if !v.OK() {
		return &silentError{code: exitFailed}
	}
	return nil
}

func printVerification(w io.Writer, dir string, v *evidence.Verification) {
	what := fmt.Sprintf("%d report files", v.Reports)
	if v.Last > 0 {
		what = fmt.Sprintf("reports %d to %d", v.First, v.Last)
	}
	// The appliance is known only from reports that verify: none when the
	// key is wrong.
	if v.Appliance != "" {
		what += " of appliance " + v.Appliance
	}
	if v.OK() {
		fmt.Fprintf(w, "VERIFIED %s: %s, every signature and every link of the chain, with public key %s\n", dir, what, v.PublicKey)
	} else {
		n := len(v.Problems)
		plural := "s"
		if n == 1 {
			plural = ""
		}
		fmt.Fprintf(w, "NOT VERIFIED %s: %d problem%s in %s, public key %s\n", dir, n, plural, what, v.PublicKey)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// readSmall reads a file of at most max bytes.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errors.New(path + ": too large")
	}
	return b, nil
}

// verifyProofFile verifies one report's proof (evidence prove).
func verifyProofFile(g *globals, path string, pub ed25519.PublicKey, witnesses []note.Verifier) error {
	data, err := readSmall(path, 32<<20)
	if err != nil {
		return usageErrorf("cannot read %s, nothing verified: %v", path, err)
	}
	if _, err := evidence.ParseProof(data); err != nil {
		return usageErrorf("%s is neither a directory (an export) nor a report proof (kluis evidence prove): %v; nothing verified", path, err)
	}
	res, err := evidence.VerifyProof(data, pub, witnesses...)
	if g.jsonOut {
		out := struct {
			File  string                `json:"file"`
			OK    bool                  `json:"ok"`
			Error string                `json:"error,omitempty"`
			Proof *evidence.ProofResult `json:"proof,omitempty"`
		}{File: path, OK: err == nil, Proof: res}
		if err != nil {
			out.Error = err.Error()
		}
		if perr := g.printJSON(out); perr != nil {
			return perr
		}
	} else if err != nil {
		fmt.Fprintf(g.stdout, "NOT VERIFIED %s: %v\n", path, err)
	} else {
		fmt.Fprintf(g.stdout, "VERIFIED %s: report %d of appliance %s (%s, tenant %s) is leaf %d of the signed log of %d reports, root %s", path, res.Record.Seq, res.Record.Report.Appliance, res.Record.Report.Verdict, res.Record.Report.Tenant, res.Record.Seq-1, res.Checkpoint.Size, res.Checkpoint.Root)
		if len(res.Cosigned) > 0 {
			fmt.Fprintf(g.stdout, ", cosigned by %s", strings.Join(res.Cosigned, ", "))
		}
		fmt.Fprintln(g.stdout)
	}
	if err != nil {
		return &silentError{code: exitFailed}
	}
	return nil
}

func cmdEvidenceProve(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence prove", "SEQ [--out FILE]")
	out := fs.String("out", "", "write the proof to this new `file` (default: standard output)")
	seq, _, s, err := g.reportCommand(fs, args)
	if err != nil {
		return err
	}
	tree, cp, err := s.Checkpoint()
	if err != nil {
		return err
	}
	recs, err := s.Records()
	if err != nil {
		return err
	}
	if seq > uint64(len(recs)) {
		return fmt.Errorf("no report %d: the log has %d reports", seq, len(recs))
	}
	proof, err := evidence.Prove(recs[seq-1], tree, cp)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := g.stdout.Write(proof)
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(proof); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cmdEvidenceCosign(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence cosign", "[--json]")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	s, _, err := evidenceStore(a, nil)
	if err != nil {
		return err
	}
	ws, err := witnessClients(a)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return fmt.Errorf("no witnesses configured (evidence.witnesses)")
	}
	res, err := s.Cosign(ctx, ws)
	if err != nil {
		return err
	}
	if g.jsonOut {
		if err := g.printJSON(res); err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range res {
		if !r.OK {
			failed++
		}
		if !g.jsonOut {
			if r.OK {
				fmt.Fprintf(g.stdout, "%s: cosigned\n", r.Witness)
			} else {
				fmt.Fprintf(g.stdout, "%s: NOT cosigned: %s\n", r.Witness, r.Error)
			}
		}
	}
	if failed > 0 {
		return &silentError{code: exitFailed}
	}
	return nil
}

func cmdEvidenceCheck(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("evidence check", "[--json]")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	s, err := restoreTestStore(a)
	if err != nil {
		return err
	}
	res, err := s.CheckLocations(ctx)
	if err != nil {
		return err
	}
	if g.jsonOut {
		if err := g.printJSON(res); err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range res {
		if !r.OK {
			failed++
		}
		if !g.jsonOut {
			if r.OK {
				fmt.Fprintf(g.stdout, "%s: the evidence log there matches the appliance's\n", r.Location)
			} else {
				fmt.Fprintln(g.stdout, r.Error)
			}
		}
	}
	if failed > 0 {
		return &silentError{code: exitFailed}
	}
	return nil
}

// verifyLocationCopy verifies a location's copy of an appliance's log
// with the auditor's age identity: target is a download of a location (a
// directory holding _evidence/APPLIANCE/key-…/) or the bucket itself,
// s3://BUCKET[/PREFIX], read with the standard AWS credentials (read-only
// ones the vendor gave the auditor): there the object versions are listed
// too, and an object written over is reported.
func verifyLocationCopy(ctx context.Context, target, identityFile, applianceID string, s3o s3.Options, pub ed25519.PublicKey, opts evidence.VerifyOptions) (*evidence.Verification, error) {
	data, err := readSmall(identityFile, 64<<10)
	if err != nil {
		return nil, usageErrorf("--identity: %v; nothing verified", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil {
		return nil, usageErrorf("--identity %s: %v; nothing verified", identityFile, err)
	}
	var l repo.Location
	if rest, ok := strings.CutPrefix(target, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		s3o.Name, s3o.Bucket, s3o.Prefix = "s3://"+bucket, bucket, prefix
		s3o.PathStyle = s3o.Endpoint != ""
		if l, err = s3.New(ctx, s3o); err != nil {
			return nil, usageErrorf("%s: %v; nothing verified", target, err)
		}
	} else {
		l = local.New("download", target)
	}
	if applianceID == "" {
		found := map[string]bool{}
		err := l.List(ctx, "_evidence/", func(oi repo.ObjectInfo) error {
			if a, _, ok := strings.Cut(strings.TrimPrefix(oi.Name, "_evidence/"), "/"); ok {
				found[a] = true
			}
			return nil
		})
		if err != nil {
			return nil, usageErrorf("%s: %v; nothing verified", target, err)
		}
		switch len(found) {
		case 0:
			return nil, usageErrorf("%s holds no _evidence/ of any appliance (give a download of a location's bucket or directory, or s3://BUCKET/PREFIX); nothing verified", target)
		case 1:
			for a := range found {
				applianceID = a
			}
		default:
			return nil, usageErrorf("%s holds the evidence of more than one appliance: give --appliance ID", target)
		}
	}
	v, err := evidence.VerifyLocationCopy(ctx, l, applianceID, pub, ids, opts)
	if err != nil {
		return nil, usageErrorf("cannot read the evidence in %s, nothing verified: %v", target, err)
	}
	return v, nil
}

// reportCommand does what the commands on one report start with: parse the
// flags and the one report number (SEQ or SEQ.json), load the config and
// open the evidence store.
func (g *globals) reportCommand(fs *flag.FlagSet, args []string) (uint64, *appliance.Appliance, *evidence.Store, error) {
	pos, err := g.parseWithArgs(fs, args)
	if err != nil {
		return 0, nil, nil, err
	}
	if len(pos) != 1 {
		return 0, nil, nil, usageErrorf("give one report number (see kluis evidence list)")
	}
	seq, err := strconv.ParseUint(strings.TrimSuffix(pos[0], ".json"), 10, 64)
	if err != nil || seq == 0 {
		return 0, nil, nil, usageErrorf("%q is not a report number", pos[0])
	}
	a, err := g.appliance()
	if err != nil {
		return 0, nil, nil, err
	}
	st, _, err := evidenceStore(a, nil)
	return seq, a, st, err
}
