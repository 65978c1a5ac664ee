package main

import (
	"context"
	"fmt"
	"github.com/kluis-nl/kluis/display"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/daemon"
	"github.com/kluis-nl/kluis/dsn"
)

// cmdStatus prints every tenant's backup health and exits 1 when any
// tenant misses its RPO target or copy count, or its last restore test
// failed: a monitoring check.
func cmdStatus(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("status", "[--json]")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	now := time.Now()
	rep := daemon.Status(ctx, a, now)
	if msg := evidenceWitnessProblem(a); msg != "" {
		rep.Errors = append(rep.Errors, msg)
		rep.OK = false
	}
	if msg := registerWitnessProblem(a); msg != "" {
		rep.Errors = append(rep.Errors, msg)
		rep.OK = false
	}
	if msg := evidenceContinuationProblem(ctx, a); msg != "" {
		rep.Errors = append(rep.Errors, msg)
		rep.OK = false
	}
	// Errors come from drivers and servers: no DSN secret gets printed.
	for i := range rep.Errors {
		rep.Errors[i] = dsn.Redact(rep.Errors[i], g.knownDSNs()...)
	}
	for i := range rep.Tenants {
		for j := range rep.Tenants[i].Problems {
			rep.Tenants[i].Problems[j] = dsn.Redact(rep.Tenants[i].Problems[j], g.knownDSNs()...)
		}
	}
	if g.jsonOut {
		if err := g.printJSON(rep); err != nil {
			return err
		}
	} else {
		tz := a.TimeZone()
		when := func(t time.Time) string { return humanTime(t, tz) }
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tLAST BACKUP\tAGE\tCOPIES\tNEXT RUN\tRESTORE TEST\tSTATUS")
		for _, t := range rep.Tenants {
			age := "-"
			if !t.LastSuccess.IsZero() {
				age = humanDuration(time.Duration(t.AgeSeconds) * time.Second)
			}
			var copies []string
			for _, l := range a.Cfg.Locations {
				n, ok := t.Copies[l.Name]
				switch {
				case ok:
					copies = append(copies, fmt.Sprintf("%s:%d", l.Name, n))
				case slices.Contains(t.Unreachable, l.Name):
					copies = append(copies, l.Name+":unreachable")
				default:
					copies = append(copies, l.Name+":-")
				}
			}
			status := "ok"
			if t.Degraded {
				status = "DEGRADED"
			}
			if !t.OK() {
				status = "FAIL: " + display.Escape(strings.Join(t.Problems, "; "))
			}
			rt := t.RestoreTest
			if !t.RestoreTestTime.IsZero() {
				rt += " " + when(t.RestoreTestTime)
			}
			if t.RestoreTestLocation != "" {
				rt += " @" + t.RestoreTestLocation
			}
			if t.RestoreTest == "never" && len(t.Warnings) > 0 {
				rt += " (cannot run)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Tenant, when(t.LastSuccess), age, strings.Join(copies, " "), when(t.NextRun), rt, status)
		}
		tw.Flush()
		for _, t := range rep.Tenants {
			for _, w := range t.Warnings {
				fmt.Fprintf(g.stdout, "warning: tenant %s: %s\n", t.Tenant, display.Escape(w))
			}
		}
		for _, t := range rep.Tenants {
			if t.Retention != nil && t.RetentionSource != "policy.retention" {
				fmt.Fprintf(g.stdout, "retention: tenant %s: %s, from %s\n", t.Tenant, portalRetention(*t.Retention), display.Escape(t.RetentionSource))
			}
			if p := t.RetentionPending; p != nil {
				to := "policy.retention"
				if p.Retention != nil {
					to = portalRetention(*p.Retention).String()
				}
				fmt.Fprintf(g.stdout, "retention: tenant %s: PENDING shorter retention %s from request %s (asked by %s, approved by %s) takes effect at %s; cancel with `kluis retention cancel --tenant %s --request %s`\n",
					t.Tenant, to, display.Escape(p.Request), display.Escape(p.Requester), display.Escape(p.Approver), p.Effective.UTC().Format(time.RFC3339), t.Tenant, display.Escape(p.Request))
			}
		}
		for _, e := range rep.Errors {
			fmt.Fprintln(g.stdout, "error:", display.Escape(e))
		}
	}
	if !rep.OK {
		return &silentError{code: exitFailed}
	}
	return nil
}

// checkDatabasesOnline is the database part of `kluis config check
// --online`: it connects to every tenant database and discovery server
// (reading only server versions and database names) and prints each
// result. It fails when any connection fails.
func checkDatabasesOnline(ctx context.Context, g *globals, c *config.Config) ([]appliance.OnlineResult, error) {
	a := appliance.New(c, g.log)
	results := a.CheckDatabases(ctx)
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
		if g.jsonOut {
			continue
		}
		if r.OK {
			fmt.Fprintf(g.stdout, "%s %s: ok (%s)\n", r.Kind, r.Name, r.Detail)
		} else {
			fmt.Fprintf(g.stdout, "%s %s: FAILED: %s\n", r.Kind, display.Escape(r.Name), display.Escape(r.Error))
		}
	}
	if failed > 0 {
		return results, fmt.Errorf("%d of %s unreachable", failed, plural(len(results), "database", "databases"))
	}
	return results, nil
}
