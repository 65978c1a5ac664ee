package portal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// Options configure a Service.
type Options struct {
	Store   *Store
	Backend Backend
	Events  EventLog
	// Web is the config's web: section (defaults are filled in).
	Web config.Web
	// RequestsPath keeps the four-eyes requests across restarts ("":
	// memory only).
	RequestsPath string
	Now          func() time.Time
	Log          *slog.Logger
	// OIDCClientSecret is the contents of web.oidc.client_secret_file
	// (with web.oidc set); OIDCHTTPClient reaches the provider (default:
	// a client with a 15 s timeout).
	OIDCClientSecret string
	OIDCHTTPClient   *http.Client
}

// Service makes every portal decision. It is safe for concurrent use.
type Service struct {
	opts Options
	web  config.Web
	wa   *webauthn.WebAuthn
	oidc *oidcClient // nil without web.oidc
	now  func() time.Time
	log  *slog.Logger

	mu        sync.Mutex
	sessions  map[string]*session // by token hash
	tickets   map[string]*ticket  // half logins (password done), by token hash
	regs      map[string]*webauthn.SessionData
	approvals map[string]*pendingApproval // by session hash + request id
	clients   map[string][]time.Time      // failed attempts per client address
	flows     map[string]*oidcFlow        // started OIDC sign-ins, by state hash
	reqs      *requestBook
}

type session struct {
	user     string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

type ticket struct {
	user     string
	expires  time.Time
	attempts int
	passkey  *webauthn.SessionData
}

// ticketTTL is how long a password-checked login waits for its second
// factor; ticketAttempts how many wrong codes it takes.
const (
	ticketTTL      = 5 * time.Minute
	ticketAttempts = 3
	// clientLimit failed attempts from one address in clientWindow make
	// that address wait (every user name).
	clientLimit  = 30
	clientWindow = 15 * time.Minute
)

// New returns a Service.
func New(opts Options) (*Service, error) {
	w := opts.Web.WithDefaults()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: w.RPID, RPDisplayName: "kluis", RPOrigins: []string{w.Origin},
		AuthenticatorSelection: protocol.AuthenticatorSelection{UserVerification: protocol.VerificationPreferred, ResidentKey: protocol.ResidentKeyRequirementDiscouraged},
	})
	if err != nil {
		return nil, fmt.Errorf("web.origin/rp_id: %w", err)
	}
	s := &Service{opts: opts, web: w, wa: wa, now: opts.Now, log: opts.Log,
		sessions: map[string]*session{}, tickets: map[string]*ticket{}, regs: map[string]*webauthn.SessionData{},
		approvals: map[string]*pendingApproval{}, clients: map[string][]time.Time{}, flows: map[string]*oidcFlow{}}
	if s.oidc, err = newOIDCClient(w, opts.OIDCClientSecret, opts.OIDCHTTPClient); err != nil {
		return nil, err
	}
	if s.reqs, err = loadRequests(opts.RequestsPath); err != nil {
		return nil, err
	}
	dummyHash() // now, so that the first unknown user's login costs what later ones do
	return s, nil
}

// refusal is a reply with an error status.
func refusal(status int, format string, args ...any) Reply {
	return Reply{Status: status, Error: fmt.Sprintf(format, args...)}
}

var okReply = Reply{Status: http.StatusOK}

func (s *Service) event(e Event) {
	e.Time = s.now().UTC()
	if s.opts.Events == nil {
		return
	}
	if err := s.opts.Events.Log(e); err != nil {
		s.log.Error("portal: writing the portal log", "err", err)
	}
}

