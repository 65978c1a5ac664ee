package portal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRequestsTamperedOnDisk: a request edited in portal-requests.json
// (another dossier, another requester, approved by hand) does not match
// the digest its approval signs and is dropped at load.
func TestRequestsTamperedOnDisk(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	core := requestCore{V: 1, ID: "r1", Kind: KindDossierRelease, Tenant: "a", Snapshot: "s", DossierID: "17", Reason: "x", Delivery: "sql", Requester: "anna", Created: now, Expires: now.Add(time.Hour)}
	p := filepath.Join(t.TempDir(), "requests.json")
	b := &requestBook{path: p, reqs: map[string]*fourEyes{"r1": {Core: core, Digest: digestHex(core.digest()), State: StatePending}}}
	if err := b.save(); err != nil {
		t.Fatal(err)
	}
	if got, err := loadRequests(p); err != nil || len(got.reqs) != 1 {
		t.Fatalf("untouched file: %v, %d requests", err, len(got.reqs))
	}
	raw, _ := os.ReadFile(p)
	for _, edit := range [][2]string{{`"dossier_id":"17"`, `"dossier_id":"18"`}, {`"requester":"anna"`, `"requester":"bea"`}, {`"tenant":"a"`, `"tenant":"b"`}} {
		if !strings.Contains(string(raw), edit[0]) {
			t.Fatalf("no %s in %s", edit[0], raw)
		}
		os.WriteFile(p, []byte(strings.Replace(string(raw), edit[0], edit[1], 1)), 0o600)
		got, err := loadRequests(p)
		if err != nil || len(got.reqs) != 0 {
			t.Errorf("%s: %v, %d requests loaded", edit[1], err, len(got.reqs))
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h := HashPassword("correct horse battery staple")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !CheckPassword(h, "correct horse battery staple") || CheckPassword(h, "correct horse battery stapl") || CheckPassword(h, "") {
		t.Fatal("CheckPassword")
	}
	if h == HashPassword("correct horse battery staple") {
		t.Fatal("no salt")
	}
}

// BenchmarkHashPassword is what one login's password check costs (the
// argon2id parameters).
func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		HashPassword("correct horse battery staple")
	}
}

// TestRequestDigestCompatible: a request without dossier counts (kinds
// other than a release, and requests stored before counts existed)
// keeps the digest it had: the new fields are left out of the JSON.
func TestRequestDigestCompatible(t *testing.T) {
	c := requestCore{V: 1, ID: "x", Kind: KindUserReset, Subject: "u", Reason: "r", Requester: "a",
		Created: time.Unix(0, 0).UTC(), Expires: time.Unix(60, 0).UTC()}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "tables") || strings.Contains(string(b), "taken") || strings.Contains(string(b), "rows") {
		t.Fatalf("core JSON %s", b)
	}
	c.Rows, c.Tables = 1, []TableCount{{Table: "t", Rows: 1}}
	if digestHex(c.digest()) == digestHex(requestCore{V: 1, ID: "x", Kind: KindUserReset, Subject: "u", Reason: "r", Requester: "a",
		Created: time.Unix(0, 0).UTC(), Expires: time.Unix(60, 0).UTC()}.digest()) {
		t.Fatal("the counts are not part of the digest")
	}
}
