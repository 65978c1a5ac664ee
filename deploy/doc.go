// Package deploy holds the deployment files — the hardened systemd units
// (kluis.service, and kluis-web.service for the portal) — and the tests
// that validate them and the Dockerfile at the repository root, since no
// Docker engine runs where the tests run.
package deploy
