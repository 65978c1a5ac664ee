package evidence

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

//go:embed summary.html.tmpl
var summaryHTML string

var summaryTmpl = template.Must(template.New("summary").Parse(summaryHTML))

// summary is what the HTML summary shows.
type summary struct {
	Appliance   string
	Period      string
	Generated   string
	Fingerprint string
	Tenant      string
	First, Last uint64
	Verified    bool
	Problems    []string
	Tenants     []tenantSummary
	Reports     []reportRow
	Kluis       string
	Schema      string
	Total       int
	Passed      int
	Failed      int
	NotRun      int // ERROR: the test rig failed, not the backup
}

type tenantSummary struct {
	ID, Engine            string
	Run, Passed, Failed   int
	NotRun                int
	FailedSeqs            string
	LastTest, LastVerdict string
	RTOWorst, RTOTarget   string
	RTOOK                 bool
	RPOAge, RPOGap        string
	RPOTarget             string
	RPOAgeOK, RPOGapOK    bool
	Locations             []locationProof
}

type locationProof struct {
	Name, Site, Country, Provider string
	Tests, Passed                 int
	LastPass                      string
}

type reportRow struct {
	Seq                      uint64
	Date, Tenant             string
	Location, Site, Snapshot string
	Verdict                  string
	Pass                     bool
	Failed                   string
	RTO, RPO                 string
	RTOOK, RPOOK             bool
}

