// Package idptest is a small but real OpenID Connect provider for tests:
// discovery, a JSON Web Key Set, the authorization endpoint (which signs
// in the user the test chose, at once or after a page with a button for
// a browser) and the token endpoint
// (client secret, single-use codes, redirect URI and PKCE S256 checked),
// issuing RS256 ID tokens. A test can change the claims of the next ID
// token or sign it with another key, to play a broken or hostile
// provider. It must not be used outside tests.
package idptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Provider is a running test identity provider.
type Provider struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:PORT).
	Issuer       string
	ClientID     string
	ClientSecret string

	srv *httptest.Server
	key *rsa.PrivateKey

	mu sync.Mutex
	// redirects are the registered redirect URIs.
	redirects []string
	user      map[string]any
	codes     map[string]*grant
	mutate    func(claims map[string]any)
	foreign   *rsa.PrivateKey
	page      bool
	now       func() time.Time
	tokens    int
}

type grant struct {
	nonce, challenge, redirect string
	claims                     map[string]any
}

// New starts a provider with a client (id "kluis", a random secret)
// allowed to redirect to redirectURL; now is its clock (the relying
// party's clock in the test, so expiry can be tested).
func New(t testing.TB, redirectURL string, now func() time.Time) *Provider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{ClientID: "kluis", ClientSecret: token(), key: key, redirects: []string{redirectURL},
		codes: map[string]*grant{}, now: now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /keys", p.keys)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.Issuer = p.srv.URL
	return p
}

// SignIn makes claims (at least "sub") the user who signs in at the
// next authorization request.
func (p *Provider) SignIn(claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = claims
}

// Mutate changes the claims of every ID token issued from now on (nil:
// no change).
func (p *Provider) Mutate(fn func(claims map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutate = fn
}

// LoginPage makes the authorization endpoint show a page whose button
// (id idp-sign-in) signs the user in, as a real provider's login page
// does: the way back to the relying party is then a navigation that the
// provider's site starts, which is what SameSite cookies see.
func (p *Provider) LoginPage(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.page = on
}

// SignWithForeignKey makes the provider sign ID tokens with a key it
// does not publish (or again with its own, when false).
func (p *Provider) SignWithForeignKey(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.foreign = nil
	if on {
		p.foreign, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
}

// Tokens returns how many ID tokens the provider issued.
func (p *Provider) Tokens() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens
}

func token() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer":                                p.Issuer,
		"authorization_endpoint":                p.Issuer + "/authorize",
		"token_endpoint":                        p.Issuer + "/token",
		"jwks_uri":                              p.Issuer + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (p *Provider) keys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

// authorize signs in the chosen user and sends the browser back with a
// code, as a provider does after its login page.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.ParseForm()
		q = r.PostForm
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	redirect := q.Get("redirect_uri")
	registered := false
	for _, u := range p.redirects {
		registered = registered || u == redirect
	}
	if q.Get("client_id") != p.ClientID || !registered {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "want response_type=code with a PKCE S256 challenge", http.StatusBadRequest)
		return
	}
	if p.page && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var b strings.Builder
		b.WriteString(`<!doctype html><title>Test IdP</title><form method="post" action="/authorize">`)
		for k := range q {
			fmt.Fprintf(&b, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(q.Get(k)))
		}
		b.WriteString(`<button type="submit" id="idp-sign-in">Sign in</button></form>`)
		io.WriteString(w, b.String())
		return
	}
	back, _ := url.Parse(redirect)
	v := url.Values{"state": {q.Get("state")}}
	if p.user == nil {
		v.Set("error", "access_denied")
	} else {
		code := token()
		p.codes[code] = &grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: redirect, claims: p.user}
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, back.String(), status)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if id != p.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	code := r.PostFormValue("code")
	g := p.codes[code]
	delete(p.codes, code) // a code is redeemed once
	if r.PostFormValue("grant_type") != "authorization_code" || g == nil || g.redirect != r.PostFormValue("redirect_uri") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
		return
	}
	now := p.now()
	claims := map[string]any{"iss": p.Issuer, "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	for k, v := range g.claims {
		claims[k] = v
	}
	if p.mutate != nil {
		p.mutate(claims)
	}
	key := p.key
	if p.foreign != nil {
		key = p.foreign
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	idt, _ := jws.CompactSerialize()
	p.tokens++
	writeJSON(w, 200, map[string]any{"access_token": token(), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}
