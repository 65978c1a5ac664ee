package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/kluis-nl/kluis/repo"
)

// misconfigured says which setting an S3 error points at when it is a
// configuration problem rather than an outage ("" otherwise): a retry or a
// `kluis sync` later will not help until someone changes the config or the
// bucket.
func misconfigured(err error) string {
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	msg := ""
	if ae != nil {
		msg = ae.ErrorMessage()
	}
	switch {
	case code == "NoSuchBucket":
		return "the bucket does not exist: check `bucket:` (and `endpoint:`)"
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return "the server refuses these credentials: check access_key_id_file and secret_access_key_file"
	case code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || code == "IllegalLocationConstraintException" ||
		code == "BadRequest" || httpStatus(err) == http.StatusMovedPermanently || (httpStatus(err) == http.StatusBadRequest && code == ""):
		return "the server rejects the request as malformed, usually a region mismatch: check `region:` (and `endpoint:`)"
	case code == "InvalidRequest" && strings.Contains(strings.ToLower(msg), "objectlock"),
		code == "InvalidRequest" && strings.Contains(strings.ToLower(msg), "object lock"):
		return "object_lock is configured but the bucket has no Object Lock: create the bucket with Object Lock enabled, or remove object_lock:"
	case code == "AccessDenied" || code == "Forbidden" || httpStatus(err) == http.StatusForbidden:
		return "access denied (403): check the credentials and the bucket policy for this location"
	}
	return ""
}

// bucketCheck remembers, for a short while, whether the bucket exists: a
// HEAD of a missing object answers a bare 404 with no error code, the same
// as a missing bucket, and "object not found" at a location whose bucket
// is gone would read as lost copies.
type bucketCheck struct {
	mu      sync.Mutex
	checked time.Time
	missing bool
}

const bucketCheckTTL = time.Minute

// bucketMissing reports whether the bucket itself does not exist (checked
// at most once a minute).
func (l *Location) bucketMissing(ctx context.Context) bool {
	l.bucket.mu.Lock()
	defer l.bucket.mu.Unlock()
	if time.Since(l.bucket.checked) < bucketCheckTTL {
		return l.bucket.missing
	}
	_, err := l.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(l.opts.Bucket)})
	if err != nil && ctx.Err() != nil {
		return false // no answer: say nothing, check again next time
	}
	l.bucket.checked = time.Now()
	l.bucket.missing = err != nil && httpStatus(err) == http.StatusNotFound
	return l.bucket.missing
}

// errNoBucket is the error for an operation on a bucket that is gone.
func (l *Location) errNoBucket(op, name string) error {
	return fmt.Errorf("location %s: %s %s: bucket %s does not exist: check `bucket:` (and `endpoint:`); %w", l.opts.Name, op, name, l.opts.Bucket, repo.ErrMisconfigured)
}
