package restoretest_test

import (
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// TestPostgresScratchHonoursErasures (issue 15 §3): on a real restore-test
// server, the scratch database of a restore test does not hold a dossier
// of the erasure register when the tenant's probes run, though the
// snapshot (taken before the erasure was recorded, dated that same day)
// does; the fingerprints still match the manifest.
func TestPostgresScratchHonoursErasures(t *testing.T) {
	e := newPGEnvScale(t, synth.Tiny)
	e.writeConfig(`
  - id: praktijk-pg
    engine: postgres
    dsn_file: ./tenant.dsn
    dossier: practice
    probes:
      - {name: erased-client, sql: "SELECT count(*) FROM public.clients WHERE id = 3", max: 0, record_result: true}
      - {name: other-client, sql: "SELECT count(*) FROM public.clients WHERE id = 4", min: 1, record_result: true}
`, "  restore_test: {server_dsn_file: ./rt.dsn}\ndossiers:\n  practice: {root: clients, key: id, exclude: [audit_log]}")
	ctx := testCtx(t)
	r, err := e.a.OpenRepo(ctx, "praktijk-pg")
	if err != nil {
		t.Fatal(err)
	}
	key, err := repo.LoadSigningKey(e.path("signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	reg := &restore.Register{StateDir: e.a.StateDir(), Key: key, Appliance: e.a.Cfg.Appliance.ID}
	day := e.clk.Now().Truncate(24 * time.Hour)
	if _, err := reg.AddErasure(ctx, r, dossier.Erasure{Tenant: "praktijk-pg", ID: "3", Time: day, Reason: "art. 17", Operator: "test"}); err != nil {
		t.Fatal(err)
	}
	rep := e.runPG(restoretest.Options{})
	wantVerdict(t, rep, evidence.Pass)
	if len(rep.Probes) != 2 || rep.Probes[0].Got != "0" || rep.Probes[1].Got != "1" {
		t.Fatalf("probes: %+v", rep.Probes)
	}
}