// Handle answers one call. Download streams and is Download.
func (s *Service) Handle(ctx context.Context, op string, c Call) Reply {
	switch op {
	case OpLogin:
		return s.login(c)
	case OpLoginTOTP:
		return s.loginTOTP(c)
	case OpLoginPasskeyBegin:
		return s.loginPasskeyBegin(c)
	case OpLoginPasskeyFinish:
		return s.loginPasskeyFinish(c)
	case OpOIDCBegin:
		return s.oidcBegin(c)
	case OpOIDCFinish:
		return s.oidcFinish(ctx, c)
	case OpEnrolInfo:
		return s.enrolInfo(c)
	case OpEnrol:
		return s.enrol(c)
	case OpLogout:
		s.mu.Lock()
		delete(s.sessions, tokenHash(c.Session))
		s.mu.Unlock()
		return okReply
	}
	// Everything else needs a session; operations that change or reveal
	// something also the session's CSRF token.
	needCSRF := !slices.Contains([]string{OpWhoami, OpTenants, OpSnapshots, OpRequests, OpRequest, OpPasskeyAddBegin, OpApproveBegin, OpEvidence, OpUsers, OpRetention}, op)
	u, sess, rep := s.auth(c, needCSRF, op)
	if u == nil {
		return rep
	}
	switch op {
	case OpWhoami:
		return Reply{Status: http.StatusOK, Session: s.sessionView(u, sess, "")}
	case OpTenants:
		return s.tenants(ctx, u)
	case OpSnapshots:
		return s.snapshots(ctx, u, c)
	case OpDossierShow:
		return s.dossierShow(ctx, u, c)
	case OpRequestCreate:
		return s.requestCreate(ctx, u, c)
	case OpUserResetRequest:
		return s.userResetRequest(u, c)
	case OpRetentionRequest:
		return s.retentionRequest(ctx, u, c)
	case OpRetention:
		return s.retention(ctx, u, c)
	case OpRequests:
		return s.requestList(u)
	case OpRequest:
		return s.requestOne(u, c)
	case OpApproveBegin:
		return s.approveBegin(ctx, u, c)
	case OpApproveFinish:
		return s.approveFinish(ctx, u, c)
	case OpReject:
		return s.reject(u, c)
	case OpRestoreInto:
		return s.restoreInto(ctx, u, c)
	case OpPasskeyAddBegin:
		return s.passkeyAddBegin(u, c)
	case OpPasskeyAddFinish:
		return s.passkeyAddFinish(u, c)
	case OpEvidence:
		return s.evidence(ctx, u, c)
	case OpUsers:
		if u.Role != RoleAdmin {
			return s.refuse(u, c, op, "")
		}
		us, err := s.opts.Store.List()
		if err != nil {
			return refusal(500, "reading the users: %v", err)
		}
		var out []UserView
		for _, x := range us {
			out = append(out, x.View(s.now()))
		}
		return Reply{Status: 200, Users: out}
	}
	return refusal(http.StatusNotFound, "no such operation")
}

// refuse logs and returns a 403 for an operation u's role or scope does
// not allow.
func (s *Service) refuse(u *User, c Call, op, tenant string) Reply {
	s.event(Event{Event: op, User: u.Name, Client: c.Client, Tenant: tenant, Request: c.Request, Result: "refused: not allowed for role " + u.Role})
	return refusal(http.StatusForbidden, "not allowed")
}

// auth returns the session's user, checking expiry, idle time, the user
// (still enabled) and, when needCSRF, the CSRF token.
func (s *Service) auth(c Call, needCSRF bool, op string) (*User, *session, Reply) {
	now := s.now()
	h := tokenHash(c.Session)
	s.mu.Lock()
	sess := s.sessions[h]
	if sess != nil && (now.Sub(sess.created) >= s.web.SessionTTL.D() || now.Sub(sess.lastSeen) >= s.web.IdleTimeout.D()) {
		delete(s.sessions, h)
		sess = nil
	}
	s.mu.Unlock()
	if c.Session == "" || sess == nil {
		if c.Session != "" {
			s.event(Event{Event: op, Client: c.Client, Result: "refused: no valid session"})
		}
		return nil, nil, refusal(http.StatusUnauthorized, "not logged in (or the session ended)")
	}
	if needCSRF && subtle.ConstantTimeCompare([]byte(c.CSRF), []byte(sess.csrf)) != 1 {
		s.event(Event{Event: op, User: sess.user, Client: c.Client, Result: "refused: CSRF token missing or wrong"})
		return nil, nil, refusal(http.StatusForbidden, "the form is no longer valid: reload the page")
	}
	u, err := s.opts.Store.Get(sess.user)
	if err != nil || u.Disabled || !u.Enrolled() {
		s.mu.Lock()
		delete(s.sessions, h)
		s.mu.Unlock()
		return nil, nil, refusal(http.StatusUnauthorized, "not logged in (or the session ended)")
	}
	s.mu.Lock()
	sess.lastSeen = now
	s.mu.Unlock()
	return u, sess, okReply
}

