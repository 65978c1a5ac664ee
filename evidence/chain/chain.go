// Package chain keeps an append-only, hash-chained, signed JSON-lines log:
// the shape of the dossier access log and the erasure register, and reusable
// for the evidence log. It needs only an Ed25519 key to append and only the
// public key to verify; it knows nothing of tenants, tenant keys or what the
// records mean.
//
// # Format
//
// A log is a file of lines, each ending in LF. A line is the JSON object
//
//	{"entry":ENTRY,"sig":"BASE64"}
//
// written exactly so (no spaces, keys in this order), where ENTRY is the
// JSON object {"seq":N,"prev":"HEX","time":"RFC3339",
// "body":BODY}. seq counts from 1; prev is the lower-case hex SHA-256 of the
// whole previous line without its LF (64 zeros for the first line); sig is
// the standard base64 Ed25519 signature of the ENTRY bytes exactly as they
// appear in the line. Verify detects an edited, removed, reordered or
// inserted line: every one of those breaks a signature, a seq or a prev.
// A plain hash chain cannot show that its newest lines were cut off; keep
// the count and last hash elsewhere (Head) to detect that.
package chain

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kluis-nl/kluis/durable"
)

// MaxLine bounds one line of a log; a longer line is corrupt. It is
// large enough for the restore-test report of a tenant with tens of
// thousands of tables (package evidence); a reader holds at most one line
// in memory.
const MaxLine = 16 << 20

// ErrBroken is wrapped by every verification failure.
var ErrBroken = errors.New("log does not verify")

// Entry is one record of a log.
type Entry struct {
	Seq  uint64          `json:"seq"`
	Prev string          `json:"prev"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"`
}

type line struct {
	Entry json.RawMessage `json:"entry"`
	Sig   string          `json:"sig"`
}

var errTorn = fmt.Errorf("last record is cut off (no line feed): %w", ErrBroken)

// ZeroHash is the prev of the first entry of a log: 64 zeros.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

var zeroHash = ZeroHash

// Head is the position of a log: how many entries it has and the hash of
// its last line.
type Head struct {
	Count uint64 `json:"count"`
	Hash  string `json:"hash"`
}

// Append adds body (marshalled to JSON) as the next entry of the log at
// path, signed with key, and fsyncs the file (and, when the file is new,
// its directory). Appends are serialized with an exclusive flock. A torn
// last line (a crash mid-write, never fsynced) is cut off first.
func Append(path string, key ed25519.PrivateKey, now time.Time, body any) (Entry, error) {
	es, err := AppendAfter(path, key, now, func(*Line) ([]any, error) { return []any{body}, nil })
	if err != nil {
		return Entry{}, err
	}
	return es[0], nil
}

// AppendAfter is Append of several entries at once, chosen under the
// log's lock: next gets the log's last line (nil for an empty log; not
// verified) and returns the bodies to append, in order (at least one).
// They are written with one write and one fsync.
func AppendAfter(path string, key ed25519.PrivateKey, now time.Time, next func(last *Line) ([]any, error)) ([]Entry, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("%s: lock: %w", path, err)
	}
	head, end, lastRaw, err := scanHead(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var last *Line
	if lastRaw != nil {
		l, err := ParseLine(lastRaw)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, head.Count, err)
		}
		last = &l
	}
	bodies, err := next(last)
	if err != nil {
		return nil, err
	}
	if len(bodies) == 0 {
		return nil, errors.New("chain: nothing to append")
	}
	if err := f.Truncate(end); err != nil {
		return nil, err
	}
	var out []Entry
	var data []byte
	for _, body := range bodies {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		e := Entry{Seq: head.Count + 1, Prev: head.Hash, Time: now.UTC(), Body: b}
		lb, err := Sign(key, e)
		if err != nil {
			return nil, err
		}
		data = append(append(data, lb...), '\n')
		head = Head{Count: e.Seq, Hash: Hash(lb)}
		out = append(out, e)
	}
	if _, err := f.WriteAt(data, end); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanHead reads every complete line for the count and last hash, and
// returns the offset just after the last complete line and that line.
func scanHead(f *os.File) (Head, int64, []byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Head{}, 0, nil, err
	}
	h := Head{Hash: zeroHash}
	var end int64
	var last []byte
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		l, err := readLine(br)
		if err == io.EOF || errors.Is(err, errTorn) {
			return h, end, last, nil // a torn tail (no LF, never fsynced) is dropped
		}
		if err != nil {
			return h, 0, nil, fmt.Errorf("line %d: %w", h.Count+1, err)
		}
		sum := sha256.Sum256(l)
		h.Hash = hex.EncodeToString(sum[:])
		h.Count++
		end += int64(len(l)) + 1
		last = append(last[:0], l...)
	}
}

