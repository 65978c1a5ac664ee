package portal

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/config"
)

// FuzzCheckPassword: any stored string and any password: no panic, and
// only the right password matches a real hash.
func FuzzCheckPassword(f *testing.F) {
	h := HashPassword("correct horse battery staple")
	f.Add(h, "correct horse battery staple")
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$", "")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAA$AAAA", "x")
	f.Fuzz(func(t *testing.T, stored, pw string) {
		if CheckPassword(stored, pw) && stored == h && pw != "correct horse battery staple" {
			t.Fatal("a wrong password matches")
		}
	})
}

// FuzzSocketCall: whatever the web process sends, the daemon answers
// with a JSON reply, never a panic, and without a session nothing but a
// refusal.
func FuzzSocketCall(f *testing.F) {
	dir := f.TempDir()
	svc, err := New(Options{Store: NewStore(dir), Web: config.Web{Origin: "https://kluis.example.test", Socket: "/s"}, Now: time.Now})
	if err != nil {
		f.Fatal(err)
	}
	h := svc.Handler()
	f.Add("whoami", []byte(`{"session":"x"}`))
	f.Add("login", []byte(`{"user":"anna","password":"p","client":"c"}`))
	f.Add("approve-finish", []byte(`{"session":"x","request":"r","credential":{"id":"x"}}`))
	f.Add("download", []byte(`{"session":"x","token":"t"}`))
	f.Add("enrol", []byte(`{"token":"t","password":"p","code":"123456"}`))
	f.Add("dossier-show", []byte(`{"unknown":1}`))
	f.Add("oidc-finish", []byte(`{"code":"c","state":"s","binding":"b","client":"c"}`))
	f.Add("oidc-begin", []byte(`{"client":"c"}`))
	f.Add("oidc-finish", []byte(`{"id_token":"eyJ.eyJ.x"}`))
	f.Add("retention-request", []byte(`{"session":"x","tenant":"a","retention":{"keep_last":-1},"to_policy":true}`))
	f.Add("request-create", []byte(`{"session":"x","kind":"erasure-override","delivery":"restore-into"}`))
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
		req.URL.Path = "/v1/" + op
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK && rec.Header().Get("Kluis-Reply") == "" {
			t.Fatalf("op %q: a non-reply answer %q", op, rec.Body.String())
		}
	})
}

// FuzzOIDCClaims: whatever claims a verified ID token carries, the user
// is named by the configured claim's string value only, never longer
// than MaxOIDCSubject, and an e-mail address only when email_verified is
// the JSON value true.
func FuzzOIDCClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"idp-anna"}`), "sub")
	f.Add([]byte(`{"sub":"x","email":"anna@example.nl","email_verified":true}`), "email")
	f.Add([]byte(`{"email":"anna@example.nl","email_verified":"true"}`), "email")
	f.Add([]byte(`{"sub":["a","b"],"email":null}`), "sub")
	f.Add([]byte(`{"oid":12345}`), "oid")
	f.Fuzz(func(t *testing.T, raw []byte, claim string) {
		var claims map[string]any
		if json.Unmarshal(raw, &claims) != nil {
			return
		}
		got, err := oidcSubject(claims, claim)
		if err != nil {
			return
		}
		if v, _ := claims[claim].(string); got != v || got == "" || len(got) > MaxOIDCSubject {
			t.Fatalf("claim %q of %s gave %q", claim, raw, got)
		}
		if claim == "email" && claims["email_verified"] != true {
			t.Fatalf("an unverified address accepted: %s", raw)
		}
	})
}

// FuzzRequestsFile: a damaged or edited requests file loads as an error
// or without the requests that do not match their digest.
func FuzzRequestsFile(f *testing.F) {
	core := requestCore{V: 1, ID: "r1", Kind: KindDossierRelease, Tenant: "a", Snapshot: "s", DossierID: "17", Reason: "x", Delivery: "sql", Requester: "anna"}
	good := `[{"core":` + string(mustJSON(core)) + `,"digest":"` + digestHex(core.digest()) + `","state":"pending"}]`
	f.Add([]byte(good))
	for _, c := range []requestCore{
		{V: 1, ID: "r2", Kind: KindErasureOverride, Tenant: "a", Snapshot: "s", DossierID: "42", Reason: "court order", Delivery: "sql", Requester: "anna", ErasedOn: "2026-06-01"},
		{V: 1, ID: "r3", Kind: KindRetentionChange, Tenant: "a", Reason: "contract", Requester: "ada", RetentionFrom: &Retention{KeepDaily: 7}, RetentionTo: &Retention{KeepLast: 1}, Shortens: true, Forgets: 3},
	} {
		f.Add([]byte(`[{"core":` + string(mustJSON(c)) + `,"digest":"` + digestHex(c.digest()) + `","state":"pending"}]`))
	}
	f.Add([]byte(`[{"core":{"id":"r1"},"digest":"00","state":"approved"}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "r.json")
		os.WriteFile(p, data, 0o600)
		b, err := loadRequests(p)
		if err != nil {
			return
		}
		for _, r := range b.reqs {
			if digestHex(r.Core.digest()) != r.Digest {
				t.Fatalf("a request that does not match its digest was loaded: %+v", r)
			}
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestDigestOfOlderRequests: the fields added for erasure overrides and
// retention changes are left out of a dossier release's core, so a
// request stored before them keeps its digest (and its approval).
func TestDigestOfOlderRequests(t *testing.T) {
	core := requestCore{V: 1, ID: "r1", Kind: KindDossierRelease, Tenant: "a", Snapshot: "s", DossierID: "17", Reason: "x", Delivery: "sql", Requester: "anna",
		Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Expires: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	const want = `{"v":1,"id":"r1","kind":"dossier-release","tenant":"a","snapshot":"s","dossier_id":"17","reason":"x","delivery":"sql","requester":"anna","created":"2026-12-01T09:00:00Z","expires":"2026-12-02T09:00:00Z"}`
	if got := string(mustJSON(core)); got != want {
		t.Fatalf("a release's core is now\n%s\nwas\n%s", got, want)
	}
}
