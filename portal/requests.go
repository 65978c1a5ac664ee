package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kluis-nl/kluis/durable"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/kluis-nl/kluis/restore/dossier"
)

// Request states.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateRejected = "rejected"
	StateUsed     = "used"
	StateExpired  = "expired"
)

// fourEyes is a stored request. Core is what the approver signs (its
// digest is part of the WebAuthn challenge, see approvalChallenge).
type fourEyes struct {
	Core     requestCore `json:"core"`
	Digest   string      `json:"digest"`
	State    string      `json:"state"`
	Approver string      `json:"approver,omitempty"`
	Approved time.Time   `json:"approved,omitzero"`
	// Credential is the approver's credential id that signed.
	Credential   []byte `json:"credential,omitempty"`
	DownloadHash string `json:"download_hash,omitempty"`
	// Download is the one-time token, kept only until the requester has
	// seen it once (the request list shows it).
	Download string `json:"download,omitempty"`
	Result   string `json:"result,omitempty"`
}

// requestCore is the signed part of a request.
type requestCore struct {
	V         int       `json:"v"`
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Tenant    string    `json:"tenant,omitempty"`
	Snapshot  string    `json:"snapshot,omitempty"`
	DossierID string    `json:"dossier_id,omitempty"`
	Subject   string    `json:"subject,omitempty"` // the user of a user reset
	Reason    string    `json:"reason"`
	Delivery  string    `json:"delivery,omitempty"`
	Requester string    `json:"requester"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// Taken, Rows and Tables are the dossier's content as the daemon
	// counted it when the request was made (a dossier release only):
	// what the approver sees and signs. Empty in requests stored before
	// they existed, so those keep their digest.
	Taken  time.Time    `json:"taken,omitzero"`
	Rows   int64        `json:"rows,omitempty"`
	Tables []TableCount `json:"tables,omitempty"`
	// ErasedOn is the day (YYYY-MM-DD, the appliance's time zone) the
	// dossier of an erasure override was erased, as
	// the daemon read the register when the request was made.
	ErasedOn string `json:"erased_on,omitempty"`
	// A retention change: the tenant's effective retention when it was
	// asked (approval is refused when it changed meanwhile), the new one
	// (ToPolicy: back to policy.retention, whose values To holds then),
	// and what the daemon worked out for the approver.
	RetentionFrom *Retention `json:"retention_from,omitempty"`
	RetentionTo   *Retention `json:"retention_to,omitempty"`
	ToPolicy      bool       `json:"to_policy,omitempty"`
	Shortens      bool       `json:"shortens,omitempty"`
	Forgets       int        `json:"forgets,omitempty"`
}

// digest is SHA-256 of the core's JSON: what the approver's
// authenticator signs, within the WebAuthn challenge (approvalChallenge).
func (c requestCore) digest() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return sha(append([]byte("kluis four-eyes request v1\n"), b...))
}

type requestBook struct {
	path string
	mu   sync.Mutex
	reqs map[string]*fourEyes
}

func loadRequests(path string) (*requestBook, error) {
	b := &requestBook{path: path, reqs: map[string]*fourEyes{}}
	if path == "" {
		return b, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	var list []*fourEyes
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, r := range list {
		// A stored request whose digest does not match its core was
		// changed on disk: it is dropped, not trusted.
		if digestHex(r.Core.digest()) != r.Digest {
			continue
		}
		b.reqs[r.Core.ID] = r
	}
	return b, nil
}

// save writes the book; the caller holds mu.
func (b *requestBook) save() error {
	if b.path == "" {
		return nil
	}
	list := make([]*fourEyes, 0, len(b.reqs))
	for _, r := range b.reqs {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Core.Created.Before(list[j].Core.Created) })
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return durable.WriteFile(b.path, data, durable.Options{})
}

// view returns r as u may see it (the download token only to its
// requester).
func (r *fourEyes) view(u *User, now time.Time) RequestView {
	st := r.State
	if (st == StatePending || st == StateApproved) && now.After(r.Core.Expires) {
		st = StateExpired
	}
	v := RequestView{ID: r.Core.ID, Kind: r.Core.Kind, State: st, Tenant: r.Core.Tenant, Snapshot: r.Core.Snapshot,
		DossierID: r.Core.DossierID, Subject: r.Core.Subject, Reason: r.Core.Reason, Delivery: r.Core.Delivery,
		Requester: r.Core.Requester, Approver: r.Approver, Created: r.Core.Created, Expires: r.Core.Expires,
		Digest: r.Digest, Result: r.Result, Mine: r.Core.Requester == u.Name,
		Taken: r.Core.Taken, Rows: r.Core.Rows, Tables: slices.Clone(r.Core.Tables), ErasedOn: r.Core.ErasedOn,
		RetentionFrom: r.Core.RetentionFrom, RetentionTo: r.Core.RetentionTo, ToPolicy: r.Core.ToPolicy,
		Shortens: r.Core.Shortens, Forgets: r.Core.Forgets}
	if v.Mine && st == StateApproved {
		v.Download = r.Download
	}
	v.CanApprove = !v.Mine && st == StatePending && mayApprove(u, r.Core.Kind) && r.Core.Subject != u.Name
	return v
}

// mayApprove reports whether u's role approves requests of kind.
func mayApprove(u *User, kind string) bool {
	switch kind {
	case KindDossierRelease, KindErasureOverride, KindRetentionChange:
		return u.Role == RoleApprover || u.Role == RoleAdmin
	case KindUserReset:
		return u.Role == RoleAdmin
	}
	return false
}

// maySee reports whether u may see request r.
func maySee(u *User, r *fourEyes) bool {
	if r.Core.Requester == u.Name {
		return true
	}
	return mayApprove(u, r.Core.Kind)
}

func (s *Service) requestCreate(ctx context.Context, u *User, c Call) Reply {
	if r, ok := s.practiceTenant(ctx, u, c, OpRequestCreate); !ok {
		return r
	}
	id, err := dossier.CanonicalID(c.ID)
	if err != nil {
		return refusal(http.StatusBadRequest, "client id: %v", err)
	}
	if strings.TrimSpace(c.Reason) == "" {
		return refusal(http.StatusBadRequest, "give a reason (it is recorded and the approver reads it)")
	}
	if c.Kind != "" && c.Kind != KindDossierRelease && c.Kind != KindErasureOverride {
		return refusal(http.StatusBadRequest, "kind %q: want %s or %s", c.Kind, KindDossierRelease, KindErasureOverride)
	}
	if !slices.Contains([]string{DeliverySQL, DeliveryJSON, DeliveryInto}, c.Delivery) {
		return refusal(http.StatusBadRequest, "delivery %q: want sql, json or restore-into", c.Delivery)
	}
	// An erased dossier goes back into a live database only by ops on
	// the CLI: through the portal it is a download for the lawful ground.
	if c.Kind == KindErasureOverride && c.Delivery == DeliveryInto {
		return refusal(http.StatusBadRequest, "an erased dossier is released as a download only (sql or json)")
	}
	if c.Delivery == DeliveryInto && s.web.RestoreTargets[c.Tenant] == "" {
		return refusal(http.StatusBadRequest, "no live database is configured for this tenant: ask for a download")
	}
	// The request names one snapshot: what is approved is what is
	// released, even when a newer snapshot is taken meanwhile.
	snap, err := s.opts.Backend.Snapshot(ctx, c.Tenant, c.Snapshot)
	if err != nil {
		return refusal(http.StatusBadRequest, "snapshot: %v", err)
	}
	// The daemon counts the dossier itself, now, in the named snapshot:
	// the counts the approver sees are part of the signed core, so
	// neither the web process nor the requester's form can change them.
	dv, err := s.opts.Backend.DossierShow(ctx, Access{User: u.Name, Tenant: c.Tenant, Snapshot: snap.ID, ID: id, Reason: strings.TrimSpace(c.Reason), Action: "show"})
	var erased *ErasedError
	if c.Kind == KindErasureOverride {
		// An override is asked for a dossier the daemon finds in the
		// erasure register now; nothing of it is counted or shown before
		// the approval.
		if !errors.As(err, &erased) {
			if err == nil {
				return refusal(http.StatusBadRequest, "dossier %s is not erased: ask for a release", id)
			}
			return refusal(http.StatusBadRequest, "%v", err)
		}
		return s.addRequest(u, c, requestCore{Kind: KindErasureOverride, Tenant: c.Tenant, Snapshot: snap.ID, DossierID: id,
			Reason: strings.TrimSpace(c.Reason), Delivery: c.Delivery, ErasedOn: erased.On})
	}
	if err != nil {
		return refusal(http.StatusBadRequest, "%v", err)
	}
	return s.addRequest(u, c, requestCore{Kind: KindDossierRelease, Tenant: c.Tenant, Snapshot: snap.ID, DossierID: id,
		Reason: strings.TrimSpace(c.Reason), Delivery: c.Delivery, Taken: dv.Taken.UTC(), Rows: dv.Rows, Tables: dv.Tables})
}

func (s *Service) userResetRequest(u *User, c Call) Reply {
	if u.Role != RoleAdmin {
		return s.refuse(u, c, OpUserResetRequest, "")
	}
	if _, err := s.opts.Store.Get(c.User); err != nil {
		return refusal(http.StatusNotFound, "no such user")
	}
	if strings.TrimSpace(c.Reason) == "" {
		return refusal(http.StatusBadRequest, "give a reason")
	}
	return s.addRequest(u, c, requestCore{Kind: KindUserReset, Subject: c.User, Reason: strings.TrimSpace(c.Reason)})
}

// retentionRequest asks for a retention change of one tenant: an admin
// asks, an approver or another admin approves. The daemon states the
// current retention and what the new one forgets in the signed core.
func (s *Service) retentionRequest(ctx context.Context, u *User, c Call) Reply {
	if u.Role != RoleAdmin {
		return s.refuse(u, c, OpRetentionRequest, c.Tenant)
	}
	if strings.TrimSpace(c.Reason) == "" {
		return refusal(http.StatusBadRequest, "give a reason (it is recorded and the approver reads it)")
	}
	if (c.Retention == nil) == !c.ToPolicy {
		return refusal(http.StatusBadRequest, "give the new retention, or ask to go back to policy.retention")
	}
	all, err := s.opts.Backend.Tenants(ctx)
	if err != nil {
		return refusal(500, "listing tenants: %v", err)
	}
	if !slices.Contains(all, c.Tenant) {
		return refusal(http.StatusNotFound, "no such tenant")
	}
	cur, err := s.opts.Backend.Retention(ctx, c.Tenant, nil)
	if err != nil {
		return refusal(500, "%v", err)
	}
	to := cur.Policy
	if c.Retention != nil {
		to = *c.Retention
	}
	// Back to policy is a change when a request's retention holds, even
	// with the same counts (a later config change then applies).
	if to == cur.Effective && !(c.ToPolicy && cur.Source != SourcePolicy) {
		return refusal(http.StatusBadRequest, "tenant %s already has this retention (%s)", c.Tenant, to)
	}
	prop, err := s.opts.Backend.Retention(ctx, c.Tenant, &to)
	if err != nil {
		return refusal(http.StatusBadRequest, "%v", err)
	}
	from := cur.Effective
	return s.addRequest(u, c, requestCore{Kind: KindRetentionChange, Tenant: c.Tenant, Reason: strings.TrimSpace(c.Reason),
		RetentionFrom: &from, RetentionTo: &to, ToPolicy: c.ToPolicy, Shortens: from.Shorter(to), Forgets: prop.Forgets})
}

// SourcePolicy is a RetentionView's Source when no approved change holds.
const SourcePolicy = "policy.retention"

// retention lists the tenants' effective retention (admin and approver).
func (s *Service) retention(ctx context.Context, u *User, c Call) Reply {
	if u.Role != RoleAdmin && u.Role != RoleApprover {
		return s.refuse(u, c, OpRetention, c.Tenant)
	}
	all, err := s.opts.Backend.Tenants(ctx)
	if err != nil {
		return refusal(500, "listing tenants: %v", err)
	}
	out := []RetentionView{}
	for _, t := range all {
		v, err := s.opts.Backend.Retention(ctx, t, nil)
		if err != nil {
			return refusal(500, "%v", err)
		}
		out = append(out, *v)
	}
	return Reply{Status: 200, Retention: out}
}

func (s *Service) addRequest(u *User, c Call, core requestCore) Reply {
	now := s.now().UTC().Truncate(time.Second)
	core.V, core.ID, core.Requester, core.Created, core.Expires = 1, randomToken()[:16], u.Name, now, now.Add(s.web.RequestTTL.D())
	r := &fourEyes{Core: core, Digest: digestHex(core.digest()), State: StatePending}
	s.reqs.mu.Lock()
	s.reqs.reqs[core.ID] = r
	err := s.reqs.save()
	s.reqs.mu.Unlock()
	if err != nil {
		return refusal(500, "storing the request: %v", err)
	}
	s.event(Event{Event: "request-" + core.Kind, User: u.Name, Client: c.Client, Tenant: core.Tenant, Request: core.ID, Result: "ok"})
	v := r.view(u, s.now())
	return Reply{Status: 200, Req: &v}
}

func (s *Service) requestList(u *User) Reply {
	now := s.now()
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	out := []RequestView{}
	for _, r := range s.reqs.reqs {
		if maySee(u, r) && (r.Core.Tenant == "" || u.MayTenant(r.Core.Tenant)) {
			out = append(out, r.view(u, now))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return Reply{Status: 200, Requests: out}
}

// find returns request c.Request if u may see it; a request u may not
// see is "not found", the same as one that does not exist.
func (s *Service) find(u *User, c Call, op string) (*fourEyes, Reply) {
	s.reqs.mu.Lock()
	r := s.reqs.reqs[c.Request]
	s.reqs.mu.Unlock()
	if r == nil || !maySee(u, r) || (r.Core.Tenant != "" && !u.MayTenant(r.Core.Tenant)) {
		if r != nil {
			s.event(Event{Event: op, User: u.Name, Client: c.Client, Request: c.Request, Result: "refused: request not visible to this user"})
		}
		return nil, refusal(http.StatusNotFound, "no such request")
	}
	return r, okReply
}

func (s *Service) requestOne(u *User, c Call) Reply {
	r, rep := s.find(u, c, OpRequest)
	if r == nil {
		return rep
	}
	s.reqs.mu.Lock()
	v := r.view(u, s.now())
	s.reqs.mu.Unlock()
	return Reply{Status: 200, Req: &v}
}

// approvable checks that u may approve r now: the right role, not the
// requester, a registered passkey, the request pending and unexpired.
func (s *Service) approvable(u *User, r *fourEyes, c Call, op string) (Reply, bool) {
	why := ""
	switch {
	case !mayApprove(u, r.Core.Kind):
		why = "role " + u.Role + " does not approve " + r.Core.Kind
	case r.Core.Requester == u.Name:
		why = "the requester cannot approve their own request"
	case r.Core.Kind == KindUserReset && r.Core.Subject == u.Name:
		why = "a user cannot approve their own reset"
	case r.State != StatePending:
		why = "request is " + r.State
	case s.now().After(r.Core.Expires):
		why = "request expired"
	case len(u.Credentials) == 0:
		why = "approver has no passkey"
	}
	if why != "" {
		s.event(Event{Event: op, User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "refused: " + why})
		status := http.StatusForbidden
		if strings.HasPrefix(why, "request ") {
			status = http.StatusConflict
		}
		return refusal(status, "cannot approve: %s", why), false
	}
	return okReply, true
}

func approvalKey(session, id string) string { return tokenHash(session) + "/" + id }

// approvalChallenge is the WebAuthn challenge of one approval attempt:
// SHA-256 of the request's digest and a single-use nonce the daemon
// made in approve-begin. The assertion still signs the request (its
// digest is in the challenge), and it signs one attempt only: an
// assertion the daemon refused cannot be sent again later.
func approvalChallenge(digest, nonce []byte) []byte {
	return sha(append(append([]byte("kluis approval v1\n"), digest...), nonce...))
}

// pendingApproval is what approve-begin keeps for approve-finish, by
// session and request: the WebAuthn session data, the nonce of the
// challenge and when the attempt expires.
type pendingApproval struct {
	sd      webauthn.SessionData
	nonce   []byte
	expires time.Time
}

// approvalTTL is how long an approval attempt (approve-begin to
// approve-finish) stays open.
const approvalTTL = 5 * time.Minute

func (s *Service) approveBegin(ctx context.Context, u *User, c Call) Reply {
	r, rep := s.find(u, c, OpApproveBegin)
	if r == nil {
		return rep
	}
	s.reqs.mu.Lock()
	rep, ok := s.approvable(u, r, c, OpApproveBegin)
	if ok {
		rep, ok = s.stillCurrent(ctx, u, r, c)
	}
	s.reqs.mu.Unlock()
	if !ok {
		return rep
	}
	nonce := randomBytes(32)
	opts, sd, err := s.wa.BeginLogin(waUser{u}, webauthn.WithChallenge(approvalChallenge(r.Core.digest(), nonce)))
	if err != nil {
		return refusal(500, "passkey: %v", err)
	}
	now := s.now()
	s.mu.Lock()
	for k, pa := range s.approvals { // drop attempts never finished
		if !now.Before(pa.expires) {
			delete(s.approvals, k)
		}
	}
	s.approvals[approvalKey(c.Session, r.Core.ID)] = &pendingApproval{sd: *sd, nonce: nonce, expires: now.Add(approvalTTL)}
	s.mu.Unlock()
	b, _ := json.Marshal(opts)
	return Reply{Status: 200, Options: b}
}

// stillCurrent refuses an approval of what no longer holds: a
// retention change whose tenant's retention changed since the request.
// It runs in approve-begin and again before the signature is verified.
// The caller holds s.reqs.mu.
func (s *Service) stillCurrent(ctx context.Context, u *User, r *fourEyes, c Call) (Reply, bool) {
	if r.Core.Kind != KindRetentionChange {
		return okReply, true
	}
	// What the approver signs must still be what it changes: the
	// tenant's retention has not changed since the request.
	cur, err := s.opts.Backend.Retention(ctx, r.Core.Tenant, nil)
	if err != nil {
		return refusal(500, "%v", err), false
	}
	// Back to policy is what the approver saw as policy.retention.
	if r.Core.RetentionFrom == nil || r.Core.RetentionTo == nil || cur.Effective != *r.Core.RetentionFrom || r.Core.ToPolicy && cur.Policy != *r.Core.RetentionTo {
		s.event(Event{Event: "approve", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "refused: the retention changed since the request"})
		return refusal(http.StatusConflict, "cannot approve: the tenant's retention changed since the request (now %s): ask again", cur.Effective), false
	}
	return okReply, true
}

func (s *Service) approveFinish(ctx context.Context, u *User, c Call) Reply {
	r, rep := s.find(u, c, OpApproveFinish)
	if r == nil {
		return rep
	}
	// The attempt approve-begin made for this session and request is
	// used up here, before anything is verified: one attempt, one
	// assertion.
	s.mu.Lock()
	k := approvalKey(c.Session, c.Request)
	pa := s.approvals[k]
	delete(s.approvals, k)
	s.mu.Unlock()
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	if rep, ok := s.approvable(u, r, c, OpApproveFinish); !ok {
		return rep
	}
	if pa == nil || !s.now().Before(pa.expires) {
		s.event(Event{Event: "approve", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "refused: no open approval (approve-begin missing, used or expired); the passkey's signature does not verify"})
		return refusal(http.StatusForbidden, "the approval was not accepted: the passkey's signature does not verify for this request (start the approval again)")
	}
	if rep, ok := s.stillCurrent(ctx, u, r, c); !ok {
		return rep
	}
	// The challenge verified is made of the digest of the stored request
	// and this attempt's nonce, never one the caller chose.
	want := pa.sd
	want.Challenge = b64url(approvalChallenge(r.Core.digest(), pa.nonce))
	want.UserID = u.WebAuthnID
	want.RelyingPartyID = s.web.RPID
	if want.Expires.IsZero() || want.Expires.After(r.Core.Expires) {
		want.Expires = r.Core.Expires
	}
	cred, err := s.assertion(u, want, c.Credential)
	if err != nil {
		s.event(Event{Event: "approve", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "refused: " + err.Error()})
		return refusal(http.StatusForbidden, "the approval was not accepted: the passkey's signature does not verify for this request")
	}
	if _, err := s.updateCredential(u.Name, cred); err != nil {
		return refusal(500, "%v", err)
	}
	r.State, r.Approver, r.Approved, r.Credential = StateApproved, u.Name, s.now().UTC(), cred.ID
	msg := "approved"
	switch r.Core.Kind {
	case KindRetentionChange:
		set := RetentionSet{Tenant: r.Core.Tenant, Reason: r.Core.Reason, Requester: r.Core.Requester, Approver: u.Name, Request: r.Core.ID, Digest: r.Digest}
		if !r.Core.ToPolicy {
			set.Retention = r.Core.RetentionTo
		}
		err := s.opts.Backend.SetRetention(ctx, set)
		res := "ok"
		if err != nil {
			res = "failed: " + err.Error()
		}
		s.event(Event{Event: "retention-change", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: res})
		if err != nil {
			r.State, r.Approver, r.Approved, r.Credential = StatePending, "", time.Time{}, nil
			return refusal(500, "recording the retention change: %v", err)
		}
		r.State, r.Result = StateUsed, "retention of "+r.Core.Tenant+" is now "+r.Core.RetentionTo.String()
		msg = r.Result
	case KindDossierRelease, KindErasureOverride:
		if r.Core.Delivery != DeliveryInto {
			tok := randomToken()
			r.Download, r.DownloadHash = tok, tokenHash(tok)
		}
	case KindUserReset:
		tok, err := s.opts.Store.Reset(r.Core.Subject, s.now(), s.web.RequestTTL.D())
		if err != nil {
			return refusal(500, "%v", err)
		}
		// The new enrolment link goes to the requester (the admin who
		// hands it over), shown once as this request's result.
		r.State, r.Result = StateUsed, "enrolment token: "+tok
		s.dropSessionsOf(r.Core.Subject)
	}
	if err := s.reqs.save(); err != nil {
		return refusal(500, "storing the approval: %v", err)
	}
	s.event(Event{Event: "approve", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "ok"})
	return Reply{Status: 200, Message: msg}
}

func (s *Service) dropSessionsOf(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, x := range s.sessions {
		if x.user == name {
			delete(s.sessions, h)
		}
	}
}

func (s *Service) reject(u *User, c Call) Reply {
	r, rep := s.find(u, c, OpReject)
	if r == nil {
		return rep
	}
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	if r.State != StatePending {
		return refusal(http.StatusConflict, "request is %s", r.State)
	}
	// The requester withdraws; an approver rejects.
	if r.Core.Requester != u.Name && !mayApprove(u, r.Core.Kind) {
		return s.refuse(u, c, OpReject, r.Core.Tenant)
	}
	r.State, r.Approver = StateRejected, u.Name
	if err := s.reqs.save(); err != nil {
		return refusal(500, "%v", err)
	}
	s.event(Event{Event: "reject", User: r.Core.Requester, Approver: u.Name, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "ok"})
	return okReply
}

// released checks that u may take approved release c.Request now, and
// marks it used: a release is delivered once.
func (s *Service) released(u *User, c Call, op, delivery string) (*fourEyes, Reply) {
	r, rep := s.find(u, c, op)
	if r == nil {
		return nil, rep
	}
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	why := ""
	switch {
	case r.Core.Kind != KindDossierRelease && r.Core.Kind != KindErasureOverride || r.Core.Requester != u.Name || u.Role != RolePractice:
		why = "only the practice user who asked receives a release"
	case r.State != StateApproved:
		why = "request is " + r.State
	case s.now().After(r.Core.Expires):
		why = "release expired"
	case (delivery == DeliveryInto) != (r.Core.Delivery == DeliveryInto):
		why = "approved for " + r.Core.Delivery
	case delivery != DeliveryInto && (r.DownloadHash == "" || tokenHash(c.Token) != r.DownloadHash):
		why = "wrong or used download link"
	}
	if why != "" {
		s.event(Event{Event: op, User: u.Name, Approver: r.Approver, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: "refused: " + why})
		status := http.StatusConflict
		if strings.HasPrefix(why, "only") {
			status = http.StatusForbidden
		}
		return nil, refusal(status, "cannot deliver: %s", why)
	}
	r.State, r.Download, r.DownloadHash = StateUsed, "", ""
	if err := s.reqs.save(); err != nil {
		return nil, refusal(500, "%v", err)
	}
	return r, okReply
}

func (r *fourEyes) access(u *User, action string) Access {
	a := Access{User: u.Name, Approver: r.Approver, Request: r.Core.ID, Tenant: r.Core.Tenant, Snapshot: r.Core.Snapshot,
		ID: r.Core.DossierID, Reason: r.Core.Reason, Action: action}
	if r.Core.Kind == KindErasureOverride && r.State == StateUsed && r.Approver != "" {
		// Only an approved override request (taken just now by its
		// requester, released marks it used) lifts the erasure.
		a.Override = "four-eyes request " + r.Core.ID + ", approved by " + r.Approver + ": " + r.Core.Reason
	}
	return a
}

// Download checks the call like any other and, when the release may be
// delivered, writes the dossier to w after calling head with its file
// name. A refusal is returned without writing.
func (s *Service) Download(ctx context.Context, c Call, head func(filename string), w io.Writer) Reply {
	u, _, rep := s.auth(c, true, OpDownload)
	if u == nil {
		return rep
	}
	r, rep := s.released(u, c, OpDownload, DeliverySQL)
	if r == nil {
		return rep
	}
	head(fmt.Sprintf("dossier-%s-%s-%s.%s", r.Core.Tenant, safeFile(r.Core.DossierID), r.Core.Snapshot[:min(8, len(r.Core.Snapshot))], r.Core.Delivery))
	err := s.opts.Backend.DossierWrite(ctx, r.access(u, "restore-"+r.Core.Delivery), r.Core.Delivery, w)
	s.finish(u, r, c, OpDownload, err)
	if err != nil {
		return refusal(500, "writing the dossier: %v", err)
	}
	return okReply
}

func (s *Service) finish(u *User, r *fourEyes, c Call, op string, err error) {
	res := "ok"
	if err != nil {
		res = "failed: " + err.Error()
	}
	s.reqs.mu.Lock()
	r.Result = res
	s.reqs.save()
	s.reqs.mu.Unlock()
	s.event(Event{Event: op, User: u.Name, Approver: r.Approver, Client: c.Client, Tenant: r.Core.Tenant, Request: r.Core.ID, Result: res})
}

func (s *Service) restoreInto(ctx context.Context, u *User, c Call) Reply {
	r, rep := s.released(u, c, OpRestoreInto, DeliveryInto)
	if r == nil {
		return rep
	}
	msg, err := s.opts.Backend.DossierInto(ctx, r.access(u, "restore-into"))
	s.finish(u, r, c, OpRestoreInto, err)
	if err != nil {
		return refusal(500, "the restore failed: %v", err)
	}
	return Reply{Status: 200, Message: msg}
}

func (s *Service) evidence(ctx context.Context, u *User, c Call) Reply {
	if u.Role != RoleAuditor && u.Role != RoleAdmin {
		return s.refuse(u, c, OpEvidence, c.Tenant)
	}
	all, err := s.opts.Backend.Tenants(ctx)
	if err != nil {
		return refusal(500, "%v", err)
	}
	var tenants []string
	for _, t := range all {
		if u.MayTenant(t) && (c.Tenant == "" || c.Tenant == t) {
			tenants = append(tenants, t)
		}
	}
	if c.Tenant != "" && len(tenants) == 0 {
		return s.refuse(u, c, OpEvidence, c.Tenant)
	}
	from, to, err := period(c.From, c.To, s.now())
	if err != nil {
		return refusal(http.StatusBadRequest, "%v", err)
	}
	v, err := s.opts.Backend.Evidence(ctx, tenants, from, to)
	if err != nil {
		return refusal(500, "%v", err)
	}
	s.event(Event{Event: OpEvidence, User: u.Name, Client: c.Client, Tenant: c.Tenant, Result: "ok"})
	return Reply{Status: 200, Evidence: v}
}

// Export checks the call and writes the evidence export after calling
// head with its file name. The export holds every report of the period
// (the chain needs them all), so only an auditor of every tenant and an
// admin receive it.
func (s *Service) Export(ctx context.Context, c Call, head func(filename string), w io.Writer) Reply {
	u, _, rep := s.auth(c, false, OpEvidenceExport)
	if u == nil {
		return rep
	}
	if !(u.Role == RoleAuditor && len(u.Tenants) == 0 || u.Role == RoleAdmin) {
		return s.refuse(u, c, OpEvidenceExport, c.Tenant)
	}
	if c.Tenant != "" {
		all, err := s.opts.Backend.Tenants(ctx)
		if err != nil {
			return refusal(500, "%v", err)
		}
		if !slices.Contains(all, c.Tenant) {
			return refusal(http.StatusNotFound, "no such tenant")
		}
	}
	from, to, err := period(c.From, c.To, s.now())
	if err != nil {
		return refusal(http.StatusBadRequest, "%v", err)
	}
	head(fmt.Sprintf("kluis-evidence-%s-%s.tar.gz", from.Format("20060102"), to.AddDate(0, 0, -1).Format("20060102")))
	err = s.opts.Backend.EvidenceExport(ctx, c.Tenant, from, to, w)
	res := "ok"
	if err != nil {
		res = "failed: " + err.Error()
	}
	s.event(Event{Event: OpEvidenceExport, User: u.Name, Client: c.Client, Tenant: c.Tenant, Result: res})
	if err != nil {
		return refusal(500, "the export failed: %v", err)
	}
	return okReply
}

// period parses YYYY-MM-DD dates (to inclusive); default: the last 90
// days.
func period(from, to string, now time.Time) (time.Time, time.Time, error) {
	f, t := now.AddDate(0, 0, -90), now
	var err error
	if from != "" {
		if f, err = time.Parse("2006-01-02", from); err != nil {
			return f, t, fmt.Errorf("from: want YYYY-MM-DD")
		}
	}
	if to != "" {
		if t, err = time.Parse("2006-01-02", to); err != nil {
			return f, t, fmt.Errorf("to: want YYYY-MM-DD")
		}
		t = t.AddDate(0, 0, 1)
	}
	if !f.Before(t) {
		return f, t, fmt.Errorf("from must be before to")
	}
	return f, t, nil
}

func safeFile(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// safeName is a user name as typed, for the log: shortened, and only
// when it could be a user name (never a password typed in the wrong
// field).
func safeName(s string) string {
	if ValidUserName(s) {
		return s
	}
	return "(invalid user name)"
}
