package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxCall is the largest call body the socket reads.
const maxCall = 256 << 10

// Handler serves the socket API: POST /v1/OP with a JSON Call, answered
// with a JSON Reply (HTTP status 200 whatever Reply.Status says), except
// a successful download, which is the file itself with the header
// Kluis-Filename.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, ok := strings.CutPrefix(r.URL.Path, "/v1/")
		if r.Method != http.MethodPost || !ok {
			http.NotFound(w, r)
			return
		}
		var c Call
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCall))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			writeReply(w, refusal(http.StatusBadRequest, "bad call"))
			return
		}
		stream := map[string]func(context.Context, Call, func(string), io.Writer) Reply{OpDownload: s.Download, OpEvidenceExport: s.Export}[op]
		if stream != nil {
			started := false
			rep := stream(r.Context(), c, func(name string) {
				started = true
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Kluis-Filename", name)
				w.WriteHeader(http.StatusOK)
			}, w)
			if !started {
				writeReply(w, rep)
			} else if rep.Status != http.StatusOK {
				// The stream is cut: the web process must not hand a
				// partial dossier to the browser as complete.
				panic(http.ErrAbortHandler)
			}
			return
		}
		writeReply(w, s.Handle(r.Context(), op, c))
	})
}

func writeReply(w http.ResponseWriter, rep Reply) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Kluis-Reply", "1")
	json.NewEncoder(w).Encode(rep)
}

// Listen creates the socket at path (replacing a stale one), mode 0660:
// the web process's user reaches it through the socket's group.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve answers the socket API on ln until ctx ends.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Client calls the daemon's socket API (the web process's side).
type Client struct {
	hc *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}, MaxIdleConns: 16}
	return &Client{hc: &http.Client{Transport: tr}}
}

// ErrDaemon is a daemon that cannot be reached or answered nonsense.
var ErrDaemon = errors.New("the kluis daemon is not reachable")

// Do calls op.
func (c *Client) Do(ctx context.Context, op string, call Call) Reply {
	resp, err := c.post(ctx, op, call)
	if err != nil {
		return Reply{Status: http.StatusBadGateway, Error: ErrDaemon.Error()}
	}
	defer resp.Body.Close()
	return readReply(resp)
}

func (c *Client) post(ctx context.Context, op string, call Call) (*http.Response, error) {
	b, err := json.Marshal(call)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://kluis/v1/"+op, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.hc.Do(req)
}

func readReply(resp *http.Response) Reply {
	var rep Reply
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&rep) != nil || rep.Status == 0 {
		return Reply{Status: http.StatusBadGateway, Error: ErrDaemon.Error()}
	}
	return rep
}

// Download calls the download operation: on success, start is called
// with the file name and the dossier is copied to the writer it returns;
// otherwise the reply says why.
func (c *Client) Download(ctx context.Context, call Call, start func(filename string) io.Writer) (Reply, error) {
	return c.Stream(ctx, OpDownload, call, start)
}

// Stream calls a streaming operation (download, evidence-export).
func (c *Client) Stream(ctx context.Context, op string, call Call, start func(filename string) io.Writer) (Reply, error) {
	resp, err := c.post(ctx, op, call)
	if err != nil {
		return Reply{Status: http.StatusBadGateway, Error: ErrDaemon.Error()}, nil
	}
	defer resp.Body.Close()
	if resp.Header.Get("Kluis-Reply") != "" {
		return readReply(resp), nil
	}
	name := resp.Header.Get("Kluis-Filename")
	if resp.StatusCode != http.StatusOK || name == "" {
		return Reply{Status: http.StatusBadGateway, Error: ErrDaemon.Error()}, nil
	}
	if _, err := io.Copy(start(name), resp.Body); err != nil {
		return okReply, fmt.Errorf("the download broke off: %w", err)
	}
	return okReply, nil
}
