package portal

import (
	"encoding/json"
	"fmt"
	"time"
)

// Roles.
const (
	// RolePractice is practice staff, bound to one or more tenants: their
	// own snapshots, dossiers and requests only.
	RolePractice = "practice"
	// RoleApprover is vendor staff who approve four-eyes requests.
	RoleApprover = "approver"
	// RoleAuditor sees evidence only (optionally of some tenants), never
	// a dossier.
	RoleAuditor = "auditor"
	// RoleAdmin manages users (by request) and approves like an approver.
	RoleAdmin = "admin"
)

// Roles lists the valid roles.
var Roles = []string{RolePractice, RoleApprover, RoleAuditor, RoleAdmin}

// Request kinds (four-eyes).
const (
	// KindDossierRelease releases one dossier of one snapshot to the
	// practice that asked: a download or a restore into its database.
	KindDossierRelease = "dossier-release"
	// KindUserReset issues a new enrolment link for a user.
	KindUserReset = "user-reset"
	// KindErasureOverride releases an erased dossier (AVG art. 17
	// register) to the practice that asked, for a lawful ground: the
	// portal's --override-erasure, a download only.
	KindErasureOverride = "erasure-override"
	// KindRetentionChange changes one tenant's retention (which snapshots
	// the nightly retention forgets), or puts it back to policy.retention.
	KindRetentionChange = "retention-change"
)

// Deliveries of a dossier release.
const (
	DeliverySQL  = "sql"
	DeliveryJSON = "json"
	DeliveryInto = "restore-into"
)

// Ops are the socket API's operations (POST /v1/OP).
const (
	OpLogin              = "login"
	OpLoginTOTP          = "login-totp"
	OpLoginPasskeyBegin  = "login-passkey-begin"
	OpLoginPasskeyFinish = "login-passkey-finish"
	OpOIDCBegin          = "oidc-begin"
	OpOIDCFinish         = "oidc-finish"
	OpLogout             = "logout"
	OpWhoami             = "whoami"
	OpEnrolInfo          = "enrol-info"
	OpEnrol              = "enrol"
	OpPasskeyAddBegin    = "passkey-add-begin"
	OpPasskeyAddFinish   = "passkey-add-finish"
	OpTenants            = "tenants"
	OpSnapshots          = "snapshots"
	OpDossierShow        = "dossier-show"
	OpRequestCreate      = "request-create"
	OpRequests           = "requests"
	OpRequest            = "request"
	OpApproveBegin       = "approve-begin"
	OpApproveFinish      = "approve-finish"
	OpReject             = "reject"
	OpDownload           = "download"
	OpRestoreInto        = "restore-into"
	OpEvidence           = "evidence"
	OpEvidenceExport     = "evidence-export"
	OpUsers              = "users"
	OpUserResetRequest   = "user-reset-request"
	OpRetention          = "retention"
	OpRetentionRequest   = "retention-request"
)

// Call is one request to the daemon. Session is the browser's session
// token; CSRF the token of the form (checked on every operation that
// changes or reveals something); Client the browser's address as the web
// process saw it (for logs and rate limits only). The rest depends on
// the operation.
type Call struct {
	Session string `json:"session,omitempty"`
	CSRF    string `json:"csrf,omitempty"`
	Client  string `json:"client,omitempty"`

	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	Code     string `json:"code,omitempty"`
	Ticket   string `json:"ticket,omitempty"`
	Token    string `json:"token,omitempty"`
	// Credential is a WebAuthn response (PublicKeyCredential as JSON).
	Credential json.RawMessage `json:"credential,omitempty"`
	// State and Binding end an identity provider's sign-in: the state
	// the provider sent back and the value of the browser's cookie that
	// was set when the sign-in began.
	State   string `json:"state,omitempty"`
	Binding string `json:"binding,omitempty"`

	Tenant   string `json:"tenant,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	ID       string `json:"dossier_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Delivery string `json:"delivery,omitempty"`
	Request  string `json:"request,omitempty"`
	// Kind of a request-create: "" or dossier-release, or
	// erasure-override.
	Kind string `json:"kind,omitempty"`
	// Retention is a retention-request's new retention; ToPolicy asks to
	// go back to policy.retention instead.
	Retention *Retention `json:"retention,omitempty"`
	ToPolicy  bool       `json:"to_policy,omitempty"`
	From      string     `json:"from,omitempty"`
	To        string     `json:"to,omitempty"`
}