func (s *Service) sessionView(u *User, sess *session, token string) *Session {
	return &Session{Token: token, CSRF: sess.csrf, User: u.Name, Role: u.Role, Tenants: u.Tenants, Passkeys: len(u.Credentials),
		Expires: sess.created.Add(s.web.SessionTTL.D()).UTC()}
}

// clientBlocked reports whether the address failed too often lately.
func (s *Service) clientBlocked(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := s.now().Add(-clientWindow)
	ts := s.clients[client]
	for len(ts) > 0 && ts[0].Before(cut) {
		ts = ts[1:]
	}
	s.clients[client] = ts
	return len(ts) >= clientLimit
}

func (s *Service) clientFailed(client string) {
	s.mu.Lock()
	s.clients[client] = append(s.clients[client], s.now())
	s.mu.Unlock()
}

// dummyHash makes a login of an unknown user cost what a known one does.
// It is computed by New, not when the package loads: every kluis command
// links this package, and an Argon2id hash costs ~0.1 s of CPU and 19 MiB.
var dummyHash = sync.OnceValue(func() string { return HashPassword("kluis-no-such-user") })

const loginFailed = "wrong user name or password"

func (s *Service) login(c Call) Reply {
	if s.clientBlocked(c.Client) {
		s.event(Event{Event: "login", User: safeName(c.User), Client: c.Client, Result: "refused: too many failed attempts from this address"})
		return refusal(http.StatusTooManyRequests, "too many failed attempts: try again later")
	}
	now := s.now()
	u, err := s.opts.Store.Get(c.User)
	if err != nil || u.Disabled || u.Password == "" || u.OIDCSubject != "" {
		CheckPassword(dummyHash(), c.Password)
		s.clientFailed(c.Client)
		why := "unknown, disabled or not enrolled user"
		if err == nil && u.OIDCSubject != "" {
			// The provider is this user's first factor: a user it no
			// longer lets in must not fall back to a password.
			why = "the user signs in at the identity provider, not with a password"
		}
		s.event(Event{Event: "login", User: safeName(c.User), Client: c.Client, Result: "refused: " + why})
		return refusal(http.StatusUnauthorized, loginFailed)
	}
	if now.Before(u.LockedUntil) {
		s.event(Event{Event: "login", User: u.Name, Client: c.Client, Result: "refused: locked out"})
		return refusal(http.StatusTooManyRequests, "this account is locked after too many failed attempts until %s UTC", u.LockedUntil.UTC().Format("15:04"))
	}
	if !CheckPassword(u.Password, c.Password) {
		s.failed(u.Name, c, "login", "wrong password")
		return refusal(http.StatusUnauthorized, loginFailed)
	}
	return s.halfLogin(u, c, "login-password", "ok")
}

// halfLogin issues a ticket for u's second factor after the first
// (password or identity provider) and logs ev with result.
func (s *Service) halfLogin(u *User, c Call, ev, result string) Reply {
	now := s.now()
	tok := randomToken()
	s.mu.Lock()
	s.tickets[tokenHash(tok)] = &ticket{user: u.Name, expires: now.Add(ticketTTL)}
	s.mu.Unlock()
	var factors []string
	if u.TOTP != "" {
		factors = append(factors, "totp")
	}
	if len(u.Credentials) > 0 {
		factors = append(factors, "passkey")
	}
	s.event(Event{Event: ev, User: u.Name, Client: c.Client, Result: result})
	return Reply{Status: 200, Ticket: tok, Factors: factors}
}

