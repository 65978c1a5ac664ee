// Package config parses and validates kluis.yaml.
//
// Decoding is strict: an unknown or misspelled key is an error that names
// the line and the field path (e.g. "locations[1].pth"), because a silently
// ignored setting in a backup product is a backup that silently does not
// happen. Validate checks everything that can be checked without side
// effects: no connection is opened and nothing is created. Secrets never
// appear in the YAML itself; it only names files holding them, and those
// files must not be readable by group or others.
package config
