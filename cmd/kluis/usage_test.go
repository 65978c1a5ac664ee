package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestUsageListsEveryFlag (issue 18 point 10): the usage line of every
// command names every flag of its FlagSet (and no flag it does not have);
// the global flags are listed apart, and only for commands where they mean
// something: `version` has none, and the commands that never read the
// config (demo, witness, evidence verify) have no --config.
func TestUsageListsEveryFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	noConfig := map[string]bool{"version": true, "demo": true, "witness init": true, "witness serve": true, "evidence verify": true}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	usedFlag := regexp.MustCompile(`--([a-z0-9-]+)`)
	var walk func(prefix []string, cs []*command)
	n := 0
	walk = func(prefix []string, cs []*command) {
		for _, c := range cs {
			path := append(append([]string{}, prefix...), c.name)
			if c.sub != nil {
				walk(path, c.sub)
				continue
			}
			n++
			name := strings.Join(path, " ")
			r := e.run(append(path, "--help")...)
			usage, rest, _ := strings.Cut(r.stdout, "\n")
			if !strings.HasPrefix(usage, "Usage: kluis "+name) {
				t.Errorf("%s --help: no usage line on stdout: %v", name, r)
				continue
			}
			own, global, _ := strings.Cut(rest, "\nGlobal flags:\n")
			inUsage := map[string]bool{}
			for _, m := range usedFlag.FindAllStringSubmatch(usage, -1) {
				inUsage[m[1]] = true
			}
			defined := map[string]bool{}
			for _, m := range flagLine.FindAllStringSubmatch(own, -1) {
				defined[m[1]] = true
				if globalFlagNames[m[1]] {
					t.Errorf("%s: global flag --%s listed among the command's own", name, m[1])
				}
				if !inUsage[m[1]] {
					t.Errorf("%s: the usage line %q does not list --%s", name, usage, m[1])
				}
			}
			for f := range inUsage {
				if !defined[f] && !globalFlagNames[f] {
					t.Errorf("%s: the usage line %q names --%s, which it does not have", name, usage, f)
				}
			}
			globals := map[string]bool{}
			for _, m := range flagLine.FindAllStringSubmatch(global, -1) {
				globals[m[1]] = true
			}
			switch {
			case name == "version":
				if len(globals) > 0 {
					t.Errorf("version lists global flags: %v", globals)
				}
			case noConfig[name]:
				if globals["config"] || !globals["log-level"] {
					t.Errorf("%s: global flags %v, want the log flags without --config", name, globals)
				}
			default:
				if !globals["config"] || !globals["log-level"] || !globals["log-format"] {
					t.Errorf("%s: global flags %v, want --config, --log-level, --log-format", name, globals)
				}
			}
		}
	}
	walk(nil, commands)
	if n < 30 {
		t.Errorf("checked %d commands", n)
	}
}
