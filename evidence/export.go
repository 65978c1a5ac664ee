package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/repo"
)

// Select returns the reports signed in [from, to) (a zero bound is open)
// and every report between them, so the result is one unbroken stretch of
// the chain even if the clock went back between two reports.
func Select(recs []Record, from, to time.Time) []Record {
	first, last := -1, -1
	for i, r := range recs {
		if (from.IsZero() || !r.Time.Before(from)) && (to.IsZero() || r.Time.Before(to)) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil
	}
	return recs[first : last+1]
}

// ExportOptions say what an export is for.
type ExportOptions struct {
	// Appliance is the appliance id; Key its signing key, which signs the
	// export's checkpoint.
	Appliance string
	Key       ed25519.PrivateKey
	// Tenant, when set, limits the HTML summary to one tenant. The export
	// still holds every report of the period: the chain needs them all.
	Tenant string
	// From and To are the period asked for (zero: open), shown in the
	// summary.
	From, To time.Time
	// Locations are the locations configured now: the summary lists each
	// for every tenant, "never" where no report proves it (default: only
	// the locations the reports name).
	Locations []Location
	// TimeZone is the zone dates are shown in (default UTC).
	TimeZone *time.Location
	// Now is the export's time (default time.Now()).
	Now time.Time
	// Kluis is the version of kluis exporting.
	Kluis string
	// Log and LogCheckpoint are the log's tree and its newest signed
	// checkpoint note (Store.Checkpoint); the export carries both
	// (checkpoint.note, tree.txt).
	Log           *Tree
	LogCheckpoint []byte
	// Witnesses are the configured witnesses: the export's verification
	// reports which of them cosigned (it does not require them).
	Witnesses []note.Verifier
	// PreviousDir holds the imported logs of previous keys
	// (Store.PreviousDir): for each continuation record among the
	// reports, the export carries that log in previous-KEYID/.
	PreviousDir string
}

// ExportResult says what Export wrote.
type ExportResult struct {
	Dir          string        `json:"dir"`
	Reports      int           `json:"reports"`
	First        uint64        `json:"first"`
	Last         uint64        `json:"last"`
	Checkpoint   Checkpoint    `json:"checkpoint"`
	PublicKey    string        `json:"public_key"`
	Verification *Verification `json:"verification"`
}