// renderSummary writes the self-contained HTML summary of recs (docs/
// evidence.md, "The HTML summary"): inline CSS, no scripts, no external
// resources; every value escaped by html/template.
func renderSummary(w io.Writer, recs []Record, v *Verification, opts ExportOptions) error {
	tz := opts.TimeZone
	if tz == nil {
		tz = time.UTC
	}
	const stamp = "2006-01-02 15:04"
	s := summary{
		Appliance: opts.Appliance, Period: periodText(opts.From, opts.To, tz),
		Generated: opts.Now.In(tz).Format("2006-01-02 15:04 MST"), Fingerprint: v.PublicKey,
		Tenant: opts.Tenant, First: v.First, Last: v.Last, Verified: v.OK(), Kluis: opts.Kluis, Schema: Schema,
	}
	for _, p := range v.Problems {
		s.Problems = append(s.Problems, p.String())
	}
	type acc struct {
		t    *tenantSummary
		locs map[string]*locationProof
		rto  Report
		age  Report
		gap  Report
		any  bool
		rtoR float64
	}
	tenants := map[string]*acc{}
	for _, r := range recs {
		rep := r.Report
		if opts.Tenant != "" && rep.Tenant != opts.Tenant {
			continue
		}
		if !opts.From.IsZero() && r.Time.Before(opts.From) || !opts.To.IsZero() && !r.Time.Before(opts.To) {
			continue // a border report (WithBorders): evidence, not of the period
		}
		s.Total++
		pass, notRun := rep.Verdict == Pass, rep.Verdict == Error
		switch {
		case pass:
			s.Passed++
		case notRun:
			s.NotRun++
		default:
			s.Failed++
		}
		a := tenants[rep.Tenant]
		if a == nil {
			a = &acc{t: &tenantSummary{ID: rep.Tenant}, locs: map[string]*locationProof{}}
			tenants[rep.Tenant] = a
		}
		t := a.t
		t.Engine = rep.Engine
		t.Run++
		switch {
		case pass:
			t.Passed++
		case notRun:
			t.NotRun++
		default:
			t.Failed++
			if t.FailedSeqs != "" {
				t.FailedSeqs += ", "
			}
			t.FailedSeqs += fmt.Sprintf("#%d", r.Seq)
		}
		t.LastTest, t.LastVerdict = rep.Started.In(tz).Format(stamp), rep.Verdict
		if !a.any || rep.RTO.MeasuredSeconds > a.rto.RTO.MeasuredSeconds {
			a.rto = rep
		}
		if !a.any || rep.RPO.SnapshotAgeSeconds > a.age.RPO.SnapshotAgeSeconds {
			a.age = rep
		}
		if !a.any || rep.RPO.LargestGapSeconds > a.gap.RPO.LargestGapSeconds {
			a.gap = rep
		}
		a.any = true
		lp := a.locs[rep.Location.Name]
		if lp == nil {
			lp = &locationProof{Name: rep.Location.Name, LastPass: "never"}
			a.locs[rep.Location.Name] = lp
		}
		lp.Site, lp.Country, lp.Provider = rep.Location.Site, rep.Location.Country, rep.Location.Provider
		lp.Tests++
		if pass {
			lp.Passed++
			lp.LastPass = rep.Started.In(tz).Format("2006-01-02")
		}
		failed := strings.Join(rep.FailedChecks, ", ")
		if notRun {
			failed = "could not run (not a failed restore): " + rep.Cause
		}
		s.Reports = append(s.Reports, reportRow{
			Seq: r.Seq, Date: rep.Started.In(tz).Format(stamp), Tenant: rep.Tenant,
			Location: rep.Location.Name, Site: rep.Location.Site, Snapshot: shortID(rep.Snapshot.ID),
			Verdict: rep.Verdict, Pass: pass, Failed: failed,
			RTO: Duration(rep.RTO.MeasuredSeconds), RTOOK: rep.RTO.OK,
			RPO: Duration(rep.RPO.SnapshotAgeSeconds), RPOOK: within(rep.RPO.SnapshotAgeSeconds, rep.RPO.TargetSeconds),
		})
	}
	for _, id := range sortedKeys(tenants) {
		a := tenants[id]
		t := a.t
		t.RTOWorst, t.RTOTarget = Duration(a.rto.RTO.MeasuredSeconds), Duration(a.rto.RTO.TargetSeconds)
		t.RTOOK = a.rto.RTO.TargetSeconds <= 0 || a.rto.RTO.MeasuredSeconds <= a.rto.RTO.TargetSeconds
		t.RPOAge, t.RPOGap = Duration(a.age.RPO.SnapshotAgeSeconds), Duration(a.gap.RPO.LargestGapSeconds)
		t.RPOTarget = Duration(max(a.age.RPO.TargetSeconds, a.gap.RPO.TargetSeconds))
		// Each red only when over its target: a snapshot too old (backups
		// failed) does not make the gaps between snapshots over, nor
		// the other way round.
		t.RPOAgeOK = within(a.age.RPO.SnapshotAgeSeconds, a.age.RPO.TargetSeconds)
		t.RPOGapOK = within(a.gap.RPO.LargestGapSeconds, a.gap.RPO.TargetSeconds)
		for _, l := range opts.Locations {
			if a.locs[l.Name] == nil {
				a.locs[l.Name] = &locationProof{Name: l.Name, Site: l.Site, Country: l.Country, Provider: l.Provider, LastPass: "never"}
			}
		}
		for _, n := range sortedKeys(a.locs) {
			t.Locations = append(t.Locations, *a.locs[n])
		}
		s.Tenants = append(s.Tenants, *t)
	}
	return summaryTmpl.Execute(w, s)
}

// within reports whether a measured value is within its target (no
// target: always).
func within(measured, target float64) bool { return target <= 0 || measured <= target }

// shortID is the first 12 characters of a snapshot id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Duration renders seconds for people: "45s", "12m 30s", "3h 05m",
// "53h 00m" (hours up to 99), "5d 04h".
func Duration(sec float64) string {
	if math.IsNaN(sec) || math.IsInf(sec, 0) || sec < 0 {
		return "—"
	}
	if sec < 10 {
		return fmt.Sprintf("%.1fs", sec)
	}
	s := int64(math.Round(sec))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s < 100*3600:
		return fmt.Sprintf("%dh %02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %02dh", s/86400, s%86400/3600)
}
