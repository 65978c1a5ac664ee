package evidence

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// TestLocationCopyDetectsTampering is the Must-show list for the
// auditor's verify of a location's copy (a download of the bucket, or
// the bucket: verify --identity): every kind of tampering with the
// sealed reports and checkpoints there is detected with its reason.
func TestLocationCopyDetectsTampering(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	prefix := LogPrefix("ams-1", pub)
	auditor, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// leafPath and cpPath are the files of report seq's sealed copy and
	// of the checkpoint of size n in the location's directory.
	type fixture struct {
		dir  string
		recs []Record
		s    *Store
	}
	leafPath := func(f fixture, seq uint64) string {
		return filepath.Join(f.dir, filepath.FromSlash(LeafObject("ams-1", pub, LeafHash(f.recs[seq-1]))))
	}
	cpPath := func(t *testing.T, f fixture, n int64) string {
		data, err := os.ReadFile(f.s.checkpointPath(n))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(f.dir, filepath.FromSlash(CheckpointObject("ams-1", pub, data)))
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f fixture)
		held   bool // the auditor kept the checkpoint of 4 reports
		expect uint64
		want   []want
	}{
		{name: "intact"},
		{name: "intact, against a kept checkpoint", held: true},
		{name: "the newest report removed (truncated at the end)", tamper: func(t *testing.T, f fixture) { os.Remove(leafPath(f, 6)) },
			want: []want{{Truncated, 6, "the largest checkpoint at the location names a log of 6 reports, but the newest report there is report 5: report 6 was removed"}}},
		{name: "the first report removed (truncated at the start)", tamper: func(t *testing.T, f fixture) { os.Remove(leafPath(f, 1)) },
			want: []want{{Removed, 1, "the location's log starts at report 2: report 1 was removed"}}},
		{name: "a report removed", tamper: func(t *testing.T, f fixture) { os.Remove(leafPath(f, 3)) },
			want: []want{{Removed, 3, "report 3 is missing"}}},
		{name: "two sealed reports swapped (reordered)", tamper: func(t *testing.T, f fixture) {
			a, b := leafPath(f, 2), leafPath(f, 3)
			os.Rename(a, a+".x")
			os.Rename(b, a)
			os.Rename(a+".x", b)
		}, want: []want{{Rewritten, 0, "the sealed report holds another report than its name"}, {Rewritten, 0, "the sealed report holds another report than its name"},
			{Removed, 2, "reports 2 to 3 are missing"}}},
		{name: "a sealed report of another history inserted", tamper: func(t *testing.T, f fixture) {
			other := otherChain(t, 4)[3]
			sealed, err := f.s.seal(other.Raw)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(f.dir, filepath.FromSlash(LeafObject("ams-1", pub, LeafHash(other))))
			os.WriteFile(p, sealed, 0o600)
		}, want: []want{{Inserted, 4, "a second, different report signed as report 4"}}},
		{name: "a squatted name: junk under a report's name", tamper: func(t *testing.T, f fixture) {
			os.WriteFile(leafPath(f, 4), []byte("age-encryption.org/v1\nsquatted\n"), 0o600)
		}, want: []want{{Rewritten, 0, "opens the other sealed reports but not this one"}, {Removed, 4, "report 4 is missing"}}},
		{name: "not tampering: the newest checkpoint's upload was interrupted", held: true, expect: 6, tamper: func(t *testing.T, f fixture) {
			os.Remove(cpPath(t, f, 6))
		}},
		{name: "a checkpoint replaced (not what its name says)", tamper: func(t *testing.T, f fixture) {
			data, _ := os.ReadFile(f.s.checkpointPath(5))
			os.WriteFile(cpPath(t, f, 6), data, 0o600)
		}, want: []want{{Rewritten, 0, "the checkpoint object does not hold what its name says"}}},
		{name: "a checkpoint of another appliance planted", tamper: func(t *testing.T, f fixture) {
			c, _, err := OpenLogCheckpoint(mustRead(t, f.s.checkpointPath(6)), "ams-1", pub)
			if err != nil {
				t.Fatal(err)
			}
			c.Origin = Origin("ams-2")
			n, _ := SignLogCheckpoint(testKey(2), c)
			os.WriteFile(filepath.Join(f.dir, filepath.FromSlash(CheckpointObject("ams-1", pub, n))), n, 0o600)
		}, want: []want{{BadCheckpoint, 0, `checkpoint of another log ("kluis-evidence/ams-2")`}}},
		{name: "root rewrites the history at the location: a kept checkpoint shows it", held: true, tamper: func(t *testing.T, f fixture) {
			os.RemoveAll(filepath.Join(f.dir, filepath.FromSlash(prefix)))
			s := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{local.New("ams", f.dir)})
			s.Recipients = f.s.Recipients
			for range 6 {
				r := sampleReport("tandarts-zuid", "sqlite", 0, "")
				if _, _, err := s.Append(context.Background(), &r); err != nil {
					t.Fatal(err)
				}
			}
		}, want: []want{{Rewritten, 0, "is not a prefix of this log"}}},
		{name: "the auditor expected more reports", expect: 8,
			want: []want{{Truncated, 0, "you expected the reports to reach report 8"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{local.New("ams", dir)})
			s.Recipients = []age.Recipient{auditor.Recipient()}
			recs := appendN(t, s, 6)
			f := fixture{dir: dir, recs: recs, s: s}
			var held []byte
			if tc.held {
				held = mustRead(t, s.checkpointPath(4))
			}
			if tc.tamper != nil {
				tc.tamper(t, f)
			}
			v, err := VerifyLocationCopy(context.Background(), local.New("download", dir), "ams-1", pub, []age.Identity{auditor},
				VerifyOptions{Checkpoint: held, CheckpointName: "old.note", ExpectLast: tc.expect})
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, v, tc.want)
			if t.Failed() {
				t.Logf("notes: %s", strings.Join(v.Notes, "\n"))
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
