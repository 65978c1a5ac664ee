package dossier

import (
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/source"
)

func tm(name, partitionOf string, cols []string, fks ...source.ForeignKey) source.TableMeta {
	t := source.TableMeta{Table: source.Table{Name: name, Table: name, PartitionOf: partitionOf, ForeignKeys: fks, Encoding: source.RowEncoding}}
	if s, tb, ok := strings.Cut(name, "."); ok {
		t.Table.Schema, t.Table.Table = s, tb
	}
	for _, c := range cols {
		t.Columns = append(t.Columns, source.Column{Name: c})
	}
	return t
}

func ref(col, table, refCol string) source.ForeignKey {
	return source.ForeignKey{Columns: []string{col}, RefTable: table, RefColumns: []string{refCol}}
}

func TestPlan(t *testing.T) {
	tables := []source.TableMeta{
		tm("s.clients", "", []string{"id", "address_id", "buddy_id"}, ref("address_id", "s.addresses", "id"), ref("buddy_id", "s.clients", "id")),
		tm("s.addresses", "", []string{"id"}),
		// a partitioned parent (no stream) with two partitions referencing clients
		tm("s.m_2025", "s.m", []string{"id", "client_id"}, ref("client_id", "s.clients", "id")),
		tm("s.m_default", "s.m", []string{"id", "client_id"}, ref("client_id", "s.clients", "id")),
		// a table referencing the partitioned parent: it joins through the group
		tm("s.m_notes", "", []string{"id", "m_id"}, ref("m_id", "s.m", "id")),
		// a reference cycle between two member tables
		tm("s.a", "", []string{"id", "client_id", "b_id"}, ref("client_id", "s.clients", "id"), ref("b_id", "s.b", "id")),
		tm("s.b", "", []string{"id", "a_id"}, ref("a_id", "s.a", "id")),
		tm("s.audit", "", []string{"client_id"}, ref("client_id", "s.clients", "id")),
	}
	p, err := NewPlan("postgres", tables, &config.Dossier{Root: "clients", Key: "id", Exclude: []string{"audit"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.Tables(), ",")
	if got != "s.clients,s.m_2025,s.m_default,s.m_notes,s.a,s.b" {
		t.Errorf("order: %s", got)
	}
	if strings.Join(p.Dropped, ";") != "s.a -> s.b" {
		t.Errorf("the a <-> b cycle should be broken at a -> b (a is listed first): %v", p.Dropped)
	}
	for _, st := range p.Steps {
		switch st.Table.Name {
		case "s.clients":
			if !st.Root || len(st.Member) != 0 || len(st.Outside) != 2 {
				t.Errorf("root step: %+v", st)
			}
		case "s.m_notes":
			if len(st.Member) != 1 || st.Member[0].RefGroup != "s.m" {
				t.Errorf("m_notes: %+v", st.Member)
			}
		case "s.a":
			// a's edge to b points at a table placed later: checked as a
			// shared reference, not used for membership.
			if len(st.Member) != 1 || len(st.Outside) != 1 {
				t.Errorf("a: member %+v outside %+v", st.Member, st.Outside)
			}
		}
	}
	stmts, err := p.DeleteStatements("42")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 5 || !strings.HasPrefix(stmts[0], `DELETE FROM "s"."b"`) || !strings.HasPrefix(stmts[4], `DELETE FROM "s"."clients" WHERE "id" = '42'`) {
		t.Errorf("delete statements:\n%s", strings.Join(stmts, "\n"))
	}
	if !strings.Contains(strings.Join(stmts, "\n"), `DELETE FROM "s"."m" WHERE`) {
		t.Errorf("partitions are deleted through their parent:\n%s", strings.Join(stmts, "\n"))
	}

	for _, c := range []struct {
		name string
		p    config.Dossier
		want string
	}{
		{"unknown root", config.Dossier{Root: "patients", Key: "id"}, `root "patients" is not a table`},
		{"root lacks key", config.Dossier{Root: "clients", Key: "pid"}, `has no column "pid"`},
		{"root excluded", config.Dossier{Root: "clients", Key: "id", Exclude: []string{"s.clients"}}, "exclude names the root"},
		{"bad edge column", config.Dossier{Root: "clients", Key: "id", Edges: []config.DossierEdge{{From: "audit.x", To: "clients.id"}}}, `has no column "x"`},
		{"a partition is not a root", config.Dossier{Root: "m_2025", Key: "id"}, `root "m_2025" is not a table`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewPlan("postgres", tables, &c.p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %q, got %v", c.want, err)
			}
		})
	}
}
