package dossier

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// TestCheckRecordsAsParseThenAnchor: CheckRecords, which checks no
// record line's signature, accepts and refuses exactly the register
// records ParseRecords followed by CheckAnchored does, with the same
// kind of error, for records planted, forged, edited or copied and for
// a local log cut off.
func TestCheckRecordsAsParseThenAnchor(t *testing.T) {
	key := testKey()
	ring := keyring.New(key.Public().(ed25519.PublicKey))
	stranger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	mk := func(r Record) []byte {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name  string
		edit  func(dir string, recs []Record) [][]byte
		want  error // nil: accepted
		alone bool  // the error need not wrap a sentinel
	}{
		{name: "intact", edit: func(_ string, recs []Record) [][]byte { return recordBytes(recs, mk) }},
		{name: "a record copied", edit: func(_ string, recs []Record) [][]byte {
			return append(recordBytes(recs, mk), mk(recs[2]))
		}},
		{name: "an older checkpoint signed by another key, saying what is true", alone: true, want: errors.New(""), edit: func(dir string, recs []Record) [][]byte {
			ls, _ := os.ReadFile(filepath.Join(dir, ErasureFileName))
			cp, err := SignCheckpoint(stranger, LogNameErasures, "ams-1", mustTree(t, lines(ls)[:3]), 3)
			if err != nil {
				t.Fatal(err)
			}
			recs[2].Checkpoint = string(cp)
			return recordBytes(recs, mk)
		}},
		{name: "an older checkpoint of another size", alone: true, want: errors.New(""), edit: func(dir string, recs []Record) [][]byte {
			recs[1].Checkpoint = recs[2].Checkpoint
			return recordBytes(recs, mk)
		}},
		{name: "an older checkpoint of another root", want: ErrUnanchored, edit: func(dir string, recs []Record) [][]byte {
			ls, _ := os.ReadFile(filepath.Join(dir, ErasureFileName))
			cp, err := SignCheckpoint(key, LogNameErasures, "ams-1", mustTree(t, lines(ls)[1:3]), 2)
			if err != nil {
				t.Fatal(err)
			}
			recs[1].Checkpoint = string(cp)
			return recordBytes(recs, mk)
		}},
		{name: "a line edited, its head with it", want: ErrUnanchored, alone: true, edit: func(_ string, recs []Record) [][]byte {
			recs[1].Line = string(bytes.Replace([]byte(recs[1].Line), []byte(`"dossier_id":"2"`), []byte(`"dossier_id":"9"`), 1))
			recs[1].Head = chain.Hash([]byte(recs[1].Line))
			return recordBytes(recs, mk)
		}},
		{name: "a head that is not the line's", alone: true, want: errors.New(""), edit: func(_ string, recs []Record) [][]byte {
			recs[1].Head = recs[2].Head
			return recordBytes(recs, mk)
		}},
		{name: "count 0", alone: true, want: errors.New(""), edit: func(_ string, recs []Record) [][]byte {
			recs[0].Count = 0
			return recordBytes(recs, mk)
		}},
		{name: "a record planted by a stranger's key", want: keyring.ErrUntrusted, edit: func(_ string, recs []Record) [][]byte {
			e := chain.Entry{Seq: 6, Prev: recs[4].Head, Time: time.Unix(9, 0).UTC(), Body: []byte(`{"kind":"erasure","tenant":"t","dossier_id":"7"}`)}
			_, b, err := NewRecord(LogNameErasures, stranger, e)
			if err != nil {
				t.Fatal(err)
			}
			return append(recordBytes(recs, mk), b)
		}},
		{name: "the local log cut off", want: ErrUnanchored, alone: true, edit: func(dir string, recs []Record) [][]byte {
			p := filepath.Join(dir, ErasureFileName)
			ls, _ := os.ReadFile(p)
			l := lines(ls)
			if err := os.WriteFile(p, []byte(l[0]+l[1]+l[2]), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, CheckpointFileOf(LogNameErasures)))
			return recordBytes(recs, mk)
		}},
		{name: "another appliance's checkpoint", alone: true, want: errors.New(""), edit: func(dir string, recs []Record) [][]byte {
			ls, _ := os.ReadFile(filepath.Join(dir, ErasureFileName))
			cp, _ := SignCheckpoint(key, LogNameErasures, "ams-2", mustTree(t, lines(ls)[:2]), 2)
			recs[1].Checkpoint = string(cp)
			return recordBytes(recs, mk)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, recs := signedLog(t, dir, key, ring, "ams-1", 5)
			raw := c.edit(dir, recs)
			old := func() error {
				recs, err := ParseRecords(raw, ring)
				if err != nil {
					return err
				}
				return CheckAnchored(dir, "ams-1", ring, recs)
			}()
			a, err := CheckRecords(dir, "ams-1", ring, raw)
			if (old == nil) != (c.want == nil) {
				t.Fatalf("ParseRecords and CheckAnchored: %v; the case expects %v", old, c.want)
			}
			if (err == nil) != (old == nil) {
				t.Fatalf("CheckRecords: %v; ParseRecords and CheckAnchored: %v", err, old)
			}
			if err != nil {
				if err.Error() != old.Error() {
					t.Fatalf("CheckRecords says %q, ParseRecords and CheckAnchored %q", err, old)
				}
				if !c.alone && !errors.Is(err, c.want) {
					t.Fatalf("want %v, got %v", c.want, err)
				}
				return
			}
			if len(a.Records) != len(raw) || len(a.Logs[LogNameErasures].Lines) != 5 {
				t.Fatalf("anchored: %d records, %d lines", len(a.Records), len(a.Logs[LogNameErasures].Lines))
			}
			es, err := a.Erasures()
			if err != nil || len(es) != 5 {
				t.Fatalf("erasures of the loaded log: %v %d", err, len(es))
			}
		})
	}
}

func recordBytes(recs []Record, mk func(Record) []byte) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = mk(r)
	}
	return out
}
