// Package web is `kluis web`: the practice and auditor portal's HTTP
// side (docs/practice.md). It renders server-side HTML (html/template,
// Dutch with English available, a strict Content-Security-Policy, one
// static script used only for the WebAuthn ceremonies) and forwards every
// action to the daemon over its Unix socket (portal.Client), with the
// session token of the browser's cookie. It holds no key, no DSN and no
// user secret, and decides nothing about who may do what: the daemon
// does (package portal). What it adds is web hardening: secure, HttpOnly,
// SameSite=Strict cookies, an Origin check on every POST, no-store on
// every page, and a new cookie at every login. For a sign-in at an
// identity provider it only sends the browser there and relays the
// answer: it holds no client secret and verifies no token.
package web
