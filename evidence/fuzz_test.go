package evidence

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// genuine is a small chain signed with testKey(1): its report files and
// the checkpoint naming its last report. The fuzz targets check that no
// other bytes verify with that key.
type genuine struct {
	files      [][]byte
	checkpoint []byte
	// checkpointV1 is the same in the v1 format (no first report).
	checkpointV1 []byte
	pub          ed25519.PublicKey
}

func newGenuine(t testing.TB) genuine {
	dir := t.TempDir()
	s := OpenStore(dir, "ams-1", testKey(1), nil)
	for i := range 3 {
		r := fuzzReport(i)
		s.Now = func() time.Time { return r.Finished }
		if _, _, err := s.Append(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	g := genuine{pub: s.PublicKey()}
	for _, r := range recs {
		g.files = append(g.files, r.Raw)
	}
	g.checkpoint, err = SignCheckpoint(testKey(1), Checkpoint{Appliance: "ams-1", First: 1, FirstHash: recs[0].Hash, Count: 3, Hash: recs[2].Hash, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	g.checkpointV1 = signCheckpointV1(t, testKey(1), 3, recs[2].Hash)
	return g
}

// fuzzReport is a small fixed report (cheap to fuzz). Changing it
// invalidates the seed corpora: rerun with -update-fuzz-seeds.
func fuzzReport(i int) Report {
	started := t0.Add(time.Duration(i) * time.Hour)
	return Report{Schema: Schema, Appliance: "ams-1", Tenant: fmt.Sprintf("praktijk-%c", 'a'+i), Engine: "sqlite", Verdict: Pass,
		FailedChecks: []string{}, Started: started, Finished: started.Add(time.Minute),
		Snapshot: Snapshot{ID: fmt.Sprintf("%064x", i+1), Time: started.Add(-time.Hour), Tables: 1, Rows: 10, Bytes: 4096},
		Location: Location{Name: "amsterdam", Country: "NL", Site: "Amsterdam", Provider: "provider-a"},
		Checks:   []Check{{Name: CheckFingerprints, OK: true, Seconds: 0.5, Detail: "all 1 tables (10 rows) match the manifest's row counts and fingerprints"}},
		Tables:   []Table{{Name: "clients", Rows: 10, RowsRestored: 10, Bytes: 4096, Fingerprint: fmt.Sprintf("%064x", 7), RestoredFingerprint: fmt.Sprintf("%064x", 7), Match: true}},
		Probes:   []Probe{{Name: "clients-present", OK: true, Expected: ">= 1", Got: "10"}},
		RTO:      RTO{TargetSeconds: 3600, MeasuredSeconds: 60, OK: true},
		RPO:      RPO{TargetSeconds: 93600, SnapshotAgeSeconds: 3600, WindowDays: 30, SnapshotsInWindow: 30, LargestGapSeconds: 86400, OK: true},
		Kluis:    "fuzz"}
}

func (g genuine) isGenuine(data []byte) bool {
	for _, f := range g.files {
		if bytes.Equal(f, data) {
			return true
		}
	}
	return false
}

// writeSeeds writes seed corpus files for a fuzz target (go test fuzz v1
// format) when -update-fuzz-seeds is given.
func writeSeeds(t testing.TB, target string, seeds ...[]any) {
	if !*updateSeeds {
		return
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, args := range seeds {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch a := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", a)
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	g := newGenuine(f)
	seeds := [][]any{{g.files[0]}, {g.files[2]}, {[]byte("{}\n")}, {g.checkpoint},
		{bytes.Replace(g.files[1], []byte(`"verdict":"PASS"`), []byte(`"Verdict":"PASS"`), 1)}}
	writeSeeds(f, "FuzzParseRecord", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRecord(data)
		if err != nil {
			return
		}
		if !bytes.Equal(rec.Raw, data) {
			t.Fatal("Raw is not the input")
		}
		if rec.line.Verify(g.pub) && !g.isGenuine(data) {
			t.Fatalf("bytes no one signed verify:\n%q", data)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	g := newGenuine(f)
	seeds := [][]any{{g.checkpoint}, {g.files[0]}, {[]byte(`{"checkpoint":{},"sig":""}` + "\n")},
		{bytes.Replace(g.checkpoint, []byte(`"count":3`), []byte(`"count":30`), 1)},
		{g.checkpointV1}, {bytes.Replace(g.checkpoint, []byte(`"first":1`), []byte(`"first":4`), 1)}}
	writeSeeds(f, "FuzzParseCheckpoint", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := ParseCheckpoint(data)
		if err != nil {
			return
		}
		if cp.Verify(g.pub) && !bytes.Equal(data, g.checkpoint) && !bytes.Equal(data, g.checkpointV1) {
			t.Fatalf("a checkpoint no one signed verifies:\n%q", data)
		}
	})
}

// FuzzVerify verifies a directory made from the input: each line (with
// its LF) is a file, named as report first, first+1, … (first from
// shift), or checkpoint.json when it looks like one. Whatever the input,
// Verify must not panic, and when it says OK every report must be one of
// the genuine ones, in its place.
func FuzzVerify(f *testing.F) {
	g := newGenuine(f)
	all := bytes.Join(append(append([][]byte(nil), g.files...), g.checkpoint), nil)
	seeds := [][]any{
		{all, uint8(0)},
		{bytes.Join(g.files[1:], nil), uint8(1)},
		{bytes.Join([][]byte{g.files[0], g.files[2], g.files[1]}, nil), uint8(0)},
		{bytes.Join([][]byte{g.files[0], g.files[0], g.checkpoint}, nil), uint8(0)},
		{[]byte("{}\n\n{\"checkpoint\":1}\n"), uint8(2)},
	}
	writeSeeds(f, "FuzzVerify", seeds...)
	for _, s := range seeds {
		f.Add(s[0].([]byte), s[1].(uint8))
	}
	f.Fuzz(func(t *testing.T, data []byte, shift uint8) {
		var files []File
		next := uint64(1 + shift%4)
		for len(data) > 0 && len(files) < 8 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line = data[:i+1]
			}
			data = data[len(line):]
			if bytes.HasPrefix(line, []byte(`{"checkpoint"`)) {
				files = append(files, File{Name: CheckpointFile, Data: line})
				continue
			}
			files = append(files, File{Name: FileName(next), Data: line})
			next++
		}
		v := Verify(files, g.pub, VerifyOptions{})
		if !v.OK() {
			return
		}
		for _, r := range v.Records {
			if r.Seq == 0 || r.Seq > uint64(len(g.files)) || !bytes.Equal(r.Raw, g.files[r.Seq-1]) {
				t.Fatalf("verified a report no one signed as report %d", r.Seq)
			}
		}
	})
}
