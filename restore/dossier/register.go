package dossier

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// File names under the appliance's state_dir. Dossier ids are personal
// data adjacent: they never go to a log, and reach a location only sealed
// under the tenant's key, as register records (anchor.go).
const (
	ErasureFileName   = "erasures.jsonl"
	AccessLogFileName = "dossier-access.jsonl"
)

// Erasure is one entry of the erasure register (AVG art. 17): the dossier
// Tenant/ID was erased from the live database at Time.
type Erasure struct {
	Kind     string    `json:"kind"` // "erasure"
	Tenant   string    `json:"tenant"`
	ID       string    `json:"dossier_id"`
	Time     time.Time `json:"erased_at"`
	Reason   string    `json:"reason"`
	Operator string    `json:"operator"`
}

// Access is one entry of the dossier access log (NEN 7513 style).
type Access struct {
	Kind     string    `json:"kind"` // "dossier-access"
	Time     time.Time `json:"time"`
	Operator string    `json:"operator"`
	Tenant   string    `json:"tenant"`
	ID       string    `json:"dossier_id"`
	Snapshot string    `json:"snapshot"`
	Action   string    `json:"action"` // show, restore-sql, restore-json, restore-into
	Reason   string    `json:"reason,omitempty"`
	// Override is the reason given to restore an erased dossier.
	Override string `json:"override_erasure,omitempty"`
	// Target is the database an --into restore reached (or was refused
	// at): its server identity and database name, never a DSN, host or
	// password. Records before it was added have none.
	Target *TargetIdentity `json:"target,omitempty"`
	// Approver and Request are set for a portal release (four-eyes):
	// who approved it with their passkey, and the request's id. Records
	// before the portal have neither.
	Approver string `json:"approver,omitempty"`
	Request  string `json:"request,omitempty"`
	Result   string `json:"result"` // "ok" or the error
}

// AddErasure records an erasure, signed with key (ring's current key),
// and returns the entries appended (for their anchors, NewRecord): a key
// rotation line first when the log's last line is by a previous key
// (keyring.Ring.Append). The id must be canonical (CanonicalID).
func AddErasure(stateDir string, key ed25519.PrivateKey, ring *keyring.Ring, e Erasure) ([]chain.Entry, error) {
	e.Kind = "erasure"
	if c, err := CanonicalID(e.ID); err != nil || c != e.ID {
		return nil, fmt.Errorf("erasure of dossier id %q: not in canonical form", e.ID)
	}
	return ring.Append(filepath.Join(stateDir, ErasureFileName), key, e.Time, e)
}

// CanonicalID is the one spelling of a dossier id in the register and in
// every comparison with it: surrounding white space removed, and refused
// when empty, not UTF-8 or holding a control character. What a key means
// in a column type (042 and 42 in an integer column) is the Plan's
// (KeyID).
func CanonicalID(id string) (string, error) {
	c := strings.TrimSpace(id)
	if c == "" {
		return "", errors.New("the dossier id is empty")
	}
	if !utf8.ValidString(c) {
		return "", errors.New("the dossier id is not valid UTF-8")
	}
	for _, r := range c {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", errors.New("the dossier id holds a control character")
		}
	}
	return c, nil
}

// integerType matches the integer column types of every engine
// (PostgreSQL's integer, bigint…, MariaDB's int(11) unsigned, SQLite's
// INTEGER).
var integerType = regexp.MustCompile(`^(tiny|small|medium|big)?int(eger)?[248]?(\(\d+\))?( unsigned)?( zerofill)?$`)

// KeyID is id as the plan's root key column holds it: canonical, and for
// an integer key the decimal number without sign or leading zeros
// (" 042" is 42). Two ids name the same dossier exactly when their KeyIDs
// are equal.
func (p *Plan) KeyID(id string) (string, error) {
	c, err := CanonicalID(id)
	if err != nil {
		return "", err
	}
	col := columnOf(p.allTables(), p.RootName, p.Key)
	if integerType.MatchString(strings.ToLower(strings.TrimSpace(col.Type))) {
		if n, ok := new(big.Int).SetString(c, 10); ok {
			return n.String(), nil
		}
	}
	return c, nil
}

// Erased returns the erasure of tenant's dossier id, comparing ids as the
// plan's key column would (KeyID).
func (p *Plan) Erased(list []Erasure, tenant, id string) (Erasure, bool) {
	want, err := p.KeyID(id)
	if err != nil {
		return Erasure{}, false
	}
	for _, e := range list {
		if e.Tenant != tenant {
			continue
		}
		if got, err := p.KeyID(e.ID); err == nil && got == want {
			return e, true
		}
	}
	return Erasure{}, false
}

