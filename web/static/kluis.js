// kluis portal: the WebAuthn ceremonies, the only thing that needs a
// script. A button with data-webauthn="get" or "create" asks data-begin
// for options, runs navigator.credentials, and posts the result to
// data-finish (form-encoded: csrf, credential); the answer says where to
// go next. Everything else in the portal works without JavaScript.
"use strict";

function b64urlToBuf(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bufToB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeOptions(pk) {
  pk.challenge = b64urlToBuf(pk.challenge);
  if (pk.user && pk.user.id) pk.user.id = b64urlToBuf(pk.user.id);
  for (const list of [pk.allowCredentials, pk.excludeCredentials]) {
    if (list) for (const c of list) c.id = b64urlToBuf(c.id);
  }
  return pk;
}

function encodeCredential(cred) {
  const r = cred.response;
  const out = {id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type, response: {clientDataJSON: bufToB64url(r.clientDataJSON)}};
  if (r.attestationObject) {
    out.response.attestationObject = bufToB64url(r.attestationObject);
    if (r.getTransports) out.response.transports = r.getTransports();
  }
  if (r.authenticatorData) out.response.authenticatorData = bufToB64url(r.authenticatorData);
  if (r.signature) out.response.signature = bufToB64url(r.signature);
  if (r.userHandle) out.response.userHandle = bufToB64url(r.userHandle);
  out.clientExtensionResults = cred.getClientExtensionResults ? cred.getClientExtensionResults() : {};
  return out;
}

async function post(url, fields) {
  const body = new URLSearchParams(fields);
  const resp = await fetch(url, {method: "POST", body: body, credentials: "same-origin", headers: {"Accept": "application/json"}});
  let data = {};
  try { data = await resp.json(); } catch (e) { data = {error: "HTTP " + resp.status}; }
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}

async function ceremony(btn) {
  const errEl = document.getElementById("webauthn-error");
  if (errEl) { errEl.hidden = true; errEl.textContent = ""; }
  btn.disabled = true;
  try {
    const csrf = btn.dataset.csrf || "";
    const opts = await post(btn.dataset.begin, {csrf: csrf});
    const pk = decodeOptions(opts.publicKey);
    const cred = btn.dataset.webauthn === "create"
      ? await navigator.credentials.create({publicKey: pk})
      : await navigator.credentials.get({publicKey: pk});
    const res = await post(btn.dataset.finish, {csrf: csrf, credential: JSON.stringify(encodeCredential(cred))});
    window.location.assign(res.next || "/");
  } catch (e) {
    if (errEl) { errEl.textContent = String(e.message || e); errEl.hidden = false; }
    btn.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", function () {
  for (const btn of document.querySelectorAll("button[data-webauthn]")) {
    btn.addEventListener("click", function () { ceremony(btn); });
  }
});