// failed counts a failed password or code of user and locks the account
// at web.lock_after.
func (s *Service) failed(name string, c Call, ev, why string) {
	s.clientFailed(c.Client)
	now := s.now()
	locked := false
	s.opts.Store.Update(name, func(u *User) error {
		u.Failures++
		if u.Failures >= s.web.LockAfter {
			u.LockedUntil = now.Add(s.web.LockFor.D())
			u.Failures = 0
			locked = true
		}
		return nil
	})
	s.event(Event{Event: ev, User: name, Client: c.Client, Result: "refused: " + why})
	if locked {
		s.event(Event{Event: "lockout", User: name, Client: c.Client, Result: fmt.Sprintf("locked for %s after %d failed attempts", s.web.LockFor.D(), s.web.LockAfter)})
		// A locked account's half logins end too.
		s.mu.Lock()
		for h, t := range s.tickets {
			if t.user == name {
				delete(s.tickets, h)
			}
		}
		s.mu.Unlock()
	}
}

// takeTicket returns the half login of c.Ticket (nil when unknown or
// expired).
func (s *Service) ticket(c Call) *ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := tokenHash(c.Ticket)
	t := s.tickets[h]
	if t == nil || s.now().After(t.expires) || c.Ticket == "" {
		delete(s.tickets, h)
		return nil
	}
	return t
}

func (s *Service) dropTicket(c Call) {
	s.mu.Lock()
	delete(s.tickets, tokenHash(c.Ticket))
	s.mu.Unlock()
}

// totpOpts are RFC 6238's defaults, as every authenticator app uses.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the time step in [now-30s, now+30s] whose code is
// code, or 0.
func totpStep(secret, code string, now time.Time) int64 {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0
	}
	base := now.Unix() / 30
	for _, st := range []int64{base, base - 1, base + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(st*30, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return st
		}
	}
	return 0
}

func (s *Service) loginTOTP(c Call) Reply {
	t := s.ticket(c)
	if t == nil {
		s.event(Event{Event: "login-totp", Client: c.Client, Result: "refused: no valid login ticket"})
		return refusal(http.StatusUnauthorized, "the login expired: start again")
	}
	now := s.now()
	var step int64
	u, err := s.opts.Store.Update(t.user, func(u *User) error {
		if u.Disabled || now.Before(u.LockedUntil) {
			return errors.New("locked")
		}
		step = totpStep(u.TOTP, c.Code, now)
		if u.TOTP == "" || step == 0 || step <= u.LastTOTPStep {
			step = 0
			return errors.New("wrong code")
		}
		u.LastTOTPStep, u.Failures = step, 0
		return nil
	})
	if err != nil || u == nil {
		if err != nil && err.Error() == "locked" {
			s.dropTicket(c)
			s.event(Event{Event: "login-totp", User: t.user, Client: c.Client, Result: "refused: locked out"})
			return refusal(http.StatusTooManyRequests, "this account is locked after too many failed attempts")
		}
		s.failed(t.user, c, "login-totp", "wrong or reused code")
		s.mu.Lock()
		t.attempts++
		if t.attempts >= ticketAttempts {
			delete(s.tickets, tokenHash(c.Ticket))
		}
		s.mu.Unlock()
		return refusal(http.StatusUnauthorized, "wrong code")
	}
	return s.startSession(u, c, "login-totp")
}

