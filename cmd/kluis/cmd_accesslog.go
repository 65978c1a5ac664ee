package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

func cmdAccessLogVerify(ctx context.Context, g *globals, args []string) error {
	return registerVerify(ctx, g, "access-log verify", dossier.LogNameAccess, args)
}

func cmdErasureVerify(ctx context.Context, g *globals, args []string) error {
	return registerVerify(ctx, g, "erasure verify", dossier.LogNameErasures, args)
}

// registerVerify verifies a register log (docs/dossier.md, "Verifying the
// register logs"): its lines, the checkpoint beside it, a checkpoint the
// caller kept, and on the appliance itself the anchors in the tenants'
// repositories.
func registerVerify(ctx context.Context, g *globals, name, log string, args []string) error {
	fs := g.flags(name, "[--public-key FILE] [--file FILE] [--checkpoint OLD] [--appliance ID] [--witness-key KEY]... [--json]")
	pubFile := fs.String("public-key", "", "verify with this PEM public `file` (default: the appliance's signing key)")
	file := fs.String("file", "", "the log `file` (default: state_dir/"+dossier.FileOf(log)+"; its checkpoint is the .checkpoint file beside it)")
	held := fs.String("checkpoint", "", "a checkpoint `file` kept from earlier (a copy of the .checkpoint file): the log must still hold what it signed")
	applianceID := fs.String("appliance", "", "the appliance `id` the checkpoints must name (default: the configured one; with --public-key and no config, the checkpoint's)")
	var wkeys listFlag
	fs.Var(&wkeys, "witness-key", "the newest checkpoint must be cosigned by this witness `key` (NAME+HASH+KEY, or a file holding it); repeatable")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	witnesses, err := witnessKeys(wkeys)
	if err != nil {
		return err
	}
	var ring *keyring.Ring
	var a *appliance.Appliance
	path := *file
	if *pubFile == "" || path == "" {
		if a, err = g.appliance(); err != nil {
			return err
		}
		if path == "" {
			path = filepath.Join(a.StateDir(), dossier.FileOf(log))
		}
		if *applianceID == "" {
			*applianceID = a.Cfg.Appliance.ID
		}
		if *pubFile == "" {
			reg, err := applianceRegister(a)
			if err != nil {
				return err
			}
			if ring, err = reg.Ring(); err != nil {
				return err
			}
		}
	}
	// A register log keeps its checkpoint beside it; another log in the
	// chain format (the portal log) is verified as a chain only.
	register := true
	switch filepath.Base(path) {
	case dossier.FileOf(dossier.LogNameErasures):
		log = dossier.LogNameErasures
	case dossier.FileOf(dossier.LogNameAccess):
		log = dossier.LogNameAccess
	default:
		register = false
	}
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return err
		}
		pub, err := repo.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", *pubFile, err)
		}
		// The log's newest key: its key rotation lines vouch for the
		// keys before it.
		ring = keyring.New(pub)
	}
	o := dossier.VerifyOptions{Appliance: *applianceID, Witnesses: witnesses, HeldName: *held, ChainOnly: !register}
	if register {
		if o.Checkpoint, err = dossier.ReadCheckpoint(filepath.Dir(path), log); err != nil {
			return err
		}
	}
	if *held != "" {
		if o.Held, err = readSmall(*held, 64<<10); err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
	}
	v, err := dossier.VerifyLog(path, log, ring, o)
	if err != nil {
		return err
	}
	// The appliance's own log: also against its anchors in the tenants'
	// repositories, which show a log cut short, rolled back or deleted.
	if *file == "" && *pubFile == "" {
		reg, err := applianceRegister(a)
		if err != nil {
			return err
		}
		if err := checkAnchors(ctx, a, reg, ""); err != nil {
			return err
		}
		v.Notes = append(v.Notes, "consistent with the checkpoints anchored in every configured tenant's repository")
	}
	if g.jsonOut {
		return g.printJSON(struct {
			OK bool `json:"ok"`
			*dossier.LogVerification
		}{true, v})
	}
	fmt.Fprintf(g.stdout, "%s: %s, every signature and link verifies; head %s, tree root %s\n", path, plural(int(v.Lines), "record", "records"), v.Head, v.Root)
	if v.CheckpointSize > 0 {
		cos := ""
		if len(v.Cosigned) > 0 {
			cos = ", cosigned by " + strings.Join(v.Cosigned, ", ")
		}
		fmt.Fprintf(g.stdout, "checkpoint %s (log of %s%s) verifies and is consistent with the log: keep a copy, and give it later as --checkpoint\n", filepath.Join(filepath.Dir(path), dossier.CheckpointFileOf(log)), plural(int(v.CheckpointSize), "record", "records"), cos)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(g.stdout, "note: %s\n", n)
	}
	return nil
}
