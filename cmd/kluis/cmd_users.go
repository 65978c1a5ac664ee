package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/portal"
)

// usersContext is the user store and the portal log of the appliance.
func usersContext(g *globals) (*appliance.Appliance, *portal.Store, *portal.ChainLog, error) {
	a, err := g.appliance()
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := signingKey(a)
	if err != nil {
		return nil, nil, nil, err
	}
	return a, portal.NewStore(a.StateDir()), &portal.ChainLog{Path: filepath.Join(a.StateDir(), portal.EventsFileName), Key: key}, nil
}

func oidcNote(subject string) string {
	if subject == "" {
		return ""
	}
	return ", identity provider " + subject
}

// usersContextFor is usersContext for a change that binds a user to
// subject at the identity provider (none when ""): only with web.oidc.
func usersContextFor(g *globals, subject string) (*appliance.Appliance, *portal.Store, *portal.ChainLog, error) {
	a, store, log, err := usersContext(g)
	if err == nil && subject != "" && a.Cfg.Web.OIDC == nil {
		err = usageErrorf("--oidc-subject: the config has no web.oidc (an identity provider) to sign in at")
	}
	return a, store, log, err
}

// enrolLink is the enrolment page of tok at the configured origin.
func enrolLink(a *appliance.Appliance, tok string) string {
	o := strings.TrimSuffix(a.Cfg.Web.Origin, "/")
	if o == "" {
		o = "https://PORTAL"
	}
	return o + "/enrol/" + tok
}

func cmdUsersAdd(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("users add", "--name NAME --role practice|approver|auditor|admin [--tenant T]... [--oidc-subject ID] [--valid 168h] [--operator NAME]")
	name := fs.String("name", "", "the user's login `name` (lower case)")
	role := fs.String("role", "", "practice (bound to --tenant), approver, auditor (optionally --tenant) or admin")
	var tenants multiFlag
	fs.Var(&tenants, "tenant", "a `tenant` the user may see (repeat, or comma-separated)")
	subject := fs.String("oidc-subject", "", "sign in at the identity provider (web.oidc) as `ID` (the value of web.oidc.claim) instead of with a password; the second factor stays")
	valid := fs.Duration("valid", 7*24*time.Hour, "how long the enrolment link works")
	operator := fs.String("operator", "", "who adds the user (default: the OS user); recorded in the portal log")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *name == "" || *role == "" {
		return usageErrorf("--name and --role are required")
	}
	a, store, log, err := usersContextFor(g, *subject)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if err := requireTenant(a, t); err != nil {
			if _, derr := g.resolveTenant(ctx, a, t); derr != nil {
				return err
			}
		}
	}
	now := a.Now()
	tok, err := store.Add(&portal.User{Name: *name, Role: *role, Tenants: tenants, OIDCSubject: *subject}, now, *valid)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if err := log.Log(portal.Event{Time: now.UTC(), Event: "user-add", User: *name, Approver: operatorName(*operator), Result: "ok: role " + *role + oidcNote(*subject)}); err != nil {
		return err
	}
	link := enrolLink(a, tok)
	if g.jsonOut {
		return g.printJSON(map[string]any{"name": *name, "role": *role, "tenants": []string(tenants), "oidc_subject": *subject, "enrol_link": link, "expires": now.Add(*valid).UTC()})
	}
	if *subject != "" {
		fmt.Fprintf(g.stdout, "user %s signs in at the identity provider as %s, then with the second factor set at enrolment (no kluis password)\n", *name, *subject)
	}
	fmt.Fprintf(g.stdout, "user %s (%s) added; give them this one-time enrolment link (valid until %s):\n%s\n", *name, *role, now.Add(*valid).UTC().Format("2006-01-02 15:04 UTC"), link)
	return nil
}

func cmdUsersList(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("users list", "[--json]")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	a, store, _, err := usersContext(g)
	if err != nil {
		return err
	}
	us, err := store.List()
	if err != nil {
		return err
	}
	views := make([]portal.UserView, 0, len(us))
	for _, u := range us {
		views = append(views, u.View(a.Now()))
	}
	if g.jsonOut {
		return g.printJSON(views)
	}
	if len(views) == 0 {
		fmt.Fprintln(g.stdout, "no portal users (add one with kluis users add)")
		return nil
	}
	fmt.Fprintf(g.stdout, "%-24s %-9s %-9s %-5s %-8s %-16s %s\n", "NAME", "ROLE", "STATE", "TOTP", "PASSKEYS", "TENANTS", "SIGN-IN")
	for _, v := range views {
		state := "active"
		switch {
		case v.Disabled:
			state = "disabled"
		case v.Locked:
			state = "locked"
		case !v.Enrolled:
			state = "enrolling"
		}
		signIn := "password"
		if v.OIDCSubject != "" {
			signIn = "idp:" + v.OIDCSubject
		}
		tenants := strings.Join(v.Tenants, ",")
		if tenants == "" {
			tenants = "-"
		}
		fmt.Fprintf(g.stdout, "%-24s %-9s %-9s %-5v %-8d %-16s %s\n", v.Name, v.Role, state, v.TOTP, v.Passkeys, tenants, signIn)
	}
	return nil
}