// Read returns the entries of the log at path without verifying them (a
// missing file is an empty log). Use Verify before trusting them.
func Read(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	err = each(f, func(_ int, _ []byte, e Entry, _ []byte, _ []byte) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Verify checks every line of the log read from r against pub: signatures,
// sequence numbers and the hash chain. It returns the head on success.
func Verify(r io.Reader, pub ed25519.PublicKey) (Head, error) {
	h := Head{Hash: zeroHash}
	err := each(r, func(n int, raw []byte, e Entry, eb, sig []byte) error {
		if !ed25519.Verify(pub, eb, sig) {
			return fmt.Errorf("line %d: signature does not verify (edited, or signed by another key): %w", n, ErrBroken)
		}
		if e.Seq != h.Count+1 {
			return fmt.Errorf("line %d: sequence number %d, expected %d (a record was removed, inserted or reordered): %w", n, e.Seq, h.Count+1, ErrBroken)
		}
		if e.Prev != h.Hash {
			return fmt.Errorf("line %d: does not chain to line %d (a record was removed, inserted, reordered or edited): %w", n, n-1, ErrBroken)
		}
		sum := sha256.Sum256(raw)
		h.Hash = hex.EncodeToString(sum[:])
		h.Count++
		return nil
	})
	return h, err
}

// VerifyFile verifies the log at path (a missing file is an empty log).
func VerifyFile(path string, pub ed25519.PublicKey) (Head, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Head{Hash: zeroHash}, nil
	}
	if err != nil {
		return Head{}, err
	}
	defer f.Close()
	return Verify(f, pub)
}

// each decodes every line strictly and calls fn with its 1-based number,
// its bytes without LF, the entry, the entry bytes and the signature.
func each(r io.Reader, fn func(n int, raw []byte, e Entry, eb, sig []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		raw, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		l, err := ParseLine(raw)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := fn(n, raw, l.Entry, l.EntryBytes, l.Sig); err != nil {
			return err
		}
	}
}

// Line is one decoded line of a log.
type Line struct {
	// Raw is the line exactly as stored, without its LF: what Hash covers.
	Raw []byte
	// Entry is the decoded entry; EntryBytes are its bytes exactly as they
	// appear in the line: what Sig signs.
	Entry      Entry
	EntryBytes []byte
	Sig        []byte
}

// Sign returns the canonical line (without LF) of e signed with key.
func Sign(key ed25519.PrivateKey, e Entry) ([]byte, error) {
	eb, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return canonicalLine(eb, ed25519.Sign(key, eb)), nil
}

// ParseLine decodes one line (without its LF) strictly: known fields only,
// and exactly the spelling Sign writes. It does not check the signature
// (Verify does); every error wraps ErrBroken.
func ParseLine(raw []byte) (Line, error) {
	if len(raw) > MaxLine {
		return Line{}, fmt.Errorf("longer than %d bytes: %w", MaxLine, ErrBroken)
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || len(l.Entry) == 0 {
		return Line{}, fmt.Errorf("not a log record: %w", ErrBroken)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Line{}, fmt.Errorf("bad signature encoding: %w", ErrBroken)
	}
	// Exactly the bytes Sign writes: JSON decoding alone would also
	// accept other spellings (case-folded keys, spaces) of a line.
	if !bytes.Equal(raw, canonicalLine(l.Entry, sig)) {
		return Line{}, fmt.Errorf("not in canonical form: %w", ErrBroken)
	}
	var e Entry
	dec = json.NewDecoder(bytes.NewReader(l.Entry))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Line{}, fmt.Errorf("bad entry: %w", ErrBroken)
	}
	return Line{Raw: raw, Entry: e, EntryBytes: l.Entry, Sig: sig}, nil
}

// Verify reports whether the line's signature verifies with pub.
func (l Line) Verify(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, l.EntryBytes, l.Sig)
}

// Hash is the lower-case hex SHA-256 of a line without its LF: the next
// entry's prev.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// canonicalLine is the one spelling of a line (without its LF).
func canonicalLine(entry, sig []byte) []byte {
	b := append([]byte(`{"entry":`), entry...)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, `"}`...)
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > MaxLine+1 {
			return nil, fmt.Errorf("longer than %d bytes: %w", MaxLine, ErrBroken)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, errTorn
		default:
			return nil, err
		}
	}
}
