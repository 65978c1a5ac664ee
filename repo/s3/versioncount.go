package s3

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DataVersions lists the data versions (delete markers not included) of
// every object under prefix: their version ids by name, newest first. On
// a versioned bucket a plain PUT over a write-once object adds a version
// instead of failing: a name with more than one data version was
// overwritten by someone, and one whose version id is not the one the
// writer recorded was replaced (the evidence log treats both as
// tampering). An unversioned bucket answers one id ("null") per object.
func (l *Location) DataVersions(ctx context.Context, prefix string) (map[string][]string, error) {
	byName := map[string][]types.ObjectVersion{}
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
			if name, ok := strings.CutPrefix(aws.ToString(v.Key), l.opts.Prefix); ok {
				byName[name] = append(byName[name], v)
			}
		}
	}
	out := make(map[string][]string, len(byName))
	for name, vs := range byName {
		sort.SliceStable(vs, func(i, j int) bool {
			a, b := aws.ToTime(vs[i].LastModified), aws.ToTime(vs[j].LastModified)
			if !a.Equal(b) {
				return a.After(b)
			}
			return aws.ToBool(vs[i].IsLatest) && !aws.ToBool(vs[j].IsLatest)
		})
		ids := make([]string, len(vs))
		for i, v := range vs {
			ids[i] = aws.ToString(v.VersionId)
		}
		out[name] = ids
	}
	return out, nil
}
