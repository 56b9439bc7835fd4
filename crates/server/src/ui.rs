//! A minimal built-in UI (issue 7): `GET /login` serves one page that signs in or signs
//! up with email and password by driving the Authentication Flow API from an inline
//! script, then follows `finish_redirect_uri` back into the OAuth authorization. It
//! handles identify, authenticate / create_authenticator with a password, and an email
//! verification code (dev outbox); anything else is shown as unsupported.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub const LOGIN_PATH: &str = "/login";

pub fn routes() -> Router<AppState> {
    Router::new().route(LOGIN_PATH, get(login_page))
}

async fn login_page() -> Response {
    let mut response = Html(LOGIN_HTML).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const LOGIN_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in</title>
<style>
body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.75rem 0 .25rem}
input{width:100%;padding:.5rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem}
#error{color:#b00020;min-height:1.5rem}
.hidden{display:none}
</style>
</head>
<body>
<h1 id="title">Sign in</h1>
<p id="error" role="alert"></p>
<form id="credentials">
  <label for="email">Email</label>
  <input id="email" name="email" type="email" autocomplete="username" required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit" id="login">Sign in</button>
  <button type="button" id="signup">Create account</button>
</form>
<form id="verify" class="hidden">
  <p id="verify-text">Enter the code we sent you.</p>
  <label for="code">Code</label>
  <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>
  <button type="submit">Continue</button>
</form>
<p id="done" class="hidden">You are signed in.</p>
<script>
"use strict";
const API = "/api/v1/authentication_flows";
const query = window.location.search.replace(/^\?/, "");
const $ = (id) => document.getElementById(id);
let flow = null;
let password = "";

const hint = new URLSearchParams(query).get("login_hint");
if (hint) $("email").value = hint;

function showError(message) { $("error").textContent = message || ""; }

async function call(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (json.error) throw new Error(json.error.message || json.error.reason);
  if (!response.ok || !json.result) throw new Error("Unexpected response (" + response.status + ")");
  return json.result;
}

function hasOption(result, name) {
  const options = (result.action.data && result.action.data.options) || [];
  return options.some((o) => o.authentication === name || o.identification === name);
}

function nextInput(result, email) {
  const action = result.action;
  const data = action.data || {};
  switch (action.type) {
    case "identify":
      return {identification: "email", login_id: email};
    case "authenticate":
      if (!hasOption(result, "primary_password")) break;
      return {authentication: "primary_password", password};
    case "create_authenticator":
      if (!hasOption(result, "primary_password")) break;
      return {authentication: "primary_password", new_password: password};
    case "verify":
      if (data.type === "select_oob_otp_channels_data") return {channel: data.channels[0]};
      if (data.type === "verify_oob_otp_data" && data.otp_form === "code") {
        $("verify-text").textContent = "Enter the code sent to " + (data.masked_claim_value || "you") + ".";
        return null;
      }
      break;
  }
  throw new Error("This step (" + action.type + ") is not supported by the built-in page.");
}

async function advance(result, email) {
  for (let i = 0; i < 10; i++) {
    flow = result;
    if (result.action.type === "finished") return finish(result);
    const input = nextInput(result, email);
    if (input === null) {
      $("credentials").classList.add("hidden");
      $("verify").classList.remove("hidden");
      $("code").focus();
      return;
    }
    result = await call(API + "/states/input", {state_token: result.state_token, input});
  }
  throw new Error("Too many steps.");
}

function finish(result) {
  const uri = result.action.data && result.action.data.finish_redirect_uri;
  if (uri) { window.location.assign(uri); return; }
  $("credentials").classList.add("hidden");
  $("verify").classList.add("hidden");
  $("done").classList.remove("hidden");
}

async function start(type) {
  showError("");
  const email = $("email").value.trim();
  password = $("password").value;
  if (!email || !password) { showError("Enter your email and password."); return; }
  try {
    const created = await call(API, {type, name: "default", url_query: query});
    await advance(created, email);
  } catch (e) { showError(e.message); }
}

$("credentials").addEventListener("submit", (e) => { e.preventDefault(); start("login"); });
$("signup").addEventListener("click", () => { $("title").textContent = "Create account"; start("signup"); });
$("verify").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("");
  try {
    const result = await call(API + "/states/input", {state_token: flow.state_token, input: {code: $("code").value.trim()}});
    await advance(result, $("email").value.trim());
  } catch (err) { showError(err.message); }
});
</script>
</body>
</html>
"#;
