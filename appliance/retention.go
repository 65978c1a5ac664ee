package appliance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// RetentionFileName is the log of approved retention changes in the
// state directory: a hash chain signed with the appliance signing key
// (like the dossier access log; verify it with `kluis access-log verify
// --file`). Only the daemon writes it, after a four-eyes approval it
// verified itself (package portal); the config's policy.retention holds
// for every tenant without a change.
const RetentionFileName = "retention-changes.jsonl"

// RetentionChange is one line of the log: from Time on (from Effective
// on when set), Tenant keeps Retention (nil: policy.retention again).
type RetentionChange struct {
	Kind      string            `json:"kind"` // "retention-change"
	Tenant    string            `json:"tenant"`
	Retention *config.Retention `json:"retention,omitempty"`
	Reason    string            `json:"reason"`
	Requester string            `json:"requester"`
	Approver  string            `json:"approver"`
	Request   string            `json:"request"`
	// Digest is the request digest the approver's passkey signed.
	Digest string    `json:"digest"`
	Time   time.Time `json:"time"`
	// Delay and Effective are set on a change that shortens retention:
	// it takes effect at Effective, Time plus Delay
	// (policy.retention_shorten_delay), unless a retention-cancel line
	// for its request comes first. A line whose Effective is not Time
	// plus Delay does not verify.
	Delay     string     `json:"delay,omitempty"`
	Effective *time.Time `json:"effective,omitempty"`
}

