package s3test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// StallProxy is a TCP proxy in front of a Server that can stall: while
// stalled it accepts connections and reads nothing and forwards nothing in
// either direction, as a SIGSTOPped server or a black-holed route does —
// a hung endpoint, not a down one (which refuses connections).
type StallProxy struct {
	Endpoint string

	ln      net.Listener
	target  string
	mu      sync.Mutex
	stalled bool
	resume  chan struct{} // closed when the stall ends
	conns   map[net.Conn]bool
}

// NewStallProxy starts a proxy to s, closed at the test's cleanup.
func NewStallProxy(t testing.TB, s *Server) *StallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := s.Endpoint
	for _, p := range []string{"http://", "https://"} {
		if len(host) > len(p) && host[:len(p)] == p {
			host = host[len(p):]
		}
	}
	p := &StallProxy{Endpoint: "http://" + ln.Addr().String(), ln: ln, target: host, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// ViaStall returns the server as reached through p.
func (s *Server) ViaStall(p *StallProxy) *Server {
	return &Server{Endpoint: p.Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}

// Stall makes the proxy hang (true) or pass traffic again (false).
func (p *StallProxy) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && !p.stalled {
		p.stalled, p.resume = true, make(chan struct{})
	} else if !on && p.stalled {
		p.stalled = false
		close(p.resume)
	}
}

// Close stops the proxy and drops every connection.
func (p *StallProxy) Close() {
	p.ln.Close()
	p.Stall(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// gate blocks while the proxy is stalled.
func (p *StallProxy) gate() {
	p.mu.Lock()
	ch := p.resume
	stalled := p.stalled
	p.mu.Unlock()
	if stalled {
		<-ch
	}
}

func (p *StallProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *StallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *StallProxy) handle(c net.Conn) {
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	p.gate()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.gate()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				if err != io.EOF {
					break
				}
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}
