package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
)

// newExport writes an export of n sample reports signed with testKey(1)
// and returns its directory and the records.
func newExport(t *testing.T, n int) (string, []Record) {
	return newExportFrom(t, n, 1)
}

// newExportFrom is newExport of reports from to n only: an export made
// with --from.
func newExportFrom(t *testing.T, n int, from uint64) (string, []Record) {
	t.Helper()
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	appendN(t, s, n)
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	tree, cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	if _, err := Export(dir, recs[from-1:], ExportOptions{Appliance: "ams-1", Key: testKey(1), Now: t0.Add(90 * 24 * time.Hour), Log: tree, LogCheckpoint: cp}); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

// toLegacy turns an export into one made before the transparency log: no
// checkpoint.note or tree.txt, and a v2 checkpoint.json (no log_size).
func toLegacy(t *testing.T, dir string) {
	t.Helper()
	cp, err := ParseCheckpoint(read(t, dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	c := cp.Checkpoint
	c.LogSize = 0
	data, err := SignCheckpoint(testKey(1), c)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, CheckpointFile, data)
	remove(t, dir, CheckpointNoteFile, TreeFile)
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// resign re-signs reports from..last of dir with key, each body passed
// through edit, relinking the chain, and writes a new checkpoint signed
// with key: what a holder of key can do.
func resign(t *testing.T, dir string, from uint64, key ed25519.PrivateKey, edit func(seq uint64, body []byte) []byte) {
	t.Helper()
	prev := chain.ZeroHash
	if from > 1 {
		l, err := parseLine(read(t, dir, FileName(from-1)))
		if err != nil {
			t.Fatal(err)
		}
		prev = chain.Hash(l.Raw)
	}
	var last uint64
	for seq := from; ; seq++ {
		data, err := os.ReadFile(filepath.Join(dir, FileName(seq)))
		if os.IsNotExist(err) {
			break
		}
		l, err := parseLine(data)
		if err != nil {
			t.Fatal(err)
		}
		e := l.Entry
		e.Prev = prev
		if edit != nil {
			e.Body = edit(seq, e.Body)
		}
		line, err := chain.Sign(key, e)
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, FileName(seq), append(line, '\n'))
		prev, last = chain.Hash(line), seq
	}
	l, err := parseLine(read(t, dir, FileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := SignCheckpoint(key, Checkpoint{Appliance: "ams-1", First: 1, FirstHash: chain.Hash(l.Raw), Count: last, Hash: prev, Time: t0.Add(91 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, CheckpointFile, cp)
}

// want is an expected problem: its kind, its report and words of its
// reason.
type want struct {
	kind   string
	seq    uint64
	reason string
}

func TestVerifyDetectsTampering(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	other := testKey(7)
	replaceIn := func(name, old, new string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			b := read(t, dir, name)
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("%s lacks %q", name, old)
			}
			write(t, dir, name, bytes.Replace(b, []byte(old), []byte(new), 1))
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		held   func(t *testing.T, dir string) []byte // a checkpoint kept from before the tampering
		pub    ed25519.PublicKey
		from   uint64 // the export starts here (--from); 0: at report 1
		want   []want
		note   string
	}{
		{name: "intact", tamper: func(*testing.T, string) {}, note: "matches report 1 and report 6, the first and the newest report here: nothing was removed from either end"},
		{name: "edit a byte of a report's body", tamper: replaceIn(FileName(3), `"rows":1200,`, `"rows":1201,`),
			want: []want{{Edited, 3, "report 4 no longer links to it: report 3 was changed after it was signed"}}},
		{name: "edit the verdict of the newest report", tamper: replaceIn(FileName(6), `"verdict":"PASS"`, `"verdict":"FAIL"`),
			want: []want{{Edited, 6, "does not verify with the given public key"}, {Rewritten, 6, "checkpoint.json"}}},
		{name: "edit the signature", tamper: replaceIn(FileName(2), `"sig":"`, `"sig":"A`), // base64 of another length: not a signature at all
			want: []want{{Malformed, 2, "bad signature encoding"}}},
		{name: "delete a report", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(4)) },
			want: []want{{Removed, 4, "report 4 is missing: report 5 follows report 3"}}},
		{name: "delete two reports", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(3), FileName(4)) },
			want: []want{{Removed, 3, "reports 3 to 4 are missing: report 5 follows report 2"}}},
		{name: "delete the first report", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(1)) },
			want: []want{{Removed, 1, "says the export starts at report 1, but the first report here is 2: report 1 was removed"}}},
		{name: "delete the first two reports", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(1), FileName(2)) },
			want: []want{{Removed, 1, "says the export starts at report 1, but the first report here is 3: reports 1 to 2 were removed"}}},
		{name: "delete the first report of a segment", from: 3, tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(3)) },
			want: []want{{Removed, 3, "says the export starts at report 3, but the first report here is 4: report 3 was removed"}}},
		{name: "delete the newest report", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(6)) },
			want: []want{{Truncated, 6, "says the export ends at report 6, but the newest report here is 5"}}},
		{name: "delete the newest report and the checkpoint, auditor kept the old checkpoint",
			tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(6), CheckpointFile) },
			held:   func(t *testing.T, dir string) []byte { return read(t, dir, CheckpointFile) },
			want:   []want{{Truncated, 6, "says the chain had 6 reports, but the newest here is report 5"}}},
		{name: "swap two reports", tamper: func(t *testing.T, dir string) {
			a, b := read(t, dir, FileName(2)), read(t, dir, FileName(3))
			write(t, dir, FileName(2), b)
			write(t, dir, FileName(3), a)
		}, want: []want{{Reordered, 2, "the file name says report 3 but it holds report 2"}, {Reordered, 3, "the file name says report 2 but it holds report 3"}}},
		{name: "insert a copied report", tamper: func(t *testing.T, dir string) { write(t, dir, FileName(7), read(t, dir, FileName(2))) },
			want: []want{{Inserted, 2, "a copy of report 2 (00000002.json)"}}},
		{name: "overwrite a report with a copy of another", tamper: func(t *testing.T, dir string) { write(t, dir, FileName(4), read(t, dir, FileName(2))) },
			want: []want{{Inserted, 2, "a copy of report 2"}, {Removed, 4, "report 4 is missing"}}},
		{name: "re-sign one edited report with another key", tamper: func(t *testing.T, dir string) {
			l, _ := parseLine(read(t, dir, FileName(3)))
			e := l.Entry
			e.Body = bytes.Replace(e.Body, []byte(`"kluis":"0.9.0"`), []byte(`"kluis":"0.9.1"`), 1)
			line, _ := chain.Sign(other, e)
			write(t, dir, FileName(3), append(line, '\n'))
		}, want: []want{{Edited, 3, "does not verify with the given public key and report 4 no longer links"}}},
		{name: "re-sign the chain from report 4 with another key", tamper: func(t *testing.T, dir string) {
			resign(t, dir, 4, other, nil)
		}, want: []want{
			{Forged, 4, "does not verify with the given public key, yet report 5 links to it: report 4 was signed by another key"},
			{Forged, 5, "signed by another key"}, {Forged, 6, "signed by another key too"},
			{BadCheckpoint, 0, "checkpoint.json: the signature does not verify with the given public key"}}},
		{name: "re-sign every report with another key", tamper: func(t *testing.T, dir string) { resign(t, dir, 1, other, nil) },
			want: []want{{Forged, 0, "no report verifies with the given public key"}}},
		{name: "verify with the wrong public key", tamper: func(*testing.T, string) {}, pub: other.Public().(ed25519.PublicKey),
			want: []want{{Forged, 0, "it is not this appliance's key"}}},
		{name: "history rewritten with the appliance key, auditor kept a checkpoint",
			tamper: func(t *testing.T, dir string) {
				resign(t, dir, 2, testKey(1), func(seq uint64, b []byte) []byte {
					return bytes.Replace(b, []byte(`"kluis":"0.9.0"`), []byte(`"kluis":"0.9.2"`), 1)
				})
			},
			held: func(t *testing.T, dir string) []byte { return read(t, dir, CheckpointFile) },
			want: []want{{Rewritten, 6, "report 6 or the history before it was rewritten after the checkpoint"}}},
		{name: "a validly signed report of another chain replaces one", tamper: func(t *testing.T, dir string) {
			write(t, dir, FileName(4), otherChain(t, 4)[3].Raw)
		}, want: []want{{Inserted, 4, "report 4 does not link to report 3"}, {Inserted, 5, "report 5 does not link to report 4"}}},
		{name: "a fork: two validly signed reports numbered 4", tamper: func(t *testing.T, dir string) {
			write(t, dir, "00000099.json", otherChain(t, 4)[3].Raw)
		}, want: []want{{Inserted, 4, "a second, different report signed as report 4"}}},
		{name: "a report of another schema", tamper: func(t *testing.T, dir string) {
			resign(t, dir, 3, testKey(1), func(seq uint64, b []byte) []byte {
				if seq != 3 {
					return b
				}
				return bytes.Replace(b, []byte(Schema), []byte("kluis-restore-test/v9"), 1)
			})
		}, want: []want{{UnknownSchema, 3, `schema "kluis-restore-test/v9", this kluis reads "kluis-restore-test/v1"`}}},
		{name: "a report of another appliance", tamper: func(t *testing.T, dir string) {
			resign(t, dir, 3, testKey(1), func(seq uint64, b []byte) []byte {
				if seq != 3 {
					return b
				}
				return bytes.Replace(b, []byte(`"appliance":"ams-1"`), []byte(`"appliance":"ams-2"`), 1)
			})
		}, want: []want{{Inserted, 3, `report 3 is of appliance "ams-2", not "ams-1"`}}},
		{name: "garbage in a report file", tamper: func(t *testing.T, dir string) { write(t, dir, FileName(3), []byte("{\"entry\":\x00}\n")) },
			want: []want{{Malformed, 3, "not a signed evidence record"}}},
		{name: "a report cut off", tamper: func(t *testing.T, dir string) { write(t, dir, FileName(3), read(t, dir, FileName(3))[:500]) },
			want: []want{{Malformed, 3, "does not end in a line feed"}}},
		{name: "a huge file", tamper: func(t *testing.T, dir string) { write(t, dir, FileName(3), bytes.Repeat([]byte("x"), MaxRecordSize+1)) },
			want: []want{{Malformed, 3, "larger than"}}},
		{name: "a renamed report", tamper: func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, FileName(3)), filepath.Join(dir, "3.json"))
		}, want: []want{{Malformed, 0, "not a report file name"}, {Removed, 3, "report 3 is missing"}}},
		{name: "an edited checkpoint", tamper: replaceIn(CheckpointFile, `"count":6`, `"count":5`),
			want: []want{{BadCheckpoint, 0, "checkpoint.json: the signature does not verify"}}},
		{name: "a segment of the chain (an export --from)", from: 3, tamper: func(*testing.T, string) {},
			note: "starts at report 3; earlier reports are not in this set"},
		{name: "a segment of the chain, its checkpoint", from: 3, tamper: func(*testing.T, string) {},
			note: "matches report 3, where the export starts, and report 6, the newest report here: nothing was removed from either end"},
		{name: "a held checkpoint the segment does not reach", from: 3, tamper: func(*testing.T, string) {},
			held: func(t *testing.T, dir string) []byte {
				s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
				recs := appendN(t, s, 2)
				cp, _ := SignCheckpoint(testKey(1), Checkpoint{Appliance: "ams-1", First: 1, FirstHash: recs[0].Hash, Count: 2, Hash: recs[1].Hash, Time: t0})
				return cp
			},
			want: []want{{BadCheckpoint, 0, "names report 2, which is not in this set (it starts at report 3)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := max(tc.from, 1)
			dir, _ := newExportFrom(t, 6, from)
			toLegacy(t, dir) // the chain checks; TestLogDetectsTampering checks the log
			var held []byte
			if tc.held != nil {
				held = tc.held(t, dir)
			}
			tc.tamper(t, dir)
			key := pub
			if tc.pub != nil {
				key = tc.pub
			}
			v, err := VerifyDir(dir, key, VerifyOptions{Checkpoint: held, CheckpointName: "old.json"})
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, v, tc.want)
			if tc.note != "" && !strings.Contains(strings.Join(v.Notes, "\n"), tc.note) {
				t.Errorf("notes lack %q: %q", tc.note, v.Notes)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Error(err)
			}
		})
	}
}

