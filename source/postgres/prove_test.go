package postgres

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// proveTarget is a fresh target with one table public.t (id int, v
// numeric(5,1)), loaded from a stream holding 1.25, which the column
// rounds to 1.3 on input.
func proveTarget(t *testing.T) (*Target, source.Table, source.TableResult, source.TableResult) {
	t.Helper()
	ctx := testContext(t)
	srv := pgtest.Start(t)
	tg, err := NewTarget(ctx, srv.CreateDB(t, "prove"), testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	if err := tg.ApplySchema(ctx, strings.NewReader("CREATE TABLE public.t (id int PRIMARY KEY, v numeric(5,1));")); err != nil {
		t.Fatal(err)
	}
	tb := source.Table{Name: "public.t", Schema: "public", Table: "t", Encoding: Encoding,
		Columns: []source.Column{{Name: "id", Type: "integer"}, {Name: "v", Type: "numeric(5,1)"}}}
	sent, _ := source.FingerprintStream(testKey, strings.NewReader("1\t1.25\n2\t2.0\n"))
	held, _ := source.FingerprintStream(testKey, strings.NewReader("1\t1.3\n2\t2.0\n"))
	got, stale, err := tg.LoadAndFingerprint(ctx, tb, strings.NewReader("1\t1.25\n2\t2.0\n"))
	if err != nil || stale {
		t.Fatalf("load: %v (stale %v)", err, stale)
	}
	if got == sent || got != held {
		t.Fatalf("fingerprint at load %+v; of the stream sent %+v, of what the server holds %+v", got, sent, held)
	}
	return tg, tb, sent, held
}

// The proof is of what the server holds, not of what was sent to it: a
// fingerprint of the stream as it went to the server would match the
// snapshot here although the restored table differs.
func TestLoadProvesWhatTheServerHolds(t *testing.T) {
	proveTarget(t)
}

// Post-data that changes rows after they were read back (a statement
// writing rows, a TRUNCATE) makes the load-time fingerprints stale, so the
// restore reads them again.
func TestPostDataChangingRowsIsStale(t *testing.T) {
	for _, post := range []string{
		"",
		"\n--\n-- Name: t t_v; Type: INDEX; Schema: public; Owner: -\n--\n\nCREATE INDEX t_v ON public.t USING btree (v);\n",
		"\n--\n-- Name: x; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nUPDATE public.t SET v = 9 WHERE id = 2;\n",
		"\n--\n-- Name: x; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nDELETE FROM public.t WHERE id = 2;\n",
		"\n--\n-- Name: x; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nTRUNCATE public.t; INSERT INTO public.t VALUES (1, 1.3), (2, 2.0);\n",
		"CREATE FUNCTION public.w() RETURNS int LANGUAGE sql AS $$ INSERT INTO public.t VALUES (3, 3) RETURNING 1 $$;\nCREATE MATERIALIZED VIEW public.mv AS SELECT public.w() AS x WITH NO DATA;\nREFRESH MATERIALIZED VIEW public.mv;\n",
		"CREATE FUNCTION public.w() RETURNS int LANGUAGE sql AS $$ INSERT INTO public.t VALUES (3, 3) RETURNING 1 $$;\nCREATE MATERIALIZED VIEW public.mv AS SELECT public.w() AS x WITH NO DATA;\nSELECT 1; REFRESH MATERIALIZED VIEW public.mv; SELECT 'unterminated",
	} {
		t.Run("", func(t *testing.T) {
			tg, _, _, _ := proveTarget(t)
			stale, err := tg.ApplyPostData(testContext(t), bytes.NewReader([]byte(post)), 2)
			if strings.HasSuffix(post, "'unterminated") {
				if err == nil {
					t.Fatal("a broken section applied")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Contains(post, "UPDATE") || strings.Contains(post, "DELETE") || strings.Contains(post, "TRUNCATE") || strings.Contains(post, "REFRESH")
			if stale != want {
				t.Errorf("stale %v, want %v for\n%s", stale, want, post)
			}
		})
	}
}
