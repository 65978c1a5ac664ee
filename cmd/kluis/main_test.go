package main

// The tests of this package run the real kluis binary as a subprocess,
// exactly as an ops engineer or the scheduler would: they see only exit
// codes, standard output, standard error and the files at the locations.
// TestMain builds the binary once (without -race: the binary is the thing
// under test, not the test's own goroutines).

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/repo"
)

// kluisBin is the binary under test, built by TestMain.
var kluisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kluis-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kluisBin = filepath.Join(dir, "kluis")
	build := exec.Command("go", "build", "-o", kluisBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kluis:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const tenant = "praktijk-a"

// env is one appliance in its own temp directory: a config, key files,
// two local-directory locations (loc-a = amsterdam, loc-g = groningen) and
// a state dir. It records every command's output and, when the test ends,
// asserts that none of it (nor the job history) contains a secret.
type env struct {
	t   *testing.T
	dir string
	cfg string

	mu      sync.Mutex
	outputs []string // "kluis ARGS\n" + stdout + stderr of every command run
	secrets map[string]string
}

// newEnv writes the shared CLI config (testdata/config/cli.yaml at the
// module root) into a fresh temp dir.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir())
}

// newFastEnv is newEnv in a directory on tmpfs when there is one
// ($KLUIS_TEST_FASTDIR, else /dev/shm): the crash tests move gigabytes, and
// the fsyncs of a busy disk would dominate their run time. A SIGKILL does
// not lose the page cache, so for process crashes tmpfs is as good a
// witness as a disk.
func newFastEnv(t *testing.T) *env {
	t.Helper()
	base := os.Getenv("KLUIS_TEST_FASTDIR")
	if base == "" {
		base = "/dev/shm"
	}
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		return newEnv(t)
	}
	dir, err := os.MkdirTemp(base, "kluis-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		return newEnv(t)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return newEnvIn(t, dir)
}

func newEnvIn(t *testing.T, dir string) *env {
	e := &env{t: t, dir: dir, secrets: map[string]string{}}
	e.cfg = filepath.Join(e.dir, "kluis.yaml")
	copyFile(t, testenv.Fixture(t, "config/cli.yaml"), e.cfg)
	t.Cleanup(e.assertNoSecretsLeaked)
	return e
}

// newRepoEnv is newEnv plus `keys init` and `init --tenant`.
func newRepoEnv(t *testing.T) *env {
	t.Helper()
	return initRepo(newEnv(t))
}

// initRepo runs `keys init` and `init --tenant`.
func initRepo(e *env) *env {
	e.t.Helper()
	e.keysInit()
	e.mustRun(0, "init", "--tenant", tenant)
	return e
}

// in makes t (a subtest) the one the env's helpers fail; the returned
// func gives the env back to its test.
func (e *env) in(t *testing.T) func() {
	parent := e.t
	e.t = t
	return func() { e.t = parent }
}

func (e *env) path(p ...string) string { return filepath.Join(append([]string{e.dir}, p...)...) }

// keysInit runs `kluis keys init` and registers the new keys as secrets.
func (e *env) keysInit() result {
	e.t.Helper()
	r := e.mustRun(0, "keys", "init")
	e.addKeySecrets(e.path("secrets", "master.key"), e.path("secrets", "signing.key"))
	return r
}

// addKeySecrets registers the contents of a master key file and a signing
// key file, in every encoding a careless log line might use.
func (e *env) addKeySecrets(masterFile, signingFile string) {
	e.t.Helper()
	mb, err := os.ReadFile(masterFile)
	if err != nil {
		e.t.Fatal(err)
	}
	mk, err := repo.ParseMasterKey(mb)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, line := range strings.Split(string(mb), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			e.secrets["master key line of "+masterFile] = line
			e.secrets["master key base64 of "+masterFile] = strings.TrimPrefix(line, "KLUIS-MASTER-KEY-1-")
		}
	}
	e.secrets["master key hex of "+masterFile] = hex.EncodeToString(mk[:])
	e.secrets["master key std base64 of "+masterFile] = base64.StdEncoding.EncodeToString(mk[:])[:40]

	sb, err := os.ReadFile(signingFile)
	if err != nil {
		e.t.Fatal(err)
	}
	block, _ := pem.Decode(sb)
	if block == nil {
		e.t.Fatalf("%s: no PEM block", signingFile)
	}
	body := strings.TrimSpace(string(sb))
	body = strings.TrimPrefix(body, "-----BEGIN PRIVATE KEY-----")
	body = strings.TrimSuffix(body, "-----END PRIVATE KEY-----")
	body = strings.TrimSpace(body)
	e.secrets["signing key PEM body of "+signingFile] = body
	for i, line := range strings.Split(body, "\n") {
		e.secrets[fmt.Sprintf("signing key PEM line %d of %s", i, signingFile)] = strings.TrimSpace(line)
	}
	seed := block.Bytes[len(block.Bytes)-32:] // PKCS #8 Ed25519: the seed is the last 32 bytes
	e.secrets["signing seed hex of "+signingFile] = hex.EncodeToString(seed)
	e.secrets["signing seed base64 of "+signingFile] = base64.StdEncoding.EncodeToString(seed)[:40]
}

