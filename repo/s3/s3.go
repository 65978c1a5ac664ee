// Package s3 is the S3-compatible Location: one object per repository
// object, under an optional prefix in one bucket, written with
// github.com/aws/aws-sdk-go-v2.
//
// What it guarantees, beyond the repo.Location contract:
//
//   - Never overwrite. Put first asks HEAD whether the name exists (a
//     repeat is then free), and the PUT itself carries If-None-Match: *,
//     so a server that supports conditional writes refuses to replace an
//     object written in between (412, taken as "exists"). A server that
//     ignores the header can at worst store a second copy of the same
//     content-addressed bytes — names are SHA-256 of the content — or,
//     for the write-once "config", lose a race between two inits of the
//     same tenant, which the tenant lock excludes.
//   - Integrity in transit: every upload carries an x-amz-checksum-sha256
//     the server verifies; downloads are verified by the repository
//     against the object's name.
//   - Large objects (above Options.MultipartThreshold) are uploaded in
//     parts; an upload that fails is aborted, and an incomplete upload is
//     never listed.
//   - Object Lock: with Options.Lock every object is written with its
//     mode and a retain-until date of now + Days. Delete of an object
//     whose retention has not ended returns repo.ErrRetained without trying,
//     so prune can skip it; the server would refuse anyway.
//   - Versions (Object Lock buckets, and buckets with versioning): reads,
//     Stat and List see through delete markers; ReadVersions gives older
//     versions to a caller whose content check fails on the current one;
//     Delete removes every version and the markers, or nothing
//     (repo.ErrRetained) while one is locked; VersionAnomalies lists the
//     names with a second version or a marker (repo.VersionedLocation).
//   - Secrets (the access key files' contents) never appear in errors or
//     logs: errors name the location, the operation and the object.
//
// It must not know repository formats: it stores named bytes.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/secretfile"
)

// Lock is the Object Lock retention written with every object.
type Lock struct {
	// Mode is "compliance" (nobody can shorten it, not even the bucket
	// owner) or "governance" (a user with s3:BypassGovernanceRetention can).
	Mode string
	// Days is how long each object is retained from when it is written.
	Days int
}

// Options configure a Location.
type Options struct {
	Name string
	// Endpoint is the service URL ("https://s3.example.nl"); empty for AWS.
	Endpoint  string
	Region    string
	Bucket    string
	Prefix    string // prepended to every object name, e.g. "kluis/"
	PathStyle bool
	// AccessKeyIDFile and SecretAccessKeyFile hold this location's
	// credentials (mode 0600). When both are empty the standard AWS
	// credential chain is used (environment, shared files, instance role).
	AccessKeyIDFile     string
	SecretAccessKeyFile string
	// CAFile, when set, is a PEM bundle trusted in addition to the system's.
	CAFile string
	Lock   *Lock

	// MultipartThreshold: larger objects are uploaded in parts of PartSize.
	MultipartThreshold int64
	PartSize           int64
	// MaxAttempts is the number of tries of one request (with exponential
	// backoff and jitter between them).
	MaxAttempts int
	// Timeout bounds one metadata request (HEAD, list page, delete); an
	// upload gets Timeout plus a minute per 64 MiB.
	Timeout time.Duration
	// HTTPClient replaces the default client (tests put a fault proxy in
	// between with Endpoint instead; this is for custom transports).
	HTTPClient *http.Client
	Now        func() time.Time
}

// Defaults for Options left at zero.
const (
	DefaultMultipartThreshold = 32 << 20
	DefaultPartSize           = 16 << 20
	DefaultMaxAttempts        = 5
	DefaultTimeout            = 60 * time.Second
	minPartSize               = 5 << 20
)

// Location stores objects in an S3 bucket.
type Location struct {
	opts   Options
	client *s3.Client
	bucket bucketCheck

	versionedMu     sync.Mutex
	versionedKnown  bool
	versionedBucket bool
}

