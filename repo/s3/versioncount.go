package s3

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersionCounts counts the data versions (delete markers not included) of
// every object under prefix, by name. On a versioned bucket a plain PUT
// over a write-once object adds a version instead of failing: a name with
// more than one data version was overwritten by someone (the evidence log
// treats it as tampering).
func (l *Location) VersionCounts(ctx context.Context, prefix string) (map[string]int, error) {
	out := map[string]int{}
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
				out[name]++
			}
		}
	}
	return out, nil
}