// startSession ends the half login (and the session the browser had, if
// any: a new session id at every login) and issues a new session.
func (s *Service) startSession(u *User, c Call, ev string) Reply {
	now := s.now()
	tok := randomToken()
	sess := &session{user: u.Name, csrf: randomToken(), created: now, lastSeen: now}
	s.mu.Lock()
	delete(s.tickets, tokenHash(c.Ticket))
	delete(s.sessions, tokenHash(c.Session))
	s.sessions[tokenHash(tok)] = sess
	s.mu.Unlock()
	s.event(Event{Event: ev, User: u.Name, Client: c.Client, Result: "ok"})
	return Reply{Status: 200, Session: s.sessionView(u, sess, tok)}
}

func (s *Service) loginPasskeyBegin(c Call) Reply {
	t := s.ticket(c)
	if t == nil {
		return refusal(http.StatusUnauthorized, "the login expired: start again")
	}
	u, err := s.opts.Store.Get(t.user)
	if err != nil || len(u.Credentials) == 0 {
		return refusal(http.StatusBadRequest, "no passkey registered for this account")
	}
	opts, sd, err := s.wa.BeginLogin(waUser{u})
	if err != nil {
		return refusal(500, "passkey: %v", err)
	}
	s.mu.Lock()
	t.passkey = sd
	s.mu.Unlock()
	b, _ := json.Marshal(opts)
	return Reply{Status: 200, Options: b}
}

func (s *Service) loginPasskeyFinish(c Call) Reply {
	t := s.ticket(c)
	if t == nil {
		s.event(Event{Event: "login-passkey", Client: c.Client, Result: "refused: no valid login ticket"})
		return refusal(http.StatusUnauthorized, "the login expired: start again")
	}
	s.mu.Lock()
	sd := t.passkey
	t.passkey = nil
	s.mu.Unlock()
	u, err := s.opts.Store.Get(t.user)
	if err != nil || sd == nil {
		return refusal(http.StatusBadRequest, "start the passkey login first")
	}
	if s.now().Before(u.LockedUntil) || u.Disabled {
		return refusal(http.StatusTooManyRequests, "this account is locked after too many failed attempts")
	}
	cred, err := s.assertion(u, *sd, c.Credential)
	if err != nil {
		s.failed(u.Name, c, "login-passkey", err.Error())
		return refusal(http.StatusUnauthorized, "the passkey was not accepted")
	}
	u, err = s.updateCredential(u.Name, cred)
	if err != nil {
		return refusal(500, "%v", err)
	}
	return s.startSession(u, c, "login-passkey")
}

// assertion verifies a WebAuthn assertion of u against sd: signature
// with u's registered public key, challenge, origin, relying party and
// sign counter.
func (s *Service) assertion(u *User, sd webauthn.SessionData, raw json.RawMessage) (*webauthn.Credential, error) {
	if len(raw) == 0 {
		return nil, errors.New("no assertion")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("assertion does not parse: %v", err)
	}
	cred, err := s.wa.ValidateLogin(waUser{u}, sd, parsed)
	if err != nil {
		return nil, fmt.Errorf("assertion does not verify: %v", err)
	}
	if cred.Authenticator.CloneWarning {
		return nil, errors.New("the authenticator's sign counter went back (a cloned key?)")
	}
	return cred, nil
}

func (s *Service) updateCredential(name string, cred *webauthn.Credential) (*User, error) {
	return s.opts.Store.Update(name, func(u *User) error {
		for i := range u.Credentials {
			if bytes.Equal(u.Credentials[i].ID, cred.ID) {
				u.Credentials[i].Authenticator.SignCount = cred.Authenticator.SignCount
			}
		}
		u.Failures = 0
		return nil
	})
}

