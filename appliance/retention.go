package appliance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence/chain"
)

// RetentionFileName is the log of approved retention changes in the
// state directory: a hash chain signed with the appliance signing key
// (like the dossier access log; verify it with `kluis access-log verify
// --file`). Only the daemon writes it, after a four-eyes approval it
// verified itself (package portal); the config's policy.retention holds
// for every tenant without a change.
const RetentionFileName = "retention-changes.jsonl"

// RetentionChange is one line of the log: from Time on, Tenant keeps
// Retention (nil: policy.retention again).
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

// RetentionChanges returns the change in force per tenant. The log must
// verify with the appliance's key ring: one that does not is an error,
// never read as "no change" (a retention job then fails, forgetting
// nothing).
func (a *Appliance) RetentionChanges() (map[string]*RetentionChange, error) {
	path := a.retentionFile()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return map[string]*RetentionChange{}, nil
	}
	ring, err := a.KeyRing()
	if err != nil {
		return nil, err
	}
	if _, err := ring.VerifyFile(path); err != nil {
		return nil, fmt.Errorf("%s: %w", RetentionFileName, err)
	}
	entries, err := chain.Read(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RetentionFileName, err)
	}
	out := map[string]*RetentionChange{}
	for _, e := range entries {
		var c RetentionChange
		if err := json.Unmarshal(e.Body, &c); err != nil || c.Kind != "retention-change" {
			continue // a key rotation line
		}
		if c.Retention == nil {
			delete(out, c.Tenant)
			continue
		}
		out[c.Tenant] = &c
	}
	return out, nil
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
	c.Kind = "retention-change"
	if c.Time.IsZero() {
		c.Time = a.Now().UTC()
	}
	_, err = ring.Append(a.retentionFile(), key, c.Time, c)
	return err
}
