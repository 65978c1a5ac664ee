package postgres

import (
	"reflect"
	"strings"
	"testing"
)

const samplePost = `--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: clients clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.clients
    ADD CONSTRAINT clients_pkey PRIMARY KEY (id);


--
-- Name: idx_a; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_a ON public.appointments USING btree (client_id);


--
-- Name: idx_b; Type: INDEX; Schema: Sch"ema; Owner: -
--

CREATE UNIQUE INDEX "idx;b" ON "Sch""ema"."Tä ble" USING btree (lower(name)) WHERE (name <> 'x;
-- Name: y; Type: INDEX; Schema: public; Owner: -
DROP TABLE x;');


--
-- Name: clients trg; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg BEFORE INSERT ON public.clients FOR EACH ROW EXECUTE FUNCTION public.f();


--
-- Name: appointments appointments_client_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT appointments_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.clients(id) ON DELETE CASCADE;

--
-- kluis: sequence values
--

SET standard_conforming_strings = on;
SELECT pg_catalog.setval('public.s', 5, true);
REFRESH MATERIALIZED VIEW public.mv;

`

func TestSplitDDL(t *testing.T) {
	entries, ok := splitDDL([]byte(samplePost))
	if !ok {
		t.Fatal("sample post-data did not split")
	}
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.kind)
	}
	want := []string{"", "CONSTRAINT", "INDEX", "INDEX", "TRIGGER", "FK CONSTRAINT"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds %q, want %q", kinds, want)
	}
	if n := len(entries[0].stmts); n != 4 {
		t.Errorf("preamble has %d statements, want 4", n)
	}
	// The header inside the quoted predicate does not start an entry, and
	// its semicolons do not end the statement.
	if n := len(entries[3].stmts); n != 1 || !strings.Contains(entries[3].stmts[0].text, "DROP TABLE x;') ") && !strings.HasSuffix(entries[3].stmts[0].text, "DROP TABLE x;')") {
		t.Errorf("quoted entry: %d statements: %+v", n, entries[3].stmts)
	}
	checks := []struct {
		i      int
		tables []qname
		ok     bool
	}{
		{1, []qname{{"public", "clients"}}, true},
		{2, []qname{{"public", "appointments"}}, true},
		{3, []qname{{`Sch"ema`, "Tä ble"}}, true},
		{4, []qname{{"public", "clients"}}, true},
		// The last entry also holds kluis's trailer: not parallel.
		{5, nil, false},
	}
	for _, c := range checks {
		got, ok := entryTables(entries[c.i])
		if ok != c.ok || !reflect.DeepEqual(got, c.tables) {
			t.Errorf("entry %d (%s): tables %v %v, want %v %v", c.i, entries[c.i].kind, got, ok, c.tables, c.ok)
		}
	}
	fk := entries[5]
	fk.stmts = fk.stmts[:1]
	if got, ok := entryTables(fk); !ok || !reflect.DeepEqual(got, []qname{{"public", "appointments"}, {"public", "clients"}}) {
		t.Errorf("foreign key locks %v %v, want both tables", got, ok)
	}
}