// New returns a Location. It reads the credential files and the CA file
// but contacts no server.
func New(ctx context.Context, opts Options) (*Location, error) {
	if opts.Bucket == "" {
		return nil, fmt.Errorf("location %s: no bucket", opts.Name)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = DefaultMultipartThreshold
	}
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	opts.PartSize = max(opts.PartSize, minPartSize)
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lock != nil {
		switch opts.Lock.Mode {
		case "compliance", "governance":
		default:
			return nil, fmt.Errorf("location %s: object lock mode %q: want compliance or governance", opts.Name, opts.Lock.Mode)
		}
		if opts.Lock.Days < 1 {
			return nil, fmt.Errorf("location %s: object lock days must be at least 1", opts.Name)
		}
	}
	hc := opts.HTTPClient
	if hc == nil {
		var err error
		if hc, err = httpClient(opts.CAFile); err != nil {
			return nil, fmt.Errorf("location %s: %w", opts.Name, err)
		}
	}
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = opts.MaxAttempts
			o.MaxBackoff = 20 * time.Second
		})
	}
	var cfg aws.Config
	if opts.AccessKeyIDFile != "" || opts.SecretAccessKeyFile != "" {
		id, err := ReadSecretFile(opts.AccessKeyIDFile)
		if err != nil {
			return nil, fmt.Errorf("location %s: access_key_id_file: %w", opts.Name, err)
		}
		secret, err := ReadSecretFile(opts.SecretAccessKeyFile)
		if err != nil {
			return nil, fmt.Errorf("location %s: secret_access_key_file: %w", opts.Name, err)
		}
		// This location's own credentials: nothing from the environment
		// or shared AWS files may change where or as whom it writes.
		cfg = aws.Config{
			Region:      opts.Region,
			Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, "")),
			HTTPClient:  hc, Retryer: retryer,
		}
	} else {
		var err error
		cfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(opts.Region), awsconfig.WithRetryer(retryer))
		if err != nil {
			return nil, fmt.Errorf("location %s: aws config: %w", opts.Name, err)
		}
		if opts.HTTPClient != nil || opts.CAFile != "" {
			cfg.HTTPClient = hc
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Location{opts: opts, client: client}, nil
}

// ReadSecretFile reads a one-line secret from a file that only its owner
// may read. The error never contains the file's content.
func ReadSecretFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("not set (give both key files, or neither for the AWS credential chain)")
	}
	// secretfile: no symbolic link, owned by the kluis user,
	// mode 0600, a directory nobody else can write, checked on the
	// descriptor read.
	b, err := secretfile.Read(path, 64<<10)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: want one line holding the key", path)
	}
	return s, nil
}

func httpClient(caFile string) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// Name returns the location's name.
func (l *Location) Name() string { return l.opts.Name }

// Bucket returns the bucket name.
func (l *Location) Bucket() string { return l.opts.Bucket }

// Client returns the S3 client (for `config check --online` and tests).
func (l *Location) Client() *s3.Client { return l.client }

// Lock returns the Object Lock settings, nil when none.
func (l *Location) Lock() *Lock { return l.opts.Lock }

func (l *Location) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("location %s: invalid object name %q", l.opts.Name, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("location %s: invalid object name %q", l.opts.Name, name)
		}
	}
	return l.opts.Prefix + name, nil
}

func (l *Location) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("location %s: %s: %w", l.opts.Name, name, repo.ErrNotFound)
	}
	if hint := misconfigured(err); hint != "" {
		return fmt.Errorf("location %s: %s %s: %v: %s; %w", l.opts.Name, op, name, simplify(err), hint, repo.ErrMisconfigured)
	}
	return fmt.Errorf("location %s: %s %s: %w", l.opts.Name, op, name, simplify(err))
}

// simplify keeps the S3 error code and message and drops the SDK's
// request dump; a cancelled context stays errors.Is-able.
func simplify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	return err
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return true
	}
	return httpStatus(err) == http.StatusNotFound && !isNoSuchBucket(err)
}

func isNoSuchBucket(err error) bool {
	var nb *types.NoSuchBucket
	var ae smithy.APIError
	return errors.As(err, &nb) || (errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket")
}

func (l *Location) opCtx(ctx context.Context, size int64) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opts.Timeout+time.Duration(size/(64<<20))*time.Minute)
}

