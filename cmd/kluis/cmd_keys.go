package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
)

func cmdKeysInit(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("keys init", "")
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
	master, signing := c.Resolve(c.Appliance.MasterKeyFile), c.Resolve(c.Appliance.SigningKeyFile)
	pub, err := repo.InitApplianceKeys(master, signing)
	if err != nil {
		return err
	}
	pem, err := repo.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "created %s (master key) and %s (signing key), mode 0600.\n", master, signing)
	fmt.Fprintln(g.stderr, "Back up the master key offline: without it (or a recovery identity) no tenant repository can be opened.")
	fmt.Fprintln(g.stderr, "The signing public key, for auditors:")
	fmt.Fprint(g.stdout, string(pem))
	return nil
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
