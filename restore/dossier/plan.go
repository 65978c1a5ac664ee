package dossier

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/rowindex"
	"github.com/kluis-nl/kluis/source"
)

// Edge is a reference from Columns of a member table to RefColumns of the
// group RefGroup (a table, or a partitioned parent standing for its
// partitions).
type Edge struct {
	Columns    []string `json:"columns"`
	RefGroup   string   `json:"ref_table"`
	RefColumns []string `json:"ref_columns"`
	// Explicit is true for an edge from the profile's edges:.
	Explicit bool `json:"explicit,omitempty"`
	// Name is the foreign key's name; DeclaredOn the table that declares
	// it (a partition's key applies to every partition of its parent).
	Name       string `json:"name,omitempty"`
	DeclaredOn string `json:"declared_on,omitempty"`
}

// String says what the edge is, for show: which reference made a table a
// member.
func (e Edge) String() string {
	ref := fmt.Sprintf("(%s) -> %s (%s)", strings.Join(e.Columns, ", "), e.RefGroup, strings.Join(e.RefColumns, ", "))
	if e.Explicit {
		return "edges: entry " + ref
	}
	return fmt.Sprintf("foreign key %s %s, declared on %s", e.Name, ref, e.DeclaredOn)
}

func (e Edge) key() string {
	return fmt.Sprintf("%q %q %q %t", e.Columns, e.RefGroup, e.RefColumns, e.Explicit)
}

// Step is one member table in extraction order.
type Step struct {
	Table source.TableMeta
	// Group is the table's group: its partitioned parent, or itself.
	Group string
	// Root is set for the root table: its rows match on the key column.
	Root bool
	// Member edges select the table's dossier rows (any one matching).
	Member []Edge
	// Outside edges point at tables outside the dossier (shared rows);
	// Member edges whose referenced row is not in the dossier are checked
	// the same way.
	Outside []Edge
	// Reason says which reference made the table's group a member.
	Reason string
}

// Plan is a profile applied to a snapshot's tables.
type Plan struct {
	Engine   string
	RootName string
	Key      string
	Steps    []Step
	// Needs lists, per group, the column lists whose values children need.
	Needs map[string][][]string
	// Dropped lists edges left out to break a reference cycle.
	Dropped []string
}

