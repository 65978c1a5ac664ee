package portal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kluis-nl/kluis/durable"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"golang.org/x/crypto/argon2"
	"golang.org/x/sys/unix"
)

// UsersFileName is the user store in the state directory (mode 0600).
const UsersFileName = "portal-users.json"

// User is one portal account as stored. Secrets: the argon2id password
// hash, the TOTP secret and the enrolment token's hash; WebAuthn
// credentials hold public keys only.
type User struct {
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Tenants  []string  `json:"tenants,omitempty"`
	Disabled bool      `json:"disabled,omitempty"`
	Created  time.Time `json:"created"`

	Password string `json:"password,omitempty"` // argon2id PHC string
	TOTP     string `json:"totp,omitempty"`     // base32 secret, set at enrolment
	// TOTPPending is the secret shown on the enrolment page until the
	// first code confirms it.
	TOTPPending string `json:"totp_pending,omitempty"`
	// LastTOTPStep is the newest accepted TOTP time step: a code is
	// accepted once.
	LastTOTPStep int64 `json:"last_totp_step,omitempty"`

	EnrolHash    string    `json:"enrol_hash,omitempty"` // sha256 of the one-time enrolment token
	EnrolExpires time.Time `json:"enrol_expires,omitzero"`

	WebAuthnID  []byte                `json:"webauthn_id"`
	Credentials []webauthn.Credential `json:"credentials,omitempty"`

	Failures    int       `json:"failures,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`

	// OIDCSubject binds the user to an identity at the identity provider
	// (the value of web.oidc.claim in its ID tokens): such a user signs
	// in there instead of with a password, then with the second factor.
	OIDCSubject string `json:"oidc_subject,omitempty"`
}

// Enrolled reports whether the user has a first factor (a password, or
// an identity at the provider) and a second factor.
func (u *User) Enrolled() bool {
	return (u.Password != "" || u.OIDCSubject != "") && (u.TOTP != "" || len(u.Credentials) > 0)
}

// MayTenant reports whether u may see tenant t: a practice user its own
// tenants; an auditor its listed tenants (all when none are listed);
// approvers and admins every tenant.
func (u *User) MayTenant(t string) bool {
	switch u.Role {
	case RolePractice:
		return slices.Contains(u.Tenants, t)
	case RoleAuditor:
		return len(u.Tenants) == 0 || slices.Contains(u.Tenants, t)
	case RoleApprover, RoleAdmin:
		return true
	}
	return false
}

// View returns u without secrets.
func (u *User) View(now time.Time) UserView {
	return UserView{Name: u.Name, Role: u.Role, Tenants: u.Tenants, Disabled: u.Disabled, Enrolled: u.Enrolled(),
		TOTP: u.TOTP != "", Passkeys: len(u.Credentials), Locked: now.Before(u.LockedUntil), Created: u.Created, OIDCSubject: u.OIDCSubject}
}

// webauthn.User.
type waUser struct{ u *User }

func (w waUser) WebAuthnID() []byte                         { return w.u.WebAuthnID }
func (w waUser) WebAuthnName() string                       { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string                { return w.u.Name }
func (w waUser) WebAuthnCredentials() []webauthn.Credential { return w.u.Credentials }

var userNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// ValidUserName reports whether name can be a user name: lower case
// letters, digits and . _ @ -, at most 64 characters.
func ValidUserName(name string) bool { return userNameRE.MatchString(name) }

type usersFile struct {
	Version int     `json:"version"`
	Users   []*User `json:"users"`
}

// Store is the user store: one JSON file, read and rewritten under a
// file lock for every change, so `kluis users` and the daemon can both
// change it.
type Store struct {
	Path string
	mu   sync.Mutex
}

// NewStore returns the store in stateDir.
func NewStore(stateDir string) *Store { return &Store{Path: filepath.Join(stateDir, UsersFileName)} }

// ErrNoUser is returned for an unknown user name.
var ErrNoUser = errors.New("no such user")

func (s *Store) lock() (func(), error) {
	s.mu.Lock()
	// A fresh appliance (no backup yet) has no state directory.
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(s.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		s.mu.Unlock()
		return nil, err
	}
	return func() { f.Close(); s.mu.Unlock() }, nil
}

func (s *Store) read() (*usersFile, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return &usersFile{Version: 1}, nil
	}
	if err != nil {
		return nil, err
	}
	var f usersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%s: version %d not supported", s.Path, f.Version)
	}
	return &f, nil
}

func (s *Store) write(f *usersFile) error {
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	return durable.WriteFile(s.Path, append(b, '\n'), durable.Options{})
}

// List returns every user.
func (s *Store) List() ([]*User, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	return f.Users, nil
}

// Get returns the user called name.
func (s *Store) Get(name string) (*User, error) {
	us, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, u := range us {
		if u.Name == name {
			return u, nil
		}
	}
	return nil, ErrNoUser
}

// Update changes the user called name with fn under the lock and writes
// the store when fn returns nil.
func (s *Store) Update(name string, fn func(u *User) error) (*User, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	for _, u := range f.Users {
		if u.Name == name {
			if err := fn(u); err != nil {
				return u, err
			}
			return u, s.write(f)
		}
	}
	return nil, ErrNoUser
}

