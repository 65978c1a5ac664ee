package repo_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// openLedgered opens the fixture's repository with a ledger.
func (f *fixture) openLedgered(l repo.Ledger) *repo.Repo {
	f.t.Helper()
	r, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master, Ledger: l})
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return r
}

func checkErrors(t *testing.T, r *repo.Repo) map[string]string {
	t.Helper()
	cs, err := r.Check(context.Background(), repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		out[c.Location] = strings.Join(c.Errors, "\n")
	}
	return out
}

// Issue 14 point 4: the newest manifests deleted at one location. Each
// location on its own is consistent, so a check of what it lists passes;
// compared with the ledger and the other location, the erased history is
// an error at that location, naming the snapshots; sync restores them;
// "latest" with the other location down is refused.
func TestHistoryErasedAtOneLocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ledger := &repo.FileLedger{Dir: t.TempDir()}
	f.opts.Ledger = ledger
	f.init()
	var ids []repo.Hash
	for i := range 3 {
		ids = append(ids, backup(t, f.openLedgered(ledger), randomStream("s", uint64(i), 64<<10)).ID)
	}
	st, err := ledger.State(testTenant)
	if err != nil || len(st.Committed) != 3 {
		t.Fatalf("ledger holds %d snapshots (%v), want 3", len(st.Committed), err)
	}
	for _, h := range ids[1:] {
		f.mems[0].Remove(testTenant + "/snapshots/" + h.String())
	}

	r := f.openLedgered(ledger)
	errs := checkErrors(t, r)
	for _, h := range ids[1:] {
		if !strings.Contains(errs["amsterdam"], "snapshot "+h.Short()) || !strings.Contains(errs["amsterdam"], "held by groningen") {
			t.Errorf("check at amsterdam does not name erased snapshot %s:\n%s", h.Short(), errs["amsterdam"])
		}
	}
	if strings.Contains(errs["amsterdam"], ids[0].Short()) || errs["groningen"] != "" {
		t.Errorf("check blames what is intact:\namsterdam: %s\ngroningen: %s", errs["amsterdam"], errs["groningen"])
	}

	// Restore latest with groningen down would roll back to ids[0].
	f.faults[1].SetDown(nil)
	p, err := r.Presence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LatestGuard(); err == nil || !strings.Contains(err.Error(), "groningen cannot be listed") {
		t.Errorf("latest guard with groningen down: %v, want a refusal naming groningen", err)
	}
	f.faults[1].SetUp()

	res, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Location != "amsterdam" || res[0].Copied < 2 || !res[0].Complete() {
		t.Fatalf("sync at amsterdam: %+v, want the 2 manifests copied back", res[0])
	}
	if errs := checkErrors(t, r); errs["amsterdam"] != "" || errs["groningen"] != "" {
		t.Fatalf("check after sync: %v", errs)
	}
	if p, _ := r.Presence(ctx); !p.Converged() || p.LatestGuard() != nil {
		t.Errorf("after sync: converged %v, guard %v", p.Converged(), p.LatestGuard())
	}
}

// Erased at both locations: the listings agree with each other, only the
// ledger knows. Check names the snapshot at both, and "latest" refuses.
// A forgotten snapshot leaves the ledger's expectations and is never
// reported missing.
func TestHistoryErasedEverywhereLedgerKnows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ledger := &repo.FileLedger{Dir: t.TempDir()}
	f.opts.Ledger = ledger
	f.init()
	var ids []repo.Hash
	for i := range 3 {
		ids = append(ids, backup(t, f.openLedgered(ledger), randomStream("s", uint64(i), 64<<10)).ID)
	}
	r := f.openLedgered(ledger)
	if _, err := r.Forget(ctx, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if errs := checkErrors(t, r); errs["amsterdam"] != "" || errs["groningen"] != "" {
		t.Fatalf("a forgotten snapshot is reported: %v", errs)
	}
	for i := range f.mems {
		f.mems[i].Remove(testTenant + "/snapshots/" + ids[2].String())
	}
	errs := checkErrors(t, r)
	for _, loc := range []string{"amsterdam", "groningen"} {
		if !strings.Contains(errs[loc], ids[2].Short()) || !strings.Contains(errs[loc], "history was erased") {
			t.Errorf("check at %s does not name the erased snapshot: %q", loc, errs[loc])
		}
	}
	p, err := r.Presence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LatestGuard(); err == nil || !strings.Contains(err.Error(), ids[2].Short()) {
		t.Errorf("latest guard: %v, want a refusal naming %s", err, ids[2].Short())
	}
	if lost := p.Lost(); len(lost) != 1 || lost[0] != ids[2] {
		t.Errorf("lost %v, want %s", lost, ids[2].Short())
	}
	// The operator accepts the loss: check is clean, nothing is deleted.
	if ack, err := r.AcknowledgeLost(ctx, false); err != nil || len(ack) != 1 || ack[0] != ids[2] {
		t.Fatalf("acknowledge lost: %v %v", ack, err)
	}
	if errs := checkErrors(t, r); errs["amsterdam"] != "" || errs["groningen"] != "" {
		t.Errorf("check after the loss was acknowledged: %v", errs)
	}
	if n := len(f.names(0, "snapshots")); n != 1 {
		t.Errorf("%d snapshots at amsterdam after acknowledging, want 1", n)
	}
	// The same repository without a ledger sees nothing wrong: the ledger
	// is what tells.
	if errs := checkErrors(t, f.open()); errs["amsterdam"] != "" || errs["groningen"] != "" {
		t.Errorf("without the ledger check sees errors: %v", errs)
	}
}