// RetentionCancel is a log line that cancels a pending (delayed) change
// before it takes effect: written by `kluis retention cancel` on the
// appliance, never by the portal.
type RetentionCancel struct {
	Kind     string    `json:"kind"` // "retention-cancel"
	Tenant   string    `json:"tenant"`
	Request  string    `json:"request"`
	Operator string    `json:"operator"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
}

// RetentionLog is the retention change log read at one time.
type RetentionLog struct {
	// InForce is the change in force per tenant.
	InForce map[string]*RetentionChange
	// Pending is the change per tenant that shortens retention and has
	// not taken effect yet.
	Pending map[string]*RetentionChange
	// Cancelled is the last cancelled change per tenant, with its cancel.
	Cancelled map[string]CancelledRetention
}

// CancelledRetention is a delayed change cancelled before it took effect.
type CancelledRetention struct {
	Change RetentionChange `json:"change"`
	Cancel RetentionCancel `json:"cancel"`
}

// EffectiveRetention is a tenant's retention and where it comes from.
type EffectiveRetention struct {
	config.Retention
	// Change is the approved change in force; nil: policy.retention.
	Change *RetentionChange
}

// Source says where the retention comes from, for status and logs.
func (e EffectiveRetention) Source() string {
	if e.Change == nil {
		return "policy.retention"
	}
	return fmt.Sprintf("portal request %s (asked by %s, approved by %s, %s)", e.Change.Request, e.Change.Requester, e.Change.Approver, e.Change.Time.UTC().Format("2006-01-02"))
}

func (a *Appliance) retentionFile() string { return filepath.Join(a.StateDir(), RetentionFileName) }

// RetentionChanges returns the change in force per tenant now. The log
// must verify with the appliance's key ring: one that does not is an
// error, never read as "no change" (a retention job then fails,
// forgetting nothing).
func (a *Appliance) RetentionChanges() (map[string]*RetentionChange, error) {
	l, err := a.ReadRetentionLog()
	if err != nil {
		return nil, err
	}
	return l.InForce, nil
}

// ReadRetentionLog verifies and reads the retention change log at
// a.Now(): the changes in force, the pending and the cancelled ones.
func (a *Appliance) ReadRetentionLog() (*RetentionLog, error) {
	l := &RetentionLog{InForce: map[string]*RetentionChange{}, Pending: map[string]*RetentionChange{}, Cancelled: map[string]CancelledRetention{}}
	f, err := os.Open(a.retentionFile())
	if os.IsNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ring, err := a.KeyRing()
	if err != nil {
		return nil, err
	}
	// One read: the lines verified are the lines read.
	lines, _, err := keyring.ReadLines(f)
	if err == nil {
		_, err = ring.Signers(lines)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RetentionFileName, err)
	}
	entries := make([]chain.Entry, len(lines))
	for i, ln := range lines {
		entries[i] = ln.Entry
	}
	// A cancel counts when it comes before its change takes effect.
	cancels := map[string]RetentionCancel{}
	for _, e := range entries {
		var c RetentionCancel
		if json.Unmarshal(e.Body, &c) == nil && c.Kind == "retention-cancel" {
			cancels[c.Tenant+"\x00"+c.Request] = c
		}
	}
	now := a.Now()
	for i, e := range entries {
		var c RetentionChange
		if err := json.Unmarshal(e.Body, &c); err != nil || c.Kind != "retention-change" {
			continue // a key rotation or cancel line
		}
		// A later change supersedes a pending one: the pending one
		// never takes effect.
		delete(l.Pending, c.Tenant)
		if c.Effective != nil || c.Delay != "" {
			d, err := time.ParseDuration(c.Delay)
			if err != nil || d <= 0 || c.Effective == nil || !c.Effective.Equal(c.Time.Add(d)) {
				return nil, fmt.Errorf("%s: line %d (request %s): effective time %v is not its time %s plus its delay %q", RetentionFileName, i+1, c.Request, c.Effective, c.Time.UTC().Format(time.RFC3339), c.Delay)
			}
			if x, ok := cancels[c.Tenant+"\x00"+c.Request]; ok && x.Time.Before(*c.Effective) {
				l.Cancelled[c.Tenant] = CancelledRetention{Change: c, Cancel: x}
				continue
			}
			if c.Effective.After(now) {
				l.Pending[c.Tenant] = &c
				continue
			}
		}
		if c.Retention == nil {
			delete(l.InForce, c.Tenant)
			continue
		}
		l.InForce[c.Tenant] = &c
	}
	return l, nil
}

// Retention is tenant's effective retention: the last approved change,
// else policy.retention.
func (a *Appliance) Retention(tenant string) (EffectiveRetention, error) {
	cs, err := a.RetentionChanges()
	if err != nil {
		return EffectiveRetention{}, err
	}
	return a.RetentionOf(cs, tenant), nil
}

// RetentionOf is tenant's effective retention under changes
// (RetentionChanges).
func (a *Appliance) RetentionOf(changes map[string]*RetentionChange, tenant string) EffectiveRetention {
	e := EffectiveRetention{Retention: a.Cfg.Policy.Retention}
	if c := changes[tenant]; c != nil {
		e.Retention, e.Change = *c.Retention, c
	}
	return e
}

// RecordRetention appends an approved change to the log, signed with
// the appliance's current key (a key rotation line first when due).
func (a *Appliance) RecordRetention(c RetentionChange) error {
	if c.Retention != nil {
		if err := a.Cfg.CheckRetention(*c.Retention); err != nil {
			return err
		}
	}
	c.Kind = "retention-change"
	if c.Time.IsZero() {
		c.Time = a.Now().UTC()
	}
	if c.Delay != "" {
		d, err := time.ParseDuration(c.Delay)
		if err != nil || d <= 0 {
			return fmt.Errorf("retention change delay %q: not a positive duration", c.Delay)
		}
		eff := c.Time.Add(d)
		c.Effective = &eff
	}
	return a.appendRetention(c.Time, c)
}

func (a *Appliance) appendRetention(at time.Time, line any) error {
	key, err := a.keyFileSigner()
	if err != nil {
		return err
	}
	if key == nil {
		return fmt.Errorf("no signing key (appliance.signing_key_file): run kluis keys init")
	}
	ring, err := a.KeyRing()
	if err != nil {
		return err
	}
	_, err = ring.Append(a.retentionFile(), key, at, line)
	return err
}

// CancelRetention cancels tenant's pending (delayed) change of request:
// it then never takes effect. Refused when no such change is pending.
func (a *Appliance) CancelRetention(tenant, request, operator, reason string) (*RetentionChange, error) {
	if strings.TrimSpace(operator) == "" || strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("an operator and a reason are required")
	}
	l, err := a.ReadRetentionLog()
	if err != nil {
		return nil, err
	}
	p := l.Pending[tenant]
	if p == nil || p.Request != request {
		return nil, fmt.Errorf("tenant %s has no pending retention change of request %s (kluis status shows pending changes)", tenant, request)
	}
	c := RetentionCancel{Kind: "retention-cancel", Tenant: tenant, Request: request, Operator: operator, Reason: reason, Time: a.Now().UTC()}
	if err := a.appendRetention(c.Time, c); err != nil {
		return nil, err
	}
	return p, nil
}
