package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/testenv"
)

const secret = "S3cret/pa ss'w\\ord-4217"

// assertNoSecret fails when err's message holds secret in any spelling a
// connection string could carry it.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), "S3cret", "4217"} {
		if strings.Contains(msg, form) {
			t.Fatalf("error reveals the password (%q): %s", form, msg)
		}
	}
}

func TestUnreachableServerHidesPassword(t *testing.T) {
	port := testenv.ClosedPort(t, "4217")
	for _, dsn := range []string{
		fmt.Sprintf("host=127.0.0.1 port=%d user=kluis password=%s dbname=tenant connect_timeout=2", port, quoteConninfoValue(secret)),
		fmt.Sprintf("postgres://kluis:%s@127.0.0.1:%d/tenant?connect_timeout=2", url.PathEscape(secret), port),
		fmt.Sprintf("postgres://kluis@127.0.0.1:%d/tenant?connect_timeout=2&password=%s", port, url.QueryEscape(secret)),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := New(dsn, testKey, Options{}).Snapshot(ctx)
		assertNoSecret(t, err)
		_, err = NewTarget(ctx, dsn, testKey, TargetOptions{})
		assertNoSecret(t, err)
		cancel()
	}
}

func TestInvalidDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"host=127.0.0.1 password='" + secret, // unterminated quote
		"host=127.0.0.1 port=x password=" + url.QueryEscape(secret),
		"postgres://kluis:" + secret + "@127.0.0.1:99999/db",
	} {
		_, err := New(dsn, testKey, Options{}).Snapshot(context.Background())
		assertNoSecret(t, err)
		if !errors.Is(err, errInvalidDSN) {
			t.Errorf("%v", err)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	srv := pgtest.Start(t)
	if !srv.PasswordAuth {
		testenv.SkipOrFail(t, "the test server does not check passwords (fallback server with trust authentication)")
	}
	ctx := testContext(t)
	dsn := pgtest.WithPassword(srv.DSN("postgres"), secret)
	_, err := New(dsn, testKey, Options{}).Snapshot(ctx)
	assertNoSecret(t, err)
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("error does not say what failed: %v", err)
	}
	_, err = NewTarget(ctx, pgtest.WithPassword(srv.DSN("restore_here"), secret), testKey, TargetOptions{})
	assertNoSecret(t, err)
}

func TestTargetRefusesNonEmpty(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	dsn := srv.CreateDB(t, "not empty")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE precious (id int); INSERT INTO precious VALUES (1);`)
	_, err := NewTarget(ctx, dsn, testKey, TargetOptions{})
	if !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("want ErrTargetNotEmpty, got %v", err)
	}
	conn := pgtest.ConnectDSN(t, dsn)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM precious").Scan(&n); err != nil || n != 1 {
		t.Fatalf("refused target was changed: n=%d err=%v", n, err)
	}

	// Force drops and recreates it, even with a session open on it.
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{Force: true})
	if err != nil {
		t.Fatalf("forced target: %v", err)
	}
	defer tg.Close()
	if err := tg.ApplySchema(ctx, strings.NewReader("CREATE TABLE public.fresh (id int);")); err != nil {
		t.Fatal(err)
	}
	check := pgtest.ConnectDSN(t, dsn)
	var exists bool
	if err := check.QueryRow(ctx, "SELECT to_regclass('public.precious') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("forced target still holds the old table: exists=%v err=%v", exists, err)
	}

	// An empty existing database is used as it is.
	empty := srv.CreateDB(t, "empty")
	tg2, err := NewTarget(ctx, empty, testKey, TargetOptions{})
	if err != nil {
		t.Fatalf("empty target: %v", err)
	}
	tg2.Close()
}

func TestApplySchemaErrorNamesLine(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	dsn := srv.DSN(srv.UniqueName("bad schema"))
	t.Cleanup(func() { srv.DropDB(t, dbName(t, dsn)) })
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ddl := "--\n\\restrict abc123\n\nCREATE TABLE ok (id int);\nCREATE TABLE ünï (id int);\n\\! touch /tmp/pwned\n\n\\unrestrict abc123\n"
	err = tg.ApplySchema(ctx, strings.NewReader(ddl))
	if err == nil || !strings.Contains(err.Error(), `line 6: "\\! touch /tmp/pwned"`) {
		t.Fatalf("want a syntax error at line 6, got %v", err)
	}
	// The section is one transaction: nothing of it was applied.
	conn := pgtest.ConnectDSN(t, dsn)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('public.ok') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("a failed schema was partly applied: exists=%v err=%v", exists, err)
	}
}

func TestLoadTableRefusesOtherEncoding(t *testing.T) {
	tg := &Target{}
	err := tg.LoadTable(context.Background(), tableForTest("kluis-row-v1"), bytes.NewReader(nil))
	if err == nil || !strings.Contains(err.Error(), "kluis-row-v1") {
		t.Fatalf("got %v", err)
	}
}
