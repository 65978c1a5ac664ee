package mariadb

import (
	"strings"
	"testing"
)

// TestInvalidDSNShowsForm (issue 18 point 10): a DSN that does not parse
// (here host:port without tcp(…), a common slip) is refused with the
// expected form, and without the DSN or its password.
func TestInvalidDSNShowsForm(t *testing.T) {
	for _, dsn := range []string{"praktijk:geheim@db1:3306/praktijk_a", "mysql://praktijk:geheim@db1/praktijk_a"} {
		_, err := parseDSN(dsn)
		if err == nil {
			t.Fatalf("%q parsed", dsn)
		}
		if !strings.Contains(err.Error(), "user:password@tcp(host:3306)/db") || strings.Contains(err.Error(), "geheim") || strings.Contains(err.Error(), "db1") {
			t.Errorf("%q: %v; want the expected form and nothing of the DSN", dsn, err)
		}
	}
}
