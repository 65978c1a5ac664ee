package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/display"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/portal"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/secretfile"
)

// portalBackend is what the daemon does for the portal (portal.Backend):
// the same code paths as `kluis dossier show|restore` and `kluis evidence
// list`, with the portal user (and approver) in the access log.
type portalBackend struct {
	app func() *appliance.Appliance
	// retentionChanged is called after an approved retention change is
	// recorded (the daemon rebuilds its jobs); nil in tests.
	retentionChanged func()
}

func (b portalBackend) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	for _, t := range b.app().Cfg.Tenants {
		out = append(out, t.ID)
	}
	sort.Strings(out)
	return out, nil
}

func (b portalBackend) Snapshots(ctx context.Context, tenant string) ([]portal.Snapshot, error) {
	a := b.app()
	if err := requireTenant(a, tenant); err != nil {
		return nil, err
	}
	r, err := a.OpenRepo(ctx, tenant)
	if err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]portal.Snapshot, 0, len(snaps))
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		out = append(out, portal.Snapshot{ID: s.ID.String(), Short: s.ID.Short(), Started: s.Manifest.Started})
	}
	return out, nil
}

func (b portalBackend) Snapshot(ctx context.Context, tenant, id string) (portal.Snapshot, error) {
	a := b.app()
	if err := requireTenant(a, tenant); err != nil {
		return portal.Snapshot{}, err
	}
	if id == "" {
		id = "latest"
	}
	r, err := a.OpenRepo(ctx, tenant)
	if err != nil {
		return portal.Snapshot{}, err
	}
	s, err := r.FindSnapshot(ctx, id)
	if err != nil {
		return portal.Snapshot{}, err
	}
	return portal.Snapshot{ID: s.ID.String(), Short: s.ID.Short(), Started: s.Manifest.Started}, nil
}

// open starts a dossier session for a portal access; the record carries
// the portal user as operator ("portal:NAME") and the approver.
func (b portalBackend) open(ctx context.Context, acc portal.Access) (*dossierSession, error) {
	snap := acc.Snapshot
	if snap == "" {
		snap = "latest"
	}
	// "latest" is guarded on a partial view as for dossier show (no
	// --allow-partial in the portal: the operator decides that).
	s, err := openDossier(ctx, nil, b.app(), acc.Tenant, snap, acc.ID, "portal:"+acc.User, acc.Action, false)
	if s != nil {
		s.rec.Reason, s.rec.Approver, s.rec.Request, s.rec.Override = acc.Reason, acc.Approver, acc.Request, acc.Override
	}
	return s, err
}

// portalErased is the portal's erasure check: an erased dossier is
// refused (as a portal.ErasedError, so that the practice can ask for an
// override) unless acc carries the override of an approved
// erasure-override request.
func (s *dossierSession) portalErased(ctx context.Context, acc portal.Access) error {
	e, erased, err := s.erased(ctx, s.rec.ID)
	if err != nil || !erased || strings.TrimSpace(acc.Override) != "" {
		return err
	}
	day := e.Time.In(s.a.TimeZone()).Format("2006-01-02")
	return &portal.ErasedError{Snapshot: s.snap.ID.String(), On: day, Err: fmt.Errorf("dossier %s of tenant %s was erased on %s (AVG art. 17 register): nothing of it is shown or released without an erasure override approved by another person",
		display.Escape(s.rec.ID), s.rec.Tenant, day)}
}

func (b portalBackend) DossierShow(ctx context.Context, acc portal.Access) (*portal.DossierView, error) {
	s, err := b.open(ctx, acc)
	if s == nil {
		return nil, err
	}
	var res *dossier.Result
	if err == nil {
		// An erased dossier is never shown in the portal, not even with
		// an override (that releases it as a download).
		err = s.portalErased(ctx, portal.Access{})
	}
	if err == nil {
		res, err = dossier.Extract(ctx, s.r, s.snap.Manifest, s.plan, s.rec.ID, nil)
	}
	if err := s.logAccess(err); err != nil {
		return nil, err
	}
	v := &portal.DossierView{Tenant: acc.Tenant, Snapshot: s.snap.ID.String(), Taken: s.snap.Manifest.Started, ID: s.rec.ID, Rows: res.Rows}
	for _, t := range res.Tables {
		v.Tables = append(v.Tables, portal.TableCount{Table: t.Table, Rows: t.Rows, Via: t.Via})
	}
	return v, nil
}

