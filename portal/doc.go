// Package portal is the daemon's side of the practice and auditor portal
// (docs/practice.md, docs/security.md "The portal"): the user store, the
// login (a password, or an identity at the vendor's OpenID Connect
// provider that the daemon verifies itself, and always a second factor),
// sessions, roles and tenant scope, four-eyes requests whose approvals
// are WebAuthn assertions the daemon verifies itself, and the Unix-socket
// API that `kluis web` (the web package) calls.
//
// Every authentication and authorization decision is made here. The web
// process holds no key, no DSN and no user secret: it forwards what the
// browser sent together with the session token of the browser's cookie,
// so a compromised web process can act only within the sessions it sees
// and can approve nothing — an approval is a signature by the approver's
// registered authenticator over the request's digest.
//
// Four-eyes request kinds (requests.go): a dossier release and an
// erasure override (asked by a practice user, approved by an approver
// or admin), a retention change (asked by an admin, approved by an
// approver or another admin) and a user reset (admin and another admin).
// What acts on an approval — the release, the override, the retention
// change — is done by the Backend (the daemon), which records both
// identities.
package portal