// Export writes recs (an unbroken stretch of the chain, as Records and
// Select return) to dir, which Export creates (it must not exist): the report files
// exactly as signed, the public key (kluis-evidence.pub), a signed
// checkpoint.json naming the first and the last report, the HTML summary (index.html)
// and README.txt. It verifies what it wrote before it returns.
func Export(dir string, recs []Record, opts ExportOptions) (*ExportResult, error) {
	if len(opts.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("export: no signing key")
	}
	if len(recs) == 0 {
		return nil, errors.New("export: no reports in the period")
	}
	for i, r := range recs {
		if r.Seq != recs[0].Seq+uint64(i) || len(r.Raw) == 0 {
			return nil, fmt.Errorf("export: reports %d to %d are not one unbroken stretch of the chain", recs[0].Seq, recs[len(recs)-1].Seq)
		}
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.TimeZone == nil {
		opts.TimeZone = time.UTC
	}
	pub := opts.Key.Public().(ed25519.PublicKey)
	pemKey, err := repo.EncodePublicKey(pub)
	if err != nil {
		return nil, err
	}
	last := recs[len(recs)-1]
	if opts.Log == nil && recs[0].Seq == 1 {
		// The whole chain: its log is the tree of these reports.
		t, err := treeOf(recs)
		if err != nil {
			return nil, err
		}
		root, _ := t.Root(t.Size())
		if opts.LogCheckpoint, err = SignLogCheckpoint(opts.Key, LogCheckpoint{Origin: Origin(opts.Appliance), Size: t.Size(), Root: root}); err != nil {
			return nil, err
		}
		opts.Log = t
	}
	if opts.Log == nil || opts.LogCheckpoint == nil {
		return nil, errors.New("export: no log checkpoint")
	}
	cp := Checkpoint{Appliance: opts.Appliance, First: recs[0].Seq, FirstHash: recs[0].Hash, Count: last.Seq, Hash: last.Hash, Time: opts.Now.UTC().Truncate(time.Second), LogSize: uint64(opts.Log.Size())}
	tree, err := treeText(opts.Log)
	if err != nil {
		return nil, err
	}
	cpData, err := SignCheckpoint(opts.Key, cp)
	if err != nil {
		return nil, err
	}
	cp.Schema = CheckpointSchema
	if cp.LogSize == 0 {
		cp.Schema = CheckpointSchemaV2
	}

	files := make([]File, 0, len(recs)+2)
	for _, r := range recs {
		files = append(files, File{Name: FileName(r.Seq), Data: r.Raw})
	}
	files = append(files, File{Name: PublicKeyFile, Data: pemKey}, File{Name: CheckpointFile, Data: cpData},
		File{Name: CheckpointNoteFile, Data: opts.LogCheckpoint}, File{Name: TreeFile, Data: tree})
	v := Verify(files, pub, VerifyOptions{Appliance: opts.Appliance, RequireLog: true})
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var previous []previousExport
	for _, r := range recs {
		c, ok := r.Continuation()
		if !ok {
			continue
		}
		pe, err := readPreviousExport(opts.PreviousDir, c)
		if err != nil {
			return nil, err
		}
		previous = append(previous, pe)
	}
	var html bytes.Buffer
	if err := renderSummary(&html, Reports(v.Records), v, opts); err != nil {
		return nil, err
	}
	files = append(files,
		File{Name: SummaryFile, Data: html.Bytes()},
		File{Name: ReadmeFile, Data: readme(opts, cp, Fingerprint(pub))})

	d, err := createExportDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.close()
	for _, f := range files {
		if err := d.write(f.Name, f.Data); err != nil {
			return nil, err
		}
	}
	for _, pe := range previous {
		if err := pe.write(d); err != nil {
			return nil, err
		}
	}
	if err := d.sync(); err != nil {
		return nil, err
	}
	// What the auditor gets is what was checked: read it back.
	back, err := VerifyDir(dir, pub, VerifyOptions{Appliance: opts.Appliance, RequireLog: true})
	if err == nil && len(previous) > 0 {
		var keys []ed25519.PublicKey
		for _, pe := range previous {
			keys = append(keys, pe.pub)
		}
		CheckContinuations(dir, back, keys, nil, "")
	}
	if err == nil && back.OK() && len(opts.Witnesses) > 0 {
		if _, cos, err := OpenLogCheckpoint(opts.LogCheckpoint, opts.Appliance, pub, opts.Witnesses...); err == nil {
			back.Cosigned = cos
		}
	}
	if err != nil {
		return nil, err
	}
	if err := back.Err(); err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	return &ExportResult{Dir: dir, Reports: len(recs), First: recs[0].Seq, Last: last.Seq, Checkpoint: cp, PublicKey: Fingerprint(pub), Verification: back}, nil
}

func readme(opts ExportOptions, cp Checkpoint, fp string) []byte {
	period := periodText(opts.From, opts.To, opts.TimeZone)
	var b strings.Builder
	fmt.Fprintf(&b, `kluis restore-test evidence of appliance %s
Period: %s. Reports %d to %d. Exported %s.

What is here
  NNNNNNNN.json       one signed restore-test report each, exactly as the
                      appliance signed it (schema %s)
  checkpoint.json     signed: this export holds reports %d to %d of the
                      chain, the first with hash
                      %s
                      and the last with hash
                      %s
  checkpoint.note     the transparency log's signed checkpoint (and any
                      witness cosignatures): KEEP IT for the next audit
  tree.txt            the leaf hash of every report of the log
  kluis-evidence.pub  the appliance's Ed25519 public key, %s
  index.html          a summary to read (opens offline; not itself evidence)

How to verify (needs only kluis and the public key, no configuration)
  1. Get the appliance's public key from the vendor through another channel
     than this export (e.g. in person, or signed mail) and compare its
     fingerprint with the one above: openssl pkey -pubin -in KEY.pub
     -outform DER | sha256sum
  2. kluis evidence verify --public-key KEY.pub THIS-DIRECTORY
     Exit 0: every report is signed by the key, in order, none missing
     (from report %d to report %d), copied or changed. Exit 1: each problem
     is printed with the report and the reason. Exit 2: it could not verify
     (a file or directory that cannot be read, a key file that is no key).
     Add --witness-key KEY for each witness whose cosignature you require,
     and --expect-last N with the number of reports you were told.
  3. Keep checkpoint.note. At the next audit, prove that no report up to it
     was changed or removed since (a consistency proof):
     kluis evidence verify --public-key KEY.pub --checkpoint OLD-checkpoint.note NEW-DIRECTORY

What the reports prove and what they do not: docs/evidence.md of kluis.
`, opts.Appliance, period, cp.First, cp.Count, opts.Now.In(opts.TimeZone).Format("2006-01-02 15:04 MST"),
		Schema, cp.First, cp.Count, cp.FirstHash, cp.Hash, fp, cp.First, cp.Count)
	if opts.Tenant != "" {
		fmt.Fprintf(&b, "\nThe summary (index.html) covers tenant %s only; the reports of every tenant\nin the period are included because the chain needs them all.\n", opts.Tenant)
	}
	return []byte(b.String())
}

func periodText(from, to time.Time, tz *time.Location) string {
	const day = "2006-01-02"
	switch {
	case from.IsZero() && to.IsZero():
		return "all reports"
	case from.IsZero():
		return "up to " + to.Add(-time.Nanosecond).In(tz).Format(day)
	case to.IsZero():
		return "from " + from.In(tz).Format(day)
	}
	return from.In(tz).Format(day) + " to " + to.Add(-time.Nanosecond).In(tz).Format(day)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// previousExport is a previous key's imported log, for an export.
type previousExport struct {
	id    string
	pub   ed25519.PublicKey
	files []File
}

// readPreviousExport reads the imported log a continuation names.
func readPreviousExport(root string, c *Continuation) (previousExport, error) {
	_, pub, err := decodeContinuation(mustJSON(c))
	if err != nil {
		return previousExport{}, err
	}
	pe := previousExport{id: c.PreviousKey, pub: pub}
	if root == "" {
		return pe, fmt.Errorf("export: the reports hold a continuation of the log of key %s, but no imported log was given (ExportOptions.PreviousDir)", c.PreviousKey)
	}
	dir := filepath.Join(root, c.PreviousKey)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return pe, fmt.Errorf("export: the log of key %s that the evidence continues: %w (run kluis evidence continue)", c.PreviousKey, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := readCapped(filepath.Join(dir, e.Name()), MaxRecordSize)
		if err != nil {
			return pe, err
		}
		pe.files = append(pe.files, File{Name: e.Name(), Data: data})
	}
	return pe, nil
}

func (pe previousExport) write(d *exportDir) error {
	sub, err := d.subdir(PreviousExportDir + pe.id)
	if err != nil {
		return err
	}
	defer sub.close()
	for _, f := range pe.files {
		if err := sub.write(f.Name, f.Data); err != nil {
			return err
		}
	}
	return sub.sync()
}

// quietSubdirs drops VerifyDir's notes about the previous-KEYID/
// directories, which CheckContinuations verifies.
func quietSubdirs(v *Verification) {
	notes := v.Notes[:0]
	for _, n := range v.Notes {
		if !strings.HasPrefix(n, "ignored "+PreviousExportDir) {
			notes = append(notes, n)
		}
	}
	v.Notes = notes
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
