package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// rebuildLog is what a holder of key does after rewriting the reports in
// dir: a new tree.txt over them, a checkpoint note of it for appliance,
// and a checkpoint.json naming the export's first and last report. The
// first logFrom-1 leaves are kept from the old tree.txt (a segment).
func rebuildLog(t *testing.T, dir string, key ed25519.PrivateKey, appliance string) {
	t.Helper()
	old, err := ParseTreeText(read(t, dir, TreeFile))
	if err != nil {
		t.Fatal(err)
	}
	var leaves []tlog.Hash
	var first, last Record
	for seq := uint64(1); ; seq++ {
		data, err := os.ReadFile(filepath.Join(dir, FileName(seq)))
		if os.IsNotExist(err) {
			if int(seq) <= len(old) && first.Seq == 0 {
				leaves = append(leaves, old[seq-1])
				continue
			}
			break
		}
		l, err := parseLine(data)
		if err != nil {
			t.Fatal(err)
		}
		r := recordOf(l)
		if first.Seq == 0 {
			first = r
		}
		last = r
		leaves = append(leaves, LeafHash(r))
	}
	tr, err := NewTree(leaves)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := tr.Root(tr.Size())
	n, err := SignLogCheckpoint(key, LogCheckpoint{Origin: Origin(appliance), Size: tr.Size(), Root: root})
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := treeText(tr)
	write(t, dir, TreeFile, txt)
	write(t, dir, CheckpointNoteFile, n)
	cp, err := SignCheckpoint(key, Checkpoint{Appliance: "ams-1", First: first.Seq, FirstHash: first.Hash, Count: last.Seq, Hash: last.Hash, Time: t0.Add(91 * 24 * time.Hour), LogSize: uint64(tr.Size())})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, CheckpointFile, cp)
}