// Reply is the daemon's answer. Status is an HTTP-like status: 200,
// 400 (bad input), 401 (no valid session or login failed), 403 (not
// allowed), 404, 409 (state: already approved, used, expired), 429
// (locked out or rate limited). Error is safe to show to the user.
type Reply struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`

	Ticket  string   `json:"ticket,omitempty"`
	Factors []string `json:"factors,omitempty"`
	// Session is set by a completed login (with its token) and by whoami.
	Session *Session `json:"session,omitempty"`
	// Options are WebAuthn options for navigator.credentials.
	Options json.RawMessage `json:"options,omitempty"`
	// Redirect is the identity provider's authorization URL and Binding
	// the value the browser keeps in a cookie until it comes back.
	Redirect string `json:"redirect,omitempty"`
	Binding  string `json:"binding,omitempty"`

	Enrol     *Enrol          `json:"enrol,omitempty"`
	Tenants   []string        `json:"tenants,omitempty"`
	Snapshots []Snapshot      `json:"snapshots,omitempty"`
	Dossier   *DossierView    `json:"dossier,omitempty"`
	Requests  []RequestView   `json:"requests,omitempty"`
	Req       *RequestView    `json:"req,omitempty"`
	Evidence  *EvidenceView   `json:"evidence,omitempty"`
	Users     []UserView      `json:"users,omitempty"`
	Retention []RetentionView `json:"retention,omitempty"`
	Message   string          `json:"message,omitempty"`
}

// Session is a logged-in browser. Token is only in the login's reply.
type Session struct {
	Token    string    `json:"token,omitempty"`
	CSRF     string    `json:"csrf"`
	User     string    `json:"user"`
	Role     string    `json:"role"`
	Tenants  []string  `json:"tenants,omitempty"`
	Passkeys int       `json:"passkeys"`
	Expires  time.Time `json:"expires"`
}

// Enrol is what the enrolment page shows: the account and its TOTP
// secret (base32 and otpauth URI) to put into an authenticator app.
type Enrol struct {
	User       string `json:"user"`
	Role       string `json:"role"`
	TOTPSecret string `json:"totp_secret"`
	TOTPURI    string `json:"totp_uri"`
	// OIDC: the account signs in at the identity provider, so the
	// enrolment sets no password.
	OIDC bool `json:"oidc,omitempty"`
}

// Snapshot is one snapshot of a tenant.
type Snapshot struct {
	ID      string    `json:"id"`
	Short   string    `json:"short"`
	Started time.Time `json:"started"`
}

// DossierView is what `dossier show` shows: table counts, no row.
type DossierView struct {
	Tenant   string       `json:"tenant"`
	Snapshot string       `json:"snapshot"`
	Taken    time.Time    `json:"taken"`
	ID       string       `json:"dossier_id"`
	Rows     int64        `json:"rows"`
	Tables   []TableCount `json:"tables"`
	// Erased: the dossier is in the erasure register (since ErasedOn,
	// YYYY-MM-DD in the appliance's time zone, as `erasure list` says):
	// nothing of it is shown; an erasure-override request may be made.
	Erased   bool   `json:"erased,omitempty"`
	ErasedOn string `json:"erased_on,omitempty"`
}

// TableCount is one table of a dossier.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Via   string `json:"via,omitempty"`
}

// RequestView is a four-eyes request as a user may see it. Download is
// the one-time download token, shown to the requester of an approved
// download only.
type RequestView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	State     string    `json:"state"`
	Tenant    string    `json:"tenant,omitempty"`
	Snapshot  string    `json:"snapshot,omitempty"`
	DossierID string    `json:"dossier_id,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Reason    string    `json:"reason"`
	Delivery  string    `json:"delivery,omitempty"`
	Requester string    `json:"requester"`
	Approver  string    `json:"approver,omitempty"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Digest    string    `json:"digest"`
	Download  string    `json:"download,omitempty"`
	Result    string    `json:"result,omitempty"`
	// Taken, Rows and Tables: the dossier's counts as the daemon stored
	// them in the request (a dossier release only).
	Taken  time.Time    `json:"taken,omitzero"`
	Rows   int64        `json:"rows,omitempty"`
	Tables []TableCount `json:"tables,omitempty"`
	// ErasedOn: the day the dossier of an erasure override was erased.
	ErasedOn string `json:"erased_on,omitempty"`
	// A retention change: the tenant's retention when it was asked
	// (From) and the one asked for (To; ToPolicy: back to
	// policy.retention), whether it keeps fewer snapshots, and how many
	// of the snapshots there were then it forgets.
	RetentionFrom *Retention `json:"retention_from,omitempty"`
	RetentionTo   *Retention `json:"retention_to,omitempty"`
	ToPolicy      bool       `json:"to_policy,omitempty"`
	Shortens      bool       `json:"shortens,omitempty"`
	Forgets       int        `json:"forgets,omitempty"`
	// Mine: the caller asked for it (and so cannot approve it).
	Mine bool `json:"mine"`
	// CanApprove: the caller's role approves it, it is not theirs and it
	// is pending (the daemon checks again at approval).
	CanApprove bool `json:"can_approve"`
}

// Retention is which snapshots a tenant's retention keeps
// (policy.retention's keep_* counts; all zero keeps everything).
type Retention struct {
	KeepLast    int `json:"keep_last"`
	KeepDaily   int `json:"keep_daily"`
	KeepWeekly  int `json:"keep_weekly"`
	KeepMonthly int `json:"keep_monthly"`
}

// KeepsAll reports whether r keeps every snapshot (no retention runs).
func (r Retention) KeepsAll() bool {
	return r.KeepLast <= 0 && r.KeepDaily <= 0 && r.KeepWeekly <= 0 && r.KeepMonthly <= 0
}

// Shorter reports whether to keeps fewer snapshots than from in some
// respect: a count lowered, or a retention where from kept everything.
func (from Retention) Shorter(to Retention) bool {
	if to.KeepsAll() {
		return false
	}
	return from.KeepsAll() || to.KeepLast < from.KeepLast || to.KeepDaily < from.KeepDaily ||
		to.KeepWeekly < from.KeepWeekly || to.KeepMonthly < from.KeepMonthly
}

// String is r as in kluis.yaml.
func (r Retention) String() string {
	if r.KeepsAll() {
		return "keep everything"
	}
	return fmt.Sprintf("keep_last %d, keep_daily %d, keep_weekly %d, keep_monthly %d", r.KeepLast, r.KeepDaily, r.KeepWeekly, r.KeepMonthly)
}

// RetentionView is a tenant's effective retention and where it comes
// from: policy.retention, or an approved retention-change request.
type RetentionView struct {
	Tenant    string    `json:"tenant"`
	Effective Retention `json:"effective"`
	Policy    Retention `json:"policy"`
	// Source is "policy.retention" or "request ID" (then Approver,
	// Requester and Since say who and when).
	Source    string    `json:"source"`
	Request   string    `json:"request,omitempty"`
	Requester string    `json:"requester,omitempty"`
	Approver  string    `json:"approver,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	// Snapshots is how many the tenant has now, Forgets how many of them
	// a proposed retention forgets (Backend.Retention with a proposal).
	Snapshots int `json:"snapshots"`
	Forgets   int `json:"forgets"`
}

// EvidenceView is the auditor's evidence summary of one tenant (or all
// the auditor may see) in a period: no personal data.
type EvidenceView struct {
	Tenants  []string      `json:"tenants"`
	From     string        `json:"from"`
	To       string        `json:"to"`
	Verified bool          `json:"verified"`
	Problems []string      `json:"problems,omitempty"`
	Reports  []EvidenceRow `json:"reports"`
	Key      string        `json:"public_key"`
}

// EvidenceRow is one restore-test report.
type EvidenceRow struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant"`
	Location string    `json:"location"`
	Snapshot string    `json:"snapshot"`
	Verdict  string    `json:"verdict"`
	Verified bool      `json:"verified"`
}

// UserView is a user without secrets.
type UserView struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Tenants  []string  `json:"tenants,omitempty"`
	Disabled bool      `json:"disabled"`
	Enrolled bool      `json:"enrolled"`
	TOTP     bool      `json:"totp"`
	Passkeys int       `json:"passkeys"`
	Locked   bool      `json:"locked"`
	Created  time.Time `json:"created"`
	// OIDCSubject is the identity at the provider the user signs in
	// with (instead of a password).
	OIDCSubject string `json:"oidc_subject,omitempty"`
}
