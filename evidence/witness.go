package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A witness (C2SP tlog-witness) keeps, for every log it knows, the last
// checkpoint it cosigned, and cosigns a new one only when a consistency
// proof shows that the new tree extends the old one. A history rewritten
// by the holder of a log's key can then not be cosigned again: the
// witness has seen the old root (docs/auditor.md, "Running a witness").

// maxAddCheckpoint bounds a request: "old N", 63 proof hashes, a note.
const maxAddCheckpoint = maxNote + 64*50 + 64

// WitnessLog is a log a witness accepts checkpoints of: its origin and
// the note verifier of its key (LogVerifier).
type WitnessLog struct {
	Origin   string
	Verifier note.Verifier
}

// Witness is the state and key of a witness.
type Witness struct {
	dir    string
	logs   map[string]note.Verifier
	signer *Cosigner
	mu     sync.Mutex
}

// NewWitness returns a witness keeping its state in dir (created 0700).
func NewWitness(dir string, signer *Cosigner, logs []WitnessLog) (*Witness, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	w := &Witness{dir: dir, logs: map[string]note.Verifier{}, signer: signer}
	for _, l := range logs {
		if _, dup := w.logs[l.Origin]; dup {
			return nil, fmt.Errorf("witness: log %s given twice: a witness accepts one key a log (after a key rotation give the new key only; the old key's last checkpoint stays in the state directory)", l.Origin)
		}
		w.logs[l.Origin] = l.Verifier
	}
	return w, nil
}

// WitnessError is a refusal, with the HTTP status of the C2SP
// tlog-witness protocol (400 malformed, 403 bad signature, 404 unknown
// log, 409 old size mismatch, 422 bad consistency proof).
type WitnessError struct {
	Status int
	// Size is the witness's size of the log, for a 409.
	Size int64
	Msg  string
}

func (e *WitnessError) Error() string { return fmt.Sprintf("witness: %s (HTTP %d)", e.Msg, e.Status) }

func werr(status int, format string, args ...any) *WitnessError {
	return &WitnessError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// statePath is the file of the last checkpoint the witness cosigned of
// the log of origin under key v: one file per (origin, key), so that a
// log continued under a new key (after a disaster recovery, accepted by
// the witness's operator) starts afresh while the old key's last
// checkpoint stays on record (docs/format.md, "Witness state").
func (w *Witness) statePath(origin string, v note.Verifier) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, fmt.Sprintf("%s-%08x.checkpoint", hex.EncodeToString(sum[:16]), v.KeyHash()))
}

// legacyStatePath is the one file per origin that witnesses before key
// rotation kept; it is read (when it verifies under the log's key) until
// the first new cosignature writes the per-key file.
func (w *Witness) legacyStatePath(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, hex.EncodeToString(sum[:16])+".checkpoint")
}

// Latest is the last checkpoint the witness cosigned for origin under
// the log's current key (nil: none).
func (w *Witness) Latest(origin string) ([]byte, error) {
	v, ok := w.logs[origin]
	if !ok {
		return nil, nil
	}
	b, _, err := w.state(origin, v)
	return b, err
}

