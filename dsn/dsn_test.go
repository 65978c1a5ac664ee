package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// leakyForms are valid libpq (or driver) spellings of a password, each
// followed by something else that makes pgx fail, so pgx prints the
// string in its error (issue 15 §4).
var leakyForms = []struct {
	name, dsn, secret string
}{
	{"spaces around =", "host=h password = s3cretPW sslmode=bogus", "s3cretPW"},
	{"space before =", "host=h password =s3cretPW sslmode=bogus", "s3cretPW"},
	{"escaped space", `host=h password=s3cret\ PW0rd sslmode=bogus`, `s3cret PW0rd`},
	{"quoted with space", `host=h password='s3cret PW0rd' sslmode=bogus`, `s3cret PW0rd`},
	{"quoted with escaped quote", `host=h password='s3cret\'PW0rd' sslmode=bogus`, `s3cret'PW0rd`},
	{"upper-case keyword", "host=h PASSWORD=s3cretPW port=nope", "s3cretPW"},
	{"sslpassword", "host=h sslpassword=s3cretPW sslmode=bogus", "s3cretPW"},
	{"URL user info", "postgres://u:s3cretPW@h/db?sslmode=bogus", "s3cretPW"},
	{"URL escaped user info", "postgresql://u:s3cret%20PW@h/db?sslmode=bogus", "s3cret PW"},
	{"URL query", "postgres://u@h/db?password=s3cretPW&sslmode=bogus", "s3cretPW"},
	{"URL with bad port", "postgres://u:s3cretPW@h:notaport/db", "s3cretPW"},
	{"mysql", "u:s3cretPW@tcp(127.0.0.1:3306)/db?tls=bogus", "s3cretPW"},
}

func TestSecrets(t *testing.T) {
	for _, tc := range leakyForms {
		t.Run(tc.name, func(t *testing.T) {
			if got := Secrets(tc.dsn); !contains(got, tc.secret) {
				t.Errorf("Secrets(%q) = %q, want %q among them", tc.dsn, got, tc.secret)
			}
		})
	}
	for _, clean := range []string{"host=h user=u dbname=d", "postgres://u@h/db", "u@tcp(127.0.0.1:3306)/db", "root@unix(/run/mysqld/mysqld.sock)/d"} {
		if got := Secrets(clean); len(got) > 0 {
			t.Errorf("Secrets(%q) = %q, want none", clean, got)
		}
	}
}

// TestParsePostgresNeverLeaks: pgx's own error prints these passwords
// (the test checks that it still does, so it keeps proving something);
// ParsePostgres and Redact never do.
func TestParsePostgresNeverLeaks(t *testing.T) {
	pgxLeaks := 0
	for _, tc := range leakyForms {
		if strings.HasPrefix(tc.name, "mysql") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			_, perr := pgx.ParseConfig(tc.dsn)
			if perr == nil {
				t.Fatalf("pgx accepts %q", tc.dsn)
			}
			if leaks(perr.Error(), tc.secret) {
				pgxLeaks++
			}
			if got := Redact(perr.Error(), tc.dsn); leaks(got, tc.secret) {
				t.Errorf("Redact(pgx error) = %q", got)
			}
			_, err := ParsePostgres(tc.dsn)
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParsePostgres: %v", err)
			}
			if leaks(err.Error(), tc.secret) {
				t.Errorf("ParsePostgres error %q leaks the password", err)
			}
		})
	}
	if pgxLeaks < 2 {
		t.Errorf("pgx leaked only %d of the forms: the test no longer shows the problem", pgxLeaks)
	}
}

// leaks reports whether s holds the secret or a piece of it of 4 bytes or
// more.
func leaks(s, secret string) bool {
	if strings.Contains(s, secret) {
		return true
	}
	for _, p := range strings.FieldsFunc(secret, func(r rune) bool { return r == ' ' || r == '\'' }) {
		if len(p) >= 4 && strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func FuzzRedact(f *testing.F) {
	for _, tc := range leakyForms {
		f.Add(tc.dsn)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		for _, s := range Secrets(dsn) {
			if len(s) >= 4 && strings.Contains(Redact("error: "+s+" in "+dsn, dsn), s) {
				t.Fatalf("Redact keeps secret %q of %q", s, dsn)
			}
		}
		if _, err := ParsePostgres(dsn); err != nil {
			for _, s := range Secrets(dsn) {
				if len(s) >= 4 && strings.Contains(err.Error(), s) {
					t.Fatalf("ParsePostgres(%q) = %v", dsn, err)
				}
			}
		}
	})
}

// RedactSecretError masks a password a driver knows, in every spelling a
// connection string, URL or quoted value could carry it, and keeps the
// error chain; an empty secret or a nil error change nothing.
func TestRedactSecretError(t *testing.T) {
	const secret = `p@ss wörd\'x/y`
	base := errors.New("failed: postgres://u:" + url.UserPassword("", secret).String()[1:] + "@h/ password='" +
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(secret) + "' q=" + url.QueryEscape(secret) + " path=" + url.PathEscape(secret) + " raw=" + secret)
	err := RedactSecretError(fmt.Errorf("wrapped: %w", base), secret)
	for _, piece := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("", secret).String()[1:]} {
		if strings.Contains(err.Error(), piece) {
			t.Errorf("%q left in %q", piece, err.Error())
		}
	}
	if !errors.Is(err, base) {
		t.Fatal("the redacted error does not unwrap to the original")
	}
	if RedactSecretError(nil, secret) != nil {
		t.Fatal("a nil error became non-nil")
	}
	if got := RedactSecretError(base, ""); got != base {
		t.Fatalf("an empty secret changed the error: %v", got)
	}
	if got := RedactSecret("nothing to hide", secret); got != "nothing to hide" {
		t.Fatalf("RedactSecret changed a text without the secret: %q", got)
	}
	// A word of a passphrase that is also the user's name is not the
	// password: the PostgreSQL engine checks with RedactSecret that the
	// connection string it gives pg_dump holds no password, and a piece
	// masked there refused every backup of such a tenant.
	conninfo := "host=127.0.0.1 user=postgres dbname=praktijk"
	if got := RedactSecret(conninfo, "my postgres pw"); got != conninfo {
		t.Fatalf("a word of the passphrase was masked: %q", got)
	}
}