// Put writes data under name unless it exists.
func (l *Location) Put(ctx context.Context, name string, data []byte) error {
	key, err := l.key(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := l.Stat(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, repo.ErrNotFound) {
		return err
	}
	ctx, cancel := l.opCtx(ctx, int64(len(data)))
	defer cancel()
	if int64(len(data)) > l.opts.MultipartThreshold {
		err = l.putMultipart(ctx, key, data, false)
	} else {
		in := &s3.PutObjectInput{
			Bucket: aws.String(l.opts.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			IfNoneMatch:       aws.String("*"),
		}
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.lockFields()
		_, err = l.client.PutObject(ctx, in)
	}
	if isExists(err) {
		return nil
	}
	return l.wrap("put", name, err)
}

// Replace writes data as the current content of name even when an object
// of that name exists: the repair of a damaged copy (repo.Replacer). On a
// versioned bucket it adds a version and the damaged one stays (Object
// Lock may forbid deleting it); reads take the current version, which now
// matches the name.
func (l *Location) Replace(ctx context.Context, name string, data []byte) error {
	key, err := l.key(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := l.opCtx(ctx, int64(len(data)))
	defer cancel()
	if int64(len(data)) > l.opts.MultipartThreshold {
		err = l.putMultipart(ctx, key, data, true)
	} else {
		in := &s3.PutObjectInput{
			Bucket: aws.String(l.opts.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		}
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.lockFields()
		_, err = l.client.PutObject(ctx, in)
	}
	return l.wrap("replace", name, err)
}

func ifNoneMatch(replace bool) *string {
	if replace {
		return nil
	}
	return aws.String("*")
}

// isExists reports a conditional write refused because the name exists
// (412) or because another conditional write of it is in progress (409).
func isExists(err error) bool {
	if err == nil {
		return false
	}
	s := httpStatus(err)
	return s == http.StatusPreconditionFailed || s == http.StatusConflict
}

func (l *Location) lockFields() (types.ObjectLockMode, *time.Time) {
	if l.opts.Lock == nil {
		return "", nil
	}
	until := l.RetainUntil(l.opts.Now())
	mode := types.ObjectLockModeGovernance
	if l.opts.Lock.Mode == "compliance" {
		mode = types.ObjectLockModeCompliance
	}
	return mode, &until
}

// RetainUntil is the retain-until date of an object written at t: t plus
// Lock.Days, rounded up to the second.
func (l *Location) RetainUntil(t time.Time) time.Time {
	return t.UTC().Add(time.Duration(l.opts.Lock.Days) * 24 * time.Hour).Truncate(time.Second).Add(time.Second)
}

func (l *Location) putMultipart(ctx context.Context, key string, data []byte, replace bool) error {
	in := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(l.opts.Bucket), Key: aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.lockFields()
	up, err := l.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return err
	}
	abort := func() {
		// Under a fresh context: the caller's may be the reason to abort.
		actx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
		defer cancel()
		l.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId})
	}
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < int64(len(data)); off, n = off+l.opts.PartSize, n+1 {
		end := min(off+l.opts.PartSize, int64(len(data)))
		out, err := l.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(data[off:end]), ContentLength: aws.Int64(end - off),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		})
		if err != nil {
			abort()
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumSHA256: out.ChecksumSHA256})
	}
	_, err = l.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     ifNoneMatch(replace),
	})
	if err != nil {
		abort()
	}
	return err
}

// Get opens a byte range of an object.
func (l *Location) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	key, err := l.key(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("location %s: %s: negative offset", l.opts.Name, name)
	}
	if length == 0 {
		// No range can express zero bytes: answer from HEAD.
		if _, err := l.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := l.client.GetObject(ctx, in)
	if err != nil && isNotFound(err) {
		// Hidden behind a delete marker? Read the newest real version.
		if v, _, ok, verr := l.hiddenVersion(ctx, key); verr == nil && ok {
			in.VersionId = aws.String(v)
			out, err = l.client.GetObject(ctx, in)
		}
	}
	if err != nil && httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		// The offset is at or past the end (or the object is empty).
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if err != nil {
		return nil, l.wrap("get", name, err)
	}
	return out.Body, nil
}

// Stat returns an object's size and time.
func (l *Location) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	key, err := l.key(name)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, err
	}
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	out, err := l.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)})
	if err != nil && isNotFound(err) {
		if _, info, ok, verr := l.hiddenVersion(ctx, key); verr == nil && ok {
			info.Name = name
			return info, nil
		}
	}
	if err != nil && isNotFound(err) && l.bucketMissing(ctx) {
		return repo.ObjectInfo{}, l.errNoBucket("stat", name)
	}
	if err != nil {
		return repo.ObjectInfo{}, l.wrap("stat", name, err)
	}
	return repo.ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// hiddenVersion finds, on a versioned (Object Lock) bucket, the newest
