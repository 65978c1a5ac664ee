package main

import (
	"log/slog"
	"slices"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/dsn"
)

// redactSecretsOf makes the config's connection strings (every spelling
// of their passwords, dsn) unprintable from here on: the log handler
// scrubs each record, and exit scrubs the error it prints. Called again
// for a config the daemon reloaded, it adds that config's connection
// strings (those of the config before stay: its running jobs go on).
func (g *globals) redactSecretsOf(c *config.Config) {
	known := appliance.New(c, nil).KnownDSNs()
	g.dsnsMu.Lock()
	for _, d := range known {
		if !slices.Contains(g.dsns, d) {
			g.dsns = append(g.dsns, d)
		}
	}
	g.dsnsMu.Unlock()
	if g.log == nil {
		return
	}
	if _, done := g.log.Handler().(*dsn.Handler); !done {
		// Installed even while no connection string is known: a reloaded
		// config may bring the first.
		g.log = slog.New(dsn.NewHandler(g.log.Handler(), g.knownDSNs))
		if g.packageLogs {
			// What the packages log at debug level is scrubbed too.
			slog.SetDefault(g.log)
		}
	}
}

// knownDSNs returns the connection strings whose secrets are scrubbed.
func (g *globals) knownDSNs() []string {
	g.dsnsMu.Lock()
	defer g.dsnsMu.Unlock()
	return slices.Clone(g.dsns)
}

// redactError scrubs err's text of the config's DSN secrets, keeping its
// type for the exit code.
func (g *globals) redactError(err error) error {
	dsns := g.knownDSNs()
	if err == nil || len(dsns) == 0 {
		return err
	}
	msg := dsn.Redact(err.Error(), dsns...)
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