// testWitness is a witness's cosigner and verifier.
func testWitness(t *testing.T, name string, seed byte) (*Cosigner, note.Verifier) {
	t.Helper()
	c, err := NewCosigner(name, testKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return t0 }
	v, err := ParseWitnessKey(WitnessKey(name, testKey(seed).Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	return c, v
}

// cosign adds a witness's cosignature to the export's checkpoint note.
func cosign(t *testing.T, dir string, c *Cosigner) {
	t.Helper()
	n := read(t, dir, CheckpointNoteFile)
	line, err := c.Line(noteText(n))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, CheckpointNoteFile, append(n, line...))
}

// TestLogDetectsTampering: every attack on an export of the log is
// detected, with its reason; among them the root-rewrite attack (the
// history re-signed with the appliance's own key), caught by the auditor's
// kept checkpoint and by a required witness cosignature.
func TestLogDetectsTampering(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	w, wv := testWitness(t, "witness.example/auditor", 21)
	editBody := func(from uint64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			resign(t, dir, from, testKey(1), func(seq uint64, b []byte) []byte {
				if seq != from {
					return b
				}
				return bytes.Replace(b, []byte(`"verdict":"FAIL"`), []byte(`"verdict":"PASS"`), 1)
			})
			rebuildLog(t, dir, testKey(1), "ams-1")
		}
	}
	for _, tc := range []struct {
		name      string
		setup     func(t *testing.T, dir string) // before the held checkpoint is kept
		tamper    func(t *testing.T, dir string)
		held      bool // the auditor kept checkpoint.note before the tampering
		witnesses []note.Verifier
		expect    uint64
		want      []want
		note      string
	}{
		{name: "intact", tamper: func(*testing.T, string) {}, note: "every report here is included in it"},
		{name: "intact, cosigned, held checkpoint", setup: func(t *testing.T, dir string) { cosign(t, dir, w) }, held: true,
			tamper: func(*testing.T, string) {}, witnesses: []note.Verifier{wv}, note: "consistency proof verified"},
		{name: "root rewrites history: re-signed chain and log, auditor kept the old checkpoint", held: true,
			tamper: editBody(3),
			want:   []want{{Rewritten, 0, "is not a prefix of this log of 6 reports (no consistency proof): the history up to report 6 was rewritten"}}},
		{name: "root rewrites history: re-signed chain and log, witness required", setup: func(t *testing.T, dir string) { cosign(t, dir, w) },
			tamper: editBody(3), witnesses: []note.Verifier{wv},
			want: []want{{BadCheckpoint, 0, "not cosigned by witness witness.example/auditor"}}},
		{name: "root cuts the newest report off and re-signs", held: true,
			tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(6)); rebuildLog(t, dir, testKey(1), "ams-1") },
			want:   []want{{Truncated, 6, "says the log had 6 reports, but this export's checkpoint says 5: the log was cut back (or an older checkpoint was replayed): report 6 was removed"}}},
		{name: "the newest report removed", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(6)) },
			want: []want{{Truncated, 6, "says the export ends at report 6, but the newest report here is 5"}}},
		{name: "the first report removed", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(1)) },
			want: []want{{Removed, 1, "report 1 was removed"}}},
		{name: "a report removed", tamper: func(t *testing.T, dir string) { remove(t, dir, FileName(3)) },
			want: []want{{Removed, 3, "report 3 is missing"}}},
		{name: "two reports swapped", tamper: func(t *testing.T, dir string) {
			a, b := read(t, dir, FileName(2)), read(t, dir, FileName(3))
			write(t, dir, FileName(2), b)
			write(t, dir, FileName(3), a)
		}, want: []want{{Reordered, 2, "holds report 2"}, {Reordered, 3, "holds report 3"}}},
		{name: "a validly signed report inserted in place of one", tamper: func(t *testing.T, dir string) {
			write(t, dir, FileName(4), otherChain(t, 4)[3].Raw)
		}, want: []want{{Inserted, 4, "does not link"}, {Inserted, 5, "does not link"}, {Rewritten, 4, "report 4 is not leaf 3 of the signed log"}}},
		{name: "a validly signed report appended", tamper: func(t *testing.T, dir string) {
			s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
			recs := appendN(t, s, 7)
			write(t, dir, FileName(7), recs[6].Raw)
		}, want: []want{{Inserted, 7, "does not link to report 6"}, {Inserted, 7, "checkpoint.json"}, {Inserted, 7, "report 7 is not in the signed log, which checkpoint.note ends at report 6"}}},
		{name: "a replayed old checkpoint note", tamper: func(t *testing.T, dir string) {
			s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
			appendN(t, s, 4)
			_, n, err := s.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, CheckpointNoteFile, n)
		}, want: []want{{BadCheckpoint, 0, "checkpoint.note is of a log of 4 reports, checkpoint.json says 6: a checkpoint of another state of the log was put in (replayed)"},
			{BadCheckpoint, 0, "tree.txt lists 6 leaves"}}},
		{name: "a checkpoint of another appliance", tamper: func(t *testing.T, dir string) {
			old := read(t, dir, CheckpointNoteFile)
			c, _, err := OpenLogCheckpoint(old, "ams-1", pub)
			if err != nil {
				t.Fatal(err)
			}
			c.Origin = Origin("ams-2")
			n, _ := SignLogCheckpoint(testKey(2), c)
			write(t, dir, CheckpointNoteFile, n)
		}, want: []want{{BadCheckpoint, 0, `checkpoint of another log ("kluis-evidence/ams-2"), not appliance ams-1's`}}},
		{name: "a checkpoint signed by another key", tamper: func(t *testing.T, dir string) {
			c, _, _ := OpenLogCheckpoint(read(t, dir, CheckpointNoteFile), "ams-1", pub)
			n, _ := SignLogCheckpoint(testKey(9), c)
			write(t, dir, CheckpointNoteFile, n)
		}, want: []want{{BadCheckpoint, 0, "not signed by the appliance key given"}}},
		{name: "the checkpoint note removed", tamper: func(t *testing.T, dir string) { remove(t, dir, CheckpointNoteFile) },
			want: []want{{Removed, 0, "checkpoint.note is missing, though checkpoint.json says the export carries the log of 6 reports"}}},
		{name: "every checkpoint removed", tamper: func(t *testing.T, dir string) { remove(t, dir, CheckpointNoteFile, CheckpointFile, TreeFile) },
			want: []want{{Removed, 0, "no checkpoint"}}},
		{name: "a leaf hash edited", tamper: func(t *testing.T, dir string) {
			b := read(t, dir, TreeFile)
			// Another hex digit (b[0]^1 turned an 'a' into a '`': a
			// malformed line, not a rewritten hash, one run in 16).
			if b[0] == '0' {
				b[0] = '1'
			} else {
				b[0] = '0'
			}
			write(t, dir, TreeFile, b)
		}, want: []want{{Rewritten, 0, "do not hash to the root"}}},
		{name: "the auditor expected more reports", tamper: func(*testing.T, string) {}, expect: 8,
			want: []want{{Truncated, 0, "you expected the reports to reach report 8, but the last here is report 6"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newFailingExport(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			var held []byte
			if tc.held {
				held = read(t, dir, CheckpointNoteFile)
			}
			tc.tamper(t, dir)
			v, err := VerifyDir(dir, pub, VerifyOptions{Checkpoint: held, CheckpointName: "old.note", Witnesses: tc.witnesses, RequireLog: true, ExpectLast: tc.expect})
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

// newFailingExport is an export of six reports, the third a FAIL.
func newFailingExport(t *testing.T) string {
	t.Helper()
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	for i := range 6 {
		fail := ""
		if i == 2 {
			fail = "rpo"
		}
		r := sampleReport("praktijk-a", "postgres", i, fail)
		if _, _, err := s.Append(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	tree, cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), Log: tree, LogCheckpoint: cp}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestProve: one report with its inclusion proof and checkpoint verifies
// alone; an edited report, another leaf index, or a checkpoint of another
// log do not.
func TestProve(t *testing.T) {
	g := newGenuineLog(t)
	res, err := VerifyProof(g.proof, g.pub)
	if err != nil || res.Record.Seq != 2 || res.Checkpoint.Size != 3 {
		t.Fatalf("genuine proof: %+v %v", res, err)
	}
	_, wv := testWitness(t, "witness.example/w1", 21)
	if res, err := VerifyProof(g.proof, g.pub, wv); err != nil || len(res.Cosigned) != 1 {
		t.Fatalf("genuine proof, witness required: %+v %v", res, err)
	}
	_, other := testWitness(t, "witness.example/w2", 22)
	if _, err := VerifyProof(g.proof, g.pub, other); err == nil || !strings.Contains(err.Error(), "not cosigned by witness witness.example/w2") {
		t.Errorf("uncosigned: %v", err)
	}
	p, _ := ParseProof(g.proof)
	edit := func(f func(p *Proof)) []byte {
		q := p
		q.Hashes = append([]tlog.Hash(nil), p.Hashes...)
		f(&q)
		b, _ := json.Marshal(q)
		return b
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"edited report":      {edit(func(q *Proof) { q.Report = strings.Replace(q.Report, `"rows":10`, `"rows":11`, 1) }), "signature does not verify"},
		"another report":     {edit(func(q *Proof) { q.Report = string(bytes.TrimSuffix(g.files[0], []byte("\n"))) }), "report 1 is given as leaf 1"},
		"a hash changed":     {edit(func(q *Proof) { q.Hashes[0][0] ^= 1 }), "inclusion proof fails"},
		"another checkpoint": {edit(func(q *Proof) { q.Checkpoint = string(mustSign(t, LogCheckpoint{Origin: Origin("ams-1"), Size: 3})) }), "inclusion proof fails"},
	} {
		if _, err := VerifyProof(tc.data, g.pub); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func mustSign(t *testing.T, c LogCheckpoint) []byte {
	b, err := SignLogCheckpoint(testKey(1), c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
