package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Which global flags a command takes: --config only where it reads the
// config, the log flags only where it logs. `kluis version` takes none.
const (
	globalConfig = 1 << iota
	globalLog
)

// globalFlagNames are the flags every command that reads the config
// shares; its usage line does not repeat them (help lists them apart).
var globalFlagNames = map[string]bool{"config": true, "log-level": true, "log-format": true}

// flagSet returns a FlagSet with the chosen global flags. Its help is the
// usage line (usage lists every flag of the command itself), the
// command's flags, then the global flags under their own heading.
func (g *globals) flagSet(name, usage string, globals int) *flag.FlagSet {
	fs := flag.NewFlagSet("kluis "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	if globals&globalConfig != 0 {
		fs.StringVar(&g.configPath, "config", g.configPath, "config `file` (default $KLUIS_CONFIG, else ./kluis.yaml, else /etc/kluis/kluis.yaml)")
	}
	if globals&globalLog != 0 {
		fs.StringVar(&g.logLevel, "log-level", g.logLevel, "log `level`: debug, info, warn, error")
		fs.StringVar(&g.logFormat, "log-format", g.logFormat, "log `format`: text or json")
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: kluis %s\n", completeUsage(fs, joinUsage(name, usage)))
		printFlags(w, fs, func(n string) bool { return !globalFlagNames[n] }, "\nFlags:\n")
		printFlags(w, fs, func(n string) bool { return globalFlagNames[n] }, "\nGlobal flags:\n")
	}
	return fs
}

// completeUsage appends to a hand-written usage line every flag of the
// command it does not name, as [--flag VALUE] (the value's name from the
// flag's help, as PrintDefaults shows it), so the line lists every flag
// even when a flag is added without editing it.
func completeUsage(fs *flag.FlagSet, line string) string {
	named := map[string]bool{}
	for _, m := range usageFlag.FindAllStringSubmatch(line, -1) {
		named[m[1]] = true
	}
	var extra []string
	fs.VisitAll(func(f *flag.Flag) {
		if globalFlagNames[f.Name] || named[f.Name] {
			return
		}
		v, _ := flag.UnquoteUsage(f)
		if v == "" {
			extra = append(extra, "[--"+f.Name+"]")
		} else {
			extra = append(extra, "[--"+f.Name+" "+strings.ToUpper(v)+"]")
		}
	})
	if len(extra) == 0 {
		return line
	}
	return line + " " + strings.Join(extra, " ")
}

var usageFlag = regexp.MustCompile(`--([a-z0-9-]+)`)

func joinUsage(name, usage string) string {
	if usage == "" {
		return name
	}
	return name + " " + usage
}

// printFlags prints the defaults of fs's flags that keep selects, under
// heading (nothing when there are none).
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool, heading string) {
	sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f.Name) {
			sub.Var(f.Value, f.Name, f.Usage)
			sub.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	n := 0
	sub.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, heading)
		sub.SetOutput(w)
		sub.PrintDefaults()
	}
}
