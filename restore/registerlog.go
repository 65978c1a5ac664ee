package restore

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// witnessTimeout bounds how long an append waits for the witnesses.
const witnessTimeout = 30 * time.Second

// sign signs the checkpoint of log at the length right after each of ens
// (just appended) and keeps the newest checkpoint of the log in the state
// directory, cosigned by the witnesses that answered. It returns the
// checkpoints in the order of ens (nil when ens is empty but a log
// without a checkpoint yet, written before the register logs were trees,
// still gets one). t is the log's tree with ens, from the check before
// the append (Register.grown); nil: the log is loaded again.
func (g *Register) sign(ctx context.Context, log string, ring *keyring.Ring, ens []chain.Entry, t *evidence.Tree) ([][]byte, error) {
	// The lines up to the checkpoint kept beside the log are proven by
	// it, every later one's signature is checked (dossier.LoadLog): the
	// appliance signs no checkpoint of a line it did not verify.
	if t == nil {
		l, err := dossier.LoadLog(g.StateDir, log, g.Appliance, ring)
		if err != nil {
			return nil, err
		}
		t = l.Tree
	}
	var err error
	cps := make([][]byte, len(ens))
	for i, en := range ens {
		if en.Seq > uint64(t.Size()) {
			return nil, fmt.Errorf("%s log: line %d was just appended but the log holds %d lines", log, en.Seq, t.Size())
		}
		if cps[i], err = dossier.SignCheckpoint(g.Key, log, g.Appliance, t, int64(en.Seq)); err != nil {
			return nil, err
		}
	}
	if t.Size() == 0 {
		return cps, nil
	}
	newest := t.Size()
	cp, err := dossier.SignCheckpoint(g.Key, log, g.Appliance, t, newest)
	if err != nil {
		return nil, err
	}
	cp = g.cosign(ctx, log, t, cp)
	if len(ens) > 0 && int64(ens[len(ens)-1].Seq) == newest {
		cps[len(cps)-1] = cp
	}
	// Another append may have kept a newer checkpoint meanwhile.
	if old, err := dossier.ReadCheckpoint(g.StateDir, log); err == nil && old != nil {
		if c, err := evidence.ParseCheckpointText(string(evidence.NoteText(old))); err == nil && c.Size > newest {
			return cps, nil
		}
	}
	if err := dossier.WriteCheckpoint(g.StateDir, log, cp); err != nil {
		return nil, fmt.Errorf("%s log: keeping its checkpoint: %w", log, err)
	}
	return cps, nil
}

// cosign asks every witness, in parallel, to cosign cp (a checkpoint of
// t) and returns cp with the cosignatures that verify. A witness that
// refuses or cannot be reached is logged; the checkpoint stays valid and
// status shows it uncosigned (Uncosigned).
func (g *Register) cosign(ctx context.Context, log string, t *evidence.Tree, cp []byte) []byte {
	if len(g.Witnesses) == 0 {
		return cp
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), witnessTimeout)
	defer cancel()
	lines := make([]string, len(g.Witnesses))
	var wg sync.WaitGroup
	for i, w := range g.Witnesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := w.Cosign(wctx, t, cp, 0)
			if err != nil {
				slog.Warn("register: a witness did not cosign the checkpoint", "log", log, "witness", w.Verifier.Name(), "err", err)
				return
			}
			lines[i] = line
		}()
	}
	wg.Wait()
	out := append([]byte(nil), cp...)
	for _, l := range lines {
		out = append(out, l...)
	}
	return out
}

// Uncosigned returns, per log, the witnesses (of those given) whose
// cosignature the log's newest checkpoint lacks: status is red while any
// does. A log without lines needs none.
func (g *Register) Uncosigned(witnesses []note.Verifier) (map[string][]string, error) {
	out := map[string][]string{}
	if len(witnesses) == 0 {
		return out, nil
	}
	ring, err := g.Ring()
	if err != nil {
		return nil, err
	}
	for _, log := range []string{dossier.LogNameErasures, dossier.LogNameAccess} {
		l, err := dossier.LoadLog(g.StateDir, log, g.Appliance, ring)
		if err != nil {
			return nil, err
		}
		if len(l.Lines) == 0 {
			continue
		}
		var cosigned []string
		if cp := l.Checkpoint; cp != nil {
			t := l.Tree
			var c evidence.LogCheckpoint
			c, cosigned, err = dossier.CheckCheckpoint(cp, dossier.CheckpointFileOf(log), dossier.Origin(log, g.Appliance), ring, l.Signers, t, witnesses...)
			if err != nil {
				return nil, err
			}
			if c.Size < t.Size() {
				cosigned = nil // the newest lines are in no cosigned checkpoint
			}
		}
		for _, w := range witnesses {
			found := false
			for _, n := range cosigned {
				found = found || n == w.Name()
			}
			if !found {
				out[log] = append(out[log], w.Name())
			}
		}
		sort.Strings(out[log])
	}
	return out, nil
}
