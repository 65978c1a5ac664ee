package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/daemon"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
)

func cmdKeysInit(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("keys init", "[--master-only [--identity FILE]]")
	masterOnly := fs.Bool("master-only", false, "create only the master key, for an appliance that lost it but kept its signing key; refused while a tenant repository exists, unless --identity re-wraps them")
	identity := fs.String("identity", "", "with --master-only: the offline recovery identity `file`; every tenant key is re-wrapped under the new master key (as keys recover does)")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *identity != "" && !*masterOnly {
		return usageErrorf("--identity goes with --master-only (a new appliance recovers with `kluis keys recover`)")
	}
	c, err := g.loadConfigForKeys()
	if err != nil {
		return err
	}
	if *masterOnly {
		return keysInitMasterOnly(ctx, g, c, *identity)
	}
	master, signing := c.Resolve(c.Appliance.MasterKeyFile), c.Resolve(c.Appliance.SigningKeyFile)
	pub, err := repo.InitApplianceKeys(master, signing)
	if err != nil {
		return err
	}
	pem, err := repo.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"master_key_file": master, "signing_key_file": signing, "signing_public_key": string(pem)})
	}
	fmt.Fprintf(g.stderr, "created %s (master key) and %s (signing key), mode 0600.\n", master, signing)
	fmt.Fprintln(g.stderr, "Back up the master key offline: without it (or a recovery identity) no tenant repository can be opened.")
	fmt.Fprintln(g.stderr, "The signing public key, for auditors:")
	fmt.Fprint(g.stdout, string(pem))
	return nil
}

// masterOnlyTenant is one tenant's outcome of `keys init --master-only
// --identity`.
type masterOnlyTenant struct {
	Tenant     string                `json:"tenant"`
	Repository string                `json:"repository,omitempty"`
	Locations  []repo.LocationResult `json:"locations,omitempty"`
	Error      string                `json:"error,omitempty"`
}

