package appliance

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/config"
)

// TestLiveTenant (issue 15 §4): a restore target that is a configured
// tenant's live database is recognised whatever the spelling of its
// address, so `restore --force` can refuse it without --replace-live.
func TestLiveTenant(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "praktijk.db")
	os.WriteFile(live, []byte("x"), 0o600)
	os.Symlink(live, filepath.Join(dir, "alias.db"))
	pgFile := filepath.Join(dir, "pg.dsn")
	os.WriteFile(pgFile, []byte("host=localhost port=5433 user=kluis dbname=praktijk_a password=s3cret"), 0o600)
	myFile := filepath.Join(dir, "my.dsn")
	os.WriteFile(myFile, []byte("kluis:pw@tcp(127.0.0.1:3307)/praktijk_m"), 0o600)
	discFile := filepath.Join(dir, "disc.dsn")
	os.WriteFile(discFile, []byte("host=127.0.0.1 port=5440 user=kluis dbname=postgres password=x"), 0o600)
	a := New(&config.Config{Discover: []config.Discover{
		{Engine: "postgres", DSNFile: discFile, Pattern: "praktijk_*", IDTemplate: "{db}"},
		{Engine: "sqlite", Pattern: filepath.Join(dir, "found", "*.db"), IDTemplate: "s-{db}"},
	}, Tenants: []config.Tenant{
		{ID: "s", Engine: "sqlite", Path: live},
		{ID: "p", Engine: "postgres", DSNFile: pgFile},
		{ID: "m", Engine: "mariadb", DSNFile: myFile},
		{ID: "d", Engine: "postgres", DSN: "postgres://kluis@db.invalid:5432/discovered", Discovered: true},
	}}, nil)
	for _, tc := range []struct {
		name string
		spec TargetSpec
		want string
	}{
		{"same sqlite file", TargetSpec{Engine: "sqlite", Path: live}, "s"},
		{"sqlite file through a symlink", TargetSpec{Engine: "sqlite", Path: filepath.Join(dir, "alias.db")}, "s"},
		{"sqlite relative spelling", TargetSpec{Engine: "sqlite", Path: filepath.Join(dir, ".", "x", "..", "praktijk.db")}, "s"},
		{"another sqlite file", TargetSpec{Engine: "sqlite", Path: filepath.Join(dir, "new.db")}, ""},
		{"postgres by IP", TargetSpec{Engine: "postgres", DSN: "host=127.0.0.1 port=5433 user=other dbname=praktijk_a"}, "p"},
		{"postgres URL form", TargetSpec{Engine: "postgres", DSN: "postgresql://x@localhost:5433/praktijk_a?sslmode=disable"}, "p"},
		{"postgres spaces around =", TargetSpec{Engine: "postgres", DSN: "host = ::1 port = 5433 dbname = praktijk_a"}, "p"},
		{"postgres other database", TargetSpec{Engine: "postgres", DSN: "host=127.0.0.1 port=5433 dbname=praktijk_restore"}, ""},
		{"postgres other port", TargetSpec{Engine: "postgres", DSN: "host=127.0.0.1 port=5434 dbname=praktijk_a"}, ""},
		{"discovered tenant", TargetSpec{Engine: "postgres", DSN: "host=db.invalid dbname=discovered"}, "d"},
		{"mariadb by localhost", TargetSpec{Engine: "mariadb", DSN: "root@tcp(localhost:3307)/praktijk_m"}, "m"},
		{"mariadb other db", TargetSpec{Engine: "mariadb", DSN: "root@tcp(localhost:3307)/restored"}, ""},
		{"not yet discovered postgres database", TargetSpec{Engine: "postgres", DSN: "host=localhost port=5440 dbname=praktijk_zuid"}, "praktijk_zuid"},
		{"discovery server, other name", TargetSpec{Engine: "postgres", DSN: "host=localhost port=5440 dbname=restored"}, ""},
		{"discovered sqlite file", TargetSpec{Engine: "sqlite", Path: filepath.Join(dir, "found", "noord.db")}, "s-noord"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.LiveTenant(context.Background(), tc.spec)
			if err != nil || got != tc.want {
				t.Errorf("LiveTenant = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// A tenant whose DSN cannot be read: fail closed.
	os.Chmod(pgFile, 0o644)
	if _, err := a.LiveTenant(context.Background(), TargetSpec{Engine: "postgres", DSN: "host=h dbname=x"}); err == nil {
		t.Errorf("an unreadable tenant DSN did not fail the check")
	}
}
