package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/daemon"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// cmdDaemon runs the scheduler until SIGTERM or SIGINT (running jobs get
// policy.shutdown_grace to finish) and reloads the config on SIGHUP (a bad
// config keeps the running one).
func cmdDaemon(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("daemon", "[--log-format json]")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	path, err := g.resolveConfigPath()
	if err != nil {
		return err
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	if _, err := a.MasterKey(); err != nil {
		return &configError{err}
	}
	// One daemon per state directory: a second would duplicate backups
	// and fork the evidence chain.
	lock, err := daemon.LockStateDir(a.StateDir())
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// Scratch databases a killed restore test left behind hold personal
	// data: remove them before anything else runs.
	sweepScratch(ctx, g.log, a)
	// Restore tests run at policy.restore_test.schedule (re-read at reload).
	d := daemon.New(a, daemon.Options{Log: g.log, Hooks: daemon.Hooks{RestoreTest: restoreTestHook, EvidenceSync: evidenceSyncHook}})
	// The portal's socket (web: configured): kluis web asks, the daemon
	// decides (docs/practice.md).
	stopPortal, err := startPortal(ctx, g, a, d.Appliance, d.RetentionChanged)
	if err != nil {
		return err
	}
	defer stopPortal()

	if addr := a.Cfg.Appliance.MetricsListen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return &configError{err}
		}
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		g.log.Info("serving metrics", "addr", ln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				g.log.Info("SIGHUP: reloading the config", "config", path)
				if d.ReloadFile(ctx, path) == nil {
					// The reloaded config's connection strings are
					// scrubbed from the log too.
					g.redactSecretsOf(d.Appliance().Cfg)
				}
			}
		}
	}()
	g.log.Info("daemon started", "appliance", a.Cfg.Appliance.ID, "tenants", len(a.Cfg.Tenants), "discover_blocks", len(a.Cfg.Discover), "time_zone", a.Cfg.Appliance.TimeZone)
	err = d.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	g.log.Info("daemon stopped")
	return nil
}

// restoreTestHook is the daemon's restore-test job: the same test as
// `kluis restore-test`, its report appended to the evidence log. The
// daemon records the verdict, sets kluis_restore_test_ok and logs a FAIL
// at error level.
func restoreTestHook(ctx context.Context, a *appliance.Appliance, tenant string) (daemon.RestoreTestResult, error) {
	store, err := restoreTestStore(a)
	if err != nil {
		return daemon.RestoreTestResult{}, err
	}
	sweepScratch(ctx, a.Log, a)
	got, err := restoretest.RunAndRecord(ctx, a, store, restoretest.Options{Tenant: tenant, Version: Version(), Log: a.Log})
	return daemon.RestoreTestResultOf(got.Report, got.Record.Seq), err
}

// sweepScratch removes what killed restore tests left: every scratch
// database and file the scratch ledger proves the appliance's own and no
// running test holds, at once (restoretest.SweepStale; unledgered scratch
// files of an older kluis after restoretest.StaleAfter), logging what it
// removed. A failure is logged, not fatal: the next sweep tries again.
func sweepScratch(ctx context.Context, log *slog.Logger, a *appliance.Appliance) {
	removed, err := restoretest.SweepStale(ctx, a, restoretest.StaleAfter(a.Cfg))
	for _, name := range removed {
		log.Warn("removed a stale restore-test scratch database", "name", name)
	}
	if err != nil {
		log.Error("could not sweep stale restore-test scratch databases", "err", err)
	}
}

// evidenceSyncHook is the daemon's hourly evidence catch-up: reports a
// location lacks are copied (`kluis sync` also reads every older copy back).
func evidenceSyncHook(ctx context.Context, a *appliance.Appliance) error {
	store, err := restoreTestStore(a)
	if err != nil {
		return err
	}
	res := store.CatchUp(ctx)
	var failed []error
	for _, l := range res {
		if !l.OK {
			failed = append(failed, fmt.Errorf("location %s: %s", l.Location, l.Error))
		}
	}
	return errors.Join(failed...)
}
