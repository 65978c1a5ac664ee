// Package evidence keeps the appliance's restore-test reports: signed,
// hash-chained records an auditor verifies with nothing but the
// appliance's Ed25519 public key. It writes reports to the state directory
// and, write-once, to every location; lists, exports and verifies them;
// and renders the self-contained HTML summary. It never needs a tenant key.
package evidence
