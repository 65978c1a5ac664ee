package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kluis-nl/kluis/daemon"
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
	d := daemon.New(a, daemon.Options{Log: g.log})

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
				d.ReloadFile(ctx, path)
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
