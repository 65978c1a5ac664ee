package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kluis-nl/kluis/repo"
)

// versioned reports whether the bucket keeps versions: always under
// Object Lock, otherwise as the bucket's versioning status says (asked
// once; a question that got no answer is asked again next time).
func (l *Location) versioned(ctx context.Context) bool {
	if l.opts.Lock != nil {
		return true
	}
	l.versionedMu.Lock()
	defer l.versionedMu.Unlock()
	if l.versionedKnown {
		return l.versionedBucket
	}
	ctx, cancel := l.opCtx(ctx, 0)
	defer cancel()
	out, err := l.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(l.opts.Bucket)})
	if err != nil {
		// Refused (no permission to ask) is an answer: take the bucket as
		// unversioned. No answer at all: ask again next time.
		if s := httpStatus(err); s == http.StatusForbidden || s == http.StatusNotImplemented {
			l.versionedKnown = true
		}
		return false
	}
	l.versionedKnown = true
	l.versionedBucket = out.Status == types.BucketVersioningStatusEnabled || out.Status == types.BucketVersioningStatusSuspended
	return l.versionedBucket
}

// keyVersions lists the data versions (newest first) and delete markers
// of exactly key.
func (l *Location) keyVersions(ctx context.Context, key string) ([]types.ObjectVersion, []types.DeleteMarkerEntry, error) {
	var vs []types.ObjectVersion
	var ms []types.DeleteMarkerEntry
	p := s3.NewListObjectVersionsPaginator(l.client, &s3.ListObjectVersionsInput{
		Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(key),
	})
	for p.HasMorePages() {
		pctx, cancel := l.opCtx(ctx, 0)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return nil, nil, simplify(err)
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == key {
				vs = append(vs, v)
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				ms = append(ms, m)
			}
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := aws.ToTime(vs[i].LastModified), aws.ToTime(vs[j].LastModified)
		if !a.Equal(b) {
			return a.After(b)
		}
		return aws.ToBool(vs[i].IsLatest) && !aws.ToBool(vs[j].IsLatest)
	})
	return vs, ms, nil
}

// ReadVersions calls fn with each data version of name, newest first,
// until fn returns true (repo.VersionedLocation). A version larger than
// max is skipped unread.
func (l *Location) ReadVersions(ctx context.Context, name string, max int64, fn func([]byte) bool) (bool, error) {
	key, err := l.key(name)
	if err != nil {
		return false, err
	}
	if !l.versioned(ctx) {
		return false, nil
	}
	vs, _, err := l.keyVersions(ctx, key)
	if err != nil {
		return false, fmt.Errorf("location %s: list versions of %s: %w", l.opts.Name, name, err)
	}
	for _, v := range vs {
		if aws.ToInt64(v.Size) > max {
			continue
		}
		data, err := l.getVersion(ctx, key, aws.ToString(v.VersionId), max)
		if err != nil {
			return false, l.wrap("get version", name, err)
		}
		if fn(data) {
			return true, nil
		}
	}
	return false, nil
}

func (l *Location) getVersion(ctx context.Context, key, version string, max int64) ([]byte, error) {
	ctx, cancel := l.opCtx(ctx, max)
	defer cancel()
	out, err := l.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key), VersionId: aws.String(version)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("version %s larger than %d bytes: %w", version, max, repo.ErrCorrupt)
	}
	return data, nil
}

// VersionAnomalies lists the names under prefix that have more than one
// data version or a delete marker (repo.VersionedLocation). kluis writes
// neither, so each is another writer's doing at this location.
func (l *Location) VersionAnomalies(ctx context.Context, prefix string) ([]repo.VersionAnomaly, error) {
	if !l.versioned(ctx) {
		return nil, nil
	}
	type count struct {
		data, markers int
		hidden        bool
	}
	counts := map[string]*count{}
	get := func(k string) *count {
		c := counts[k]
		if c == nil {
			c = &count{}
			counts[k] = c
		}
		return c
	}
	p := s3.NewListObjectVersionsPaginator(l.client, &s3.ListObjectVersionsInput{
		Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(l.opts.Prefix + prefix),
	})
	for p.HasMorePages() {
		pctx, cancel := l.opCtx(ctx, 0)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("location %s: list versions %s: %w", l.opts.Name, prefix, simplify(err))
		}
		for _, v := range page.Versions {
			get(aws.ToString(v.Key)).data++
		}
		for _, m := range page.DeleteMarkers {
			c := get(aws.ToString(m.Key))
			c.markers++
			c.hidden = c.hidden || aws.ToBool(m.IsLatest)
		}
	}
	var out []repo.VersionAnomaly
	for k, c := range counts {
		name, ok := strings.CutPrefix(k, l.opts.Prefix)
		if !ok || (c.data <= 1 && c.markers == 0) {
			continue
		}
		out = append(out, repo.VersionAnomaly{Name: name, DataVersions: c.data, DeleteMarkers: c.markers, Hidden: c.hidden})
	}
	return out, nil
}

// deleteVersions deletes every data version of key and then its delete
// markers. When any version is under retention it deletes nothing and
// answers repo.ErrRetained, saying whether the object was hidden behind
// someone else's delete marker, so a caller never takes a hidden, retained
// object for deleted.
func (l *Location) deleteVersions(ctx context.Context, name, key string) error {
	vs, ms, err := l.keyVersions(ctx, key)
	if err != nil {
		return fmt.Errorf("location %s: delete %s: list versions: %w", l.opts.Name, name, err)
	}
	hidden := ""
	for _, m := range ms {
		if aws.ToBool(m.IsLatest) {
			hidden = " (hidden behind a delete marker someone else wrote)"
		}
	}
	now := l.opts.Now()
	for _, v := range vs {
		hctx, cancel := l.opCtx(ctx, 0)
		head, err := l.client.HeadObject(hctx, &s3.HeadObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key), VersionId: v.VersionId})
		cancel()
		if err != nil {
			return l.wrap("delete", name, err)
		}
		if until := aws.ToTime(head.ObjectLockRetainUntilDate); head.ObjectLockMode != "" && until.After(now) {
			return fmt.Errorf("location %s: %s%s is under Object Lock (%s) until %s: %w",
				l.opts.Name, name, hidden, strings.ToLower(string(head.ObjectLockMode)), until.UTC().Format(time.RFC3339), repo.ErrRetained)
		}
	}
	del := func(version *string) error {
		dctx, cancel := l.opCtx(ctx, 0)
		defer cancel()
		_, err := l.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key), VersionId: version})
		if err != nil && isNotFound(err) {
			return nil
		}
		if err != nil && httpStatus(err) == 403 && l.opts.Lock != nil {
			return fmt.Errorf("location %s: %s%s: refused under Object Lock: %v: %w", l.opts.Name, name, hidden, simplify(err), repo.ErrRetained)
		}
		return l.wrap("delete", name, err)
	}
	for _, v := range vs {
		if err := del(v.VersionId); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if err := del(m.VersionId); err != nil {
			return err
		}
	}
	return nil
}