func (s *Service) enrolInfo(c Call) Reply {
	if s.clientBlocked(c.Client) {
		return refusal(http.StatusTooManyRequests, "too many failed attempts: try again later")
	}
	u, err := s.opts.Store.FindEnrolment(c.Token, s.now())
	if err != nil {
		s.clientFailed(c.Client)
		s.event(Event{Event: "enrol", Client: c.Client, Result: "refused: unknown or expired enrolment link"})
		return refusal(http.StatusNotFound, "this enrolment link is not valid (used or expired): ask for a new one")
	}
	u, err = s.opts.Store.Update(u.Name, func(u *User) error {
		if u.TOTPPending == "" {
			k, err := totp.Generate(totp.GenerateOpts{Issuer: "kluis", AccountName: u.Name})
			if err != nil {
				return err
			}
			u.TOTPPending = k.Secret()
		}
		return nil
	})
	if err != nil {
		return refusal(500, "%v", err)
	}
	k, err := otp.NewKeyFromURL(fmt.Sprintf("otpauth://totp/kluis:%s?issuer=kluis&secret=%s", u.Name, u.TOTPPending))
	if err != nil {
		return refusal(500, "%v", err)
	}
	return Reply{Status: 200, Enrol: &Enrol{User: u.Name, Role: u.Role, TOTPSecret: u.TOTPPending, TOTPURI: k.URL(), OIDC: u.OIDCSubject != ""}}
}

func (s *Service) enrol(c Call) Reply {
	if s.clientBlocked(c.Client) {
		return refusal(http.StatusTooManyRequests, "too many failed attempts: try again later")
	}
	now := s.now()
	u, err := s.opts.Store.FindEnrolment(c.Token, now)
	if err != nil {
		s.clientFailed(c.Client)
		return refusal(http.StatusNotFound, "this enrolment link is not valid (used or expired): ask for a new one")
	}
	oidcUser := u.OIDCSubject != ""
	switch {
	case oidcUser && c.Password != "":
		return refusal(http.StatusBadRequest, "this account signs in at the identity provider and has no password")
	case oidcUser:
	case len([]rune(c.Password)) < MinPasswordLength:
		return refusal(http.StatusBadRequest, "the password needs at least %d characters", MinPasswordLength)
	case strings.Contains(strings.ToLower(c.Password), u.Name):
		return refusal(http.StatusBadRequest, "the password must not contain the user name")
	}
	step := totpStep(u.TOTPPending, c.Code, now)
	if u.TOTPPending == "" || step == 0 {
		s.clientFailed(c.Client)
		s.event(Event{Event: "enrol", User: u.Name, Client: c.Client, Result: "refused: wrong code"})
		return refusal(http.StatusBadRequest, "wrong code: check the authenticator app's clock and the secret")
	}
	hash := ""
	if !oidcUser {
		hash = HashPassword(c.Password)
	}
	_, err = s.opts.Store.Update(u.Name, func(u *User) error {
		u.Password, u.TOTP, u.TOTPPending, u.LastTOTPStep = hash, u.TOTPPending, "", step
		u.EnrolHash, u.EnrolExpires = "", time.Time{}
		return nil
	})
	if err != nil {
		return refusal(500, "%v", err)
	}
	s.event(Event{Event: "enrol", User: u.Name, Client: c.Client, Result: "ok"})
	return Reply{Status: 200, Message: "enrolled"}
}

func (s *Service) passkeyAddBegin(u *User, c Call) Reply {
	var excl []protocol.CredentialDescriptor
	for _, cr := range u.Credentials {
		excl = append(excl, cr.Descriptor())
	}
	opts, sd, err := s.wa.BeginRegistration(waUser{u}, webauthn.WithExclusions(excl))
	if err != nil {
		return refusal(500, "passkey: %v", err)
	}
	s.mu.Lock()
	s.regs[tokenHash(c.Session)] = sd
	s.mu.Unlock()
	b, _ := json.Marshal(opts)
	return Reply{Status: 200, Options: b}
}