func (b portalBackend) DossierWrite(ctx context.Context, acc portal.Access, format string, w io.Writer) error {
	s, err := b.open(ctx, acc)
	if s == nil {
		return err
	}
	if err == nil {
		err = s.portalErased(ctx, acc)
	}
	if err == nil {
		_, err = writeDossier(ctx, s, s.rec.ID, format, dossier.ConflictFail, w)
	}
	return s.logAccess(err)
}

// writeDossier writes what `dossier restore --format F --out FILE` writes.
func writeDossier(ctx context.Context, s *dossierSession, id, format string, oc dossier.OnConflict, f io.Writer) (*dossier.Result, error) {
	m := s.snap.Manifest
	header := map[string]any{"tenant": m.Tenant, "snapshot": s.snap.ID.String(), "snapshot_started": m.Started, "dossier_id": id, "engine": m.Engine}
	var sink dossier.Sink
	var finish func() error
	switch format {
	case "json":
		w, err := dossier.NewJSONWriter(f, header)
		if err != nil {
			return nil, err
		}
		sink, finish = w, w.Finish
	case "sql":
		w, err := dossier.NewSQLWriter(f, m.Engine, []string{
			"kluis dossier " + id + " of tenant " + m.Tenant,
			"snapshot " + s.snap.ID.String() + " taken " + m.Started.UTC().Format("2006-01-02T15:04:05Z"),
			"parents before children; shared rows (see kluis dossier show) must exist in the target",
		}, oc)
		if err != nil {
			return nil, err
		}
		sink, finish = w, w.Finish
	default:
		return nil, fmt.Errorf("format %q: want sql or json", format)
	}
	res, err := dossier.Extract(ctx, s.r, m, s.plan, id, sink)
	if err == nil {
		err = finish()
	}
	return res, err
}

func (b portalBackend) DossierInto(ctx context.Context, acc portal.Access) (string, error) {
	a := b.app()
	file := a.Cfg.Web.RestoreTargets[acc.Tenant]
	if file == "" {
		return "", errors.New("no live database is configured for this tenant (web.restore_targets)")
	}
	s, err := b.open(ctx, acc)
	if s == nil {
		return "", err
	}
	var msg string
	if err == nil {
		var warn warnBuffer
		opts := dossier.IntoOptions{OnConflict: dossier.ConflictSkip, Triggers: dossier.TriggersCheck}
		opts.CheckTarget = targetGuard(a, s, &warn)
		msg, err = dossierRestore(ctx, s, s.rec.ID, "", "", "", a.Cfg.Resolve(file), opts, acc.Override)
	}
	return msg, s.logAccess(err)
}

// warnBuffer discards the target guard's warnings (the access log keeps
// the target's identity).
type warnBuffer struct{}

func (warnBuffer) Write(p []byte) (int, error) { return len(p), nil }

func (b portalBackend) Evidence(ctx context.Context, tenants []string, from, to time.Time) (*portal.EvidenceView, error) {
	a := b.app()
	v := &portal.EvidenceView{Tenants: tenants, From: from.Format("2006-01-02"), To: to.AddDate(0, 0, -1).Format("2006-01-02"), Reports: []portal.EvidenceRow{}}
	st, _, err := evidenceStore(a, nil)
	if err != nil {
		return nil, err
	}
	v.Key = evidence.Fingerprint(st.PublicKey())
	recs, err := st.Records()
	if err != nil {
		// The chain does not verify: say so, show nothing as if it did.
		v.Problems = []string{err.Error()}
		return v, nil
	}
	v.Verified = true
	for _, r := range evidence.Select(recs, from, to) {
		if !slices.Contains(tenants, r.Report.Tenant) {
			continue
		}
		v.Reports = append(v.Reports, portal.EvidenceRow{Seq: r.Seq, Time: r.Time, Tenant: r.Report.Tenant, Location: r.Report.Location.Name,
			Snapshot: r.Report.Snapshot.ID, Verdict: string(r.Report.Verdict), Verified: true})
	}
	return v, nil
}

