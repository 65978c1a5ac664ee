package evidence

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "2026-01-01..2026-03-31", want: "2026-01-01..2026-03-31"},
		{in: "2026-01-01..2026-01-01", want: "2026-01-01..2026-01-01"},
		{in: "2026-01-01T00:00:00Z..2026-04-01T00:00:00+02:00", want: "2026-01-01T00:00:00Z..2026-03-31T22:00:00Z"},
		{in: "2026-01-01T06:00:00.5Z..2026-01-02T00:00:00Z", want: "2026-01-01T06:00:00.5Z..2026-01-02T00:00:00Z"},
		{in: "2026-03-31..2026-01-01", bad: true},
		{in: "2026-01-01", bad: true},
		{in: "2026-01-01..", bad: true},
		{in: "..2026-01-01", bad: true},
		{in: "2026-1-1..2026-02-01", bad: true},
		{in: "2026-01-01...2026-02-01", bad: true},
	} {
		p, err := ParsePeriod(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%q: parsed as %s", tc.in, p)
		case !tc.bad && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case !tc.bad && p.String() != tc.want:
			t.Errorf("%q: %s, want %s", tc.in, p, tc.want)
		}
	}
}

// TestExpectPeriod: the auditor states the period the export must cover
// (verify --expect-period); an export that leaves out reports at either
// end of it fails with the reason, even when its own checkpoint matches
// (a key holder can sign a shorter export).
func TestExpectPeriod(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	// Reports 1-3 on 2026-01-04, 4-6 on 01-11, 7-9 on 01-18, 10-12 on 01-25.
	all := appendN(t, s, 12)
	tree, cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	export := func(t *testing.T, recs []Record, now time.Time) string {
		dir := filepath.Join(t.TempDir(), "export")
		if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), Now: now, Log: tree, LogCheckpoint: cp}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	mustPeriod := func(s string) *Period {
		p, err := ParsePeriod(s)
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	later := t0.Add(90 * 24 * time.Hour)
	sel := func(from, to string) []Record {
		p := mustPeriod(from + ".." + to)
		return Select(all, p.From, p.To)
	}
	for _, tc := range []struct {
		name   string
		recs   []Record
		now    time.Time
		period string
		tamper func(t *testing.T, dir string)
		want   []want
		note   string
	}{
		{name: "the whole log", recs: all, now: later, period: "2026-01-05..2026-01-12", note: "3 reports here were signed within it"},
		{name: "the whole log, to today", recs: all, now: later, period: "2026-01-05..2026-02-28"},
		{name: "the period with its border reports (kluis evidence export --from --to)", recs: WithBorders(all, sel("2026-01-05", "2026-01-12")), now: later, period: "2026-01-05..2026-01-12"},
		{name: "the period only: nothing shows what is before or after", recs: sel("2026-01-05", "2026-01-12"), now: later, period: "2026-01-05..2026-01-12",
			want: []want{{Truncated, 3, "the first report here, report 4, was signed 2026-01-11"}, {Truncated, 7, "the export stops at report 6"}}},
		{name: "a shorter export than asked for, with a matching checkpoint", recs: WithBorders(all, sel("2026-01-12", "2026-01-19")), now: later, period: "2026-01-05..2026-01-19",
			want: []want{{Truncated, 5, "the first report here, report 6, was signed 2026-01-11"}}},
		{name: "an export that stops before the period ends", recs: WithBorders(all, sel("2026-01-05", "2026-01-12")), now: later, period: "2026-01-05..2026-01-20",
			want: []want{{Truncated, 8, "the export stops at report 7, signed 2026-01-18"}}},
		{name: "an export made before the period ends", recs: all, now: t0.Add(30 * 24 * time.Hour), period: "2026-01-05..2026-02-28",
			want: []want{{Truncated, 0, "the export was made 2026-02-03 06:00 UTC, before the period ends"}}},
		{name: "the border report at the start removed", recs: WithBorders(all, sel("2026-01-05", "2026-01-12")), now: later, period: "2026-01-05..2026-01-12",
			tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(3)) },
			want:   []want{{Removed, 3, "says the export starts at report 3, but the first report here is 4"}, {Truncated, 3, "report 3 is not here"}}},
		{name: "the border report at the end removed", recs: WithBorders(all, sel("2026-01-05", "2026-01-12")), now: later, period: "2026-01-05..2026-01-12",
			tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(7)) },
			want:   []want{{Truncated, 7, "says the export ends at report 7, but the newest report here is 6"}, {Truncated, 7, "report 7 is not here"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := export(t, tc.recs, tc.now)
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			v, err := VerifyDir(dir, pub, VerifyOptions{RequireLog: true, ExpectPeriod: mustPeriod(tc.period)})
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, v, tc.want)
			if tc.note != "" && !strings.Contains(strings.Join(v.Notes, "\n"), tc.note) {
				t.Errorf("notes lack %q: %q", tc.note, v.Notes)
			}
		})
	}
}

func TestWithBorders(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	all := appendN(t, s, 5)
	for _, tc := range []struct {
		from, to int
		want     string
	}{{0, 3, "[1 2 3 4]"}, {1, 3, "[1 2 3 4]"}, {0, 5, "[1 2 3 4 5]"}, {3, 5, "[3 4 5]"}, {2, 2, "[]"}} {
		var seqs []uint64
		for _, r := range WithBorders(all, all[tc.from:tc.to]) {
			seqs = append(seqs, r.Seq)
		}
		if g := fmt.Sprint(seqs); g != tc.want {
			t.Errorf("WithBorders(%d:%d) = %s, want %s", tc.from, tc.to, g, tc.want)
		}
	}
}
