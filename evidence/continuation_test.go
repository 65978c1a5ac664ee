package evidence

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
)

// drStores are a lost appliance's store (3 reports at two locations) and
// its replacement's (a new key, same id and locations), and the recovery
// identity both seal to.
func drStores(t *testing.T) (old, fresh *Store, recovery *age.X25519Identity, locs []repo.Location) {
	t.Helper()
	recovery, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	locs = []repo.Location{local.New("amsterdam", t.TempDir()), local.New("groningen", t.TempDir())}
	old = OpenStore(t.TempDir(), "ams-1", testKey(1), locs)
	old.Recipients = []age.Recipient{recovery.Recipient()}
	appendN(t, old, 3)
	fresh = OpenStore(t.TempDir(), "ams-1", testKey(5), locs)
	fresh.Recipients = []age.Recipient{recovery.Recipient()}
	return old, fresh, recovery, locs
}

func exportAll(t *testing.T, s *Store, dir string) {
	t.Helper()
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	tree, cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(5), Log: tree, LogCheckpoint: cp, PreviousDir: s.PreviousDir(), Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func verifyExport(t *testing.T, dir string, prev []ed25519.PublicKey) *Verification {
	t.Helper()
	v, err := VerifyDir(dir, testKey(5).Public().(ed25519.PublicKey), VerifyOptions{RequireLog: true})
	if err != nil {
		t.Fatal(err)
	}
	CheckContinuations(dir, v, prev, nil, "")
	return v
}

// TestContinuation (issue 18 point 2): the recovered appliance's log
// carries a continuation record naming the lost log's last checkpoint;
// an export spans both and verifies with both keys; without the previous
// key, with the previous log cut back, or with a forged continuation it
// does not.
func TestContinuation(t *testing.T) {
	ctx := context.Background()
	old, fresh, recovery, _ := drStores(t)
	oldPub := old.PublicKey()
	r := sampleReport("praktijk-a", "postgres", 9, "")
	if _, _, err := fresh.Append(ctx, &r); err != nil { // a test ran before the continuation
		t.Fatal(err)
	}
	res, err := fresh.Continue(ctx, ContinueOptions{Previous: oldPub, Identities: []age.Identity{recovery}})
	if err != nil || res.Seq != 2 || res.PreviousSize != 3 {
		t.Fatalf("continue: %+v %v", res, err)
	}
	if again, err := fresh.Continue(ctx, ContinueOptions{Previous: oldPub, Identities: []age.Identity{recovery}}); err != nil || !again.Already || again.Seq != 2 {
		t.Fatalf("second continue: %+v %v", again, err)
	}
	appendN(t, fresh, 1)
	dir := filepath.Join(t.TempDir(), "export")
	exportAll(t, fresh, dir)
	if v := verifyExport(t, dir, []ed25519.PublicKey{oldPub}); !v.OK() {
		t.Fatalf("export spanning both logs: %v", v.Err())
	} else {
		// The continuation binds the previous log's end: no note may say
		// that nothing shows a cut (a new-user trial was misled by it).
		for _, n := range v.Notes {
			if strings.Contains(n, "whether reports were cut off") {
				t.Errorf("misleading note for a linked previous log: %s", n)
			}
		}
	}
	if v := verifyExport(t, dir, nil); v.OK() || !hasKind(v, ContinuationProblem) {
		t.Fatalf("without the previous key: want a continuation problem, got %+v", v.Problems)
	}
	if v := verifyExport(t, dir, []ed25519.PublicKey{testKey(9).Public().(ed25519.PublicKey)}); v.OK() {
		t.Fatal("verified with another previous key")
	}
	// An auditor's kept checkpoint of the old log: consistent with it.
	kept, err := os.ReadFile(old.checkpointPath(2))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := VerifyDir(dir, fresh.PublicKey(), VerifyOptions{RequireLog: true})
	if !CheckContinuations(dir, v, []ed25519.PublicKey{oldPub}, kept, "kept.note") || !v.OK() {
		t.Fatalf("kept checkpoint of the old log: %+v", v.Problems)
	}

	sub := filepath.Join(dir, PreviousExportDir+keyring.ID(oldPub))
	t.Run("previous log cut back to an older checkpoint", func(t *testing.T) {
		d := copyDir(t, dir)
		s := filepath.Join(d, filepath.Base(sub))
		os.Remove(filepath.Join(s, FileName(3)))
		two, _ := os.ReadFile(old.checkpointPath(2))
		os.WriteFile(filepath.Join(s, CheckpointNoteFile), two, 0o600)
		txt, _ := os.ReadFile(filepath.Join(s, TreeFile))
		os.WriteFile(filepath.Join(s, TreeFile), txt[:2*65], 0o600)
		if v := verifyExport(t, d, []ed25519.PublicKey{oldPub}); v.OK() || !hasKind(v, ContinuationProblem) {
			t.Fatalf("want refused, got %+v", v.Problems)
		}
	})
	t.Run("previous log missing", func(t *testing.T) {
		d := copyDir(t, dir)
		os.RemoveAll(filepath.Join(d, filepath.Base(sub)))
		if v := verifyExport(t, d, []ed25519.PublicKey{oldPub}); v.OK() {
			t.Fatal("verified without the previous log")
		}
	})
}

// TestForgedContinuation: a continuation naming a checkpoint the old log
// does not have is refused, whether its numbers contradict its own note or
// its note is a real but older checkpoint of the old log.
func TestForgedContinuation(t *testing.T) {
	ctx := context.Background()
	old, fresh, recovery, _ := drStores(t)
	oldPub := old.PublicKey()
	if _, err := fresh.Continue(ctx, ContinueOptions{Previous: oldPub, Identities: []age.Identity{recovery}}); err != nil {
		t.Fatal(err)
	}
	recs, _ := fresh.Records()
	c, ok := recs[0].Continuation()
	if !ok {
		t.Fatal("record 1 is not a continuation")
	}
	two, _ := os.ReadFile(old.checkpointPath(2))
	forged := *c
	forged.PreviousCheckpoint = string(two) // a real checkpoint of the old log, but not the last
	forged.PreviousSize = 2
	cp2, _, _ := OpenLogCheckpoint(two, "ams-1", oldPub)
	forged.PreviousRoot = base64.StdEncoding.EncodeToString(cp2.Root[:])
	lying := *c
	lying.PreviousSize = 4 // names a checkpoint nobody signed
	for name, body := range map[string]Continuation{"older checkpoint": forged, "size its note does not say": lying} {
		t.Run(name, func(t *testing.T) {
			f := OpenStore(t.TempDir(), "ams-1", testKey(5), nil)
			b, _ := json.Marshal(body)
			if _, err := f.appendLocal(b); err != nil {
				if name == "size its note does not say" && errors.Is(err, ErrMalformed) {
					return // refused at once: it does not even parse
				}
				t.Fatal(err)
			}
			// The previous log as the real continuation imported it.
			if err := os.MkdirAll(f.PreviousDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(fresh.PreviousDir(), keyring.ID(oldPub)), filepath.Join(f.PreviousDir(), keyring.ID(oldPub))); err != nil {
				t.Fatal(err)
			}
			defer os.Rename(filepath.Join(f.PreviousDir(), keyring.ID(oldPub)), filepath.Join(fresh.PreviousDir(), keyring.ID(oldPub)))
			recs, err := f.Records()
			if err != nil {
				if name == "size its note does not say" {
					return
				}
				t.Fatal(err)
			}
			tree, cp, _ := f.Checkpoint()
			_, err = Export(filepath.Join(t.TempDir(), "x"), recs, ExportOptions{Appliance: "ams-1", Key: testKey(5), Log: tree, LogCheckpoint: cp, PreviousDir: f.PreviousDir()})
			if err == nil || !strings.Contains(err.Error(), "does not have") {
				t.Fatalf("export of a forged continuation: %v", err)
			}
		})
	}
}

// TestContinueRefusesTamperedOldLog: a holder of the lost key plants at a
// location a checkpoint of more reports than are there; continue refuses
// rather than name it.
func TestContinueRefusesTamperedOldLog(t *testing.T) {
	ctx := context.Background()
	old, fresh, recovery, locs := drStores(t)
	tr, _, _ := old.Checkpoint()
	root, _ := tr.Root(3)
	n := mustSign(t, LogCheckpoint{Origin: Origin("ams-1"), Size: 5, Root: root})
	if err := locs[1].Put(ctx, CheckpointObject("ams-1", old.PublicKey(), n), n); err != nil {
		t.Fatal(err)
	}
	_, err := fresh.Continue(ctx, ContinueOptions{Previous: old.PublicKey(), Identities: []age.Identity{recovery}})
	if !errors.Is(err, errTampered) || !strings.Contains(err.Error(), "groningen") {
		t.Fatalf("continue over a planted checkpoint: %v", err)
	}
	if recs, _ := fresh.Records(); len(recs) != 0 {
		t.Fatal("a continuation was written")
	}
}

func hasKind(v *Verification, kind string) bool {
	for _, p := range v.Problems {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
