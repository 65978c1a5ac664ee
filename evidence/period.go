package evidence

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"
)

// Period is what an auditor asked the evidence to cover (verify
// --expect-period FROM..TO): [From, To).
type Period struct {
	From, To time.Time
}

// ParsePeriod decodes FROM..TO: each a day (YYYY-MM-DD, a UTC day, TO
// inclusive) or an RFC 3339 time (TO exclusive), FROM before TO. Errors
// wrap ErrMalformed.
func ParsePeriod(s string) (Period, error) {
	a, b, ok := strings.Cut(s, "..")
	if !ok || len(s) > 80 {
		return Period{}, fmt.Errorf("period %.80q: want FROM..TO (YYYY-MM-DD or RFC 3339 times): %w", s, ErrMalformed)
	}
	from, err := periodEnd(a, false)
	if err != nil {
		return Period{}, err
	}
	to, err := periodEnd(b, true)
	if err != nil {
		return Period{}, err
	}
	if !from.Before(to) {
		return Period{}, fmt.Errorf("period %.80q: FROM is not before TO: %w", s, ErrMalformed)
	}
	return Period{From: from, To: to}, nil
}

func periodEnd(s string, end bool) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("period: %.40q is neither a day (YYYY-MM-DD) nor an RFC 3339 time: %w", s, ErrMalformed)
	}
	return t.UTC(), nil
}

// String is the period as ParsePeriod reads it.
func (p Period) String() string {
	day := func(t time.Time) bool { return t.Equal(t.Truncate(24 * time.Hour)) }
	if day(p.From) && day(p.To) {
		return p.From.Format("2006-01-02") + ".." + p.To.AddDate(0, 0, -1).Format("2006-01-02")
	}
	return p.From.Format(time.RFC3339Nano) + ".." + p.To.Format(time.RFC3339Nano)
}

// checkPeriod checks that the reports here cover the period p: nothing of
// it can be missing before the first report here (it is report 1, or was
// signed before the period), nor after the last (a report here was signed
// after the period, or the last here is the newest of the log and the
// export was made after the period). The export's border reports (the one
// before and the one after the period, which `kluis evidence export` adds)
// are what shows it.
func (v *Verification) checkPeriod(p Period, reps []*item, exportCP []byte, pub ed25519.PublicKey) {
	const stamp = "2006-01-02 15:04 UTC"
	var good []*item
	for _, it := range reps {
		if it.sigOK && !it.flagged {
			good = append(good, it)
		}
	}
	if len(good) == 0 {
		v.problem(Truncated, 0, "", "you expected the period %s, but no report here verifies", p)
		return
	}
	first, last := good[0], good[len(good)-1]
	in := 0
	for _, it := range good {
		if !it.rec.Time.Before(p.From) && it.rec.Time.Before(p.To) {
			in++
		}
	}
	switch {
	case first.rec.Seq == 1:
	case first.rec.Time.Before(p.From):
	default:
		v.problem(Truncated, first.rec.Seq-1, "", "you expected the period %s, but the first report here, report %d, was signed %s, inside the period, and report %d is not here: reports of the start of the period may be missing (ask for an export from an earlier day)", p, first.rec.Seq, first.rec.Time.UTC().Format(stamp), first.rec.Seq-1)
	}
	var made time.Time
	if cp, err := ParseCheckpoint(exportCP); exportCP != nil && err == nil && cp.Verify(pub) {
		made = cp.Time
	}
	switch {
	case !last.rec.Time.Before(p.To):
	case v.LogSize > 0 && last.rec.Seq == v.LogSize && !made.IsZero() && !made.Before(p.To):
	case v.LogSize > 0 && last.rec.Seq == v.LogSize && !made.IsZero():
		v.problem(Truncated, 0, "", "you expected the period %s, but the export was made %s, before the period ends: it cannot cover it", p, made.UTC().Format(stamp))
	default:
		v.problem(Truncated, last.rec.Seq+1, "", "you expected the period %s, but the export stops at report %d, signed %s, before the period ends, and report %d is not here: reports of the end of the period may be missing (ask for an export to a later day, or up to today)", p, last.rec.Seq, last.rec.Time.UTC().Format(stamp), last.rec.Seq+1)
	}
	v.note("the period %s: %d reports here were signed within it", p, in)
}

// WithBorders extends sel (a stretch of all, as Select returns) by the
// report just before it and the one just after it, when all has them:
// they show an auditor that nothing of the period is missing at either
// end (verify --expect-period).
func WithBorders(all, sel []Record) []Record {
	if len(sel) == 0 || len(all) == 0 {
		return sel
	}
	i := int(sel[0].Seq - all[0].Seq)
	j := i + len(sel)
	if i < 0 || j > len(all) || all[i].Seq != sel[0].Seq {
		return sel
	}
	if i > 0 {
		i--
	}
	if j < len(all) {
		j++
	}
	return all[i:j]
}