// data version of key whose latest version is a delete marker: a plain
// DELETE with a stolen credential only hides data, and restore must still
// find it. On an unversioned bucket it finds nothing.
func (l *Location) hiddenVersion(ctx context.Context, key string) (string, repo.ObjectInfo, bool, error) {
	if !l.versioned(ctx) {
		return "", repo.ObjectInfo{}, false, nil
	}
	hidden := map[string]bool{}
	found := map[string]types.ObjectVersion{}
	if err := l.versions(ctx, key, hidden, found); err != nil {
		return "", repo.ObjectInfo{}, false, err
	}
	v, ok := found[key]
	if !ok || !hidden[key] {
		return "", repo.ObjectInfo{}, false, nil
	}
	return aws.ToString(v.VersionId), repo.ObjectInfo{Size: aws.ToInt64(v.Size), ModTime: aws.ToTime(v.LastModified)}, true, nil
}

// versions lists the versions under prefix: hidden gets the keys whose
// latest version is a delete marker, newest the newest data version of
// every key.
func (l *Location) versions(ctx context.Context, prefix string, hidden map[string]bool, newest map[string]types.ObjectVersion) error {
	p := s3.NewListObjectVersionsPaginator(l.client, &s3.ListObjectVersionsInput{
		Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		pctx, cancel := l.opCtx(ctx, 0)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return simplify(err)
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToBool(m.IsLatest) {
				hidden[aws.ToString(m.Key)] = true
			}
		}
		for _, v := range page.Versions {
			k := aws.ToString(v.Key)
			if old, ok := newest[k]; !ok || aws.ToTime(v.LastModified).After(aws.ToTime(old.LastModified)) {
				newest[k] = v
			}
		}
	}
	return nil
}

// ObjectLocked reports whether the location writes objects under Object
// Lock retention (Options.Lock): a delete before the retention ends fails.
func (l *Location) ObjectLocked() bool { return l.opts.Lock != nil }

// ExtendRetention makes an object's retain-until date at least what a new
// write now would get: a pack that a new snapshot reuses must stay locked
// as long as that snapshot. Retention only ever grows (compliance mode
// allows nothing else). Without Object Lock configured it does nothing.
func (l *Location) ExtendRetention(ctx context.Context, name string) error {
	if l.opts.Lock == nil {
		return nil
	}
	key, err := l.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	head, err := l.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)})
	if err != nil {
		return l.wrap("stat", name, err)
	}
	mode, until := l.lockFields()
	if head.ObjectLockRetainUntilDate != nil && !head.ObjectLockRetainUntilDate.Before(*until) {
		return nil
	}
	_, err = l.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket: aws.String(l.opts.Bucket), Key: aws.String(key), VersionId: head.VersionId,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(mode), RetainUntilDate: until},
	})
	return l.wrap("extend retention", name, err)
}

// Retention returns the object's retain-until date (zero when it has
// none). Delete checks it itself and answers repo.ErrRetained, which is
// what prune branches on; this is for reports and tests.
func (l *Location) Retention(ctx context.Context, name string) (time.Time, error) {
	key, err := l.key(name)
	if err != nil {
		return time.Time{}, err
	}
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	out, err := l.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)})
	if err != nil {
		return time.Time{}, l.wrap("stat", name, err)
	}
	if out.ObjectLockMode == "" {
		return time.Time{}, nil
	}
	return aws.ToTime(out.ObjectLockRetainUntilDate), nil
}

// List walks the objects whose names start with prefix.
func (l *Location) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s3.NewListObjectsV2Paginator(l.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(l.opts.Prefix + prefix),
	})
	for p.HasMorePages() {
		pctx, cancel := l.opCtx(ctx, 0)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("location %s: list %s: %w", l.opts.Name, prefix, simplify(err))
		}
		for _, o := range page.Contents {
			if err := ctx.Err(); err != nil {
				return err
			}
			name, ok := strings.CutPrefix(aws.ToString(o.Key), l.opts.Prefix)
			if !ok || strings.HasSuffix(name, "/") {
				continue // a "directory marker" some tools create
			}
			if err := fn(repo.ObjectInfo{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return fmt.Errorf("location %s: list %s: %w", l.opts.Name, prefix, err)
			}
		}
	}
	if l.versioned(ctx) {
		// Objects hidden behind a delete marker still exist on a versioned
		// bucket: list them too, so snapshots and packs stay visible.
		hidden := map[string]bool{}
		newest := map[string]types.ObjectVersion{}
		if err := l.versions(ctx, l.opts.Prefix+prefix, hidden, newest); err != nil {
			return fmt.Errorf("location %s: list versions %s: %w", l.opts.Name, prefix, err)
		}
		for k := range hidden {
			v, ok := newest[k]
			name, pok := strings.CutPrefix(k, l.opts.Prefix)
			if !ok || !pok || strings.HasSuffix(name, "/") {
				continue
			}
			if err := fn(repo.ObjectInfo{Name: name, Size: aws.ToInt64(v.Size), ModTime: aws.ToTime(v.LastModified)}); err != nil {
				return fmt.Errorf("location %s: list %s: %w", l.opts.Name, prefix, err)
			}
		}
	}
	return ctx.Err()
}

