//go:build !race

package dossier

const raceEnabled = false
