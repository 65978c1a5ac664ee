package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/display"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

func cmdConfigCheck(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("config check", "[--online]")
	online := fs.Bool("online", false, "also reach every location (bucket, credentials, Object Lock and versioning) and every database and discovery server (reads only)")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, err := g.loadConfig()
	if err != nil {
		if g.jsonOut {
			doc := map[string]any{"ok": false, "error": err.Error()}
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				doc["problems"] = ve.Problems // every problem, each {path, message}
			}
			g.printJSON(doc)
		}
		return err
	}
	// Files the config names that are not there (keys, DSN files): the
	// config parses, but nothing that needs them would run.
	if missing := appliance.New(c, g.log).MissingFiles(); len(missing) > 0 {
		err := &config.ValidationError{Problems: missing}
		if g.jsonOut {
			g.printJSON(map[string]any{"ok": false, "error": err.Error(), "problems": missing})
		}
		return &configError{err}
	}
	out := map[string]any{"ok": true, "tenants": len(c.Tenants), "locations": len(c.Locations)}
	// Valid but probably wrong: said, never a failure. A database tenant
	// whose restore tests cannot run (no restore-test server) is one; with
	// probes it is a tenant problem below.
	rtProblems, rtWarnings := c.RestoreTestGaps()
	warnings := append(c.Warnings(), rtWarnings...)
	if warnings == nil {
		warnings = []config.Problem{}
	}
	out["warnings"] = warnings
	if !g.jsonOut {
		for _, w := range warnings {
			fmt.Fprintf(g.stderr, "warning: %s: %s\n", w.Path, w.Message)
		}
	}
	var failure error
	// A tenant's own problems (a dsn_file others can read) do not stop the
	// daemon, which runs the other tenants, but config check fails on them.
	var tenantProblems []string
	for _, t := range c.Tenants {
		tenantProblems = append(tenantProblems, c.TenantProblems()[t.ID]...)
	}
	for _, p := range rtProblems {
		tenantProblems = append(tenantProblems, p.Path+": "+p.Message)
	}
	// Approved retention changes (portal four-eyes requests) replace
	// policy.retention for their tenants: say so, and check them against
	// this config as policy.retention is checked.
	retention, problems := retentionChanges(c, g)
	out["retention_changes"] = retention
	tenantProblems = append(tenantProblems, problems...)
	if len(tenantProblems) > 0 {
		out["tenant_problems"] = tenantProblems
		if !g.jsonOut {
			for _, p := range tenantProblems {
				fmt.Fprintf(g.stdout, "tenant problem: %s\n", p)
			}
		}
		failure = &configError{fmt.Errorf("%d tenant problem(s): %s", len(tenantProblems), strings.Join(tenantProblems, "; "))}
	}
	if *online {
		// Locations first, then databases; one verdict (one JSON document).
		reached := checkLocationsOnline(ctx, g, c)
		out["locations_online"] = reached
		for _, o := range reached {
			if !o.OK && failure == nil {
				failure = fmt.Errorf("location %s failed the online check (see above)", o.Location)
			}
		}
		dbs, err := checkDatabasesOnline(ctx, g, c)
		out["databases_online"] = dbs
		if err != nil && failure == nil {
			failure = err
		}
		// Restore-test servers: reachable, and never a tenant's own.
		rtProblems := []string{}
		// Each is first logged in to with its own DSN (a wrong password
		// or an unreachable server is named here, not by the first test);
		// one that answers is checked for ownership and privileges.
		rtErrs := restoretest.ProbeServers(ctx, c)
		if len(rtErrs) == 0 {
			rtErrs = restoretest.CheckServers(ctx, appliance.New(c, g.log))
		}
		for _, err := range rtErrs {
			rtProblems = append(rtProblems, err.Error())
			if !g.jsonOut {
				fmt.Fprintf(g.stdout, "restore-test server: FAILED: %v\n", err)
			}
		}
		out["restore_test_servers"] = map[string]any{"ok": len(rtProblems) == 0, "problems": rtProblems}
		if len(rtProblems) > 0 && failure == nil {
			failure = fmt.Errorf("restore-test server failed the online check: %s", rtProblems[0])
		}
	}
	if g.jsonOut {
		out["ok"] = failure == nil
		if failure != nil {
			out["error"] = failure.Error()
		}
		if err := g.printJSON(out); err != nil {
			return err
		}
	}
	if failure != nil {
		return failure
	}
	if g.jsonOut {
		return nil
	}
	fmt.Fprintf(g.stdout, "config ok: appliance %s, %s, %s\n", c.Appliance.ID, plural(len(c.Locations), "location", "locations"), plural(len(c.Tenants), "tenant", "tenants"))
	return nil
}

// locationOnline is the online check of one location.
type locationOnline struct {
	Location string `json:"location"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// checkLocationsOnline reaches every location with its own credentials
// and reports each (printed unless --json). It writes nothing.
func checkLocationsOnline(ctx context.Context, g *globals, c *config.Config) []locationOnline {
	out := make([]locationOnline, 0, len(c.Locations))
	for _, lc := range c.Locations {
		err := probeLocation(ctx, c, lc)
		o := locationOnline{Location: lc.Name, OK: err == nil}
		if err != nil {
			o.Error = err.Error()
		}
		out = append(out, o)
		if g.jsonOut {
			continue
		}
		if err != nil {
			fmt.Fprintf(g.stdout, "location %s: FAILED: %v\n", lc.Name, err)
		} else {
			fmt.Fprintf(g.stdout, "location %s: ok\n", lc.Name)
		}
	}
	return out
}

func probeLocation(ctx context.Context, c *config.Config, lc config.Location) error {
	loc, err := appliance.OpenLocation(c, lc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch l := loc.(type) {
	case interface{ Probe(context.Context) error }:
		return l.Probe(ctx)
	case interface{ Root() string }:
		fi, err := os.Stat(l.Root())
		if err != nil {
			return fmt.Errorf("root directory unavailable (not mounted?): %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("root %s is not a directory", l.Root())
		}
	}
	return nil
}

// retentionChange is one tenant's retention from an approved change, as
// config check shows it.
type retentionChange struct {
	Tenant    string           `json:"tenant"`
	Retention config.Retention `json:"retention"`
	Source    string           `json:"source"`
}

// retentionChanges lists the approved retention changes of c's tenants
// (printing them) and the problems: a change log that does not verify,
// a change the config would now refuse.
func retentionChanges(c *config.Config, g *globals) ([]retentionChange, []string) {
	a := appliance.New(c, g.log)
	changes, err := a.RetentionChanges()
	if err != nil {
		return []retentionChange{}, []string{fmt.Sprintf("approved retention changes: %v", err)}
	}
	out := []retentionChange{}
	var problems []string
	for _, t := range c.Tenants {
		if changes[t.ID] == nil {
			continue
		}
		eff := a.RetentionOf(changes, t.ID)
		out = append(out, retentionChange{Tenant: t.ID, Retention: eff.Retention, Source: eff.Source()})
		if !g.jsonOut {
			fmt.Fprintf(g.stdout, "retention of tenant %s: %s, from %s (in place of policy.retention)\n", t.ID, portalRetention(eff.Retention), display.Escape(eff.Source()))
		}
		if err := c.CheckRetention(eff.Retention); err != nil {
			problems = append(problems, fmt.Sprintf("tenants.%s: approved retention change: %v", t.ID, err))
		}
	}
	return out, problems
}
