package restoretest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// The scratch ledger is the appliance's proof that a scratch database (and
// the throwaway role or user that owns it) is its own: one file per
// scratch under state_dir/scratch-ledger, written (and fsynced) before
// anything is created on the restore-test server and removed only after
// the scratch and its owner are verified gone. The running test holds an
// exclusive flock(2) on its entry for its whole life, so a sweep (another
// process, or the next daemon start after a kill) can tell a running test
// from a killed one without any clock: the kernel drops the lock when the
// process dies.

// ledgerDir is the ledger's directory under the state directory.
const ledgerDir = "scratch-ledger"

// maxLedgerEntry bounds an entry file read back.
const maxLedgerEntry = 4 << 10

// ledgerEntry is one scratch database the appliance created (or is about
// to create).
type ledgerEntry struct {
	Family    string    `json:"family"`               // postgres, mariadb, sqlite
	Server    string    `json:"server,omitempty"`     // the restore-test server's identity key
	Name      string    `json:"name"`                 // the scratch database (sqlite: file base name)
	Owner     string    `json:"owner,omitempty"`      // the throwaway role (postgres) or user (mariadb)
	OwnerHost string    `json:"owner_host,omitempty"` // mariadb: the user's host part
	Path      string    `json:"path,omitempty"`       // sqlite: the scratch file
	Appliance string    `json:"appliance"`
	Token     string    `json:"token"` // random; also in the database's marker
	Tenant    string    `json:"tenant"`
	Created   time.Time `json:"created"`
}

// marker is the text put on a scratch database (COMMENT ON DATABASE on
// PostgreSQL, the schema comment on MariaDB) naming the appliance and the
// entry's token. The appliance id is letters, digits, '.', '_' and '-'
// (config), the token hex: the text needs no quoting beyond the literal's.
func (e *ledgerEntry) marker() string {
	return "kluis restore-test scratch appliance=" + e.Appliance + " token=" + e.Token
}

// newToken returns 16 random bytes in hex.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// scratchAlphabetRE is what a scratch database or owner name may be:
// ScratchName's output (lower-case letters, digits and '_', the time and
// random suffix) or a MariaDB throwaway user.
var (
	scratchAlphabetRE = regexp.MustCompile(`^kluis_rt_[a-z0-9_]{0,38}_[0-9]{14}_[0-9a-f]{6}$`)
	mariadbUserRE     = regexp.MustCompile(`^kluis_rt_u[0-9a-f]{12}$`)
)

// heldEntry is a ledger entry the running test holds locked.
type heldEntry struct {
	entry ledgerEntry
	path  string
	f     *os.File // holds the flock
}

// ledgerWrite records an entry durably and returns it locked: the lock is
// taken on the temporary file before it is renamed into place, so no sweep
// ever sees the entry unlocked while its test runs.
func ledgerWrite(stateDir string, e ledgerEntry) (*heldEntry, error) {
	dir := filepath.Join(stateDir, ledgerDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("scratch ledger: %w", err)
	}
	if !ledgerNameOK(e.Name) {
		return nil, fmt.Errorf("scratch ledger: invalid scratch name %q", e.Name)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(dir, e.Name+".json")
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("scratch ledger: %w", err)
	}
	fail := func(err error) (*heldEntry, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("scratch ledger: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		os.Remove(final)
		return nil, fmt.Errorf("scratch ledger: %w", err)
	}
	return &heldEntry{entry: e, path: final, f: f}, nil
}

// done removes a held entry (its scratch is verified gone) and releases it.
func (h *heldEntry) done() error {
	if h == nil || h.f == nil {
		return nil
	}
	err := os.Remove(h.path)
	if err == nil {
		err = syncDir(filepath.Dir(h.path))
	}
	h.f.Close()
	h.f = nil
	return err
}

// release lets go of a held entry without removing it (its scratch may
// remain: a later sweep removes it).
func (h *heldEntry) release() {
	if h != nil && h.f != nil {
		h.f.Close()
		h.f = nil
	}
}

// ledgerNameOK reports whether a name may be a ledger entry's file name.
func ledgerNameOK(name string) bool { return scratchAlphabetRE.MatchString(name) }

// errEntryBusy: a running test holds the entry.
var errEntryBusy = errors.New("held by a running restore test")

// ledgerTake opens and locks an entry of a test that is no longer running.
func ledgerTake(path string) (*heldEntry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errEntryBusy
		}
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLedgerEntry+1))
	if err != nil {
		f.Close()
		return nil, err
	}
	e, err := decodeLedgerEntry(b, filepath.Base(path))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &heldEntry{entry: e, path: path, f: f}, nil
}

// decodeLedgerEntry decodes the entry in file (its base name): bounded,
// strict, and naming its own file; the names it holds are in the scratch
// alphabet (the sweep checks them again before each use).
func decodeLedgerEntry(b []byte, file string) (ledgerEntry, error) {
	var e ledgerEntry
	if len(b) > maxLedgerEntry {
		return e, errors.New("entry too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return ledgerEntry{}, fmt.Errorf("entry does not decode: %w", err)
	}
	if dec.More() {
		return ledgerEntry{}, errors.New("trailing data after the entry")
	}
	if !ledgerNameOK(e.Name) || file != e.Name+".json" {
		return ledgerEntry{}, errors.New("entry does not name its own file")
	}
	switch e.Family {
	case familyPostgres:
		if e.Owner != e.Name {
			return ledgerEntry{}, errors.New("entry's owner is not its throwaway role")
		}
	case familyMariaDB:
		if !mariadbUserRE.MatchString(e.Owner) {
			return ledgerEntry{}, errors.New("entry's owner is not a throwaway user")
		}
	case "sqlite":
	default:
		return ledgerEntry{}, fmt.Errorf("entry of unknown family %q", e.Family)
	}
	return e, nil
}

// ledgerPaths lists the entry files.
func ledgerPaths(stateDir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(stateDir, ledgerDir, "kluis_rt_*.json"))
	return m, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
