package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// WitnessResult is what one witness answered to a checkpoint.
type WitnessResult struct {
	Witness string `json:"witness"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// Cosign asks every witness, in parallel, to cosign the log's newest
// checkpoint and keeps the cosignatures in STATE/evidence/checkpoints/
// NNNNNNNN.cosigned (the note and every cosignature collected so far for
// that size). A witness that refuses or cannot be reached is in the
// results; the checkpoint stays valid, and status shows it uncosigned.
func (s *Store) Cosign(ctx context.Context, witnesses []WitnessClient) ([]WitnessResult, error) {
	if len(witnesses) == 0 {
		return nil, nil
	}
	t, cp, err := s.Checkpoint()
	if err != nil {
		return nil, err
	}
	plain := noteWithoutCosignatures(cp)
	res := make([]WitnessResult, len(witnesses))
	lines := make([]string, len(witnesses))
	var wg sync.WaitGroup
	for i, w := range witnesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].Witness = w.Verifier.Name()
			line, err := w.Cosign(ctx, t, plain, 0)
			if err != nil {
				res[i].Error = err.Error()
				return
			}
			res[i].OK, lines[i] = true, line
		}()
	}
	wg.Wait()

	unlock, err := s.lock()
	if err != nil {
		return res, err
	}
	defer unlock()
	have := map[string]bool{}
	out := append([]byte(nil), plain...)
	old, err := readCapped(s.cosignedPath(t.Size()), maxNote)
	if err == nil && string(noteText(old)) == string(noteText(plain)) {
		out = old
		for _, l := range strings.SplitAfter(string(old), "\n") {
			have[l] = true
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("evidence: %w", err)
	}
	added := false
	for _, l := range lines {
		if l != "" && !have[l] {
			out = append(out, l...)
			have[l] = true
			added = true
		}
	}
	if added {
		if err := writeAtomic(s.cosignedPath(t.Size()), out); err != nil {
			return res, fmt.Errorf("evidence: %w", err)
		}
	}
	return res, nil
}

// noteWithoutCosignatures keeps a note's text and its first signature
// line (the appliance's).
func noteWithoutCosignatures(n []byte) []byte {
	text := noteText(n)
	if text == nil {
		return n
	}
	rest := n[len(text)+1:]
	if i := strings.IndexByte(string(rest), '\n'); i >= 0 {
		rest = rest[:i+1]
	}
	return append(append(append([]byte(nil), text...), '\n'), rest...)
}

// Uncosigned returns the witnesses (of those given) whose cosignature the
// log's newest checkpoint lacks: status is red while any does.
func (s *Store) Uncosigned(witnesses []note.Verifier) ([]string, error) {
	if len(witnesses) == 0 {
		return nil, nil
	}
	_, cp, err := s.Checkpoint()
	if err != nil {
		return nil, err
	}
	_, cosigned, err := OpenLogCheckpoint(cp, s.appliance, s.pub, witnesses...)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, w := range witnesses {
		found := false
		for _, n := range cosigned {
			found = found || n == w.Name()
		}
		if !found {
			missing = append(missing, w.Name())
		}
	}
	sort.Strings(missing)
	return missing, nil
}
