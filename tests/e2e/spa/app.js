// The single-page app of tests/e2e: the authorization code flow with PKCE (RFC 7636) run by
// the browser, as draft-ietf-oauth-browser-based-apps describes for a public client. The
// token request and the beer-locker calls are cross-origin `fetch`es, so they work only
// when Hallpass and the beer locker allow this page's origin (CORS).
"use strict";

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function config() {
  return (await fetch("/config.json")).json();
}

function show(result) {
  document.getElementById("out").textContent = JSON.stringify(result, null, 2);
  document.body.dataset.state = result.state;
}

async function signIn() {
  const cfg = await config();
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
    // RFC 8707: the token is for the beer locker (its `aud`), the API this app calls.
    resource: cfg.locker,
  });
  location.assign(`${cfg.hallpass}/oauth2/authorize?${query}`);
}

/** Redeems a code at the token endpoint; a CORS refusal rejects (TypeError). */
async function redeem(code, verifier) {
  const cfg = await config();
  const res = await fetch(`${cfg.hallpass}/oauth2/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: cfg.redirect_uri,
      client_id: cfg.client_id,
      code_verifier: verifier,
    }),
  });
  return { status: res.status, body: await res.json() };
}

/** Adds a beer and lists them at the beer locker with the access token. */
async function beers(token) {
  const cfg = await config();
  const auth = { Authorization: `Bearer ${token}` };
  const made = await fetch(`${cfg.locker}/api/beers`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "Rochefort 10", type: "Quadrupel", quantity: 2 }),
  });
  const list = await fetch(`${cfg.locker}/api/beers`, { headers: auth });
  return { created: made.status, list: list.status, beers: await list.json() };
}

async function main() {
  document.getElementById("origin").textContent = location.origin;
  document.getElementById("sign-in").addEventListener("click", () => signIn().catch((e) => show({ state: "error", message: String(e) })));
  const params = new URLSearchParams(location.search);
  if (params.has("error")) return show({ state: "denied", error: params.get("error") });
  if (!params.has("code")) return show({ state: "ready" });
  const saved = JSON.parse(sessionStorage.getItem("pkce") || "{}");
  sessionStorage.removeItem("pkce");
  if (params.get("state") !== saved.state) return show({ state: "error", message: "state mismatch" });
  history.replaceState(null, "", location.pathname);
  try {
    const token = await redeem(params.get("code"), saved.verifier);
    if (token.status !== 200) return show({ state: "error", token });
    const result = await beers(token.body.access_token);
    show({ state: "done", token_type: token.body.token_type, scope: token.body.scope, ...result });
  } catch (e) {
    show({ state: "error", message: String(e) });
  }
}

window.spa = { redeem, beers };
main();