// NewPlan applies profile p to the tables of a snapshot.
func NewPlan(engine string, tables []source.TableMeta, p *config.Dossier) (*Plan, error) {
	group := func(t source.TableMeta) string {
		if t.PartitionOf != "" {
			return t.PartitionOf
		}
		return t.Name
	}
	groups := map[string][]int{} // group -> table indexes
	var order []string
	for i, t := range tables {
		g := group(t)
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	resolve := func(name, what string) (string, error) {
		if _, ok := groups[name]; ok {
			return name, nil
		}
		var found []string
		for _, g := range order {
			if g == name || strings.HasSuffix(g, "."+name) {
				found = append(found, g)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			return "", fmt.Errorf("dossier profile: %s %q is not a table of this snapshot", what, name)
		}
		return "", fmt.Errorf("dossier profile: %s %q is ambiguous (%s): qualify it", what, name, strings.Join(found, ", "))
	}
	root, err := resolve(p.Root, "root")
	if err != nil {
		return nil, err
	}
	hasColumn := func(g, col string) bool {
		for _, i := range groups[g] {
			for _, c := range tables[i].Columns {
				if c.Name == col {
					return true
				}
			}
		}
		return false
	}
	if !hasColumn(root, p.Key) {
		return nil, fmt.Errorf("dossier profile: root table %s has no column %q", root, p.Key)
	}
	excluded := map[string]bool{}
	for _, x := range p.Exclude {
		g, err := resolve(x, "exclude")
		if err != nil {
			return nil, err
		}
		if g == root {
			return nil, fmt.Errorf("dossier profile: exclude names the root table %s", root)
		}
		excluded[g] = true
	}

	// Edges per table index: declared foreign keys, then explicit edges.
	// A reference to a partition is a reference to its group.
	groupOf := map[string]string{}
	for _, t := range tables {
		groupOf[t.Name] = group(t)
	}
	refGroup := func(name string) string {
		if g, ok := groupOf[name]; ok {
			return g
		}
		return name
	}
	edges := make([][]Edge, len(tables))
	for i, t := range tables {
		for _, fk := range t.ForeignKeys {
			edges[i] = append(edges[i], Edge{Columns: fk.Columns, RefGroup: refGroup(fk.RefTable), RefColumns: fk.RefColumns, Name: fk.Name, DeclaredOn: t.Name})
		}
	}
	for _, e := range p.Edges {
		ft, fc, _ := config.SplitColumnRef(e.From)
		tt, tc, _ := config.SplitColumnRef(e.To)
		to, err := resolve(tt, "edge target")
		if err != nil {
			return nil, err
		}
		if !hasColumn(to, tc) {
			return nil, fmt.Errorf("dossier profile: edge target %s has no column %q", to, tc)
		}
		var from []string
		if ft == "*" {
			for _, g := range order {
				if g != to && hasColumn(g, fc) {
					from = append(from, g)
				}
			}
		} else {
			g, err := resolve(ft, "edge source")
			if err != nil {
				return nil, err
			}
			if !hasColumn(g, fc) {
				return nil, fmt.Errorf("dossier profile: edge source %s has no column %q", g, fc)
			}
			from = []string{g}
		}
		for _, g := range from {
			for _, i := range groups[g] {
				edges[i] = append(edges[i], Edge{Columns: []string{fc}, RefGroup: to, RefColumns: []string{tc}, Explicit: true})
			}
		}
	}

	// Partitions of one parent share their columns: a reference declared
	// on any of them (or on the parent, which every partition inherits)
	// applies to all of them, also where a partition lacks its own.
	for _, g := range order {
		var union []Edge
		seen := map[string]bool{}
		for _, i := range groups[g] {
			for _, e := range edges[i] {
				if !seen[e.key()] {
					seen[e.key()] = true
					union = append(union, e)
				}
			}
		}
		for _, i := range groups[g] {
			edges[i] = union
		}
	}

	// Membership: groups reachable from the root against the references.
	member := map[string]bool{root: true}
	reason := map[string]string{root: fmt.Sprintf("root (key %s)", p.Key)}
	for changed := true; changed; {
		changed = false
		for i, t := range tables {
			g := group(t)
			if member[g] || excluded[g] {
				continue
			}
			for _, e := range edges[i] {
				if member[e.RefGroup] && e.RefGroup != g {
					member[g] = true
					reason[g] = e.String()
					changed = true
					break
				}
			}
		}
	}

	// Order member groups parents first (Kahn); a cycle is broken by
	// dropping the edges into groups not yet placed.
	deps := map[string]map[string]bool{}
	for g := range member {
		deps[g] = map[string]bool{}
		for _, i := range groups[g] {
			for _, e := range edges[i] {
				if member[e.RefGroup] && e.RefGroup != g {
					deps[g][e.RefGroup] = true
				}
			}
		}
	}
	delete(deps[root], root)
	placed := map[string]bool{}
	var sorted []string
	pl := &Plan{Engine: engine, RootName: root, Key: p.Key, Needs: map[string][][]string{}}
	for len(sorted) < len(member) {
		progress := false
		for _, g := range order {
			if !member[g] || placed[g] {
				continue
			}
			ready := true
			for d := range deps[g] {
				if !placed[d] {
					ready = false
				}
			}
			if g == root || ready {
				placed[g] = true
				sorted = append(sorted, g)
				progress = true
			}
		}
		if !progress {
			for _, g := range order {
				if member[g] && !placed[g] {
					var cut []string
					for d := range deps[g] {
						if !placed[d] {
							cut = append(cut, d)
							delete(deps[g], d)
						}
					}
					sort.Strings(cut)
					for _, d := range cut {
						pl.Dropped = append(pl.Dropped, g+" -> "+d)
					}
					break
				}
			}
		}
	}

	for _, g := range sorted {
		for _, i := range groups[g] {
			st := Step{Table: tables[i], Group: g, Root: g == root, Reason: reason[g]}
			for _, e := range edges[i] {
				switch {
				case st.Root:
					// Root rows match on the key alone.
					st.Outside = append(st.Outside, e)
					if member[e.RefGroup] {
						pl.need(e.RefGroup, e.RefColumns)
					}
				case e.RefGroup == g:
					// A self-reference cannot select rows; it is checked
					// like a shared reference.
					st.Outside = append(st.Outside, e)
					pl.need(g, e.RefColumns)
				case member[e.RefGroup] && deps[g][e.RefGroup]:
					st.Member = append(st.Member, e)
					pl.need(e.RefGroup, e.RefColumns)
				default:
					st.Outside = append(st.Outside, e)
					if member[e.RefGroup] {
						pl.need(e.RefGroup, e.RefColumns)
					}
				}
			}
			pl.Steps = append(pl.Steps, st)
		}
	}
	return pl, nil
}

func (p *Plan) need(group string, cols []string) {
	for _, c := range p.Needs[group] {
		if slices.Equal(c, cols) {
			return
		}
	}
	p.Needs[group] = append(p.Needs[group], slices.Clone(cols))
}

// Tables returns the member tables in extraction order.
func (p *Plan) Tables() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Table.Name
	}
	return out
}

// columnIndex returns the positions of cols in t, or an error.
func columnIndex(t source.Table, cols []string) ([]int, error) {
	return rowindex.ColumnIndex(t, cols)
}

func (p *Plan) allTables() []source.TableMeta {
	out := make([]source.TableMeta, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Table
	}
	return out
}

func textValue(s string) source.Value { return source.TextValue([]byte(s)) }