// state reads the witness's last checkpoint of origin under key v and
// its text (nil: none). A legacy per-origin file signed by another key
// (the key before a rotation) is not this key's state.
func (w *Witness) state(origin string, v note.Verifier) ([]byte, *note.Note, error) {
	b, err := os.ReadFile(w.statePath(origin, v))
	legacy := false
	if errors.Is(err, fs.ErrNotExist) {
		legacy = true
		b, err = os.ReadFile(w.legacyStatePath(origin))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	n, err := note.Open(b, note.VerifierList(v))
	var unknown *note.UnverifiedNoteError
	if legacy && errors.As(err, &unknown) {
		return nil, nil, nil // the state of the log's previous key
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the witness's own state does not verify: %w", err)
	}
	return b, n, nil
}

// AddCheckpoint is the witness's one operation: given the size of the
// log the caller believes the witness has seen (oldSize), a consistency
// proof from it, and a signed checkpoint, it cosigns the checkpoint and
// returns the cosignature line, or refuses.
func (w *Witness) AddCheckpoint(oldSize int64, proof []tlog.Hash, cp []byte) (string, error) {
	if len(cp) > maxNote {
		return "", werr(http.StatusBadRequest, "checkpoint larger than %d bytes", maxNote)
	}
	n, err := note.Open(cp, note.VerifierList(w.verifiers()...))
	var unknown *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unknown):
		c, perr := ParseCheckpointText(unknown.Note.Text)
		if perr == nil {
			if _, ok := w.logs[c.Origin]; !ok {
				return "", werr(http.StatusNotFound, "unknown log %.80q", c.Origin)
			}
		}
		return "", werr(http.StatusForbidden, "the checkpoint is not signed by the log's key")
	case err != nil:
		return "", werr(http.StatusForbidden, "the checkpoint does not verify: %v", err)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return "", werr(http.StatusBadRequest, "%v", err)
	}
	v, ok := w.logs[c.Origin]
	if !ok {
		return "", werr(http.StatusNotFound, "unknown log %.80q", c.Origin)
	}
	signed := false
	for _, s := range n.Sigs {
		signed = signed || s.Name == v.Name() && s.Hash == v.KeyHash()
	}
	if !signed {
		return "", werr(http.StatusForbidden, "the checkpoint is not signed by the key of log %s", c.Origin)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	var old LogCheckpoint
	if _, on, err := w.state(c.Origin, v); err != nil {
		return "", werr(http.StatusInternalServerError, "reading state: %v", err)
	} else if on != nil {
		if old, err = ParseCheckpointText(on.Text); err != nil {
			return "", werr(http.StatusInternalServerError, "the witness's own state: %v", err)
		}
	}
	if oldSize != old.Size {
		return "", &WitnessError{Status: http.StatusConflict, Size: old.Size, Msg: fmt.Sprintf("the witness has seen log %s at size %d, not %d", c.Origin, old.Size, oldSize)}
	}
	if c.Size < old.Size {
		return "", werr(http.StatusBadRequest, "the checkpoint (size %d) is older than the one the witness has seen (size %d): a rolled-back or replayed checkpoint", c.Size, old.Size)
	}
	switch {
	case old.Size == 0:
		if len(proof) != 0 {
			return "", werr(http.StatusUnprocessableEntity, "a consistency proof from an empty log must be empty")
		}
	case c.Size == old.Size:
		if c.Root != old.Root || len(proof) != 0 {
			return "", werr(http.StatusConflict, "the checkpoint has the size of the one the witness cosigned but another root: the log's history was rewritten (a fork)")
		}
	default:
		if err := tlog.CheckTree(proof, c.Size, c.Root, old.Size, old.Root); err != nil {
			return "", werr(http.StatusUnprocessableEntity, "the consistency proof from size %d to %d does not verify: the new tree does not extend the one the witness cosigned (history rewritten)", old.Size, c.Size)
		}
	}
	// Keep the log's own signature only: the state is what the log signed.
	body := append([]byte(n.Text+"\n"), sigLine(cp, v)...)
	if err := writeAtomic(w.statePath(c.Origin, v), body); err != nil {
		return "", werr(http.StatusInternalServerError, "saving state: %v", err)
	}
	return w.signer.Line([]byte(n.Text))
}

// sigLine is the log's own signature line of a note.
func sigLine(cp []byte, v note.Verifier) []byte {
	prefix := "— " + v.Name() + " "
	for _, line := range strings.SplitAfter(string(cp), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line[len(prefix):], "\n"))
		if err == nil && len(sig) >= 4 && uint32(sig[0])<<24|uint32(sig[1])<<16|uint32(sig[2])<<8|uint32(sig[3]) == v.KeyHash() {
			return []byte(line)
		}
	}
	return nil
}

func (w *Witness) verifiers() []note.Verifier {
	out := make([]note.Verifier, 0, len(w.logs))
	for _, v := range w.logs {
		out = append(out, v)
	}
	return out
}

