package mariadbtest

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/internal/testenv"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartCreateDB(t *testing.T) {
	s := Start(t)
	dsn := s.CreateDB(t, "Hello World!")
	var db, cs string
	if err := OpenDSN(t, dsn).QueryRow("SELECT DATABASE(), @@character_set_database").Scan(&db, &cs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "kluis_") || !strings.HasSuffix(db, "_hello_world_") || cs != "utf8mb4" {
		t.Fatalf("database %q, character set %q", db, cs)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	s := Start(t)
	if !s.PasswordAuth {
		testenv.SkipOrFail(t, "the fallback server does not check passwords")
	}
	err := OpenDSN(t, WithPassword(s.DSN(""), "not-"+s.Password)).PingContext(context.Background())
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 { // ER_ACCESS_DENIED_ERROR
		t.Fatalf("wrong password: %v", err)
	}
}

func TestShared(t *testing.T) {
	if Start(t) != Start(t) {
		t.Fatal("Start under Main must return the shared server")
	}
}

func TestClientTool(t *testing.T) {
	s := Start(t)
	dsn := s.CreateDB(t, "client")
	var name string
	if err := OpenDSN(t, dsn).QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	args, env := s.ClientArgs()
	cmd := exec.Command(s.Tool(t, "mariadb"), append(args, "--batch", "--skip-column-names", "-e", "SELECT 6*7", name)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("mariadb client: %v: %s", err, out)
	}
}
