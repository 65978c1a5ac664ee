package appliance

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDSNHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u:secret@h/db":             true,
		"postgres://u@h/db":                    false,
		"postgres://u@h/db?password=x":         true,
		"host=h user=u dbname=d":               false,
		"host=h user=u password=x dbname=d":    true,
		"u:secret@tcp(127.0.0.1:3306)/db":      true,
		"u@tcp(127.0.0.1:3306)/db":             false,
		"root@unix(/run/mysqld/mysqld.sock)/d": false,
	} {
		if got := DSNHasPassword(dsn); got != want {
			t.Errorf("DSNHasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}

// TestWithDatabaseOverridesQuery: a dbname= query parameter in a URL DSN
// must not win over the database WithDatabase names (pgx reads the query
// after the path), or a discovered tenant would back up the wrong database.
func TestWithDatabaseOverridesQuery(t *testing.T) {
	for _, dsn := range []string{
		"postgres://kluis@db1:5432/postgres?dbname=postgres&sslmode=require",
		"postgresql://kluis@db1/?database=template1",
	} {
		got := WithDatabase(dsn, "praktijk_a")
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Database != "praktijk_a" {
			t.Errorf("WithDatabase(%q) = %q: connects to %q", dsn, got, cfg.Database)
		}
	}
}
