//go:build race

package dossier

const raceEnabled = true
