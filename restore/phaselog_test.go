package restore

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

// lockedBuffer is a bytes.Buffer safe for the restore's concurrent loads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// At debug level (kluis restore --log-level debug) a restore logs each
// phase in order and each table it restored: where a slow restore spends
// its time.
func TestRestoreLogsPhasesAtDebug(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "praktijk.db")
	if err := synth.GenerateSQLiteFile(ctx, src, synth.Tiny, 3); err != nil {
		t.Fatal(err)
	}
	mk, _ := repo.GenerateMasterKey()
	r, _, err := repo.Init(ctx, "praktijk", []repo.Location{local.New("a", t.TempDir())}, repo.Options{Master: mk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Database(ctx, r, sqlite.New(src, r.FingerprintKey()), repo.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	target, err := sqlite.NewTarget(filepath.Join(dir, "restored.db"), r.FingerprintKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
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
