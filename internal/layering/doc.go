// Package layering holds no code: its test enforces the arrows between the
// packages of kluis (DESIGN.md, STYLE.md "Layering that a test enforces")
// over the import graph `go list` reports for the production build (test
// files excluded):
//
//   - no production package imports a test harness — internal/... (the
//     server harnesses and their core, internal/testenv, this package), the
//     Location contract suite (repo/locationtest) or the fault injector
//     (repo/faulty); internal/ holds test code only;
//   - chunk imports no repo package;
//   - evidence sees no tenant key: it imports none of the packages that
//     hold tenant keys or database credentials (source, backup, restore,
//     appliance, daemon, config), and of repo it uses no key or repository
//     handle (TenantKey, MasterKey, Repo, Open, …), only locations and
//     public keys;
//   - nothing imports cmd.
package layering
