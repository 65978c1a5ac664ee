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
package portal
