package s3test

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Faults are what a Proxy does to the requests it passes.
type Faults struct {
	// Down refuses every request (the connection is closed unanswered).
	Down bool
	// Status, when set, answers the next StatusCount requests with it
	// (e.g. 503) without passing them on.
	Status      int
	StatusCount int
	// Delay is added before each request is passed on.
	Delay time.Duration
	// Truncate cuts the body of every GET response in half (the declared
	// length stays: the client sees an unexpected EOF).
	Truncate bool
	// Corrupt flips one bit in the middle of every GET response body.
	Corrupt bool
}

// Proxy sits between a client and a Server and injects faults: an
// outage, 5xx answers, slow responses, truncated and corrupted bodies.
type Proxy struct {
	URL string

	mu     sync.Mutex
	faults Faults
	srv    *httptest.Server
}

// NewProxy starts a proxy to s, closed at the test's cleanup.
func NewProxy(t testing.TB, s *Server) *Proxy {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = p.modify
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := p.take()
		if f.Down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if f.Status != 0 {
			w.WriteHeader(f.Status)
			return
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

// Set replaces the faults in force.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
}

// take returns the faults for one request, counting down StatusCount.
func (p *Proxy) take() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	if p.faults.Status != 0 {
		p.faults.StatusCount--
		if p.faults.StatusCount <= 0 {
			p.faults.Status, p.faults.StatusCount = 0, 0
		}
	}
	return f
}

func (p *Proxy) modify(resp *http.Response) error {
	p.mu.Lock()
	f := p.faults
	p.mu.Unlock()
	if resp.Request.Method != http.MethodGet || (!f.Truncate && !f.Corrupt) || resp.StatusCode >= 300 {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if f.Corrupt && len(body) > 0 {
		body[len(body)/2] ^= 0x10
	}
	if f.Truncate {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)/2]), errReader{}))
		return nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// Via returns the server as reached through p: Location and Client then
// go through the proxy.
func (s *Server) Via(p *Proxy) *Server {
	return &Server{Endpoint: p.URL, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}
