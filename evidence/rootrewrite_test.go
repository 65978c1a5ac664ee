package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/s3"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// TestRootRewriteOnObjectLockS3 is issue 17's attack end to end, on a real
// S3 server with Object Lock and a real HTTP witness: root, holding the
// appliance's key, re-signs a FAIL report as PASS, re-signs the rest of
// the chain and the log, and PUTs new versions over every copy at the S3
// location. The witness refuses the forged checkpoint; the auditor's
// verify detects the rewrite against the checkpoint kept from the last
// audit and against the witness's cosignature; sync and evidence check
// detect the extra versions and the old checkpoints the new history
// contradicts. And a stolen bucket reads no table name or row count.
func TestRootRewriteOnObjectLockS3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "evidence", true)
	s3loc := srv.Location(t, "gro-s3", "evidence", &s3.Options{Lock: &s3.Lock{Mode: "governance", Days: 1}})
	dirLoc := local.New("ams-dir", t.TempDir())
	_, wc, wv := startWitness(t, "witness.example/auditor", 21)

	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), []repo.Location{s3loc, dirLoc})
	s.Witnesses = []WitnessClient{wc}
	auditor, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s.Recipients = []age.Recipient{auditor.Recipient()} // evidence.auditor_recipient
	for i := range 6 {
		fail := ""
		if i == 2 {
			fail = "rpo" // report 3: a FAIL root wants gone
		}
		r := sampleReport("praktijk-a", "postgres", i, fail)
		if _, res, err := s.Append(ctx, &r); err != nil || !res[0].OK || !res[1].OK {
			t.Fatalf("append %d: %+v %v", i+1, res, err)
		}
	}
	if missing, err := s.Uncosigned([]note.Verifier{wv}); err != nil || len(missing) != 0 {
		t.Fatalf("after the appends the checkpoint is not cosigned: %v %v", missing, err)
	}
	if res, err := s.Sync(ctx); err != nil || !res[0].OK || !res[1].OK {
		t.Fatalf("sync before the attack: %+v %v", res, err)
	}
	pub := testKey(1).Public().(ed25519.PublicKey)

	// The last audit: an export; the auditor keeps its checkpoint.note.
	audit1 := exportStore(t, s)
	held := read(t, audit1, CheckpointNoteFile)
	if v, err := VerifyDir(audit1, pub, VerifyOptions{RequireLog: true, Witnesses: []note.Verifier{wv}}); err != nil || !v.OK() {
		t.Fatalf("the first audit's export: %+v %v", v, err)
	}

	// The auditor can also verify the S3 location's copy itself, with
	// their age identity.
	if v, err := VerifyLocationCopy(ctx, s3loc, "ams-1", pub, []age.Identity{auditor}, VerifyOptions{Checkpoint: held, CheckpointName: "audit1/checkpoint.note"}); err != nil || !v.OK() || v.Last != 6 {
		t.Fatalf("the S3 copy before the attack: %+v %v", v, err)
	}

	// A stolen bucket: no object at either location, in any version,
	// names a tenant or a table or holds a row count (the state directory
	// holds them, in plaintext).
	client := srv.Client(t)
	keys := listKeys(t, client, "evidence")
	if len(keys) < 7 {
		t.Fatalf("the bucket holds %d objects: %v", len(keys), keys)
	}
	recs0, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	stolen := stolenBucket(t, client, "evidence")
	for name, b := range stolenDir(t, dirLoc.Root()) {
		stolen["ams-dir:"+name] = b
	}
	if len(stolen) < 2*len(keys) {
		t.Fatalf("read %d objects of the two locations", len(stolen))
	}
	if readableStatistics(recs0, recs0[2].Raw) == "" {
		t.Fatal("the scan finds nothing even in a plaintext report")
	}
	for name, b := range stolen {
		if p := readableStatistics(recs0, b); p != "" {
			t.Errorf("a bucket thief reads %s in %s", p, name)
		}
	}
	// Each checkpoint's upload recorded the version ids it wrote at S3.
	recorded, err := s.recordedVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if recorded["gro-s3"][k] == "" {
			t.Errorf("no version id recorded for %s", k)
		}
	}
	if len(recorded["ams-dir"]) != 0 {
		t.Errorf("version ids recorded for a directory location: %v", recorded["ams-dir"])
	}

	// The attack. Root re-signs report 3 as PASS and relinks 4 to 6 in
	// the state directory, drops the old checkpoints, ...
	evDir := filepath.Join(state, DirName)
	os.RemoveAll(filepath.Join(evDir, CheckpointDir))
	for _, seq := range []uint64{3, 4, 5, 6} {
		os.Chmod(filepath.Join(evDir, FileName(seq)), 0o600)
	}
	resign(t, evDir, 3, testKey(1), func(seq uint64, b []byte) []byte {
		if seq != 3 {
			return b
		}
		b = bytes.Replace(b, []byte(`"verdict":"FAIL"`), []byte(`"verdict":"PASS"`), 1)
		return bytes.Replace(b, []byte(`"failed_checks":["rpo"]`), []byte(`"failed_checks":[]`), 1)
	})
	os.Remove(filepath.Join(evDir, CheckpointFile)) // resign's export checkpoint
	forged := OpenStore(state, "ams-1", testKey(1), []repo.Location{s3loc, dirLoc})
	forged.Recipients = s.Recipients
	recs, err := forged.Records()
	if err != nil {
		t.Fatalf("the forged chain does not even verify on its own: %v", err)
	}
	if recs[2].Report.Verdict != Pass {
		t.Fatal("the forgery did not turn report 3 into a PASS")
	}
	_, forgedCP, err := forged.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	// ... and PUTs new versions over every copy at the S3 location: each
	// sealed report becomes the forged one, each checkpoint the forged one.
	for _, k := range keys {
		var body []byte
		switch {
		case strings.Contains(k, "/checkpoint/"):
			body = forgedCP
		case strings.Contains(k, "/leaf/"):
			plain, err := forged.openSealed(getObject(t, client, "evidence", k))
			if err != nil {
				t.Fatal(err)
			}
			r, _ := ParseRecord(plain)
			if body, err = forged.seal(recs[r.Seq-1].Raw); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		if _, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("evidence"), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("the attacker's PUT over %s: %v", k, err)
		}
	}

	// 1. The witness refuses the forged checkpoint.
	res, err := forged.Cosign(ctx, []WitnessClient{wc})
	if err != nil || res[0].OK || !strings.Contains(res[0].Error, "another root") {
		t.Fatalf("the witness cosigned the forged history: %+v %v", res, err)
	}
	if missing, _ := forged.Uncosigned([]note.Verifier{wv}); len(missing) != 1 {
		t.Fatal("status would show the forged checkpoint as cosigned")
	}

	// 2. The auditor's next export verifies as a chain, but not against
	// the checkpoint kept from the last audit, nor without the witness.
	audit2 := exportStore(t, forged)
	v, err := VerifyDir(audit2, pub, VerifyOptions{RequireLog: true})
	if err != nil || !v.OK() {
		t.Fatalf("the forged export should be self-consistent (that is the point of the attack): %+v %v", v, err)
	}
	v, err = VerifyDir(audit2, pub, VerifyOptions{RequireLog: true, Checkpoint: held, CheckpointName: "audit1/checkpoint.note"})
	if err != nil {
		t.Fatal(err)
	}
	checkProblems(t, v, []want{{Rewritten, 0, "is not a prefix of this log of 6 reports (no consistency proof): the history up to report 6 was rewritten since"}})
	v, err = VerifyDir(audit2, pub, VerifyOptions{RequireLog: true, Witnesses: []note.Verifier{wv}})
	if err != nil {
		t.Fatal(err)
	}
	checkProblems(t, v, []want{{BadCheckpoint, 0, "not cosigned by witness witness.example/auditor"}})

	// 3. The auditor's verify of the S3 copy as it now reads (every
	// object's newest version is the forgery) fails too.
	v, err = VerifyLocationCopy(ctx, s3loc, "ams-1", pub, []age.Identity{auditor}, VerifyOptions{Checkpoint: held, CheckpointName: "audit1/checkpoint.note"})
	if err != nil {
		t.Fatal(err)
	}
	if v.OK() {
		t.Fatal("the rewritten S3 copy verifies")
	}
	kinds := map[string]bool{}
	for _, p := range v.Problems {
		kinds[p.Kind] = true
		t.Logf("S3 copy: %s", p)
	}
	if !kinds[Rewritten] {
		t.Errorf("the rewritten S3 copy: no %s problem: %v", Rewritten, v.Problems)
	}
	overwritten := 0
	for _, p := range v.Problems {
		if p.Kind == Rewritten && strings.Contains(p.Reason, "2 data versions of a write-once object: a new version was PUT over it") {
			overwritten++
		}
	}
	if overwritten != len(keys) {
		t.Errorf("verify of the S3 copy names %d objects with a second version, want every one of the %d", overwritten, len(keys))
	}

	// 4. Sync and evidence check see the extra versions at S3, and at
	// both locations the old checkpoints the forged history contradicts.
	syncRes, err := forged.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkRes, err := forged.CheckLocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, rs := range map[string][]repo.LocationResult{"sync": syncRes, "check": checkRes} {
		t.Logf("%s: %s\n%s", name, rs[0].Error, rs[1].Error)
		if rs[0].OK || !strings.Contains(rs[0].Error, "data versions: a write-once object was overwritten") {
			t.Errorf("%s at S3 misses the overwritten versions: %+v", name, rs[0])
		}
		if rs[1].OK || !strings.Contains(rs[1].Error, "the history up to report 6 was rewritten after this checkpoint was written") {
			t.Errorf("%s at the directory misses the contradicted checkpoint: %+v", name, rs[1])
		}
	}
	if !strings.Contains(checkRes[0].Error, "was rewritten after this checkpoint was written") && !strings.Contains(checkRes[0].Error, "does not hold what its name says") {
		t.Errorf("check at S3 misses the checkpoints: %s", checkRes[0].Error)
	}
}