func (s *Service) passkeyAddFinish(u *User, c Call) Reply {
	s.mu.Lock()
	sd := s.regs[tokenHash(c.Session)]
	delete(s.regs, tokenHash(c.Session))
	s.mu.Unlock()
	if sd == nil {
		return refusal(http.StatusBadRequest, "start adding the passkey first")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(c.Credential)
	if err != nil {
		return refusal(http.StatusBadRequest, "the passkey response does not parse")
	}
	cred, err := s.wa.CreateCredential(waUser{u}, *sd, parsed)
	if err != nil {
		s.event(Event{Event: "passkey-add", User: u.Name, Client: c.Client, Result: "refused: " + err.Error()})
		return refusal(http.StatusBadRequest, "the passkey was not accepted")
	}
	// A credential belongs to one user: one person's authenticator must
	// never count as another's approval.
	all, err := s.opts.Store.List()
	if err != nil {
		return refusal(500, "%v", err)
	}
	for _, o := range all {
		for _, oc := range o.Credentials {
			if bytes.Equal(oc.ID, cred.ID) {
				s.event(Event{Event: "passkey-add", User: u.Name, Client: c.Client, Result: "refused: credential already registered to " + o.Name})
				return refusal(http.StatusConflict, "this passkey is already registered")
			}
		}
	}
	if _, err := s.opts.Store.Update(u.Name, func(u *User) error {
		u.Credentials = append(u.Credentials, *cred)
		return nil
	}); err != nil {
		return refusal(500, "%v", err)
	}
	s.event(Event{Event: "passkey-add", User: u.Name, Client: c.Client, Result: "ok"})
	return Reply{Status: 200, Message: "passkey registered"}
}

func (s *Service) tenants(ctx context.Context, u *User) Reply {
	all, err := s.opts.Backend.Tenants(ctx)
	if err != nil {
		return refusal(500, "listing tenants: %v", err)
	}
	var out []string
	for _, t := range all {
		if u.MayTenant(t) {
			out = append(out, t)
		}
	}
	return Reply{Status: 200, Tenants: out}
}

// practiceTenant checks that u is a practice user of tenant (and that
// the tenant exists).
func (s *Service) practiceTenant(ctx context.Context, u *User, c Call, op string) (Reply, bool) {
	if u.Role != RolePractice || !u.MayTenant(c.Tenant) {
		return s.refuse(u, c, op, c.Tenant), false
	}
	all, err := s.opts.Backend.Tenants(ctx)
	if err != nil {
		return refusal(500, "listing tenants: %v", err), false
	}
	if !slices.Contains(all, c.Tenant) {
		return refusal(http.StatusNotFound, "no such tenant"), false
	}
	return okReply, true
}

func (s *Service) snapshots(ctx context.Context, u *User, c Call) Reply {
	if r, ok := s.practiceTenant(ctx, u, c, OpSnapshots); !ok {
		return r
	}
	snaps, err := s.opts.Backend.Snapshots(ctx, c.Tenant)
	if err != nil {
		return refusal(500, "listing snapshots: %v", err)
	}
	return Reply{Status: 200, Snapshots: snaps}
}

func (s *Service) dossierShow(ctx context.Context, u *User, c Call) Reply {
	if r, ok := s.practiceTenant(ctx, u, c, OpDossierShow); !ok {
		return r
	}
	id, err := dossier.CanonicalID(c.ID)
	if err != nil {
		return refusal(http.StatusBadRequest, "client id: %v", err)
	}
	v, err := s.opts.Backend.DossierShow(ctx, Access{User: u.Name, Tenant: c.Tenant, Snapshot: c.Snapshot, ID: id, Reason: c.Reason, Action: "show"})
	var erased *ErasedError
	if errors.As(err, &erased) {
		// Nothing of an erased dossier is shown: only that it is erased,
		// so that the practice can ask for an erasure override.
		rep := refusal(http.StatusConflict, "%v", err)
		rep.Dossier = &DossierView{Tenant: c.Tenant, Snapshot: erased.Snapshot, ID: id, Erased: true, ErasedOn: erased.On, Tables: []TableCount{}}
		return rep
	}
	if err != nil {
		return refusal(http.StatusBadRequest, "%v", err)
	}
	return Reply{Status: 200, Dossier: v}
}

// Digest returns the hex SHA-256 the approver's authenticator signs.
func digestHex(d []byte) string { return hex.EncodeToString(d) }

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

var _ = io.Discard
