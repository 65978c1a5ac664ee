package repo

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/durable"
)

// CommittedSnapshot is a snapshot the appliance committed, as its ledger
// records it: the high-water mark a location's listing is compared with.
type CommittedSnapshot struct {
	ID        Hash
	Finished  time.Time
	Locations []string
}

// LedgerState is what a tenant's ledger says now: every snapshot the
// appliance committed and has not forgotten since, and every snapshot it
// forgot (a copy of one still listed somewhere is a leftover, not a loss).
type LedgerState struct {
	Committed map[Hash]CommittedSnapshot
	Forgotten map[Hash]bool
}

// Newest returns the newest committed snapshot (by finish time).
func (s *LedgerState) Newest() (CommittedSnapshot, bool) {
	var out CommittedSnapshot
	found := false
	for _, c := range s.Committed {
		if !found || c.Finished.After(out.Finished) || (c.Finished.Equal(out.Finished) && c.ID.String() > out.ID.String()) {
			out, found = c, true
		}
	}
	return out, found
}

// Sorted returns the committed snapshots oldest first.
func (s *LedgerState) Sorted() []CommittedSnapshot {
	out := make([]CommittedSnapshot, 0, len(s.Committed))
	for _, c := range s.Committed {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Finished.Equal(out[j].Finished) {
			return out[i].Finished.Before(out[j].Finished)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// Ledger is the appliance's durable record of the snapshots it committed
// and forgot, kept outside every location: a location that loses or hides
// snapshots cannot also edit the record of them (docs/security.md,
// "History erased at one location").
type Ledger interface {
	// RecordCommit records a snapshot committed at the given locations.
	RecordCommit(tenant string, s CommittedSnapshot) error
	// RecordForget records snapshots about to be forgotten.
	RecordForget(tenant string, ids []Hash) error
	// State reads a tenant's ledger.
	State(tenant string) (*LedgerState, error)
}

// FileLedger keeps one append-only JSON-lines file per tenant under Dir
// (state_dir/ledger/<tenant>.jsonl). Every line is written with one
// write(2) and fsynced before the call returns; a torn last line (a crash
// mid-write) is skipped when reading.
type FileLedger struct {
	Dir string
	mu  sync.Mutex
}

// ledgerLine is one line of a ledger file (docs/format.md, "Ledger").
type ledgerLine struct {
	Op        string    `json:"op"` // "commit" or "forget"
	Time      time.Time `json:"time"`
	Snapshot  string    `json:"snapshot"`
	Finished  time.Time `json:"finished,omitzero"`
	Locations []string  `json:"locations,omitempty"`
}

const maxLedgerLine = 64 << 10

func (l *FileLedger) file(tenant string) string { return filepath.Join(l.Dir, tenant+".jsonl") }

// RecordCommit implements Ledger.
func (l *FileLedger) RecordCommit(tenant string, s CommittedSnapshot) error {
	return l.append(tenant, []ledgerLine{{Op: "commit", Time: time.Now().UTC(), Snapshot: s.ID.String(),
		Finished: s.Finished.UTC(), Locations: s.Locations}})
}

// RecordForget implements Ledger.
func (l *FileLedger) RecordForget(tenant string, ids []Hash) error {
	lines := make([]ledgerLine, 0, len(ids))
	for _, h := range ids {
		lines = append(lines, ledgerLine{Op: "forget", Time: time.Now().UTC(), Snapshot: h.String()})
	}
	return l.append(tenant, lines)
}

func (l *FileLedger) append(tenant string, lines []ledgerLine) error {
	if len(lines) == 0 {
		return nil
	}
	var buf []byte
	for _, ln := range lines {
		b, err := json.Marshal(ln)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	name := l.file(tenant)
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ledger %s: %w", name, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		return durable.SyncDir(l.Dir)
	}
	return nil
}

// State implements Ledger. A missing file is an empty ledger (a new
// tenant, or a state directory that was lost: then only the locations'
// listings are compared with each other).
func (l *FileLedger) State(tenant string) (*LedgerState, error) {
	st := &LedgerState{Committed: map[Hash]CommittedSnapshot{}, Forgotten: map[Hash]bool{}}
	f, err := os.Open(l.file(tenant))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), maxLedgerLine)
	for sc.Scan() {
		applyLedgerLine(st, sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.file(tenant), err)
	}
	return st, nil
}

// applyLedgerLine applies one line; a line that does not decode (a torn
// last write) is skipped.
func applyLedgerLine(st *LedgerState, b []byte) {
	var ln ledgerLine
	if json.Unmarshal(b, &ln) != nil {
		return
	}
	h, err := ParseHash(ln.Snapshot)
	if err != nil {
		return
	}
	switch ln.Op {
	case "commit":
		if st.Forgotten[h] {
			return // forgotten for good: a content address never comes back
		}
		c := st.Committed[h]
		c.ID, c.Finished = h, ln.Finished
		c.Locations = mergeNames(c.Locations, ln.Locations)
		st.Committed[h] = c
	case "forget":
		delete(st.Committed, h)
		st.Forgotten[h] = true
	}
}

func mergeNames(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		if !containsString(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// recordCommit tells the ledger, if any, about a commit. A ledger that
// cannot be written is logged: the snapshot is committed regardless, and
// the locations' listings still show it.
func (r *Repo) recordCommit(res *Result) {
	if r.ledger == nil || len(res.Committed) == 0 {
		return
	}
	if err := r.ledger.RecordCommit(r.tenant, CommittedSnapshot{ID: res.ID, Finished: res.Finished, Locations: res.Committed}); err != nil {
		r.log.Error("cannot record the snapshot in the ledger", "snapshot", res.ID.Short(), "err", err)
	}
}

// recordForget tells the ledger, before anything is deleted, that ids are
// being forgotten, so that their absence is not reported as a loss.
func (r *Repo) recordForget(ids []Hash) error {
	if r.ledger == nil {
		return nil
	}
	if err := r.ledger.RecordForget(r.tenant, ids); err != nil {
		return fmt.Errorf("forget: cannot record it in the ledger first: %w", err)
	}
	return nil
}

// LedgerState reads the tenant's ledger; with no ledger configured it is
// empty.
func (r *Repo) LedgerState() (*LedgerState, error) {
	if r.ledger == nil {
		return &LedgerState{Committed: map[Hash]CommittedSnapshot{}, Forgotten: map[Hash]bool{}}, nil
	}
	return r.ledger.State(r.tenant)
}