// exportStore exports a store's whole log to a new directory.
func exportStore(t *testing.T, s *Store) string {
	t.Helper()
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	tree, cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), Log: tree, LogCheckpoint: cp}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func listKeys(t *testing.T, c *awss3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// stolenBucket is every version of every object in a bucket.
func stolenBucket(t *testing.T, c *awss3.Client, bucket string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, v := range out.Versions {
		o, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: v.Key, VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o.Body)
		o.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId)] = b
	}
	return got
}

// stolenDir is every file under a directory location's root.
func stolenDir(t *testing.T, root string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		got[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// readableStatistics names a tenant, table name or row count of recs
// that b holds in plain text ("" if none). Row counts below 1000 are not
// looked for: three digits occur by chance in an age header's base64.
func readableStatistics(recs []Record, b []byte) string {
	for _, r := range recs {
		words := []string{r.Report.Tenant, `"rows"`}
		for _, tb := range r.Report.Tables {
			words = append(words, tb.Name)
			for _, n := range []int64{tb.Rows, tb.RowsRestored} {
				if n >= 1000 {
					words = append(words, strconv.FormatInt(n, 10))
				}
			}
		}
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				return strconv.Quote(w)
			}
		}
	}
	return ""
}

func getObject(t *testing.T, c *awss3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
