package restore

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/source/sqlite"
)

// At debug level (kluis restore --log-level debug) a restore logs each
// phase in order and each table it restored: where a slow restore spends
// its time.
func TestRestoreLogsPhasesAtDebug(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, snap := tinySnapshot(t, dir, 3)
	target, err := sqlite.NewTarget(filepath.Join(dir, "restored.db"), r.FingerprintKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	// slog's handlers write a record at a time, and the log is read
	// once the restore's loads have ended.
	var out bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	res, err := ToDatabase(ctx, r, snap, target, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := out.String()
	at := 0
	for _, phase := range []string{`done="pre-data schema"`, `done=tables`, `done="post-data schema"`, `done=proof`} {
		i := strings.Index(log[at:], `msg="restore phase" `+phase)
		if i < 0 {
			t.Fatalf("no %s phase after byte %d of the debug log:\n%s", phase, at, log)
		}
		at += i
	}
	for _, tc := range res.Tables {
		line := `msg="table restored" table=`
		if !strings.Contains(log, line+tc.Table+" ") && !strings.Contains(log, line+strconv.Quote(tc.Table)+" ") {
			t.Errorf("no line for table %s in the debug log:\n%s", tc.Table, log)
		}
	}
	if len(res.Tables) == 0 {
		t.Fatal("restored no table")
	}
}