// A sync never copies a manifest that does not authenticate: random bytes
// named by their own SHA-256 at one location stay there.
func TestSyncDoesNotCopyUnauthenticatedManifest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.init()
	backup(t, f.open(), randomStream("s", 1, 64<<10))
	junk := []byte("not a manifest of this tenant, named by its own hash")
	h := repo.Hash(sha256.Sum256(junk))
	f.mems[0].Replace(testTenant+"/snapshots/"+h.String(), junk)
	res, err := f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.mems[1].Bytes(testTenant + "/snapshots/" + h.String()); ok {
		t.Fatal("sync copied an unauthenticated manifest to groningen")
	}
	if res[1].Refused == 0 && res[1].Complete() {
		t.Errorf("sync result at groningen %+v does not report the refused object", res[1])
	}
	// Junk at amsterdam is not a snapshot missing at groningen.
	if errs := checkErrors(t, f.open()); errs["groningen"] != "" || strings.Contains(errs["amsterdam"], "missing here") {
		t.Errorf("check blames the wrong location for a planted manifest: %v", errs)
	}
	if p, err := f.open().Presence(ctx); err != nil || len(p.Unopened) != 1 || !p.Converged() {
		t.Errorf("presence with a planted manifest: %+v %v", p, err)
	}
}

// A torn last line (a crash mid-append) is skipped; what came before it
// stays.
func TestLedgerTornLine(t *testing.T) {
	dir := t.TempDir()
	l := &repo.FileLedger{Dir: dir}
	h := repo.Hash(sha256.Sum256([]byte("x")))
	if err := l.RecordCommit("t", repo.CommittedSnapshot{ID: h, Locations: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(filepath.Join(dir, "t.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(`{"op":"forget","snapshot":"` + h.String()[:20])
	fh.Close()
	st, err := l.State("t")
	if err != nil || len(st.Committed) != 1 || st.Forgotten[h] {
		t.Fatalf("state %+v, %v: want the commit, the torn forget skipped", st, err)
	}
}

// FuzzLedgerState: a ledger file of any content reads without panicking,
// and a snapshot is never both expected and forgotten.
func FuzzLedgerState(f *testing.F) {
	h := sha256.Sum256([]byte("s"))
	id := repo.Hash(h).String()
	f.Add([]byte(`{"op":"commit","time":"2026-06-01T01:00:00Z","snapshot":"` + id + `","finished":"2026-06-01T01:00:00Z","locations":["a","b"]}` + "\n"))
	f.Add([]byte(`{"op":"forget","time":"2026-06-01T01:00:00Z","snapshot":"` + id + `"}` + "\n" + `{"op":"commit","snapshot":"` + id + `"}` + "\n"))
	f.Add([]byte(`{"op":"commit","snapshot":"zz"}` + "\n{not json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "t.jsonl"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := (&repo.FileLedger{Dir: dir}).State("t")
		if err != nil {
			return // a line over the size cap
		}
		for h := range st.Committed {
			if st.Forgotten[h] {
				t.Fatalf("snapshot %s both committed and forgotten", h.Short())
			}
		}
		st.Newest()
		st.Sorted()
	})
}

// A forget while one location is down deletes at the other; the ledger
// records it, so sync does not copy the leftover back, check only warns
// about it, and it is not counted as missing anywhere.
func TestForgetWithLocationDownIsNotResurrected(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ledger := &repo.FileLedger{Dir: t.TempDir()}
	f.opts.Ledger = ledger
	f.init()
	old := backup(t, f.openLedgered(ledger), randomStream("s", 1, 64<<10)).ID
	backup(t, f.openLedgered(ledger), randomStream("s", 2, 64<<10))
	r := f.openLedgered(ledger)
	f.faults[1].SetDown(nil)
	if _, err := r.Forget(ctx, []repo.Hash{old}); err == nil {
		t.Fatal("forget with groningen down reported success")
	}
	f.faults[1].SetUp()
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.mems[0].Bytes(testTenant + "/snapshots/" + old.String()); ok {
		t.Fatal("sync copied the forgotten snapshot back to amsterdam")
	}
	cs, err := r.Check(ctx, repo.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !c.OK() {
			t.Errorf("check at %s: %v", c.Location, c.Errors)
		}
		if c.Location == "groningen" && !strings.Contains(strings.Join(c.Warnings, ";"), old.Short()+" was forgotten but is still here") {
			t.Errorf("check at groningen does not warn about the leftover: %v", c.Warnings)
		}
	}
	if p, _ := r.Presence(ctx); !p.Converged() {
		t.Errorf("presence not converged: missing %v", p.Missing())
	}
}
