package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/portal"
	"github.com/kluis-nl/kluis/web"
)

// cmdWeb serves the practice and auditor portal (docs/practice.md). It
// reads only the config's web: section and holds no key and no DSN: the
// daemon answers on web.socket and decides everything.
func cmdWeb(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("web", "[--trust-proxy]")
	trust := fs.Bool("trust-proxy", false, "take the client address from X-Forwarded-For (behind a reverse proxy on loopback; for logs and rate limits only)")
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
	w, err := config.LoadWeb(path)
	if err != nil {
		return &configError{err}
	}
	opts := web.Options{Client: portal.NewClient(w.Socket), Origin: w.Origin, Log: g.log, TrustProxy: *trust}
	if o := w.OIDCWithDefaults(); o != nil {
		opts.OIDCLabel = o.Label
	}
	srv, err := web.New(opts)
	if err != nil {
		return &configError{err}
	}
	ln, err := net.Listen("tcp", w.Listen)
	if err != nil {
		return &configError{err}
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	g.log.Info("serving the portal", "addr", ln.Addr().String(), "origin", w.Origin, "tls", w.TLSCertFile != "")
	if w.TLSCertFile != "" {
		err = hs.ServeTLS(ln, w.TLSCertFile, w.TLSKeyFile)
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
