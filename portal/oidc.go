package portal

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kluis-nl/kluis/config"
)

// OpenID Connect sign-in (config web.oidc, docs/security.md "Sign-in
// with an identity provider").
//
// The daemon is the OIDC client: it holds the client secret, makes the
// state, nonce and PKCE verifier, redeems the code at the provider's
// token endpoint itself and verifies the ID token against the
// provider's published keys (issuer, audience, expiry, signature,
// nonce). The web process only sends the browser to the provider and
// relays the code and state it comes back with, so a compromised web
// process cannot sign anyone in: it has no secret to redeem a code, no
// verifier to pass PKCE, and the daemon never accepts a token from it.
// A verified identity only replaces the password: the login continues
// with the kluis account's own second factor (TOTP or passkey).

const (
	// oidcFlowTTL is how long a started sign-in waits for the provider.
	oidcFlowTTL = 10 * time.Minute
	// oidcMaxFlows bounds the started sign-ins kept in memory (when it
	// is reached the oldest is dropped, so that many addresses together
	// cannot block every sign-in), and oidcClientFlows those of one
	// client address (an IPv6 /64 counts as one), so that one address
	// cannot crowd out everyone else's.
	oidcMaxFlows    = 4096
	oidcClientFlows = 16
	// MaxOIDCSubject is the longest identity a user can be bound to.
	MaxOIDCSubject = 256
)

// oidcFlow is one started sign-in, kept by the hash of its state.
type oidcFlow struct {
	nonce    string
	verifier string // PKCE
	binding  string // hash of the browser's cookie that started it
	client   string
	expires  time.Time
}

// oidcClient is the daemon's client of the identity provider.
type oidcClient struct {
	cfg    config.OIDC
	secret string
	hc     *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

func newOIDCClient(w config.Web, secret string, hc *http.Client) (*oidcClient, error) {
	o := w.OIDCWithDefaults()
	if o == nil {
		return nil, nil
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, errors.New("web.oidc.client_secret_file: the client secret is empty")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &oidcClient{cfg: *o, secret: secret, hc: hc}, nil
}

// discover returns the provider, reading its discovery document on the
// first use (and again after a failure: the daemon starts whether or
// not the provider is up).
func (o *oidcClient) discover() (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	// The key set keeps this context for its later fetches: not a
	// call's, which ends with the call.
	p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), o.hc), o.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	o.provider = p
	return p, nil
}

func (o *oidcClient) oauth(p *oidc.Provider) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	if o.cfg.Claim == "email" {
		scopes = append(scopes, "email")
	}
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.secret, Endpoint: p.Endpoint(), RedirectURL: o.cfg.RedirectURL, Scopes: scopes}
}

const oidcUnavailable = "the identity provider cannot be reached: try again later or ask your administrator"

