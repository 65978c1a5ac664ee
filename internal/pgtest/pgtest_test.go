package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/internal/testenv"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartCreateDB(t *testing.T) {
	s := Start(t)
	dsn := s.CreateDB(t, "Hello World!")
	conn := ConnectDSN(t, dsn)
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "kluis_") || !strings.HasSuffix(db, "_hello_world_") {
		t.Fatalf("database name %q", db)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	s := Start(t)
	if !s.PasswordAuth {
		testenv.SkipOrFail(t, "the fallback server does not check passwords")
	}
	_, err := pgx.Connect(context.Background(), WithPassword(s.DSN("postgres"), "not-"+s.Password))
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
}

func TestShared(t *testing.T) {
	if Start(t) != Start(t) {
		t.Fatal("Start under Main must return the shared server")
	}
}