func (e *env) assertNoSecretsLeaked() {
	leaks, checked := e.leaks()
	for _, l := range leaks {
		e.t.Error(l)
	}
	if len(leaks) == 0 && checked > 0 {
		e.t.Logf("secrets: %d key encodings checked against the output of %d commands: none leaked", checked, len(e.outputs))
	}
}

// leaks returns a message for every secret found in a command's output or
// in the job history, and how many secret encodings were looked for.
func (e *env) leaks() (leaks []string, checked int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	texts := append([]string(nil), e.outputs...)
	// The job history is a log too.
	if b, err := os.ReadFile(e.path("state", "history.jsonl")); err == nil {
		texts = append(texts, "state/history.jsonl\n"+string(b))
	}
	for name, secret := range e.secrets {
		if len(secret) < 16 {
			continue
		}
		checked++
		for _, out := range texts {
			if strings.Contains(out, secret) {
				cmd, _, _ := strings.Cut(out, "\n")
				leaks = append(leaks, fmt.Sprintf("the %s appears in the output of %s", name, cmd))
			}
		}
	}
	sort.Strings(leaks)
	return leaks, checked
}

// result is one finished (or killed) command.
type result struct {
	args           []string
	code           int // -1: killed by a signal
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("kluis %s: exit %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// command returns an unstarted kluis command in the env's dir, configured
// through $KLUIS_CONFIG so that even flag parsing errors see the config.
func (e *env) command(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	c := exec.Command(kluisBin, args...)
	c.Dir = e.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KLUIS_") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, "KLUIS_CONFIG="+e.cfg)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	return c, &stdout, &stderr
}

// finish records the output of a command that ended.
func (e *env) finish(args []string, stdout, stderr *bytes.Buffer, waitErr error) (result, error) {
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	e.mu.Lock()
	e.outputs = append(e.outputs, "kluis "+strings.Join(args, " ")+"\n"+r.stdout+r.stderr)
	e.mu.Unlock()
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
		r.code = 0
	case errors.As(waitErr, &ee):
		r.code = ee.ExitCode() // -1 when killed by a signal
	default:
		return r, fmt.Errorf("kluis %s: %w", strings.Join(args, " "), waitErr)
	}
	return r, nil
}

// runE runs kluis to completion; the error is for a command that could
// not run at all. It may be called from any goroutine.
func (e *env) runE(args ...string) (result, error) {
	c, stdout, stderr := e.command(args...)
	return e.finish(args, stdout, stderr, c.Run())
}

// run runs kluis to completion.
func (e *env) run(args ...string) result {
	e.t.Helper()
	r, err := e.runE(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// mustRunE runs kluis and returns an error unless it exits with want.
func (e *env) mustRunE(want int, args ...string) (result, error) {
	r, err := e.runE(args...)
	if err == nil && r.code != want {
		err = fmt.Errorf("want exit %d, got %v", want, r)
	}
	return r, err
}

// mustRun runs kluis and fails the test unless it exits with want.
func (e *env) mustRun(want int, args ...string) result {
	e.t.Helper()
	r, err := e.mustRunE(want, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// runKilled starts kluis and SIGKILLs it after delay unless it ended
// before. killed reports whether the signal was delivered to a running
// process.
func (e *env) runKilled(delay time.Duration, args ...string) (r result, killed bool) {
	e.t.Helper()
	c, stdout, stderr := e.command(args...)
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(delay):
		killed = c.Process.Kill() == nil // SIGKILL
		err = <-done
		if killed {
			// The kill may have raced with a normal exit.
			var ee *exec.ExitError
			killed = errors.As(err, &ee) && !ee.Exited()
		}
	}
	r, err = e.finish(args, stdout, stderr, err)
	if err != nil {
		e.t.Fatal(err)
	}
	return r, killed
}

// mustJSON runs kluis with --json appended, wants exit code want, and
// decodes standard output into v.
func (e *env) mustJSON(want int, v any, args ...string) result {
	e.t.Helper()
	r, err := e.mustJSONE(want, v, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) mustJSONE(want int, v any, args ...string) (result, error) {
	r, err := e.mustRunE(want, append(args, "--json")...)
	if err != nil {
		return r, err
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return r, fmt.Errorf("stdout is not JSON (%v): %v", err, r)
	}
	if err := dec.Decode(new(any)); err != io.EOF {
		return r, fmt.Errorf("stdout is more than one JSON value: %v", r)
	}
	return r, nil
}

// backup backs up file as stream db and returns the snapshot id.
func (e *env) backup(want int, file string) string {
	e.t.Helper()
	var out struct {
		Snapshot string `json:"snapshot"`
	}
	e.mustJSON(want, &out, "backup", "--tenant", tenant, "--file", "db="+file)
	if len(out.Snapshot) != 64 {
		e.t.Fatalf("backup --json: snapshot %q is not a 64-digit id", out.Snapshot)
	}
	return out.Snapshot
}

// checkOK runs `check --read-data` (plus extra args) and wants exit 0 and
// no errors at any location. It returns the per-location verdicts.
func (e *env) checkOK(extra ...string) []checkLocation {
	e.t.Helper()
	locs, err := e.checkE(extra...)
	if err != nil {
		e.t.Fatal(err)
	}
	return locs
}

func (e *env) checkE(extra ...string) ([]checkLocation, error) {
	var out checkOutput
	r, err := e.mustJSONE(0, &out, append([]string{"check", "--tenant", tenant, "--read-data"}, extra...)...)
	if err != nil {
		return nil, err
	}
	if !out.OK || len(out.Locations) == 0 {
		return nil, fmt.Errorf("check exited 0 but says ok=%v: %v", out.OK, r)
	}
	for _, l := range out.Locations {
		if len(l.Errors) > 0 {
			return nil, fmt.Errorf("check exited 0 with errors at %s: %v", l.Location, r)
		}
	}
	return out.Locations, nil
}

// checkAndRestore runs checkOK and restoreEqual side by side (both only
// read) and returns the check's verdicts and how long each took.
func (e *env) checkAndRestore(snapshot, want string, restoreExtra ...string) (locs []checkLocation, checkTime, restoreTime time.Duration) {
	e.t.Helper()
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		_, rerr = e.restoreE(snapshot, want, restoreExtra...)
		restoreTime = time.Since(start)
	}()
	start := time.Now()
	locs, cerr := e.checkE()
	checkTime = time.Since(start)
	<-done
	if err := errors.Join(cerr, rerr); err != nil {
		e.t.Fatal(err)
	}
	return locs, checkTime, restoreTime
}

type checkOutput struct {
	Tenant    string          `json:"tenant"`
	OK        bool            `json:"ok"`
	Locations []checkLocation `json:"locations"`
}

type checkLocation struct {
	Location  string   `json:"location"`
	Snapshots int      `json:"snapshots"`
	Indexes   int      `json:"indexes"`
	Packs     int      `json:"packs"`
	PacksRead int      `json:"packs_read"`
	BytesRead int64    `json:"bytes_read"`
	Errors    []string `json:"errors"`
	Warnings  []string `json:"warnings"`
	Notes     []string `json:"notes"`
}

// restoreEqual restores snapshot (an id or "latest") into a fresh
// directory, asserts that stream db equals want byte for byte, and removes
// the restored copy.
func (e *env) restoreEqual(snapshot, want string, extra ...string) result {
	e.t.Helper()
	r, err := e.restoreE(snapshot, want, extra...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) restoreE(snapshot, want string, extra ...string) (result, error) {
	out, err := os.MkdirTemp(e.dir, "restore-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(out)
	dst := filepath.Join(out, "to")
	r, err := e.mustRunE(0, append([]string{"restore", "--tenant", tenant, "--snapshot", snapshot, "--to-dir", dst}, extra...)...)
	if err != nil {
		return r, err
	}
	if err := sameFile(filepath.Join(dst, "db"), want); err != nil {
		return r, fmt.Errorf("restore of %s: %w", snapshot, err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 1 {
		return r, fmt.Errorf("restore of %s wrote %d entries, want exactly db", snapshot, len(entries))
	}
	return r, nil
}

// sameFile compares two files byte for byte (like cmp).
func sameFile(got, want string) error {
	fg, err := os.Open(got)
	if err != nil {
		return err
	}
	defer fg.Close()
	fw, err := os.Open(want)
	if err != nil {
		return err
	}
	defer fw.Close()
	bg, bw := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		ng, eg := io.ReadFull(fg, bg)
		nw, ew := io.ReadFull(fw, bw)
		if !bytes.Equal(bg[:ng], bw[:nw]) {
			for i := 0; i < min(ng, nw); i++ {
				if bg[i] != bw[i] {
					return fmt.Errorf("%s differs from %s at byte %d", got, want, off+int64(i))
				}
			}
			return fmt.Errorf("%s and %s differ in length (around byte %d)", got, want, off+int64(min(ng, nw)))
		}
		off += int64(ng)
		endG := eg == io.EOF || eg == io.ErrUnexpectedEOF
		endW := ew == io.EOF || ew == io.ErrUnexpectedEOF
		if eg != nil && !endG {
			return eg
		}
		if ew != nil && !endW {
			return ew
		}
		if endG || endW {
			if endG != endW {
				return fmt.Errorf("%s and %s differ in length (%d bytes equal)", got, want, off)
			}
			return nil
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshotRow is one row of `snapshots --json`.
type snapshotRow struct {
	ID        string    `json:"id"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Engine    string    `json:"engine"`
	Streams   int       `json:"streams"`
	Bytes     int64     `json:"bytes"`
	Locations []string  `json:"locations"`
	Degraded  bool      `json:"degraded"`
}

func (e *env) snapshots() []snapshotRow {
	e.t.Helper()
	var rows []snapshotRow
	e.mustJSON(0, &rows, "snapshots", "--tenant", tenant)
	return rows
}

// objects lists the object files under a location root (relative, slash
// separated), skipping nothing: temp files show up too.
func objects(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// packs returns the pack objects (tenant/data/xx/hash) at a location root.
func packs(t *testing.T, root string) []string {
	var out []string
	for _, o := range objects(t, root) {
		if strings.HasPrefix(o, tenant+"/data/") && !strings.Contains(o, "/.tmp-") {
			out = append(out, o)
		}
	}
	return out
}

// writeData writes n bytes of mixed data to path: stretches of random
// bytes (incompressible, like encrypted columns or images) alternating
// with table-like text (a dump of a practice's appointments).
func writeData(t *testing.T, rng *rand.Rand, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, mixedData(rng, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mixedData(rng *rand.Rand, n int) []byte {
	out := make([]byte, 0, n+4096)
	var seed [32]byte
	for len(out) < n {
		seg := min(64<<10+rng.IntN(960<<10), n-len(out))
		if rng.IntN(5) < 2 { // 40% random
			for i := range seed {
				seed[i] = byte(rng.Uint32())
			}
			start := len(out)
			out = out[:start+seg]
			rand.NewChaCha8(seed).Read(out[start:])
			continue
		}
		out = appendTable(rng, out, len(out)+seg)
	}
	return out[:n]
}

var (
	surnames = []string{"Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot"}
	notes    = []string{"consult", "controle", "herhaalrecept", "verwijzing fysiotherapie", "bloeddruk gemeten", "telefonisch consult", "griepvaccinatie"}
)

// appendTable appends tab-separated rows until out is end bytes long. Rows
// are drawn from a pool made per call (generating every field of every row
// is slow under -race) and numbered, so no two rows are equal.
func appendTable(rng *rand.Rand, out []byte, end int) []byte {
	pool := make([][]byte, 512)
	for i := range pool {
		var row []byte
		row = append(row, '\t')
		row = append(row, surnames[rng.IntN(len(surnames))]...)
		row = append(row, '\t')
		row = strconv.AppendInt(row, int64(100000000+rng.IntN(900000000)), 10) // BSN-like
		row = append(row, "\t2025-"...)
		row = strconv.AppendInt(row, int64(1+rng.IntN(12)), 10)
		row = append(row, '-')
		row = strconv.AppendInt(row, int64(1+rng.IntN(28)), 10)
		row = append(row, '\t')
		row = append(row, notes[rng.IntN(len(notes))]...)
		row = append(row, '\n')
		pool[i] = row
	}
	id := int64(rng.IntN(1e6))
	x := rng.Uint64()
	for len(out) < end {
		id++
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out = strconv.AppendInt(out, id, 10)
		out = append(out, pool[x%uint64(len(pool))]...)
	}
	return out[:end]
}

// seededRand returns a generator seeded from $KLUIS_TEST_SEED or the clock,
// and logs the seed so that a failure can be replayed.
func seededRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KLUIS_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KLUIS_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with KLUIS_TEST_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x6b6c756973))
}