// oidcBegin starts a sign-in: the reply's Redirect is the provider's
// authorization URL, its Binding the value the browser must bring back
// (the web process keeps it in a cookie).
func (s *Service) oidcBegin(c Call) Reply {
	if s.oidc == nil {
		return refusal(http.StatusNotFound, "sign-in with an identity provider is not configured")
	}
	if s.clientBlocked(c.Client) {
		return refusal(http.StatusTooManyRequests, "too many failed attempts: try again later")
	}
	p, err := s.oidc.discover()
	if err != nil {
		s.log.Warn("portal: the identity provider's discovery failed", "issuer", s.oidc.cfg.Issuer, "err", err)
		return refusal(http.StatusBadGateway, oidcUnavailable)
	}
	state, nonce, binding, verifier := randomToken(), randomToken(), randomToken(), oauth2.GenerateVerifier()
	now := s.now()
	s.mu.Lock()
	client := flowClient(c.Client)
	mine, oldest := 0, ""
	for h, f := range s.flows {
		if now.After(f.expires) {
			delete(s.flows, h)
			continue
		}
		if f.client == client {
			mine++
		}
		if oldest == "" || f.expires.Before(s.flows[oldest].expires) {
			oldest = h
		}
	}
	if mine >= oidcClientFlows {
		s.mu.Unlock()
		return refusal(http.StatusTooManyRequests, "too many sign-ins under way: try again later")
	}
	if len(s.flows) >= oidcMaxFlows {
		// The oldest started sign-in gives way: its browser has to
		// start again, nobody is locked out.
		delete(s.flows, oldest)
	}
	s.flows[tokenHash(state)] = &oidcFlow{nonce: nonce, verifier: verifier, binding: tokenHash(binding), client: client, expires: now.Add(oidcFlowTTL)}
	s.mu.Unlock()
	u := s.oidc.oauth(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return Reply{Status: http.StatusOK, Redirect: u, Binding: binding}
}

// oidcFinish ends a sign-in: it redeems c.Code for the flow of c.State
// (started in the browser holding c.Binding), verifies the ID token and
// returns a half login of the kluis user bound to the identity, to be
// completed with that user's second factor.
func (s *Service) oidcFinish(ctx context.Context, c Call) Reply {
	if s.oidc == nil {
		return refusal(http.StatusNotFound, "sign-in with an identity provider is not configured")
	}
	if s.clientBlocked(c.Client) {
		s.event(Event{Event: "login-oidc", Client: c.Client, Result: "refused: too many failed attempts from this address"})
		return refusal(http.StatusTooManyRequests, "too many failed attempts: try again later")
	}
	refuse := func(user, why string) Reply {
		s.clientFailed(c.Client)
		s.event(Event{Event: "login-oidc", User: user, Client: c.Client, Result: "refused: " + why})
		return refusal(http.StatusUnauthorized, "the sign-in was not accepted: start again")
	}
	s.mu.Lock()
	f := s.flows[tokenHash(c.State)]
	// A state is used once, whatever happens next.
	delete(s.flows, tokenHash(c.State))
	s.mu.Unlock()
	if c.State == "" || f == nil || s.now().After(f.expires) {
		return refuse("", "unknown, used or expired state")
	}
	if subtle.ConstantTimeCompare([]byte(tokenHash(c.Binding)), []byte(f.binding)) != 1 {
		return refuse("", "the sign-in was not started in this browser (state cookie missing or wrong)")
	}
	if c.Code == "" {
		return refuse("", "no code")
	}
	p, err := s.oidc.discover()
	if err != nil {
		return refusal(http.StatusBadGateway, oidcUnavailable)
	}
	xctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.oidc.hc), 30*time.Second)
	defer cancel()
	tok, err := s.oidc.oauth(p).Exchange(xctx, c.Code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return refuse("", fmt.Sprintf("the provider refused the code (%s)", clip(re.ErrorCode, 64)))
		}
		s.log.Warn("portal: redeeming the code at the identity provider failed", "issuer", s.oidc.cfg.Issuer, "err", err)
		return refusal(http.StatusBadGateway, oidcUnavailable)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return refuse("", "the provider's answer has no ID token")
	}
	// The provider's key set (fetched with its own context, cached
	// across sign-ins, fetched again for a key id it does not know).
	idt, err := p.Verifier(&oidc.Config{ClientID: s.oidc.cfg.ClientID, Now: s.now}).Verify(xctx, raw)
	if err != nil {
		return refuse("", "ID token: "+clip(err.Error(), 200))
	}
	if idt.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.nonce)) != 1 {
		return refuse("", "ID token: nonce does not match the sign-in (a replayed token?)")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return refuse("", "ID token: claims do not parse")
	}
	// A token for several audiences is ours only when we are its
	// authorized party (OpenID Connect Core 3.1.3.7).
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != s.oidc.cfg.ClientID {
		return refuse("", "ID token: several audiences and kluis is not the authorized party (azp)")
	}
	subject, err := oidcSubject(claims, s.oidc.cfg.Claim)
	if err != nil {
		return refuse("", "ID token: "+err.Error())
	}
	id := s.oidc.cfg.Claim + " " + printable(subject)
	u, err := s.opts.Store.FindOIDC(subject, s.oidc.cfg.Claim == "email")
	if err != nil {
		s.clientFailed(c.Client)
		s.event(Event{Event: "login-oidc", Client: c.Client, Result: "refused: no kluis user is bound to " + id})
		return refusal(http.StatusUnauthorized, "no kluis account is bound to this identity: ask your administrator")
	}
	if u.Disabled {
		return refuse(u.Name, "disabled user ("+id+")")
	}
	if s.now().Before(u.LockedUntil) {
		s.event(Event{Event: "login-oidc", User: u.Name, Client: c.Client, Result: "refused: locked out (" + id + ")"})
		return refusal(http.StatusTooManyRequests, "this account is locked after too many failed attempts until %s UTC", u.LockedUntil.UTC().Format("15:04"))
	}
	if !u.Enrolled() {
		s.event(Event{Event: "login-oidc", User: u.Name, Client: c.Client, Result: "refused: not enrolled (" + id + ")"})
		return refusal(http.StatusUnauthorized, "this account has no second factor yet: use your enrolment link first")
	}
	return s.halfLogin(u, c, "login-oidc", "ok: "+id)
}

// oidcSubject returns the claim that names the user. An e-mail address
// counts only when the provider says it verified it.
func oidcSubject(claims map[string]any, claim string) (string, error) {
	v, ok := claims[claim].(string)
	if !ok || v == "" {
		return "", fmt.Errorf("no %s claim", claim)
	}
	if len(v) > MaxOIDCSubject {
		return "", fmt.Errorf("the %s claim is too long", claim)
	}
	if claim == "email" {
		if verified, _ := claims["email_verified"].(bool); !verified {
			return "", errors.New("the e-mail address is not verified by the provider (email_verified)")
		}
	}
	return v, nil
}

// ValidOIDCSubject checks an identity to bind a user to.
func ValidOIDCSubject(s string) error {
	if s == "" || len(s) > MaxOIDCSubject {
		return fmt.Errorf("the identity must have 1 to %d bytes", MaxOIDCSubject)
	}
	if strings.TrimSpace(s) != s || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("the identity has leading or trailing spaces or control characters")
	}
	return nil
}

// printable keeps a claim from a provider fit for a log line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, clip(s, MaxOIDCSubject))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// flowClient is the client address a started sign-in counts against:
// the address itself, or for IPv6 its /64 (one host usually has a whole
// /64 to pick addresses from).
func flowClient(client string) string {
	ip, err := netip.ParseAddr(client)
	if err != nil || ip.Unmap().Is4() {
		return client
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return client
	}
	return p.String()
}
