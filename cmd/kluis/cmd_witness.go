package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdWitnessInit(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("witness init", "--key FILE --name NAME", globalLog)
	keyFile := fs.String("key", "", "create the witness's Ed25519 private key in this new `file` (mode 0600)")
	name := fs.String("name", "", "the witness's `name`, e.g. witness.auditor.example/kluis")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *keyFile == "" || *name == "" {
		return usageErrorf("--key FILE and --name NAME are required")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	// Link: an existing key is never replaced, and a crash leaves no
	// half-written key behind.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := durable.WriteFile(*keyFile, keyPEM, durable.Options{Place: durable.Link}); err != nil {
		return fmt.Errorf("witness key: %w (an existing key is never replaced)", err)
	}
	if _, err := evidence.NewCosigner(*name, priv); err != nil {
		os.Remove(*keyFile)
		return usageErrorf("--name %q: no spaces or '+'", *name)
	}
	fmt.Fprintln(g.stdout, evidence.WitnessKey(*name, priv.Public().(ed25519.PublicKey)))
	return nil
}

func cmdWitnessServe(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("witness serve", "--key FILE --name NAME --state DIR --listen ADDR --log APPLIANCE=PUBKEY.pem ...", globalLog)
	keyFile := fs.String("key", "", "the witness's private key `file` (kluis witness init)")
	name := fs.String("name", "", "the witness's `name` (as given to kluis witness init)")
	state := fs.String("state", "", "the `directory` the witness keeps the last checkpoint of each log in")
	listen := fs.String("listen", "127.0.0.1:7380", "the `address` to serve POST /add-checkpoint on (put TLS in front of it)")
	var logs listFlag
	fs.Var(&logs, "log", "a log to witness: `APPLIANCE=PUBKEY.pem` (the appliance id and its evidence public key from kluis keys public; one key an appliance: after its recovery with a new key, give the new key instead of the old); repeatable")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	w, key, err := openWitness(*keyFile, *name, *state, logs)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(g.stdout, "witness %s serving on http://%s/add-checkpoint for %d logs\nkey: %s\n", *name, ln.Addr(), len(logs), key)
	slog.Info("witness serving", "addr", ln.Addr().String(), "logs", len(logs))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openWitness loads a witness's key and the logs it witnesses.
func openWitness(keyFile, name, state string, logs []string) (*evidence.Witness, string, error) {
	if keyFile == "" || name == "" || state == "" || len(logs) == 0 {
		return nil, "", usageErrorf("--key, --name, --state and at least one --log are required")
	}
	priv, err := repo.LoadSigningKey(keyFile)
	if err != nil {
		return nil, "", err
	}
	signer, err := evidence.NewCosigner(name, priv)
	if err != nil {
		return nil, "", usageErrorf("--name: %v", err)
	}
	var wl []evidence.WitnessLog
	for _, l := range logs {
		id, file, ok := strings.Cut(l, "=")
		if !ok || id == "" || file == "" {
			return nil, "", usageErrorf("--log %q: want APPLIANCE=PUBKEY.pem", l)
		}
		data, err := readSmall(file, 64<<10)
		if err != nil {
			return nil, "", usageErrorf("--log %s: %v", id, err)
		}
		pub, err := repo.ParsePublicKey(data)
		if err != nil {
			return nil, "", usageErrorf("--log %s: %s: %v", id, file, err)
		}
		v, err := evidence.LogVerifier(id, pub)
		if err != nil {
			return nil, "", usageErrorf("--log %s: %v", id, err)
		}
		wl = append(wl, evidence.WitnessLog{Origin: evidence.Origin(id), Verifier: v})
		// The appliance's erasure register and access log, signed with
		// the same key under their own origins.
		for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
			v, err := evidence.NoteVerifier(dossier.Origin(log, id), pub)
			if err != nil {
				return nil, "", usageErrorf("--log %s: %v", id, err)
			}
			wl = append(wl, evidence.WitnessLog{Origin: dossier.Origin(log, id), Verifier: v})
		}
	}
	w, err := evidence.NewWitness(state, signer, wl)
	if err != nil {
		return nil, "", err
	}
	return w, evidence.WitnessKey(name, priv.Public().(ed25519.PublicKey)), nil
}

// witnessKeys parses repeated --witness-key values (NAME+HASH+BASE64, or
// a file holding that line).
func witnessKeys(keys []string) ([]note.Verifier, error) {
	var out []note.Verifier
	for _, k := range keys {
		if !strings.Contains(k, "+") {
			data, err := readSmall(k, 4<<10)
			if err != nil {
				return nil, usageErrorf("--witness-key %s: %v", k, err)
			}
			k = string(data)
		}
		v, err := evidence.ParseWitnessKey(k)
		if err != nil {
			return nil, usageErrorf("--witness-key: %v", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// evidenceWitnessProblem is status's evidence line: the newest checkpoint
// of the evidence log lacks the cosignature of a configured witness ("":
// none configured, or every one cosigned; a log without reports is fine).
func evidenceWitnessProblem(a *appliance.Appliance) string {
	ws, err := witnessClients(a)
	if err != nil {
		return "evidence: " + err.Error()
	}
	if len(ws) == 0 {
		return ""
	}
	s, _, err := evidenceStore(a, nil)
	if err != nil {
		return "evidence: " + err.Error()
	}
	if recs, err := s.Records(); err == nil && len(recs) == 0 {
		return ""
	}
	vs := make([]note.Verifier, len(ws))
	for i, w := range ws {
		vs[i] = w.Verifier
	}
	missing, err := s.Uncosigned(vs)
	switch {
	case err != nil:
		return "evidence: the log's checkpoint cannot be checked: " + err.Error()
	case len(missing) > 0:
		return fmt.Sprintf("evidence: the newest checkpoint of the evidence log is not cosigned by witness %s: run kluis evidence cosign (is the witness reachable? did it refuse a rewritten history?)", strings.Join(missing, ", "))
	}
	return ""
}

// registerWitnessProblem is status's line for the erasure register and
// the access log: the newest checkpoint of one lacks the cosignature of a
// configured witness ("": none configured, or every one cosigned).
func registerWitnessProblem(a *appliance.Appliance) string {
	reg, err := applianceRegister(a)
	if err != nil || len(reg.Witnesses) == 0 {
		return "" // a key or witness problem is reported elsewhere
	}
	vs := make([]note.Verifier, len(reg.Witnesses))
	for i, w := range reg.Witnesses {
		vs[i] = w.Verifier
	}
	missing, err := reg.Uncosigned(vs)
	if err != nil {
		return "erasure register and access log: the checkpoints cannot be checked: " + err.Error()
	}
	var parts []string
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		if len(missing[log]) > 0 {
			parts = append(parts, fmt.Sprintf("the %s log by witness %s", log, strings.Join(missing[log], ", ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "the newest checkpoint of " + strings.Join(parts, " and of ") + " is not cosigned: the next append asks again (is the witness reachable, and does it know this appliance's register logs? did it refuse a rewritten history?)"
}