// Add creates a user with a one-time enrolment token (returned) valid
// for ttl.
func (s *Store) Add(u *User, now time.Time, ttl time.Duration) (string, error) {
	if !ValidUserName(u.Name) {
		return "", fmt.Errorf("user name %q: want lower case letters, digits and . _ @ - (at most 64)", u.Name)
	}
	if !slices.Contains(Roles, u.Role) {
		return "", fmt.Errorf("role %q: want one of %v", u.Role, Roles)
	}
	if u.Role == RolePractice && len(u.Tenants) == 0 {
		return "", errors.New("a practice user needs at least one tenant (--tenant)")
	}
	if (u.Role == RoleApprover || u.Role == RoleAdmin) && len(u.Tenants) > 0 {
		return "", fmt.Errorf("role %s is not bound to tenants", u.Role)
	}
	unlock, err := s.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return "", err
	}
	if u.OIDCSubject != "" {
		if err := ValidOIDCSubject(u.OIDCSubject); err != nil {
			return "", fmt.Errorf("--oidc-subject: %v", err)
		}
	}
	for _, o := range f.Users {
		if o.Name == u.Name {
			return "", fmt.Errorf("user %s exists", u.Name)
		}
		// One identity, one account: else the provider's one login
		// would be a choice of accounts.
		if u.OIDCSubject != "" && strings.EqualFold(o.OIDCSubject, u.OIDCSubject) {
			return "", fmt.Errorf("the identity %q is already bound to user %s", u.OIDCSubject, o.Name)
		}
	}
	u.Created = now.UTC()
	u.WebAuthnID = randomBytes(32)
	tok := newEnrolment(u, now, ttl)
	f.Users = append(f.Users, u)
	return tok, s.write(f)
}

// newEnrolment clears u's credentials and sets a new enrolment token.
func newEnrolment(u *User, now time.Time, ttl time.Duration) string {
	tok := randomToken()
	u.Password, u.TOTP, u.TOTPPending, u.Credentials, u.LastTOTPStep = "", "", "", nil, 0
	u.EnrolHash, u.EnrolExpires = tokenHash(tok), now.Add(ttl).UTC()
	u.Failures, u.LockedUntil = 0, time.Time{}
	return tok
}

// Reset clears name's password and second factors and returns a new
// enrolment token.
func (s *Store) Reset(name string, now time.Time, ttl time.Duration) (string, error) {
	var tok string
	_, err := s.Update(name, func(u *User) error {
		tok = newEnrolment(u, now, ttl)
		return nil
	})
	return tok, err
}

// Bind binds the user called name to the identity subject at the
// identity provider, which then replaces the password (cleared); an
// empty subject unbinds, after which the user has no first factor until
// a reset.
func (s *Store) Bind(name, subject string) error {
	if subject != "" {
		if err := ValidOIDCSubject(subject); err != nil {
			return err
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	var u *User
	for _, o := range f.Users {
		switch {
		case o.Name == name:
			u = o
		case subject != "" && strings.EqualFold(o.OIDCSubject, subject):
			return fmt.Errorf("the identity %q is already bound to user %s", subject, o.Name)
		}
	}
	if u == nil {
		return ErrNoUser
	}
	u.OIDCSubject = subject
	if subject != "" {
		u.Password = ""
	}
	return s.write(f)
}

// FindOIDC returns the user bound to the identity subject (compared
// without regard to ASCII case when fold: e-mail addresses). More than
// one match is refused.
func (s *Store) FindOIDC(subject string, fold bool) (*User, error) {
	us, err := s.List()
	if err != nil {
		return nil, err
	}
	var found *User
	for _, u := range us {
		if u.OIDCSubject == "" || !(u.OIDCSubject == subject || fold && equalASCIIFold(u.OIDCSubject, subject)) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("users %s and %s are bound to one identity", found.Name, u.Name)
		}
		found = u
	}
	if found == nil {
		return nil, ErrNoUser
	}
	return found, nil
}

// FindEnrolment returns the user whose unexpired enrolment token is tok.
func (s *Store) FindEnrolment(tok string, now time.Time) (*User, error) {
	us, err := s.List()
	if err != nil {
		return nil, err
	}
	h := tokenHash(tok)
	for _, u := range us {
		if u.EnrolHash != "" && subtle.ConstantTimeCompare([]byte(u.EnrolHash), []byte(h)) == 1 && now.Before(u.EnrolExpires) && !u.Disabled {
			return u, nil
		}
	}
	return nil, ErrNoUser
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// randomToken is 256 random bits, base64url.
func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// argon2id parameters (OWASP: m=19 MiB, t=2, p=1 at least).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the argon2id PHC string of pw.
func HashPassword(pw string) string {
	salt := randomBytes(16)
	k := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k))
}

// CheckPassword reports whether pw matches the PHC string h.
func CheckPassword(h, pw string) bool {
	var v int
	var m uint32
	var t uint32
	var p uint8
	var salt64, key64 string
	if _, err := fmt.Sscanf(h, "$argon2id$v=%d$m=%d,t=%d,p=%d$", &v, &m, &t, &p); err != nil || v != argon2.Version {
		return false
	}
	parts := splitDollar(h)
	if len(parts) != 5 {
		return false
	}
	salt64, key64 = parts[3], parts[4]
	salt, err1 := base64.RawStdEncoding.DecodeString(salt64)
	want, err2 := base64.RawStdEncoding.DecodeString(key64)
	if err1 != nil || err2 != nil || len(want) == 0 || m > 1<<21 || t > 16 || p == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func splitDollar(s string) []string {
	var out []string
	cur := ""
	for i := 1; i < len(s); i++ {
		if s[i] == '$' {
			out = append(out, cur)
			cur = ""
			continue
		}
		cur += string(s[i])
	}
	return append(out, cur)
}

// MinPasswordLength is the shortest password accepted at enrolment.
const MinPasswordLength = 12

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// equalASCIIFold reports whether a and b are equal with only A-Z folded
// to a-z. Unicode folding (strings.EqualFold) would take "jo\u017f@" (long
// s) or a Kelvin sign for another person's address.
func equalASCIIFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
