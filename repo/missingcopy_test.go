package repo_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// A snapshot written while the first location was down is read from the
// second without a "bad copy of object" warning: an object a location
// does not hold is missing there, not bad (issue 21 point 7: 1,435 such
// warnings in one fault run). A copy that is there but wrong still warns.
func TestMissingCopyIsNotABadCopy(t *testing.T) {
	a := randomStream("a", 7, 1<<20)
	f := newFixture(t)
	f.init()
	f.faults[0].SetDown(nil)
	res := backup(t, f.open(), a)
	f.faults[0].SetUp()

	var logs bytes.Buffer
	open := func() *repo.Repo {
		r, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A wrong copy warns as "bad copy of object" (an object read whole) or
	// "damaged object at one location" (a blob read by its byte range).
	warned := func() bool {
		return strings.Contains(logs.String(), "bad copy") || strings.Contains(logs.String(), "damaged object")
	}
	verifyRestore(t, open(), res.ID, a)
	if warned() {
		t.Fatalf("reading objects the first location never received logged:\n%s", logs.String())
	}

	// A pack that is at the first location but wrong is a bad copy.
	packs := f.names(1, "data")
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	f.mems[0].Replace(packs[0], []byte("not the pack"))
	logs.Reset()
	verifyRestore(t, open(), res.ID, a)
	if !warned() {
		t.Errorf("a wrong copy did not warn:\n%s", logs.String())
	}
}