func TestEntryTablesTriggersAndAttachments(t *testing.T) {
	for _, c := range []struct {
		kind, sql string
		tables    []qname
	}{
		{"TRIGGER", `CREATE TRIGGER t AFTER INSERT OR UPDATE OF "on", b ON public.x REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION public.f('on')`, []qname{{"public", "x"}}},
		{"TRIGGER", `CREATE TRIGGER "T" BEFORE DELETE ON "S"."X y" FOR EACH ROW WHEN ((old.a > 1)) EXECUTE FUNCTION public.f()`, []qname{{"S", "X y"}}},
		{"TRIGGER", `CREATE CONSTRAINT TRIGGER t AFTER INSERT ON public.x FROM public.y FOR EACH ROW EXECUTE FUNCTION public.f()`, nil},
		{"TRIGGER", `CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION public.f()`, nil},
		{"TRIGGER", `ALTER TABLE public.x DISABLE TRIGGER t`, nil},
		{"INDEX ATTACH", `ALTER INDEX public.p_pkey ATTACH PARTITION public.p_2020_pkey`, []qname{{"public", "p_pkey"}, {"public", "p_2020_pkey"}}},
		{"INDEX ATTACH", `ALTER INDEX public.p_pkey ATTACH PARTITION public.p_2020_pkey RENAME TO x`, nil},
		{"INDEX ATTACH", `ALTER INDEX public.p_pkey RENAME TO x`, nil},
		{"COMMENT", `CREATE TRIGGER t AFTER INSERT ON public.x FOR EACH ROW EXECUTE FUNCTION public.f()`, nil},
	} {
		entries, ok := splitDDL([]byte(c.sql + ";\n"))
		if !ok || len(entries) != 1 {
			t.Fatalf("%s: split %v", c.sql, ok)
		}
		e := entries[0]
		e.kind = c.kind
		got, ok := entryTables(e)
		if ok != (c.tables != nil) || !reflect.DeepEqual(got, c.tables) {
			t.Errorf("%s %s: %v %v, want %v", c.kind, c.sql, got, ok, c.tables)
		}
	}
}

func TestSplitDDLRefusesUncertainText(t *testing.T) {
	for _, text := range []string{
		"CREATE INDEX a ON public.t (x) WHERE y = 'unterminated;\n",
		"CREATE INDEX a ON public.t (x) /* unterminated comment;\n",
		"CREATE INDEX a ON public.t (x)", // no semicolon
		"SET standard_conforming_strings = off;\nCREATE INDEX a ON public.t (x) WHERE y = 'a\\';\n",
		"SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);\n",
		"CREATE FUNCTION f() RETURNS int AS $x$ SELECT 1; \n",
		"CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END;\n",
		"CREATE RULE r AS ON INSERT TO public.t DO INSTEAD (SELECT 1;\n",
		"SELECT 1);\n",
	} {
		if _, ok := splitDDL([]byte(text)); ok {
			t.Errorf("split %q", text)
		}
	}
}

func TestSplitDDLQuoting(t *testing.T) {
	want := []string{
		`CREATE INDEX a ON public.t (x) WHERE y = E'it\'s;'`,
		`CREATE RULE r AS ON INSERT TO public.t DO INSTEAD (SELECT $q$;$q$; SELECT $$;$$)`,
		`ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((x <> 'a''b;')) NOT VALID`,
		`CREATE INDEX "b""c;" ON public.t USING btree (x, $1)`,
	}
	text := want[0] + ";\n" + want[1] + ";\n" + want[2] + ";\n/* a /* nested; */ comment; */" + want[3] + ";\n-- trailing; comment\n"
	entries, ok := splitDDL([]byte(text))
	if !ok || len(entries) != 1 {
		t.Fatalf("split %v, %d entries", ok, len(entries))
	}
	var got []string
	for _, s := range entries[0].stmts {
		got = append(got, strings.TrimSpace(s.text))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statements\n%q\nwant\n%q", got, want)
	}
}

func FuzzSplitDDL(f *testing.F) {
	f.Add(samplePost)
	f.Add("CREATE INDEX a ON public.t (x) WHERE y = E'it\\'s;';\n")
	f.Add("SELECT $a$ ; $a$; SELECT $1;")
	f.Add(`ALTER TABLE ONLY "a"."b" ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES "c"."d"(y);`)
	f.Fuzz(func(t *testing.T, text string) {
		entries, ok := splitDDL([]byte(text))
		if !ok {
			return
		}
		for _, e := range entries {
			entryTables(e)
			// Re-splitting an entry's statements gives the same statements:
			// the split is stable, so no statement ends inside a quote.
			sql := entrySQL(e)
			again, ok := splitDDL([]byte(sql))
			if !ok {
				t.Fatalf("entry %q does not split again", sql)
			}
			var n int
			for _, a := range again {
				for _, s := range a.stmts {
					if !s.isEmpty() {
						n++
					}
				}
			}
			var m int
			for _, s := range e.stmts {
				if !s.isEmpty() {
					m++
				}
			}
			if n != m {
				t.Fatalf("entry %q: %d statements, again %d", sql, m, n)
			}
		}
	})
}
