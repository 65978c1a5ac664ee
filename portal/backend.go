package portal

import (
	"context"
	"crypto/ed25519"
	"io"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
)

// Backend is what the daemon does for the portal once the service has
// decided a call is allowed: it holds the keys and the DSNs. Every
// dossier method writes its record (with the user, and the approver of a
// release) to the signed dossier access log, also when it fails.
type Backend interface {
	// Tenants lists the appliance's tenants.
	Tenants(ctx context.Context) ([]string, error)
	// Snapshots lists a tenant's snapshots, newest first.
	Snapshots(ctx context.Context, tenant string) ([]Snapshot, error)
	// Snapshot resolves "latest" or a unique id prefix.
	Snapshot(ctx context.Context, tenant, id string) (Snapshot, error)
	// DossierShow counts a dossier's rows per table (dossier show).
	DossierShow(ctx context.Context, a Access) (*DossierView, error)
	// DossierWrite writes a dossier as format (sql or json) to w
	// (dossier restore --format; nothing is written to disk).
	DossierWrite(ctx context.Context, a Access, format string, w io.Writer) error
	// DossierInto restores a dossier into the tenant's configured live
	// database with --on-conflict skip and returns the summary.
	DossierInto(ctx context.Context, a Access) (string, error)
	// Evidence is the evidence summary of tenants in [from, to).
	Evidence(ctx context.Context, tenants []string, from, to time.Time) (*EvidenceView, error)
	// EvidenceExport writes `evidence export` of [from, to) as a gzipped
	// tar to w (every report of the period; the summary of tenant, or of
	// all when empty).
	EvidenceExport(ctx context.Context, tenant string, from, to time.Time, w io.Writer) error
	// Retention is tenant's effective retention and its source; with
	// proposed, also how many of its snapshots proposed would forget
	// now. A proposal the config check would refuse (a negative count, a
	// restore-test RPO window beyond what it keeps daily) is an error.
	Retention(ctx context.Context, tenant string, proposed *Retention) (*RetentionView, error)
	// SetRetention records an approved retention change durably (signed,
	// in the state directory) and makes the daemon's retention use it.
	SetRetention(ctx context.Context, c RetentionSet) error
}

// RetentionSet is an approved retention change.
type RetentionSet struct {
	Tenant string
	// Retention is the new retention; nil: back to policy.retention.
	Retention *Retention
	Reason    string
	Requester string
	Approver  string
	Request   string
	// Digest is the request's digest the approver's passkey signed.
	Digest string
}

// ErasedError is a dossier method's error for a dossier in the erasure
// register (AVG art. 17) when no override was given.
type ErasedError struct {
	Snapshot string
	// On is the day of the erasure (YYYY-MM-DD, the appliance's time
	// zone).
	On  string
	Err error
}

func (e *ErasedError) Error() string { return e.Err.Error() }
func (e *ErasedError) Unwrap() error { return e.Err }

// Access is who reaches which dossier, for the access log.
type Access struct {
	User     string // the portal user (recorded as "portal:NAME")
	Approver string // the approver of the release, if any
	Request  string // the four-eyes request id, if any
	Tenant   string
	Snapshot string
	ID       string
	Reason   string
	Action   string // show, restore-sql, restore-json, restore-into
	// Override is set only for an approved erasure-override request: the
	// lawful ground, recorded as the access's override_erasure.
	Override string
}

// Event is one record of the portal log: logins, refusals, requests and
// approvals. It holds user names and request ids, never a password, a
// code, a token or a dossier's content.
type Event struct {
	Kind     string    `json:"kind"` // "portal"
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	User     string    `json:"user,omitempty"`
	Approver string    `json:"approver,omitempty"`
	Client   string    `json:"client,omitempty"`
	Tenant   string    `json:"tenant,omitempty"`
	Request  string    `json:"request,omitempty"`
	Result   string    `json:"result"` // "ok" or why it was refused
}

// EventLog records portal events.
type EventLog interface {
	Log(e Event) error
}

// EventsFileName is the portal log in the state directory: a hash chain
// signed with the appliance signing key (verify it with `kluis
// access-log verify --file`).
const EventsFileName = "portal-log.jsonl"

// ChainLog appends events to a signed hash chain (evidence/chain).
type ChainLog struct {
	Path string
	Key  ed25519.PrivateKey
	mu   sync.Mutex
}

// Log appends e.
func (c *ChainLog) Log(e Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.Kind = "portal"
	_, err := chain.Append(c.Path, c.Key, e.Time, e)
	return err
}
