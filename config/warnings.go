package config

import (
	"fmt"
	"regexp"
)

// aggregateRE finds an aggregate call in a probe's SQL: count(…), sum(…),
// avg(…), min(…), max(…), bool_and/bool_or/every(…), or exists(…).
var aggregateRE = regexp.MustCompile(`(?i)\b(count|sum|avg|min|max|bool_and|bool_or|every|exists)\s*\(`)

// Warnings lists what is valid but probably wrong: the config works, yet
// an operator should look. `kluis config check` prints them; they never
// fail a check.
func (c *Config) Warnings() []Problem {
	var out []Problem
	for i, t := range c.Tenants {
		for j, p := range t.Probes {
			if p.RecordResult && !aggregateRE.MatchString(p.SQL) {
				out = append(out, Problem{
					Path:    fmt.Sprintf("tenants[%d].probes[%d].record_result", i, j),
					Message: fmt.Sprintf("probe %q records its result into signed evidence but its SQL has no aggregate (count, sum, min, …): a single value can be personal data (a BSN is a number); record only aggregates", p.Name),
				})
			}
		}
	}
	return out
}
