package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// RolesMode says what a restore does with the owners and privileges a
// snapshot recorded (docs/ops.md, "Owners and privileges").
type RolesMode string

const (
	// RolesApply applies every owner and privilege statement; a target that
	// lacks a role they name fails the restore before any is applied.
	RolesApply RolesMode = "apply"
	// RolesSkip applies none of them and reports what was skipped. Restore
	// tests use it: a scratch server has none of the tenant's roles.
	RolesSkip RolesMode = "skip"
)

// ParseRolesMode parses a --roles value; "" is RolesApply.
func ParseRolesMode(s string) (RolesMode, error) {
	switch RolesMode(s) {
	case "", RolesApply:
		return RolesApply, nil
	case RolesSkip:
		return RolesSkip, nil
	}
	return "", fmt.Errorf("roles %q: use apply or skip", s)
}

// Role is a role named by an owner or a privilege: its name and attributes,
// never its password.
type Role struct {
	Name        string   `json:"name"`
	Superuser   bool     `json:"superuser,omitempty"`
	Inherit     bool     `json:"inherit,omitempty"`
	CreateRole  bool     `json:"createrole,omitempty"`
	CreateDB    bool     `json:"createdb,omitempty"`
	Login       bool     `json:"login,omitempty"`
	Replication bool     `json:"replication,omitempty"`
	BypassRLS   bool     `json:"bypassrls,omitempty"`
	ConnLimit   int      `json:"connlimit,omitempty"`
	MemberOf    []string `json:"member_of,omitempty"`
}

// PrivilegeStatement is one statement restoring an owner or privileges of
// one object, with the roles it names.
type PrivilegeStatement struct {
	// Kind is "owner", "grant", "column-grant" or "default-privileges".
	Kind string `json:"kind"`
	// Object names the object, e.g. "table public.clients".
	Object string   `json:"object"`
	Roles  []string `json:"roles"`
	SQL    string   `json:"sql"`
}

// Privileges is the content of a privileges stream (docs/format.md,
// "Privileges stream").
type Privileges struct {
	Format     string               `json:"format"`
	Roles      []Role               `json:"roles"`
	Statements []PrivilegeStatement `json:"statements"`
}

// PrivilegesFormat names the privileges stream format.
const PrivilegesFormat = "kluis-privileges-v1"

// MaxPrivileges bounds a privileges stream.
const MaxPrivileges = 256 << 20

// ErrBadPrivileges wraps every error about a malformed privileges stream.
var ErrBadPrivileges = errors.New("malformed privileges stream")

// DecodePrivileges reads a privileges stream: bounded, strict, checked.
func DecodePrivileges(r io.Reader) (*Privileges, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPrivileges+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxPrivileges {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadPrivileges, MaxPrivileges)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var p Privileges
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPrivileges, err)
	}
	if p.Format != PrivilegesFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadPrivileges, p.Format, PrivilegesFormat)
	}
	for i, s := range p.Statements {
		switch s.Kind {
		case "owner", "grant", "column-grant", "default-privileges", "large-object":
		default:
			return nil, fmt.Errorf("%w: statement %d: kind %q", ErrBadPrivileges, i, s.Kind)
		}
		if s.SQL == "" || s.Object == "" {
			return nil, fmt.Errorf("%w: statement %d: empty", ErrBadPrivileges, i)
		}
		for _, r := range s.Roles {
			if r == "" {
				return nil, fmt.Errorf("%w: statement %d: empty role name", ErrBadPrivileges, i)
			}
		}
	}
	return &p, nil
}

// PrivilegesReport says what a restore did with owners and privileges.
type PrivilegesReport struct {
	Mode    RolesMode `json:"mode"`
	Applied int       `json:"applied"`
	Skipped int       `json:"skipped"`
	// SkippedKinds counts the skipped statements by kind.
	SkippedKinds map[string]int `json:"skipped_kinds,omitempty"`
	// SkippedObjects names the objects whose owner or privileges were not
	// restored, e.g. "table public.clients", sorted, each once.
	SkippedObjects []string `json:"skipped_objects,omitempty"`
	// SkippedRoles are the roles those statements named.
	SkippedRoles []string `json:"skipped_roles,omitempty"`
}

// SkipPrivileges is the report of skipping every statement of p
// (RolesSkip).
func SkipPrivileges(p *Privileges) *PrivilegesReport {
	rep := &PrivilegesReport{Mode: RolesSkip}
	objs, roles := map[string]bool{}, map[string]bool{}
	rep.SkippedKinds = map[string]int{}
	for _, s := range p.Statements {
		rep.Skipped++
		rep.SkippedKinds[s.Kind]++
		objs[s.Object] = true
		for _, r := range s.Roles {
			roles[r] = true
		}
	}
	for o := range objs {
		rep.SkippedObjects = append(rep.SkippedObjects, o)
	}
	for r := range roles {
		rep.SkippedRoles = append(rep.SkippedRoles, r)
	}
	sort.Strings(rep.SkippedObjects)
	sort.Strings(rep.SkippedRoles)
	if len(rep.SkippedKinds) == 0 {
		rep.SkippedKinds = nil
	}
	return rep
}

