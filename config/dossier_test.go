package config

import (
	"strings"
	"testing"
)

func TestDossierProfiles(t *testing.T) {
	withProfile := func(profile, ref string) string {
		s := edit(t, validYAML(t), "    path: db/praktijk-a.sqlite\n", "    path: db/praktijk-a.sqlite\n    dossier: "+ref+"\n")
		return s + "\ndossiers:\n" + profile
	}
	good := withProfile(`  practice:
    root: public.clients
    key: id
    edges:
      - {from: "*.pid", to: patient_data.pid}
      - {from: public.notes.client_ref, to: public.clients.id}
    exclude: [audit_log]
`, "practice")
	c, err := Parse([]byte(good), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DossierFor("praktijk-a")
	if err != nil || d.Root != "public.clients" || len(d.Edges) != 2 {
		t.Fatalf("DossierFor: %+v, %v", d, err)
	}
	if _, err := c.DossierFor("praktijk-b"); err == nil || !strings.Contains(err.Error(), "no dossier profile") {
		t.Errorf("tenant without a profile: %v", err)
	}
	if tb, col, ok := SplitColumnRef("public.notes.client_ref"); !ok || tb != "public.notes" || col != "client_ref" {
		t.Errorf("SplitColumnRef: %q %q %v", tb, col, ok)
	}
	for _, tc := range []struct {
		name, profile, ref, want string
	}{
		{"unknown profile", "  practice: {root: clients, key: id}\n", "other", `tenants[0].dossier: "other" is not a profile`},
		{"no root", "  practice: {key: id}\n", "practice", "dossiers.practice.root: required"},
		{"no key", "  practice: {root: clients}\n", "practice", "dossiers.practice.key: required"},
		{"bad edge from", "  practice: {root: clients, key: id, edges: [{from: pid, to: clients.id}]}\n", "practice", "dossiers.practice.edges[0].from"},
		{"star edge to", "  practice: {root: clients, key: id, edges: [{from: a.pid, to: \"*.pid\"}]}\n", "practice", "dossiers.practice.edges[0].to"},
		{"root excluded", "  practice: {root: clients, key: id, exclude: [clients]}\n", "practice", "excludes the root table"},
		{"unknown field", "  practice: {root: clients, key: id, edge: []}\n", "practice", "edge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withProfile(tc.profile, tc.ref)), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want %q, got %v", tc.want, err)
			}
		})
	}
}
