package appliance

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
)

// Record is one line of the appliance's job history (state_dir/
// history.jsonl): what ran, when, and where a snapshot was committed.
type Record struct {
	Time      time.Time              `json:"time"`
	Tenant    string                 `json:"tenant"`
	Job       string                 `json:"job"`
	OK        bool                   `json:"ok"`
	Error     string                 `json:"error,omitempty"`
	Snapshot  string                 `json:"snapshot,omitempty"`
	Committed []string               `json:"committed,omitempty"`
	Locations []repo.LocationResult  `json:"locations,omitempty"`
	Stats     *repo.Stats            `json:"stats,omitempty"`
	Duration  float64                `json:"duration_seconds,omitempty"`
	Extra     map[string]interface{} `json:"extra,omitempty"`
}

// ExtraLockTimeout marks, in Record.Extra, a backup that gave up waiting
// for a table lock on the source (source.ErrLockTimeout).
const ExtraLockTimeout = "lock_timeout"

// ExtraReseal holds, in Record.Extra, what re-sealing a backup's packs did
// (repo.ResealResult) when it ran, failed, or was skipped for another
// reason than policy.reseal (repo.ResealResult.Notable).
const ExtraReseal = "reseal"

// RecordBackup appends a backup's outcome to the history. Errors writing
// the history are logged, never fatal: the repository is the truth.
func (a *Appliance) RecordBackup(tenant string, res *repo.Result, err error) {
	rec := Record{Time: a.Now().UTC(), Tenant: tenant, Job: "backup", OK: err == nil}
	if err != nil {
		rec.Error = err.Error()
		// Classified from the error, not from its text, which a masked
		// password, a driver's wording or a hostile identifier can change;
		// written for every failure, so that status falls back to the text
		// only for records of older versions.
		rec.Extra = map[string]interface{}{ExtraLockTimeout: errors.Is(err, source.ErrLockTimeout)}
	}
	if res != nil {
		rec.Snapshot, rec.Committed, rec.Locations = res.Snapshot, res.Committed, res.Locations
		st := res.Stats
		rec.Stats = &st
		rec.Duration = res.Finished.Sub(res.Started).Seconds()
		if rs := res.Reseal; rs.Notable() {
			if rec.Extra == nil {
				rec.Extra = map[string]interface{}{}
			}
			rec.Extra[ExtraReseal] = rs
		}
	}
	if werr := a.AppendHistory(rec); werr != nil {
		a.Log.Warn("cannot record job history", "tenant", tenant, "err", werr)
	}
}

// AppendHistory appends one record and fsyncs it, so a crash loses at most
// the record being written (a torn last line is skipped when reading).
func (a *Appliance) AppendHistory(rec Record) error {
	if err := os.MkdirAll(a.StateDir(), 0o700); err != nil {
		return err
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(a.HistoryFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// History reads the job history, skipping a torn last line.
func (a *Appliance) History() ([]Record, error) {
	f, err := os.Open(a.HistoryFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// Ledger is the appliance's record of every snapshot it committed and
// forgot, per tenant (state_dir/ledger/<tenant>.jsonl): the high-water
// mark check, status, restore tests and `restore latest` compare the
// locations with (repo.FileLedger).
func (a *Appliance) Ledger() *repo.FileLedger {
	return &repo.FileLedger{Dir: filepath.Join(a.StateDir(), "ledger")}
}