// Erasures verifies the erasure register of appliance with ring
// (LoadLog) and returns its entries (key rotation lines are not
// erasures). A register that does not verify is an error: a refusal
// must not rest on a list someone edited.
func Erasures(stateDir, appliance string, ring *keyring.Ring) ([]Erasure, error) {
	l, err := LoadLog(stateDir, LogNameErasures, appliance, ring)
	if err != nil {
		return nil, fmt.Errorf("erasure register: %w", err)
	}
	return erasures(filepath.Join(stateDir, ErasureFileName), l)
}

// Erasures returns the entries of the erasure register CheckRecords
// loaded (as the function Erasures does, without reading it again).
func (a *Anchored) Erasures() ([]Erasure, error) {
	return erasures(filepath.Join(a.StateDir, ErasureFileName), a.Logs[LogNameErasures])
}

func erasures(path string, l *LocalLog) ([]Erasure, error) {
	out := make([]Erasure, 0, len(l.Lines))
	for _, line := range l.Lines {
		en := line.Entry
		if _, _, ok, _ := keyring.ParseRotation(en.Body); ok {
			continue
		}
		var e Erasure
		if err := json.Unmarshal(en.Body, &e); err != nil || e.Kind != "erasure" {
			return nil, fmt.Errorf("erasure register %s: entry %d is not an erasure", path, en.Seq)
		}
		out = append(out, e)
	}
	return out, nil
}

// ErasedAt returns the erasure of tenant's dossier id, if any.
func ErasedAt(list []Erasure, tenant, id string) (Erasure, bool) {
	for _, e := range list {
		if e.Tenant == tenant && e.ID == id {
			return e, true
		}
	}
	return Erasure{}, false
}

// LogAccess appends one access record, signed with key (ring's current
// key), and returns the entries appended (for their anchors, NewRecord),
// a key rotation line first when one is due (AddErasure).
func LogAccess(stateDir string, key ed25519.PrivateKey, ring *keyring.Ring, a Access) ([]chain.Entry, error) {
	a.Kind = "dossier-access"
	return ring.Append(filepath.Join(stateDir, AccessLogFileName), key, a.Time, a)
}

// DeleteStatements returns the statements that delete the dossier id from a
// database with the plan's schema, children first; each selects its rows
// through its member edges back to the root, so running them in order in
// one transaction removes exactly the dossier.
func (p *Plan) DeleteStatements(id string) ([]string, error) {
	d, err := newDialect(p.Engine)
	if err != nil {
		return nil, err
	}
	all := p.allTables()
	edges := map[string][]Edge{}
	var groups []string
	for _, st := range p.Steps {
		if _, ok := edges[st.Group]; !ok {
			groups = append(groups, st.Group)
			edges[st.Group] = nil
		}
		for _, e := range st.Member {
			dup := false
			for _, x := range edges[st.Group] {
				if x.RefGroup == e.RefGroup && strings.Join(x.Columns, "\x00") == strings.Join(e.Columns, "\x00") {
					dup = true
				}
			}
			if !dup {
				edges[st.Group] = append(edges[st.Group], e)
			}
		}
	}
	var pred func(g string, depth int) (string, error)
	pred = func(g string, depth int) (string, error) {
		if depth > 64 {
			return "", fmt.Errorf("dossier plan too deep at %s", g)
		}
		if g == p.RootName {
			k, err := d.ident(p.Key)
			if err != nil {
				return "", err
			}
			return k + " = " + string(d.appendColumnLiteral(nil, textValue(id), columnOf(all, p.RootName, p.Key))), nil
		}
		var ors []string
		for _, e := range edges[g] {
			sub, err := pred(e.RefGroup, depth+1)
			if err != nil {
				return "", err
			}
			ref, err := d.groupRef(e.RefGroup, all)
			if err != nil {
				return "", err
			}
			cols, err := d.identList(e.Columns)
			if err != nil {
				return "", err
			}
			refCols, err := d.identList(e.RefColumns)
			if err != nil {
				return "", err
			}
			if len(e.Columns) > 1 {
				cols = "(" + cols + ")"
			}
			ors = append(ors, cols+" IN (SELECT "+refCols+" FROM "+ref+" WHERE "+sub+")")
		}
		if len(ors) == 0 {
			return "1 = 0", nil
		}
		return "(" + strings.Join(ors, " OR ") + ")", nil
	}
	var out []string
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		w, err := pred(g, 0)
		if err != nil {
			return nil, err
		}
		ref, err := d.groupRef(g, all)
		if err != nil {
			return nil, err
		}
		out = append(out, "DELETE FROM "+ref+" WHERE "+w)
	}
	return out, nil
}

// Erase deletes the dossier id from the target (in its transaction),
// children first, and returns the number of rows deleted.
func (p *Plan) Erase(ctx context.Context, t *Target, id string) (int64, error) {
	stmts, err := p.DeleteStatements(id)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range stmts {
		k, err := t.Exec(ctx, s)
		if err != nil {
			return n, fmt.Errorf("erasing a dossier: %w", err)
		}
		n += k
	}
	return n, nil
}