// otherChain is a chain of n reports of the same appliance and key, but
// other content than appendN's.
func otherChain(t *testing.T, n int) []Record {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	var out []Record
	for i := range n {
		r := sampleReport("tandarts-zuid", "sqlite", i, "rpo")
		rec, _, err := s.Append(t.Context(), &r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func checkProblems(t *testing.T, v *Verification, wants []want) {
	t.Helper()
	key := func(kind string, seq uint64) string { return fmt.Sprintf("%s@%d", kind, seq) }
	var got, exp []string
	for _, p := range v.Problems {
		got = append(got, key(p.Kind, p.Seq))
	}
	for _, w := range wants {
		exp = append(exp, key(w.kind, w.seq))
	}
	sort.Strings(got)
	sort.Strings(exp)
	if strings.Join(got, " ") != strings.Join(exp, " ") {
		t.Errorf("problems %v, want %v", got, exp)
	}
	for _, w := range wants {
		found := false
		for _, p := range v.Problems {
			found = found || p.Kind == w.kind && p.Seq == w.seq && strings.Contains(p.Reason, w.reason)
		}
		if !found {
			t.Errorf("no %s problem of report %d saying %q", w.kind, w.seq, w.reason)
		}
	}
	if t.Failed() || testing.Verbose() {
		for _, p := range v.Problems {
			t.Logf("  %s", p)
		}
	}
	if v.OK() != (len(wants) == 0) {
		t.Errorf("OK() = %v with %d problems", v.OK(), len(v.Problems))
	}
}

// signCheckpointV1 signs a checkpoint as kluis before the v2 format did:
// it names only the last report.
func signCheckpointV1(t testing.TB, key ed25519.PrivateKey, count uint64, hash string) []byte {
	t.Helper()
	body, err := json.Marshal(Checkpoint{Schema: CheckpointSchemaV1, Appliance: "ams-1", Count: count, Hash: hash, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte("first")) {
		t.Fatalf("a v1 checkpoint names its first report: %s", body)
	}
	return append(canonicalCheckpoint(body, ed25519.Sign(key, body)), '\n')
}

// TestExportCheckpointStart: the export's checkpoint names its first
// report, so reports removed from (or added before) the start of an
// export are caught; an export with an old (v1) checkpoint still
// verifies, with a note that its start is not covered.
func TestExportCheckpointStart(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	dir, recs := newExportFrom(t, 6, 3)
	cp, err := ParseCheckpoint(read(t, dir, CheckpointFile))
	if err != nil || cp.Schema != CheckpointSchema || cp.First != 3 || cp.FirstHash != recs[2].Hash || cp.Count != 6 || cp.Hash != recs[5].Hash {
		t.Fatalf("checkpoint of an export of reports 3 to 6: %+v %v", cp.Checkpoint, err)
	}

	// Reports 1 and 2 put in front of a segment that starts at 3.
	added := filepath.Join(t.TempDir(), "added")
	os.MkdirAll(added, 0o755)
	for _, n := range []string{FileName(3), FileName(4), FileName(5), FileName(6), CheckpointFile, CheckpointNoteFile, TreeFile} {
		write(t, added, n, read(t, dir, n))
	}
	write(t, added, FileName(1), recs[0].Raw)
	write(t, added, FileName(2), recs[1].Raw)
	v, err := VerifyDir(added, pub, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkProblems(t, v, []want{{Inserted, 1, "says the export starts at report 3, but reports from 1 are here: reports 1 to 2 were added to the export"}})

	// An export with a v1 checkpoint: still verifies; removing its first
	// reports cannot be detected, and a note says so.
	old := filepath.Join(t.TempDir(), "old")
	os.MkdirAll(old, 0o755)
	for _, r := range recs {
		write(t, old, FileName(r.Seq), r.Raw)
	}
	write(t, old, CheckpointFile, signCheckpointV1(t, testKey(1), 6, recs[5].Hash))
	if v, err := VerifyDir(old, pub, VerifyOptions{}); err != nil || !v.OK() || !strings.Contains(strings.Join(v.Notes, "\n"), "matches report 6, the newest report here") {
		t.Fatalf("an export with a v1 checkpoint: %v %+v", err, v)
	}
	remove(t, old, FileName(1), FileName(2))
	v, err = VerifyDir(old, pub, VerifyOptions{})
	if err != nil || !v.OK() || !strings.Contains(strings.Join(v.Notes, "\n"), "does not name the export's first report: reports removed from its start cannot be detected") {
		t.Fatalf("an export with a v1 checkpoint, first reports removed: %v %+v", err, v)
	}

	// --checkpoint OLD: unchanged semantics for a v1 and a v2 checkpoint,
	// including a v2 one of an export that started later than this one.
	full, _ := newExport(t, 6)
	for name, held := range map[string][]byte{
		"v1":         signCheckpointV1(t, testKey(1), 4, recs[3].Hash),
		"v2":         read(t, full, CheckpointFile),
		"v2 segment": read(t, dir, CheckpointFile),
	} {
		v, err := VerifyDir(full, pub, VerifyOptions{Checkpoint: held, CheckpointName: name})
		if err != nil || !v.OK() || !strings.Contains(strings.Join(v.Notes, "\n"), "matches: the chain from report 1 up to report") {
			t.Errorf("held %s checkpoint: %v %+v", name, err, v)
		}
	}
}

// TestHeldCheckpointProvesPrefix: a checkpoint from an earlier export
// matches a later, longer export of the same chain.
func TestHeldCheckpointProvesPrefix(t *testing.T) {
	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), nil)
	appendN(t, s, 4)
	recs, _ := s.Records()
	first := filepath.Join(t.TempDir(), "q1")
	if _, err := Export(first, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 5)
	recs, _ = s.Records()
	second := filepath.Join(t.TempDir(), "q2")
	tree, note, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	// From week 1 on: reports 4 to 9.
	if _, err := Export(second, Select(recs, t0.Add(7*24*time.Hour), time.Time{}), ExportOptions{Appliance: "ams-1", Key: testKey(1), Log: tree, LogCheckpoint: note}); err != nil {
		t.Fatal(err)
	}
	v, err := VerifyDir(second, s.PublicKey(), VerifyOptions{Checkpoint: read(t, first, CheckpointFile), CheckpointName: "q1/checkpoint.json"})
	if err != nil || !v.OK() || v.First != 4 || v.Last != 9 {
		t.Fatalf("%v %d..%d %v", err, v.First, v.Last, v.Problems)
	}
	if notes := strings.Join(v.Notes, "\n"); !strings.Contains(notes, "matches: the chain from report 4 (the first here) up to report 4 is unchanged since, and continues to report 9") {
		t.Errorf("notes: %s", notes)
	}
}

func TestSelect(t *testing.T) {
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	var recs []Record
	for i, d := range []int{1, 2, 3, 2, 5, 6} { // the clock went back at report 4
		recs = append(recs, Record{Seq: uint64(i + 1), Time: day(d)})
	}
	seqs := func(rs []Record) (out []uint64) {
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		from, to time.Time
		want     string
	}{
		{time.Time{}, time.Time{}, "[1 2 3 4 5 6]"},
		{day(2), day(3), "[2 3 4]"}, // 3 lies outside but between: the stretch stays unbroken
		{day(5), time.Time{}, "[5 6]"},
		{time.Time{}, day(2), "[1]"},
		{day(7), time.Time{}, "[]"},
	} {
		if got := fmt.Sprint(seqs(Select(recs, tc.from, tc.to))); got != tc.want {
			t.Errorf("Select(%v, %v) = %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestExportRefuses(t *testing.T) {
	dir, recs := newExport(t, 3)
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("export into a non-empty dir: %v", err)
	}
	if _, err := Export(t.TempDir(), []Record{recs[0], recs[2]}, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err == nil {
		t.Error("exported a broken stretch")
	}
	if _, err := Export(t.TempDir(), nil, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err == nil {
		t.Error("exported nothing")
	}
}

// TestSummaryEscapes: values from the config (sites, probe names, details)
// are escaped in the HTML summary.
func TestSummaryEscapes(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	r := sampleReport("praktijk-a", "sqlite", 0, "")
	r.Location.Site = `Zwolle <script>alert("x")</script> & Co`
	r.Location.Provider = `"><img src=x onerror=alert(1)>`
	if _, _, err := s.Append(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records()
	dir := filepath.Join(t.TempDir(), "x")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err != nil {
		t.Fatal(err)
	}
	html := string(read(t, dir, SummaryFile))
	if strings.Contains(html, "<script>") || strings.Contains(html, "<img") {
		t.Fatal("the summary does not escape config values")
	}
	if !strings.Contains(html, "Zwolle &lt;script&gt;") {
		t.Fatal("the escaped site is missing")
	}
}

func TestDuration(t *testing.T) {
	for sec, want := range map[float64]string{3.25: "3.2s", 45: "45s", 750: "12m 30s", 11100: "3h 05m", 53 * 3600: "53h 00m", 5*86400 + 4*3600: "5d 04h", -1: "—"} {
		if got := Duration(sec); got != want {
			t.Errorf("Duration(%v) = %q, want %q", sec, got, want)
		}
	}
}

// TestVerifyHugeNumbers: a validly signed report numbered far ahead is a
// gap, reported at once (the verifier's work does not grow with numbers).
func TestVerifyHugeNumbers(t *testing.T) {
	dir, recs := newExport(t, 2)
	remove(t, dir, CheckpointFile)
	far := uint64(1) << 62
	line, err := chain.Sign(testKey(1), chain.Entry{Seq: far, Prev: recs[1].Hash, Time: t0, Body: recs[1].line.Entry.Body})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, FileName(far), append(line, '\n'))
	write(t, dir, FileName(far-1), []byte("garbage\n"))
	start := time.Now()
	v, err := VerifyDir(dir, testKey(1).Public().(ed25519.PublicKey), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkProblems(t, v, []want{{Removed, 3, fmt.Sprintf("reports 3 to %d are missing: report %d follows report 2", far-2, far)}, {Malformed, far - 1, ""},
		{Inserted, far, "not in the signed log"}})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestSummaryListsUnprovenLocations: a configured location no report of a
// tenant proves shows as "never" for that tenant, so an auditor sees the
// copy exists and is unproven.
func TestSummaryListsUnprovenLocations(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	r := sampleReport("praktijk-a", "sqlite", 0, "") // week 0: tested at the first sample location
	if _, _, err := s.Append(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records()
	other := Location{Name: "rotterdam-cold", Country: "NL", Site: "Rotterdam", Provider: "provider-c"}
	dir := filepath.Join(t.TempDir(), "x")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), Locations: []Location{r.Location, other}}); err != nil {
		t.Fatal(err)
	}
	html := string(read(t, dir, SummaryFile))
	if !regexp.MustCompile(`<td>rotterdam-cold</td>.*class="never">never</td>`).MatchString(html) {
		t.Errorf("the unproven location is not listed as never:\n%s", html)
	}
}

// TestSummaryRPOOverOnlyWhereOver: a snapshot too old (backups failed)
// makes the snapshot age red in the summary, not the largest gap, which is
// within its target.
func TestSummaryRPOOverOnlyWhereOver(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	r := sampleReport("praktijk-a", "sqlite", 0, "rpo")
	if _, _, err := s.Append(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records()
	dir := filepath.Join(t.TempDir(), "x")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err != nil {
		t.Fatal(err)
	}
	html := string(read(t, dir, SummaryFile))
	for _, want := range []string{`snapshot age</div><div class="value over">53h 00m<`, `largest gap</div><div class="value">24h 05m<`, `<td class="num over">53h 00m</td>`} {
		if !strings.Contains(html, want) {
			t.Errorf("summary lacks %s", want)
		}
	}
}

// TestExportDirPlantedSymlink: a symlink planted in the export directory
// after Export created it and found it empty is not followed: the export
// fails and the file the link points to is untouched (issue 15 §4).
func TestExportDirPlantedSymlink(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	appendN(t, s, 2)
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	planted := false
	afterExportDirOpen = func(d string) {
		for _, name := range []string{FileName(1), PublicKeyFile, CheckpointFile} {
			if err := os.Symlink(victim, filepath.Join(d, name)); err != nil {
				t.Error(err)
			}
		}
		planted = true
	}
	defer func() { afterExportDirOpen = nil }()
	_, err = Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)})
	if !planted {
		t.Fatal("the hook did not run")
	}
	if err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Fatalf("export through planted symlinks: %v", err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "root:secret\n" {
		t.Fatalf("the file a planted symlink points to was written: %q", got)
	}
}

// TestExportDirMustBeNew: an existing directory, even an empty one (it may
// belong to another user), is refused; the new one is private.
func TestExportDirMustBeNew(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	appendN(t, s, 1)
	recs, _ := s.Records()
	if _, err := Export(t.TempDir(), recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("export into an existing directory: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(link, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err == nil {
		t.Fatal("exported through a symlink to a directory")
	}
	dir := filepath.Join(t.TempDir(), "new")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1)}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("export directory: %v %v", fi.Mode(), err)
	}
}
