package config

import (
	"fmt"
	"sort"
	"strings"
)

// Dossier is a dossier profile: which rows make up one client's dossier
// (docs/dossier.md, "Dossier profiles"). Profiles are named at the top
// level (dossiers:) and a database tenant refers to one by name
// (tenants[].dossier), so every tenant of one application shares one.
//
//	dossiers:
//	  practice:
//	    root: clients            # table; "public.clients" on PostgreSQL,
//	                             # or just "clients" when that is unique
//	    key: id                  # the root's key column (the --id value)
//	    edges:                   # for references the schema does not declare
//	      - {from: "*.pid", to: patient_data.pid}
//	      - {from: notes.client_ref, to: clients.id}
//	    exclude: [audit_log]     # tables never part of a dossier
type Dossier struct {
	Root    string        `yaml:"root"`
	Key     string        `yaml:"key"`
	Edges   []DossierEdge `yaml:"edges"`
	Exclude []string      `yaml:"exclude"`
}

// DossierEdge is an explicit reference from a column to a column:
// From is "table.column" or "*.column" (every table having that column),
// To is "table.column". A table name may itself contain a dot
// (schema.table); the column is what follows the last dot.
type DossierEdge struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// SplitColumnRef splits "schema.table.column" into the table part and the
// column ("*" as the table means every table).
func SplitColumnRef(ref string) (table, column string, ok bool) {
	i := strings.LastIndexByte(ref, '.')
	if i <= 0 || i == len(ref)-1 {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// DossierFor returns the dossier profile of a tenant, or an error saying
// how to configure one.
func (c *Config) DossierFor(tenant string) (*Dossier, error) {
	t, err := c.Tenant(tenant)
	if err != nil {
		return nil, err
	}
	if t.Dossier == "" {
		return nil, fmt.Errorf("tenant %s has no dossier profile: set tenants[].dossier to a name under dossiers: (see docs/dossier.md)", tenant)
	}
	d, ok := c.Dossiers[t.Dossier]
	if !ok {
		return nil, fmt.Errorf("tenant %s: no dossier profile %q under dossiers:", tenant, t.Dossier)
	}
	return &d, nil
}

// validateDossiers checks the dossier profiles and the tenants' references
// to them.
func (c *Config) validateDossiers(p *Problems) {
	names := make([]string, 0, len(c.Dossiers))
	for n := range c.Dossiers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := c.Dossiers[n]
		path := "dossiers." + n
		if !nameRE.MatchString(n) {
			p.addf(path, "profile name %q: use letters, digits, '.', '_' and '-'", n)
		}
		if strings.TrimSpace(d.Root) == "" {
			p.addf(path+".root", "required (the dossier's root table, e.g. clients)")
		}
		if strings.TrimSpace(d.Key) == "" {
			p.addf(path+".key", "required (the root table's key column, e.g. id)")
		}
		for i, e := range d.Edges {
			ep := fmt.Sprintf("%s.edges[%d]", path, i)
			if _, _, ok := SplitColumnRef(e.From); !ok {
				p.addf(ep+".from", "%q: want table.column or *.column", e.From)
			}
			if tb, _, ok := SplitColumnRef(e.To); !ok || tb == "*" {
				p.addf(ep+".to", "%q: want table.column", e.To)
			}
		}
		for i, x := range d.Exclude {
			if strings.TrimSpace(x) == "" {
				p.addf(fmt.Sprintf("%s.exclude[%d]", path, i), "empty table name")
			} else if x == d.Root {
				p.addf(fmt.Sprintf("%s.exclude[%d]", path, i), "excludes the root table %q", x)
			}
		}
	}
	for i, t := range c.Tenants {
		if t.Dossier == "" {
			continue
		}
		path := fmt.Sprintf("tenants[%d].dossier", i)
		if _, ok := c.Dossiers[t.Dossier]; !ok {
			p.addf(path, "%q is not a profile under dossiers:", t.Dossier)
		}
		if t.Engine == "files" {
			p.addf(path, "a files tenant has no tables, so no dossiers")
		}
	}
}
