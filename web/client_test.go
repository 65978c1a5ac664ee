package web

import (
	"net/http/httptest"
	"testing"
)

// TestClientBehindProxy: with --trust-proxy the client address is the
// rightmost X-Forwarded-For entry (the one the proxy appended), never one
// the client put in front of it; without it the header is ignored.
func TestClientBehindProxy(t *testing.T) {
	for _, c := range []struct {
		trust bool
		xff   []string
		want  string
	}{
		{true, []string{"203.0.113.7"}, "203.0.113.7"},
		{true, []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{true, []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7"},
		{true, []string{"198.51.100.1,2001:db8::1"}, "2001:db8::1"},
		{true, []string{"198.51.100.1, "}, "127.0.0.1"},
		{true, nil, "127.0.0.1"},
		{false, []string{"203.0.113.7"}, "127.0.0.1"},
	} {
		s := &Server{opts: Options{TrustProxy: c.trust}}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:4711"
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.client(r); got != c.want {
			t.Errorf("trust %v, X-Forwarded-For %q: client %q, want %q", c.trust, c.xff, got, c.want)
		}
	}
}