// keysInitMasterOnly makes a new master key for an appliance that lost it
// (docs/ops.md, "Keys and recovery"). A new master key opens no existing
// repository, so it is refused while any tenant (declared, discovered, or
// gone but still in the history) has one at any location, or while a
// location cannot be asked — unless the offline recovery identity is given:
// then each tenant key is re-wrapped under the new master key, accepting
// only key files signed by this appliance's own signing key.
func keysInitMasterOnly(ctx context.Context, g *globals, c *config.Config, identity string) error {
	master, signing := c.Resolve(c.Appliance.MasterKeyFile), c.Resolve(c.Appliance.SigningKeyFile)
	if _, err := os.Lstat(master); err == nil {
		return fmt.Errorf("%s already exists: refusing to overwrite a key", master)
	}
	sk, err := repo.LoadSigningKey(signing)
	if errors.Is(err, fs.ErrNotExist) {
		return usageErrorf("%s does not exist: --master-only is for an appliance that kept its signing key; a new appliance runs `kluis keys init`", signing)
	} else if err != nil {
		return err
	}
	if identity != "" {
		if _, err := appliance.ParseIdentityFile(identity); err != nil {
			return err
		}
	}
	a := appliance.New(c, g.log)
	gone := map[string]bool{}
	ids := []string{}
	for _, t := range c.Tenants {
		ids = append(ids, t.ID)
	}
	da, derr := g.withDiscovered(ctx, a)
	for _, t := range da.Cfg.Tenants {
		if t.Discovered {
			ids = append(ids, t.ID)
		}
	}
	hist, err := a.History()
	if err != nil {
		return fmt.Errorf("job history: %w", err)
	}
	for _, gt := range daemon.GoneTenants(da, hist) {
		ids, gone[gt.Tenant] = append(ids, gt.Tenant), true
	}
	if derr != nil {
		// A tenant discovery did not find may have a repository.
		return fmt.Errorf("nothing was written: %w; a discovered tenant's repository cannot be ruled out: retry when discovery works", derr)
	}
	repos, err := a.TenantRepositories(ctx, ids)
	if err != nil {
		return fmt.Errorf("nothing was written: %w", err)
	}
	names := make([]string, 0, len(repos))
	for t := range repos {
		names = append(names, t)
	}
	sort.Strings(names)
	if len(names) > 0 && identity == "" {
		held := make([]string, len(names))
		for i, t := range names {
			held[i] = fmt.Sprintf("%s (at %s)", t, strings.Join(repos[t], ", "))
		}
		return fmt.Errorf("nothing was written: %s: a new master key would open none of them. Put the offline copy of the master key at %s, or make a new one and re-wrap every tenant key with the offline recovery identity: `kluis keys init --master-only --identity FILE`",
			plural(len(names), "tenant has a repository", "tenants have repositories")+" "+strings.Join(held, ", "), master)
	}
	if err := repo.CreateMasterKey(master); err != nil {
		return err
	}
	g.log.Info("created a new master key", "file", master, "tenants_to_rewrap", len(names))
	var out []masterOnlyTenant
	var failed []string
	own := []ed25519.PublicKey{sk.Public().(ed25519.PublicKey)}
	for _, t := range names {
		mt := masterOnlyTenant{Tenant: t}
		r, res, err := appliance.New(c, g.log).RecoverRepo(ctx, t, appliance.RecoverOptions{IdentityFile: identity, Signers: own, Gone: gone[t] || !declaredIn(da.Cfg, t)})
		mt.Locations = res
		if err != nil {
			mt.Error = err.Error()
			failed = append(failed, t)
		} else {
			mt.Repository = r.Config().ID
		}
		out = append(out, mt)
	}
	if g.jsonOut {
		g.printJSON(map[string]any{"ok": len(failed) == 0, "master_key_file": master, "tenants": out})
	} else {
		fmt.Fprintf(g.stdout, "created %s (new master key), mode 0600; back it up offline\n", master)
		for _, mt := range out {
			if mt.Error != "" {
				fmt.Fprintf(g.stdout, "tenant %s: NOT re-wrapped: %s\n", mt.Tenant, mt.Error)
				continue
			}
			fmt.Fprintf(g.stdout, "tenant %s (repository %s) is now opened by the new master key: %s\n", mt.Tenant, mt.Repository, locationsText(mt.Locations))
			for _, lr := range mt.Locations {
				for _, w := range lr.Warnings {
					fmt.Fprintf(g.stdout, "warning: tenant %s: location %s: %s\n", mt.Tenant, lr.Location, w)
				}
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s not re-wrapped (%s): fix the cause, then run `kluis keys recover --tenant T --identity FILE` for each",
			plural(len(failed), "tenant", "tenants"), strings.Join(failed, ", "))
	}
	return nil
}

func declaredIn(c *config.Config, tenant string) bool {
	_, err := c.Tenant(tenant)
	return err == nil
}

func cmdKeysPublic(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("keys public", "")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, err := g.loadConfigForKeys()
	if err != nil {
		return err
	}
	k, err := repo.LoadSigningKey(c.Resolve(c.Appliance.SigningKeyFile))
	if err != nil {
		return appliance.New(c, g.log).KeyFileError(err)
	}
	pem, err := repo.EncodePublicKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	fmt.Fprint(g.stdout, string(pem))
	return nil
}

func cmdKeysRecover(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("keys recover", "--tenant T --identity FILE [--signing-public-key FILE]")
	tenant := fs.String("tenant", "", "tenant `id`")
	identity := fs.String("identity", "", "age identity `file` holding the private half of appliance.recovery_recipient")
	var signers stringList
	fs.Var(&signers, "signing-public-key", "the lost appliance's signing public key `file` (PEM, from the recovery kit): accept only key files it signed (repeatable)")
	allowUnreachable := fs.Bool("allow-unreachable", false, "recover although a location cannot be read (its key files are not compared)")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	if *identity == "" {
		return usageErrorf("--identity is required")
	}
	r, res, err := a.RecoverRepo(ctx, *tenant, appliance.RecoverOptions{IdentityFile: *identity, SigningPublicKeyFiles: signers, AllowUnreachable: *allowUnreachable})
	if err != nil {
		return err
	}
	if g.jsonOut {
		g.printJSON(map[string]any{"tenant": *tenant, "repository": r.Config().ID, "locations": res})
		return nil
	}
	fmt.Fprintf(g.stdout, "tenant %s (repository %s) is now opened by this appliance's master key: %s\n", *tenant, r.Config().ID, locationsText(res))
	if ring, err := a.KeyRing(); err == nil {
		for _, p := range ring.Previous() {
			fmt.Fprintf(g.stdout, "trusted previous signing key %s (state_dir/%s): what the lost appliance signed keeps verifying; after the last tenant run kluis erasure recover and kluis evidence continue\n", keyring.ID(p), keyring.PreviousDir)
		}
	}
	for _, lr := range res {
		for _, w := range lr.Warnings {
			fmt.Fprintf(g.stdout, "warning: location %s: %s\n", lr.Location, w)
		}
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// cmdKeysPrevious lists, and with --add records, the trusted previous
// signing keys of this appliance (keyring): a lost appliance's public key
// from the offline recovery kit, so that the registers, the access log
// and the evidence it signed keep verifying after a recovery with a new
// key. `keys recover --signing-public-key` records it as well.
func cmdKeysPrevious(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("keys previous", "[--add FILE] [--json]")
	var add stringList
	fs.Var(&add, "add", "trust this PEM public key `file` (the lost appliance's, from the recovery kit) as a previous key of this appliance (repeatable)")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	for _, p := range add {
		b, err := readSmall(p, 64<<10)
		if err != nil {
			return err
		}
		pub, err := repo.ParsePublicKey(b)
		if err != nil {
			return usageErrorf("--add %s: %v", p, err)
		}
		added, err := a.TrustPreviousKey(pub)
		if err != nil {
			return err
		}
		if !g.jsonOut {
			switch {
			case added:
				fmt.Fprintf(g.stderr, "trusting %s (key %s) as a previous signing key of this appliance\n", p, keyring.ID(pub))
			default:
				fmt.Fprintf(g.stderr, "%s (key %s) is already trusted, or is the current key: nothing to do\n", p, keyring.ID(pub))
			}
		}
	}
	ring, err := a.KeyRing()
	if err != nil {
		return err
	}
	type keyInfo struct {
		ID          string `json:"id"`
		Fingerprint string `json:"fingerprint"`
		Current     bool   `json:"current"`
	}
	out := []keyInfo{{ID: keyring.ID(ring.Current()), Fingerprint: evidence.Fingerprint(ring.Current()), Current: true}}
	for _, p := range ring.Previous() {
		out = append(out, keyInfo{ID: keyring.ID(p), Fingerprint: evidence.Fingerprint(p)})
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	for _, k := range out {
		what := "previous"
		if k.Current {
			what = "current "
		}
		fmt.Fprintf(g.stdout, "%s key %s  %s\n", what, k.ID, k.Fingerprint)
	}
	return nil
}
