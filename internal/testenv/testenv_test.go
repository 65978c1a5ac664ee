package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = sprintf(format, args...)
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      string
		wantSkip bool
	}{
		{name: "locally a skip", env: "", wantSkip: true},
		{name: "other value is a skip", env: "0", wantSkip: true},
		{name: "required is a failure", env: "1", wantSkip: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			r := &recorder{TB: t}
			SkipOrFail(r, "no server at %s", "127.0.0.1:5432")
			if tc.wantSkip {
				if r.failed != "" || !strings.Contains(r.skipped, "no server at 127.0.0.1:5432") || !strings.Contains(r.skipped, "scripts/test.sh") {
					t.Fatalf("skipped=%q failed=%q", r.skipped, r.failed)
				}
				return
			}
			if r.skipped != "" || !strings.Contains(r.failed, "no server at 127.0.0.1:5432") {
				t.Fatalf("skipped=%q failed=%q", r.skipped, r.failed)
			}
		})
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