// ServeHTTP serves POST /add-checkpoint (C2SP tlog-witness).
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAddCheckpoint+1))
	if err != nil || len(body) > maxAddCheckpoint {
		http.Error(rw, "request too large or unreadable", http.StatusBadRequest)
		return
	}
	oldSize, proof, cp, err := ParseAddCheckpoint(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	line, err := w.AddCheckpoint(oldSize, proof, cp)
	var we *WitnessError
	switch {
	case errors.As(err, &we) && we.Status == http.StatusConflict && we.Size >= 0 && strings.Contains(we.Msg, "has seen log"):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", we.Size)
		return
	case errors.As(err, &we):
		http.Error(rw, we.Msg, we.Status)
		return
	case err != nil:
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	rw.WriteHeader(http.StatusOK)
	io.WriteString(rw, line)
}

// AddCheckpointRequest is the body of a C2SP tlog-witness add-checkpoint
// request: "old SIZE", one base64 proof hash a line, a blank line, the
// checkpoint note.
func AddCheckpointRequest(oldSize int64, proof []tlog.Hash, cp []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

// ParseAddCheckpoint decodes an add-checkpoint request body. Errors wrap
// ErrMalformed.
func ParseAddCheckpoint(body []byte) (int64, []tlog.Hash, []byte, error) {
	if len(body) > maxAddCheckpoint {
		return 0, nil, nil, fmt.Errorf("request larger than %d bytes: %w", maxAddCheckpoint, ErrMalformed)
	}
	rest := body
	next := func() (string, bool) {
		k := bytes.IndexByte(rest, '\n')
		if k < 0 || k > 256 {
			return "", false
		}
		line := string(rest[:k])
		rest = rest[k+1:]
		return line, true
	}
	first, ok := next()
	if !ok {
		return 0, nil, nil, fmt.Errorf("no old size line: %w", ErrMalformed)
	}
	num, ok := strings.CutPrefix(first, "old ")
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != num {
		return 0, nil, nil, fmt.Errorf("first line is not \"old SIZE\": %w", ErrMalformed)
	}
	var proof []tlog.Hash
	for {
		line, ok := next()
		if !ok {
			return 0, nil, nil, fmt.Errorf("no blank line before the checkpoint: %w", ErrMalformed)
		}
		if line == "" {
			break
		}
		h, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(h) != tlog.HashSize || len(proof) >= 63 || base64.StdEncoding.EncodeToString(h) != line {
			return 0, nil, nil, fmt.Errorf("bad proof line: %w", ErrMalformed)
		}
		proof = append(proof, tlog.Hash(h))
	}
	return n, proof, rest, nil
}

// WitnessClient asks one witness to cosign.
type WitnessClient struct {
	// Name and URL of the witness (URL: its base, the request goes to
	// URL/add-checkpoint); Verifier checks its cosignatures.
	URL      string
	Verifier note.Verifier
	Client   *http.Client
}

// Cosign asks the witness to cosign cp (a checkpoint of t) and returns
// its verified cosignature line. The witness says which size it has seen
// (a 409); the request is repeated once with a proof from that size.
func (c WitnessClient) Cosign(ctx context.Context, t *Tree, cp []byte, oldSize int64) (string, error) {
	cur, err := ParseCheckpointText(string(noteText(cp)))
	if err != nil {
		return "", err
	}
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	for attempt := 0; attempt < 2; attempt++ {
		var proof []tlog.Hash
		if oldSize > 0 && oldSize < cur.Size {
			if proof, err = tlog.ProveTree(cur.Size, oldSize, t); err != nil {
				return "", err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/add-checkpoint", bytes.NewReader(AddCheckpointRequest(oldSize, proof, cp)))
		if err != nil {
			return "", err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("witness %s: %w", c.Verifier.Name(), err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == "text/x.tlog.size" && attempt == 0:
			n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
			if err != nil || n < 0 || n > cur.Size {
				return "", fmt.Errorf("witness %s has seen the log at size %.20q, larger than ours (%d): it holds a checkpoint of another history; investigate", c.Verifier.Name(), body, cur.Size)
			}
			oldSize = n
			continue
		case resp.StatusCode != http.StatusOK:
			return "", fmt.Errorf("witness %s refused the checkpoint of size %d (HTTP %d): %s", c.Verifier.Name(), cur.Size, resp.StatusCode, clip(strings.TrimSpace(string(body))))
		}
		line := string(body)
		// Check the cosignature before keeping it.
		if _, err := note.Open(append(append([]byte(nil), noteText(cp)...), append([]byte("\n"), line...)...), note.VerifierList(c.Verifier)); err != nil || strings.Count(line, "\n") != 1 {
			return "", fmt.Errorf("witness %s answered with no valid cosignature of its key", c.Verifier.Name())
		}
		return line, nil
	}
	return "", fmt.Errorf("witness %s: the size it has seen keeps changing", c.Verifier.Name())
}