// EvidenceExport runs `evidence export` into a scratch directory in the
// state directory and streams it as a gzipped tar (reports hold no
// personal data; the directory is removed).
func (b portalBackend) EvidenceExport(ctx context.Context, tenant string, from, to time.Time, w io.Writer) error {
	a := b.app()
	p, err := loadPeriodTimes(a, from, to)
	if err != nil {
		return err
	}
	if len(p.sel) == 0 {
		return fmt.Errorf("no restore-test reports in the period")
	}
	tmp, err := os.MkdirTemp(a.StateDir(), "portal-export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "kluis-evidence")
	if _, err := p.export(a, dir, tenant); err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tw.AddFS(os.DirFS(tmp)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func portalRetention(r config.Retention) portal.Retention { return portal.Retention(r) }

// Retention is the tenant's effective retention (policy.retention or an
// approved change) and, for a proposal, how many of its snapshots the
// proposal would forget now (as `kluis forget --dry-run` would say).
func (b portalBackend) Retention(ctx context.Context, tenant string, proposed *portal.Retention) (*portal.RetentionView, error) {
	a := b.app()
	if err := requireTenant(a, tenant); err != nil {
		return nil, err
	}
	eff, err := a.Retention(tenant)
	if err != nil {
		return nil, err
	}
	v := &portal.RetentionView{Tenant: tenant, Effective: portalRetention(eff.Retention), Policy: portalRetention(a.Cfg.Policy.Retention), Source: portal.SourcePolicy}
	if c := eff.Change; c != nil {
		v.Source, v.Request, v.Requester, v.Approver, v.Since = "request "+c.Request, c.Request, c.Requester, c.Approver, c.Time
	}
	if proposed == nil {
		return v, nil
	}
	if err := a.Cfg.CheckRetention(config.Retention(*proposed)); err != nil {
		return nil, err
	}
	r, err := a.OpenRepo(ctx, tenant)
	if errors.Is(err, repo.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	v.Snapshots = len(snaps)
	if p := daemonRetention(config.Retention(*proposed)); !p.Empty() {
		ds, err := repo.ApplyRetention(snaps, p, a.TimeZone())
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if !d.Keep {
				v.Forgets++
			}
		}
	}
	return v, nil
}

func daemonRetention(p config.Retention) repo.Retention {
	return repo.Retention{KeepLast: p.KeepLast, KeepDaily: p.KeepDaily, KeepWeekly: p.KeepWeekly, KeepMonthly: p.KeepMonthly}
}

// SetRetention records an approved retention change in the signed log
// of the state directory; the daemon's retention reads it at every run.
func (b portalBackend) SetRetention(ctx context.Context, c portal.RetentionSet) error {
	a := b.app()
	if err := requireTenant(a, c.Tenant); err != nil {
		return err
	}
	ch := appliance.RetentionChange{Tenant: c.Tenant, Reason: c.Reason, Requester: "portal:" + c.Requester, Approver: c.Approver, Request: c.Request, Digest: c.Digest}
	if c.Retention != nil {
		r := config.Retention(*c.Retention)
		ch.Retention = &r
	}
	if err := a.RecordRetention(ch); err != nil {
		return err
	}
	if b.retentionChanged != nil {
		b.retentionChanged()
	}
	return nil
}

// startPortal serves the portal's socket API when web: is configured;
// retentionChanged is called after an approved retention change.
func startPortal(ctx context.Context, g *globals, a *appliance.Appliance, app func() *appliance.Appliance, retentionChanged func()) (func(), error) {
	if !a.Cfg.Web.Enabled() {
		return func() {}, nil
	}
	key, err := signingKey(a)
	if err != nil {
		return nil, err
	}
	// The OIDC client secret is the daemon's: kluis web never reads it.
	var oidcSecret string
	if o := a.Cfg.Web.OIDC; o != nil {
		b, err := secretfile.Read(a.Cfg.Resolve(o.ClientSecretFile), 64<<10)
		if err != nil {
			return nil, &configError{fmt.Errorf("web.oidc.client_secret_file: %w", err)}
		}
		oidcSecret = string(b)
	}
	svc, err := portal.New(portal.Options{
		Store: portal.NewStore(a.StateDir()), Backend: portalBackend{app: app, retentionChanged: retentionChanged},
		Events: &portal.ChainLog{Path: filepath.Join(a.StateDir(), portal.EventsFileName), Key: key},
		Web:    a.Cfg.Web, RequestsPath: filepath.Join(a.StateDir(), "portal-requests.json"),
		Now: a.Now, Log: g.log, OIDCClientSecret: oidcSecret,
	})
	if err != nil {
		return nil, &configError{err}
	}
	ln, err := portal.Listen(a.Cfg.Resolve(a.Cfg.Web.Socket))
	if err != nil {
		return nil, &configError{fmt.Errorf("web.socket: %w", err)}
	}
	sctx, cancel := context.WithCancel(ctx)
	go svc.Serve(sctx, ln)
	g.log.Info("serving the portal socket", "socket", a.Cfg.Web.Socket)
	return cancel, nil
}
