package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

func cmdAccessLogVerify(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("access-log verify", "[--public-key FILE] [--file FILE]")
	pubFile := fs.String("public-key", "", "verify with this PEM public `file` (default: the appliance's signing key)")
	file := fs.String("file", "", "the log `file` (default: state_dir/"+dossier.AccessLogFileName+"; also works for "+dossier.ErasureFileName+")")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	var ring *keyring.Ring
	var a *appliance.Appliance
	path := *file
	if *pubFile == "" || path == "" {
		var err error
		if a, err = g.appliance(); err != nil {
			return err
		}
		if path == "" {
			path = filepath.Join(a.StateDir(), dossier.AccessLogFileName)
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
	head, err := ring.VerifyFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// The appliance's own log: also against its anchors in the tenants'
	// repositories, which show a log cut short or deleted.
	if *file == "" && *pubFile == "" {
		reg, err := applianceRegister(a)
		if err != nil {
			return err
		}
		if err := checkAnchors(ctx, a, reg, ""); err != nil {
			return err
		}
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"file": path, "ok": true, "records": head.Count, "head": head.Hash})
	}
	fmt.Fprintf(g.stdout, "%s: %s, every signature and link verifies; head %s\n", path, plural(int(head.Count), "record", "records"), head.Hash)
	return nil
}
