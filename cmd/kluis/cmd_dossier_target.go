package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// targetIdentityTimeout bounds the connection made to each other tenant's
// database to tell whether it is the --into target, and
// targetIdentityParallel how many are made at once.
const (
	targetIdentityTimeout  = 10 * time.Second
	targetIdentityParallel = 8
)

// engineFamily groups engines that one server speaks.
func engineFamily(engine string) string {
	if engine == "mysql" {
		return "mariadb"
	}
	return engine
}

// targetGuard returns the dossier.IntoOptions.CheckTarget of a session: it
// records the target's identity in the access log record and refuses a
// target that is another tenant's database (declared or discovered),
// compared by identity (dossier.TargetIdentity: cluster or server and
// database), never by DSN string. The tenant's own database is the normal
// target. A tenant whose database does not answer cannot be compared: it
// is named on warn, and the restore goes on.
func targetGuard(a *appliance.Appliance, s *dossierSession, warn io.Writer) func(context.Context, dossier.TargetIdentity) error {
	return func(ctx context.Context, tid dossier.TargetIdentity) error {
		s.rec.Target = &tid
		hit, unknown := tenantsWithIdentity(ctx, a, tid, s.rec.Tenant)
		if len(hit) > 0 {
			return fmt.Errorf("refusing to restore a dossier of tenant %s into %s: that is the database of tenant %s; nothing was written (check the --into DSN or --into-dsn-file)",
				s.rec.Tenant, tid, strings.Join(hit, ", "))
		}
		if len(unknown) > 0 {
			fmt.Fprintf(warn, "kluis: warning: could not tell whether the target is the database of tenant %s; restoring anyway\n", strings.Join(unknown, "; "))
		}
		return nil
	}
}

// tenantsWithIdentity returns the tenants (declared or discovered, but not
// exclude) of tid's engine family whose database has the identity tid
// (dossier.TargetIdentity: cluster or server and database, never the DSN
// string), and those whose database could not be asked, both sorted. The
// dossier --into guard and restore --replace-live both compare this way.
func tenantsWithIdentity(ctx context.Context, a *appliance.Appliance, tid dossier.TargetIdentity, exclude string) (hit, unknown []string) {
	type other struct{ id, where string }
	var others []other
	for _, t := range a.Cfg.Tenants {
		if t.ID == exclude || engineFamily(t.Engine) != engineFamily(tid.Engine) {
			continue
		}
		where := t.DSN
		switch {
		case t.Engine == "sqlite":
			where = a.Cfg.Resolve(t.Path)
		case where == "" && t.DSNFile != "":
			dsn, err := appliance.ReadDSN(a.Cfg.Resolve(t.DSNFile))
			if err != nil {
				unknown = append(unknown, fmt.Sprintf("%s (%v)", t.ID, err))
				continue
			}
			where = dsn
		}
		if where != "" {
			others = append(others, other{t.ID, where})
		}
	}
	match := make([]string, len(others))
	failed := make([]string, len(others))
	sem := make(chan struct{}, targetIdentityParallel)
	var wg sync.WaitGroup
	for i, o := range others {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, targetIdentityTimeout)
			defer cancel()
			id, err := dossier.DatabaseIdentity(cctx, tid.Engine, o.where)
			switch {
			case err != nil:
				failed[i] = o.id + " (its database does not answer)"
			case id.Key() == tid.Key():
				match[i] = o.id
			}
		}()
	}
	wg.Wait()
	for i := range others {
		if match[i] != "" {
			hit = append(hit, match[i])
		}
		if failed[i] != "" {
			unknown = append(unknown, failed[i])
		}
	}
	sort.Strings(hit)
	sort.Strings(unknown)
	return hit, unknown
}
