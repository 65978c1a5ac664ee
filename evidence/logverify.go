package evidence

import (
	"crypto/ed25519"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// isNote reports whether a checkpoint file is a log checkpoint note (not
// a checkpoint.json of an export).
func isNote(data []byte) bool { return len(data) > 0 && data[0] != '{' }

// checkLog checks the log files of an export: the checkpoint note is the
// appliance's (and cosigned by every witness asked for), tree.txt hashes
// to its root, every report is the leaf of its number, and a checkpoint
// the auditor kept (a note) is consistent with it: the log then only grew
// since (docs/evidence.md, "The log").
func (v *Verification) checkLog(noteData, treeData, exportCP []byte, pub ed25519.PublicKey, reps []*item, opts VerifyOptions) {
	held := opts.Checkpoint != nil && isNote(opts.Checkpoint)
	var logSize uint64
	if cp, err := ParseCheckpoint(exportCP); exportCP != nil && err == nil && cp.Verify(pub) {
		logSize = cp.LogSize
	}
	appliance := v.Appliance
	if appliance == "" {
		appliance = opts.Appliance
	}
	if noteData == nil || treeData == nil {
		missing := CheckpointNoteFile
		if noteData != nil {
			missing = TreeFile
		}
		switch {
		case logSize > 0:
			v.problem(Removed, 0, "", "%s is missing, though %s says the export carries the log of %d reports: it was removed", missing, CheckpointFile, logSize)
		case held || len(opts.Witnesses) > 0:
			v.problem(BadCheckpoint, 0, "", "no %s and %s: the log checkpoint you asked to check against cannot be checked (an export made before kluis kept a log cannot prove this)", CheckpointNoteFile, TreeFile)
		case opts.RequireLog && exportCP == nil:
			v.problem(Removed, 0, "", "no checkpoint (%s, %s): an export always carries one; without it nothing shows whether reports were cut off or the history was rewritten", CheckpointNoteFile, CheckpointFile)
		default:
			v.note("no %s: the reports are checked as a chain only (an export made before kluis kept a transparency log, or not an export)", CheckpointNoteFile)
		}
		return
	}
	if appliance == "" {
		v.problem(BadCheckpoint, 0, "", "%s: no verified report names the appliance, so the checkpoint cannot be checked", CheckpointNoteFile)
		return
	}
	c, cosigned, err := OpenLogCheckpoint(noteData, appliance, pub, opts.Witnesses...)
	if err != nil {
		v.problem(BadCheckpoint, 0, CheckpointNoteFile, "%s", reason(err))
		return
	}
	when := fmt.Sprintf("%s (log of %d reports)", CheckpointNoteFile, c.Size)
	v.LogSize = uint64(c.Size)
	v.LogRoot = c.Root.String()
	for _, w := range opts.Witnesses {
		found := false
		for _, n := range cosigned {
			found = found || n == w.Name()
		}
		if !found {
			v.problem(BadCheckpoint, 0, CheckpointNoteFile, "not cosigned by witness %s: the witness never accepted this log state (a rewritten history, or a witness that was not reached)", w.Name())
		}
	}
	v.Cosigned = cosigned
	if logSize > 0 && logSize != uint64(c.Size) {
		v.problem(BadCheckpoint, 0, CheckpointNoteFile, "%s is of a log of %d reports, %s says %d: a checkpoint of another state of the log was put in (replayed)", CheckpointNoteFile, c.Size, CheckpointFile, logSize)
	}
	leaves, err := ParseTreeText(treeData)
	if err != nil {
		v.problem(Malformed, 0, TreeFile, "%s", reason(err))
		return
	}
	if int64(len(leaves)) != c.Size {
		v.problem(BadCheckpoint, 0, TreeFile, "%s lists %d leaves, %s says the log has %d: one of them was replaced", TreeFile, len(leaves), when, c.Size)
		return
	}
	t, err := NewTree(leaves)
	if err != nil {
		v.problem(Malformed, 0, TreeFile, "%v", err)
		return
	}
	if root, _ := t.Root(c.Size); root != c.Root {
		v.problem(Rewritten, 0, TreeFile, "the leaf hashes of %s do not hash to the root %s signs: a report's leaf was changed", TreeFile, when)
		return
	}
	var pending []uint64
	for _, it := range reps {
		if !it.sigOK {
			continue
		}
		seq := it.rec.Seq
		if seq > uint64(c.Size) && opts.pendingAfterLog {
			pending = append(pending, seq)
			continue
		}
		if seq > uint64(c.Size) {
			v.problem(Inserted, seq, it.file, "report %d is not in the signed log, which %s ends at report %d: added after the checkpoint", seq, CheckpointNoteFile, c.Size)
			continue
		}
		// An inclusion proof of the report in the signed tree.
		p, err := tlog.ProveRecord(c.Size, int64(seq-1), t)
		if err == nil {
			err = tlog.CheckRecord(p, c.Size, c.Root, int64(seq-1), LeafHash(it.rec))
		}
		if err != nil {
			v.problem(Rewritten, seq, it.file, "report %d is not leaf %d of the signed log (no inclusion proof in %s): it was replaced after the checkpoint", seq, seq-1, when)
		}
	}
	if logSize == 0 && len(reps) > 0 && v.Last < uint64(c.Size) && exportCP == nil {
		v.problem(Truncated, v.Last+1, "", "the signed log has %d reports but the newest here is report %d, and no %s says where the export ends: %s removed", c.Size, v.Last, CheckpointFile, span(v.Last+1, uint64(c.Size)))
	}
	if len(pending) > 0 {
		v.note("%s after the newest checkpoint (log of %d reports) here: no checkpoint covers %s yet (its upload is pending or was interrupted); signatures and links are checked", span(pending[0], pending[len(pending)-1]), c.Size, map[bool]string{true: "it", false: "them"}[len(pending) == 1])
	}
	if !v.problemsAbout(CheckpointNoteFile, TreeFile) {
		cos := ""
		if len(cosigned) > 0 {
			cos = fmt.Sprintf(", cosigned by %v", cosigned)
		}
		v.note("%s signed%s; every report here is included in it", when, cos)
	}
	if held {
		v.checkHeldLogCheckpoint(opts, appliance, pub, t, c)
	}
}

// checkHeldLogCheckpoint proves, with a consistency proof, that the log a
// checkpoint the auditor kept describes is a prefix of the export's log.
func (v *Verification) checkHeldLogCheckpoint(opts VerifyOptions, appliance string, pub ed25519.PublicKey, t *Tree, now LogCheckpoint) {
	label := "checkpoint " + opts.CheckpointName
	old, cosigned, err := OpenLogCheckpoint(opts.Checkpoint, appliance, pub, opts.Witnesses...)
	if err != nil {
		v.problem(BadCheckpoint, 0, "", "%s: %s", label, reason(err))
		return
	}
	switch {
	case old.Size > now.Size:
		v.problem(Truncated, uint64(now.Size)+1, "", "%s says the log had %d reports, but this export's checkpoint says %d: the log was cut back (or an older checkpoint was replayed): %s removed", label, old.Size, now.Size, span(uint64(now.Size)+1, uint64(old.Size)))
		return
	case old.Size == 0:
		return
	}
	p, err := tlog.ProveTree(now.Size, old.Size, t)
	if err == nil {
		err = tlog.CheckTree(p, now.Size, now.Root, old.Size, old.Root)
	}
	if err != nil {
		v.problem(Rewritten, 0, "", "%s (log of %d reports) is not a prefix of this log of %d reports (no consistency proof): the history up to report %d was rewritten since", label, old.Size, now.Size, old.Size)
		return
	}
	cos := ""
	if len(cosigned) > 0 {
		cos = fmt.Sprintf(" (cosigned by %v)", cosigned)
	}
	v.note("%s%s: the log of %d reports it signs is a prefix of this one (consistency proof verified): nothing up to report %d changed since", label, cos, old.Size, old.Size)
}

func (v *Verification) problemsAbout(files ...string) bool {
	for _, p := range v.Problems {
		for _, f := range files {
			if p.File == f {
				return true
			}
		}
	}
	return false
}
