package pgtest

import (
	"context"
	"fmt"
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

// TestDSNAsDatabaseNameNeverPrinted (new-user trial, 2026-12-02): a
// connection string passed where a database name belongs went into the
// server's "database … does not exist" error, password and all, and
// Fatalf printed it. DSN refuses such a name without showing it, and the
// connect errors of ConnectDSN and ExecDSN are redacted.
func TestDSNAsDatabaseNameNeverPrinted(t *testing.T) {
	s := Start(t)
	const secret = "s3cret-in-the-wrong-place"
	inner := "host=db.internal user=app password=" + secret + " dbname=praktijk"
	func() {
		defer func() {
			r := recover()
			if r == nil {
				t.Fatal("DSN accepted a connection string as a database name")
			}
			if msg := fmt.Sprint(r); strings.Contains(msg, secret) {
				t.Errorf("the panic shows the password: %s", msg)
			}
		}()
		s.DSN(inner)
	}()
	// The same mistake made by hand: the server's error names the
	// database; the message a test prints does not hold the password.
	dsn := s.DSN("postgres") + " dbname='" + strings.ReplaceAll(inner, "'", `\'`) + "'"
	_, err := pgx.Connect(context.Background(), dsn)
	if err == nil {
		t.Fatal("connected to a database named like a DSN")
	}
	msg := redactDSN(dsn, err.Error()+" "+inner)
	if strings.Contains(msg, secret) || (s.Password != "" && strings.Contains(msg, s.Password)) {
		t.Errorf("redacted message still holds a password: %s", msg)
	}
}