func cmdUsersDisable(ctx context.Context, g *globals, args []string) error {
	return usersChange(g, args, "disable", "disable NAME: the user cannot log in; their sessions end at their next request", func(s *portal.Store, name string, now time.Time) (map[string]any, error) {
		_, err := s.Update(name, func(u *portal.User) error {
			u.Disabled = true
			return nil
		})
		return map[string]any{"name": name, "disabled": true}, err
	})
}

func cmdUsersEnable(ctx context.Context, g *globals, args []string) error {
	return usersChange(g, args, "enable", "enable NAME", func(s *portal.Store, name string, now time.Time) (map[string]any, error) {
		_, err := s.Update(name, func(u *portal.User) error {
			u.Disabled, u.LockedUntil, u.Failures = false, time.Time{}, 0
			return nil
		})
		return map[string]any{"name": name, "disabled": false}, err
	})
}

func cmdUsersReset(ctx context.Context, g *globals, args []string) error {
	return usersChange(g, args, "reset", "reset NAME: clears the password, TOTP and passkeys and prints a new enrolment link", func(s *portal.Store, name string, now time.Time) (map[string]any, error) {
		tok, err := s.Reset(name, now, 7*24*time.Hour)
		if err != nil {
			return nil, err
		}
		return map[string]any{"name": name, "enrol_link": "TOKEN:" + tok, "expires": now.Add(7 * 24 * time.Hour).UTC()}, nil
	})
}

func cmdUsersBind(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("users bind", "NAME (--oidc-subject ID | --clear) [--operator NAME] [--json]")
	subject := fs.String("oidc-subject", "", "the identity `ID` at the identity provider (the value of web.oidc.claim)")
	clear := fs.Bool("clear", false, "unbind: the user then needs kluis users reset to set a password")
	operator := fs.String("operator", "", "who makes the change (default: the OS user); recorded in the portal log")
	g.jsonFlag(fs)
	name, err := parseWithName(g, fs, args)
	if err != nil {
		return err
	}
	if name == "" || (*subject == "") == !*clear {
		return usageErrorf("give one user name and either --oidc-subject ID or --clear")
	}
	a, store, log, err := usersContextFor(g, *subject)
	if err != nil {
		return err
	}
	err = store.Bind(name, *subject)
	if errors.Is(err, portal.ErrNoUser) {
		return usageErrorf("no portal user %q (kluis users list)", name)
	}
	if err != nil {
		return usageErrorf("%v", err)
	}
	result := "ok: unbound from the identity provider"
	if *subject != "" {
		result = "ok: bound to identity provider " + *subject + " (password cleared)"
	}
	now := a.Now()
	if err := log.Log(portal.Event{Time: now.UTC(), Event: "user-bind", User: name, Approver: operatorName(*operator), Result: result}); err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"name": name, "oidc_subject": *subject})
	}
	if *subject != "" {
		fmt.Fprintf(g.stdout, "user %s now signs in at the identity provider as %s, then with their second factor; their kluis password is cleared\n", name, *subject)
	} else {
		fmt.Fprintf(g.stdout, "user %s is unbound from the identity provider and has no password: give them a new enrolment link with kluis users reset %s\n", name, name)
	}
	return nil
}

// usersChange runs one change of one user and logs it.
func usersChange(g *globals, args []string, verb, usage string, fn func(*portal.Store, string, time.Time) (map[string]any, error)) error {
	fs := g.flags("users "+verb, "NAME [--operator NAME] [--json]")
	operator := fs.String("operator", "", "who makes the change (default: the OS user); recorded in the portal log")
	g.jsonFlag(fs)
	name, err := parseWithName(g, fs, args)
	if err != nil {
		return err
	}
	if name == "" {
		return usageErrorf("give one user name: kluis users %s", usage)
	}
	a, store, log, err := usersContext(g)
	if err != nil {
		return err
	}
	now := a.Now()
	out, err := fn(store, name, now)
	if errors.Is(err, portal.ErrNoUser) {
		return usageErrorf("no portal user %q (kluis users list)", name)
	}
	if err != nil {
		return err
	}
	if l, ok := out["enrol_link"].(string); ok {
		out["enrol_link"] = enrolLink(a, strings.TrimPrefix(l, "TOKEN:"))
	}
	if err := log.Log(portal.Event{Time: now.UTC(), Event: "user-" + verb, User: name, Approver: operatorName(*operator), Result: "ok"}); err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	switch verb {
	case "reset":
		fmt.Fprintf(g.stdout, "user %s reset: password, TOTP and passkeys cleared; the new one-time enrolment link:\n%s\n", name, out["enrol_link"])
	default:
		fmt.Fprintf(g.stdout, "user %s %sd\n", name, verb)
	}
	return nil
}

// parseWithName parses flags before and after the one user name (kluis
// users disable NAME --operator OPS): it returns "" unless there is
// exactly one name.
func parseWithName(g *globals, fs *flag.FlagSet, args []string) (string, error) {
	if err := g.parse(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	name := fs.Arg(0)
	if err := g.parse(fs, fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		return "", nil
	}
	return name, nil
}

// multiFlag is a repeatable, comma-separated flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*m = append(*m, x)
		}
	}
	return nil
}
