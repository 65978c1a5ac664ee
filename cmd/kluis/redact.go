package main

import (
	"log/slog"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/dsn"
)

// redactSecretsOf makes the config's connection strings (every spelling
// of their passwords, dsn) unprintable from here on: the log
// handler scrubs each record, and exit scrubs the error it prints.
func (g *globals) redactSecretsOf(c *config.Config) {
	g.dsns = appliance.New(c, nil).KnownDSNs()
	if g.log != nil && len(g.dsns) > 0 {
		if _, done := g.log.Handler().(*dsn.Handler); !done {
			dsns := g.dsns
			g.log = slog.New(dsn.NewHandler(g.log.Handler(), func() []string { return dsns }))
			if g.packageLogs {
				// What the packages log at debug level is scrubbed too.
				slog.SetDefault(g.log)
			}
		}
	}
}

// redactError scrubs err's text of the config's DSN secrets, keeping its
// type for the exit code.
func (g *globals) redactError(err error) error {
	if err == nil || len(g.dsns) == 0 {
		return err
	}
	msg := dsn.Redact(err.Error(), g.dsns...)
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