// Delete removes an object. On a versioned bucket (every Object Lock
// bucket) it deletes every version of the name itself, and the delete
// markers hiding them (a plain delete would only add a marker and free
// nothing; an attacker's marker must not turn kluis's delete into a silent
// no-op). When any version is still under Object Lock retention nothing is
// touched and the error wraps repo.ErrRetained.
func (l *Location) Delete(ctx context.Context, name string) error {
	key, err := l.key(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.versioned(ctx) {
		return l.deleteVersions(ctx, name, key)
	}
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	head, err := l.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return l.wrap("delete", name, err)
	}
	if until := aws.ToTime(head.ObjectLockRetainUntilDate); head.ObjectLockMode != "" && until.After(l.opts.Now()) {
		return fmt.Errorf("location %s: %s is under Object Lock (%s) until %s: %w",
			l.opts.Name, name, strings.ToLower(string(head.ObjectLockMode)), until.UTC().Format(time.RFC3339), repo.ErrRetained)
	}
	in := &s3.DeleteObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)}
	if v := aws.ToString(head.VersionId); v != "" && v != "null" {
		in.VersionId = aws.String(v)
	}
	_, err = l.client.DeleteObject(ctx, in)
	if err != nil && isNotFound(err) {
		return nil
	}
	return l.wrap("delete", name, err)
}

// Probe checks that the bucket exists and answers to this location's
// credentials and, when Object Lock is configured, that the bucket has
// Object Lock and versioning enabled. It writes nothing.
func (l *Location) Probe(ctx context.Context) error {
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	b := aws.String(l.opts.Bucket)
	if _, err := l.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}); err != nil {
		switch httpStatus(err) {
		case http.StatusNotFound:
			return fmt.Errorf("location %s: bucket %s does not exist", l.opts.Name, l.opts.Bucket)
		case http.StatusForbidden:
			return fmt.Errorf("location %s: bucket %s refuses these credentials (403)", l.opts.Name, l.opts.Bucket)
		}
		return fmt.Errorf("location %s: bucket %s unreachable: %w", l.opts.Name, l.opts.Bucket, simplify(err))
	}
	if l.opts.Lock == nil {
		return nil
	}
	lc, err := l.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: b})
	if err != nil || lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		msg := "not enabled"
		if err != nil {
			msg = simplify(err).Error()
		}
		return fmt.Errorf("location %s: object_lock is configured but bucket %s has no Object Lock (%s): create the bucket with Object Lock enabled", l.opts.Name, l.opts.Bucket, msg)
	}
	v, err := l.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
	if err != nil {
		return fmt.Errorf("location %s: bucket %s versioning: %w", l.opts.Name, l.opts.Bucket, simplify(err))
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return fmt.Errorf("location %s: bucket %s has versioning %q, want Enabled (Object Lock needs it)", l.opts.Name, l.opts.Bucket, v.Status)
	}
	return nil
}

// Undelete removes the delete markers that hide objects under prefix (a
// plain DELETE on a versioned bucket only adds one; under Object Lock the
// data version stays), so the objects are visible again. It returns how
// many objects it brought back. Recovery after someone deleted objects
// with a stolen credential; it never removes data.
func (l *Location) Undelete(ctx context.Context, prefix string) (int, error) {
	p := s3.NewListObjectVersionsPaginator(l.client, &s3.ListObjectVersionsInput{
		Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(l.opts.Prefix + prefix),
	})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("location %s: list versions %s: %w", l.opts.Name, prefix, simplify(err))
		}
		for _, m := range page.DeleteMarkers {
			if !aws.ToBool(m.IsLatest) {
				continue
			}
			_, err := l.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(l.opts.Bucket), Key: m.Key, VersionId: m.VersionId})
			if err != nil {
				return n, fmt.Errorf("location %s: remove delete marker of %s: %w", l.opts.Name, strings.TrimPrefix(aws.ToString(m.Key), l.opts.Prefix), simplify(err))
			}
			n++
		}
	}
	return n, nil
}
