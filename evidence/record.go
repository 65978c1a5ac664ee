package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
)

// MaxRecordSize bounds one report file (16 MiB and its LF); a larger file
// is malformed. Append refuses a report that would not fit.
const MaxRecordSize = chain.MaxLine + 1

// ErrMalformed is wrapped by every error of a decoder of this package that
// refuses its input.
var ErrMalformed = errors.New("malformed evidence")

// Record is one signed report as stored: a report file (docs/format.md,
// "Evidence") decoded and hashed.
type Record struct {
	// Seq numbers the reports of an appliance from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the report was signed (just after the test finished).
	Time time.Time `json:"time"`
	// Prev is the Hash of report Seq-1 (64 zeros for report 1); Hash is the
	// lower-case hex SHA-256 of this report's line (the file without its
	// final LF).
	Prev   string `json:"prev"`
	Hash   string `json:"hash"`
	Report Report `json:"report"`
	// Raw is the file's exact bytes: what is copied to locations and
	// exports. Nothing is ever re-serialised.
	Raw []byte `json:"-"`

	line chain.Line
}

// FileName is the name of report seq's file: 8 or more decimal digits
// and ".json".
func FileName(seq uint64) string { return fmt.Sprintf("%08d.json", seq) }

// ParseFileName returns the seq a report file name stands for. Only the
// spelling FileName writes is accepted.
func ParseFileName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok || len(digits) < 8 || len(digits) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 || FileName(n) != name {
		return 0, false
	}
	return n, true
}

// ParseRecord decodes a report file (docs/format.md, "Evidence"): exactly
// one canonical chain line and its LF, whose body is a report of a known
// schema with no unknown fields. It does not check the signature or the
// chain (Verify does). Errors wrap ErrMalformed, or ErrUnknownSchema for a
// well-formed report of another schema.
func ParseRecord(data []byte) (Record, error) {
	l, err := parseLine(data)
	if err != nil {
		return Record{}, err
	}
	rec := recordOf(l)
	if err := decodeReport(l.Entry.Body, &rec.Report); err != nil {
		return rec, err
	}
	return rec, nil
}

// ErrUnknownSchema: a report names a schema this version does not know.
var ErrUnknownSchema = errors.New("unknown report schema")

func parseLine(data []byte) (chain.Line, error) {
	if len(data) > MaxRecordSize {
		return chain.Line{}, fmt.Errorf("larger than %d bytes: %w", MaxRecordSize, ErrMalformed)
	}
	raw, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok {
		return chain.Line{}, fmt.Errorf("does not end in a line feed (cut off?): %w", ErrMalformed)
	}
	if bytes.IndexByte(raw, '\n') >= 0 {
		return chain.Line{}, fmt.Errorf("more than one line: %w", ErrMalformed)
	}
	l, err := chain.ParseLine(raw)
	if err != nil {
		return chain.Line{}, fmt.Errorf("not a signed evidence record: %s: %w", strings.TrimSuffix(err.Error(), ": "+chain.ErrBroken.Error()), ErrMalformed)
	}
	if l.Entry.Seq == 0 {
		return chain.Line{}, fmt.Errorf("seq 0: %w", ErrMalformed)
	}
	if !isHexHash(l.Entry.Prev) {
		return chain.Line{}, fmt.Errorf("prev is not a lower-case hex SHA-256: %w", ErrMalformed)
	}
	return l, nil
}

func recordOf(l chain.Line) Record {
	raw := append(append([]byte(nil), l.Raw...), '\n')
	return Record{Seq: l.Entry.Seq, Time: l.Entry.Time, Prev: l.Entry.Prev, Hash: chain.Hash(l.Raw), Raw: raw, line: l}
}

// decodeReport decodes a report body strictly.
func decodeReport(body []byte, r *Report) error {
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("body is not a JSON object: %w", ErrMalformed)
	}
	if head.Schema == ContinuationSchema {
		// A continuation record (continuation.go): a leaf of the log, not
		// a report; its Report holds only the schema and the appliance.
		c, _, err := decodeContinuation(body)
		if err != nil {
			return err
		}
		*r = Report{Schema: ContinuationSchema, Appliance: c.Appliance}
		return nil
	}
	if head.Schema != Schema {
		return fmt.Errorf("schema %.80q, this kluis reads %q (a newer kluis may read it): %w", head.Schema, Schema, ErrUnknownSchema)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return fmt.Errorf("report: %s: %w", clip(err.Error()), ErrMalformed)
	}
	if dec.More() {
		return fmt.Errorf("report: trailing data: %w", ErrMalformed)
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// clip shortens a message that may quote hostile input.
func clip(s string) string {
	if len(s) > 200 {
		return strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