// Summary is one line for a person: how many were skipped and which.
func (r *PrivilegesReport) Summary() string {
	if r == nil {
		return ""
	}
	if r.Skipped == 0 {
		return fmt.Sprintf("owners and privileges: %d statements applied", r.Applied)
	}
	return fmt.Sprintf("owners and privileges: %d applied, %d skipped (--roles %s) on %d objects naming roles %s",
		r.Applied, r.Skipped, r.Mode, len(r.SkippedObjects), strings.Join(r.SkippedRoles, ", "))
}

// PrivilegeSnapshot is a Snapshot that records owners and privileges
// apart from its schema, so a restore can apply or skip them.
type PrivilegeSnapshot interface {
	Privileges(ctx context.Context, w io.Writer) error
}

// PrivilegeTarget is a Target that can apply a privileges stream.
type PrivilegeTarget interface {
	ApplyPrivileges(ctx context.Context, r io.Reader, mode RolesMode) (*PrivilegesReport, error)
}

// SchemaCheck compares the objects, owners and privileges of a restored
// database with those its snapshot recorded.
type SchemaCheck struct {
	// Objects is how many objects (schemas, tables, views, sequences,
	// routines, types, large objects) the snapshot recorded.
	Objects int `json:"objects"`
	// Missing and Extra name objects only the snapshot, or only the
	// restored database, has.
	Missing []string `json:"missing,omitempty"`
	Extra   []string `json:"extra,omitempty"`
	// PrivilegesCompared is false when owners and privileges were skipped
	// (source.RolesSkip); Skipped then says how many statements.
	PrivilegesCompared bool `json:"privileges_compared"`
	Skipped            int  `json:"skipped,omitempty"`
	// Differ names the objects whose owner or privileges differ.
	Differ []string `json:"differ,omitempty"`
}

// OK reports whether the restored schema matches.
func (c *SchemaCheck) OK() bool {
	return len(c.Missing) == 0 && len(c.Extra) == 0 && len(c.Differ) == 0
}

// Summary is one line for a person or a report (object names only: no
// role names, no data).
func (c *SchemaCheck) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d objects", c.Objects)
	if len(c.Missing) > 0 {
		fmt.Fprintf(&b, ", %d missing (%s)", len(c.Missing), strings.Join(c.Missing, ", "))
	}
	if len(c.Extra) > 0 {
		fmt.Fprintf(&b, ", %d extra (%s)", len(c.Extra), strings.Join(c.Extra, ", "))
	}
	if c.PrivilegesCompared {
		if len(c.Differ) > 0 {
			fmt.Fprintf(&b, "; owners or privileges differ on %s", strings.Join(c.Differ, ", "))
		} else {
			b.WriteString("; owners and privileges identical")
		}
	} else {
		fmt.Fprintf(&b, "; owners and privileges not restored (%d statements)", c.Skipped)
	}
	return b.String()
}

// CompareSchema compares the privileges a snapshot recorded (want) with
// those read back from the restored database (got).
func CompareSchema(want, got *Privileges, mode RolesMode) *SchemaCheck {
	c := &SchemaCheck{PrivilegesCompared: mode == RolesApply}
	objects := func(p *Privileges) map[string]bool {
		m := map[string]bool{}
		for _, s := range p.Statements {
			if s.Kind == "owner" {
				m[s.Object] = true
			}
		}
		return m
	}
	w, g := objects(want), objects(got)
	c.Objects = len(w)
	for o := range w {
		if !g[o] {
			c.Missing = append(c.Missing, o)
		}
	}
	for o := range g {
		if !w[o] {
			c.Extra = append(c.Extra, o)
		}
	}
	if c.PrivilegesCompared {
		stmts := func(p *Privileges) map[string]string {
			m := map[string]string{}
			for _, s := range p.Statements {
				m[s.Kind+" "+s.Object] += s.SQL
			}
			return m
		}
		ws, gs := stmts(want), stmts(got)
		differ := map[string]bool{}
		for k, v := range ws {
			if gs[k] != v {
				differ[k] = true
			}
		}
		for k := range gs {
			if _, ok := ws[k]; !ok {
				differ[k] = true
			}
		}
		for k := range differ {
			c.Differ = append(c.Differ, k)
		}
	} else {
		c.Skipped = len(want.Statements)
	}
	sort.Strings(c.Missing)
	sort.Strings(c.Extra)
	sort.Strings(c.Differ)
	return c
}

// SchemaReader is a Target that can read back its owners and privileges.
type SchemaReader interface {
	ReadPrivileges(ctx context.Context) (*Privileges, error)
}
