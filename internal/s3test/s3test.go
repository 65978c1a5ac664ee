// Package s3test gives tests real S3 servers of their own: versitygw
// (github.com/versity/versitygw) with its posix backend, serving a
// temporary directory on a free loopback port, each server with its own
// root credentials. A server can be stopped and started again on the same
// port with the same data, to test outages.
//
// The versitygw binary is looked up in KLUIS_VERSITYGW (a file), then in
// the tool cache (ToolDir), and otherwise built there once from the Go
// module proxy (`go install …/versitygw@Version`, a few minutes;
// scripts/test.sh does it before the tests run). When it can be neither
// found nor built, or a server does not start, the test is skipped locally
// and fails under KLUIS_TEST_REQUIRE_SERVERS=1 (internal/testenv).
package s3test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/repo/s3"
)

// Version is the versitygw release the tests run against.
const Version = "v1.8.0"

// BinEnv names a versitygw binary to use instead of the cached one.
const BinEnv = "KLUIS_VERSITYGW"

const startTimeout = 20 * time.Second

// ToolDir is where the versitygw binary is built and cached:
// $XDG_CACHE_HOME/kluis (usually ~/.cache/kluis).
func ToolDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kluis"), nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the versitygw binary, building it on first use.
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findOrBuild() })
	return binPath, binErr
}

func findOrBuild() (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", BinEnv, err)
		}
		return p, nil
	}
	dir, err := ToolDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
	cmd.Dir = os.TempDir() // outside any module: install the release as published
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building versitygw %s: %v: %s", Version, err, testenv.Tail(out))
	}
	return p, nil
}

// Main runs the package's tests after finding or building versitygw once,
// so the build is not charged to the first test. Servers themselves are
// per test (they start in well under a second) and stop at its cleanup.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
func Main(m *testing.M) {
	if _, err := Binary(); err != nil {
		fmt.Fprintf(os.Stderr, "s3test: %v (S3 tests will skip or fail)\n", err)
	}
	os.Exit(m.Run())
}

// Server is one S3 server for tests.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string

	dir  string
	port int
	bin  string

	mu   sync.Mutex
	proc *testenv.Process
}

// Start starts a server, stopped and removed at the test's cleanup. It
// skips or fails the test when no server can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		testenv.SkipOrFail(t, "no versitygw for S3 tests: %v", err)
		return nil
	}
	s := &Server{Region: "us-east-1", AccessKey: "AK" + strings.ToUpper(testenv.RandomHex(9)), SecretKey: "SK" + strings.ToUpper(testenv.RandomHex(18)), dir: t.TempDir(), bin: bin}
	for _, d := range []string{"data", "versions"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	err = testenv.RetryPortClash(func() error {
		if s.port, err = testenv.FreePort(); err != nil {
			return err
		}
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		return s.start()
	})
	if err != nil {
		testenv.SkipOrFail(t, "versitygw does not start: %v", err)
		return nil
	}
	t.Cleanup(s.Stop)
	return s
}

// StartPair starts two servers with different credentials.
func StartPair(t testing.TB) (*Server, *Server) {
	t.Helper()
	return Start(t), Start(t)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := testenv.Command(context.Background(), s.dir, nil, syscall.SIGKILL, s.bin,
		"--port", "127.0.0.1:"+strconv.Itoa(s.port),
		"posix", "--versioning-dir", filepath.Join(s.dir, "versions"), filepath.Join(s.dir, "data"))
	// Credentials through the environment, not argv (visible in ps).
	cmd.Env = append(cmd.Env, "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	var err error
	s.proc, err = testenv.StartProcess(context.Background(), cmd, testenv.Launch{
		Name: "versitygw", LogPath: filepath.Join(s.dir, "versitygw.log"),
		Poll: 30 * time.Millisecond, Timeout: startTimeout,
		StopSignal: syscall.SIGTERM, StopGrace: 5 * time.Second,
		Ready: func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		},
	})
	return err
}

// Stop stops the server; its data stays until the test ends.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.Stop()
	s.proc = nil
}

// Restart starts a stopped server again, on the same port with the same
// data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restarting versitygw: %v", err)
	}
}

// DataDir is the directory served; each sub-directory is a bucket.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// Client returns an S3 client with the server's root credentials.
func (s *Server) Client(t testing.TB) *awss3.Client {
	t.Helper()
	return s.Location(t, "admin", "any", nil).Client()
}

// CreateBucket creates a bucket, with Object Lock (and so versioning)
// enabled when lock is set.
func (s *Server) CreateBucket(t testing.TB, bucket string, lock bool) {
	t.Helper()
	in := &awss3.CreateBucketInput{Bucket: aws.String(bucket)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(t).CreateBucket(ctx, in); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	if lock {
		_, err := s.Client(t).PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(bucket),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		if err != nil {
			t.Fatalf("enable versioning on %s: %v", bucket, err)
		}
	}
}

// KeyFiles writes the server's credentials into two files (mode 0600) in
// dir and returns their paths.
func (s *Server) KeyFiles(t testing.TB, dir string) (idFile, secretFile string) {
	t.Helper()
	idFile, secretFile = filepath.Join(dir, "access_key_id"), filepath.Join(dir, "secret_access_key")
	if err := os.WriteFile(idFile, []byte(s.AccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(s.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return idFile, secretFile
}

// Location opens a Location on bucket with the server's credentials;
// opts, when not nil, supplies further options (Lock, Prefix, sizes).
func (s *Server) Location(t testing.TB, name, bucket string, opts *s3.Options) *s3.Location {
	t.Helper()
	var o s3.Options
	if opts != nil {
		o = *opts
	}
	dir := t.TempDir()
	o.Name, o.Endpoint, o.Region, o.Bucket, o.PathStyle = name, s.Endpoint, s.Region, bucket, true
	o.AccessKeyIDFile, o.SecretAccessKeyFile = s.KeyFiles(t, dir)
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 2 // a stopped server should fail fast in tests
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	l, err := s3.New(context.Background(), o)
	if err != nil {
		t.Fatalf("location %s: %v", name, err)
	}
	return l
}

// ObjectPath is the file of an object in the posix backend (for tests
// that damage or remove objects behind the server's back).
func (s *Server) ObjectPath(bucket, key string) string {
	return filepath.Join(s.DataDir(), bucket, filepath.FromSlash(key))
}
