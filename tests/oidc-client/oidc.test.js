// authflow's OpenID Connect server driven by a certified relying-party library
// (openid-client), the app playing the custom UI of the OAuth tie-in.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import * as client from "openid-client";
import * as oauth from "oauth4webapi";

import {
  Browser,
  CALLBACK,
  LOGGED_OUT,
  SECRET,
  runFlow,
  signInThroughCustomUi,
  startServer,
} from "./server.js";

const PASSWORD = "correct horse battery 7";
const insecure = { execute: [client.allowInsecureRequests] };

let server;

function newUser() {
  return { email: `user-${randomUUID()}@example.com`, password: PASSWORD };
}

async function publicClient(base = server.base) {
  return client.discovery(new URL(base), "spa", undefined, client.None(), insecure);
}

async function backendClient(auth = client.ClientSecretBasic(SECRET)) {
  return client.discovery(new URL(server.base), "backend", undefined, auth, insecure);
}

/** A PKCE authorization request: its URL and the checks the callback must pass. */
async function authorization(config, extra = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: "openid email profile offline_access",
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: "S256",
    state: expectedState,
    nonce: expectedNonce,
    ...extra,
  });
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true } };
}

/** Sign a new user up through the custom UI and exchange the code. */
async function signUpAndExchange(config, browser = new Browser(), user = newUser()) {
  const { url, checks } = await authorization(config);
  const { callback } = await signInThroughCustomUi(browser, server.base, url, "signup", user);
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  return { tokens, browser, user, checks, callback };
}

async function rejects(promise, error) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.error, error, `expected ${error}, got ${e.error ?? e.message}`);
    return true;
  });
}

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

describe("discovery", () => {
  test("metadata names every endpoint and requires S256", async () => {
    const config = await publicClient();
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, server.base);
    for (const key of [
      "authorization_endpoint",
      "token_endpoint",
      "userinfo_endpoint",
      "jwks_uri",
      "revocation_endpoint",
      "introspection_endpoint",
      "end_session_endpoint",
    ]) {
      assert.ok(meta[key]?.startsWith(server.base), key);
    }
    assert.deepEqual(meta.code_challenge_methods_supported, ["S256"]);
    assert.ok(meta.scopes_supported.includes("offline_access"));
    const jwks = await (await fetch(meta.jwks_uri)).json();
    const algs = jwks.keys.map((k) => k.alg);
    assert.ok(algs.includes("RS256") && algs.includes("ES256"), "both algorithms are published");
  });
});

describe("the whole journey", () => {
  test("signup through the custom UI, code with PKCE, userinfo, refresh, SSO, logout", async () => {
    const config = await publicClient();
    // Also check every ID token's signature against the published JWKS.
    client.enableNonRepudiationChecks(config);
    const browser = new Browser();
    const user = newUser();
    const { url, checks } = await authorization(config, { login_hint: user.email, ui_locales: "en" });
    const { customUi, callback } = await signInThroughCustomUi(browser, server.base, url, "signup", user);

    const q = customUi.searchParams;
    assert.ok(q.get("x_ref"), "x_ref is passed to the custom UI");
    assert.equal(q.get("client_id"), "spa");
    assert.equal(q.get("redirect_uri"), CALLBACK);
    assert.equal(q.get("state"), checks.expectedState);
    assert.equal(q.get("login_hint"), user.email);
    assert.equal(q.get("ui_locales"), "en");
    assert.equal(callback.searchParams.get("state"), checks.expectedState);
    assert.ok(browser.cookies.has("session"), "the finished flow set the IdP session cookie");

    const tokens = await client.authorizationCodeGrant(config, callback, checks);
    const claims = tokens.claims();
    assert.equal(claims.iss, server.base);
    assert.equal(claims.aud, "spa");
    assert.equal(claims.nonce, checks.expectedNonce);
    assert.equal(claims.email, user.email);
    assert.equal(claims.email_verified, false);
    assert.ok(claims.auth_time && claims.sid, JSON.stringify(claims));
    assert.equal(tokens.token_type.toLowerCase(), "bearer");
    assert.ok(tokens.refresh_token, "offline_access gives a refresh token");

    // The access token is an RFC 9068 JWT (typ at+jwt) a resource server can validate.
    const as = config.serverMetadata();
    const request = new Request(`${server.base}/api`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    const access = await oauth.validateJwtAccessToken(as, request, server.base, {
      [oauth.allowInsecureRequests]: true,
    });
    assert.equal(access.sub, claims.sub);
    assert.equal(access.client_id, "spa");
    assert.ok(access.exp - access.iat <= 300, "short-lived");

    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.email, user.email);

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "refresh tokens rotate");
    assert.equal(refreshed.claims().sub, claims.sub);
    await client.fetchUserInfo(config, refreshed.access_token, claims.sub);

    // A live IdP session answers prompt=none at once.
    const silent = await authorization(config, { prompt: "none" });
    const answer = await browser.get(silent.url);
    assert.equal(answer.status, 302);
    const silentCallback = new URL(answer.headers.get("location"));
    assert.equal(`${silentCallback.origin}${silentCallback.pathname}`, CALLBACK);
    const silentTokens = await client.authorizationCodeGrant(config, silentCallback, silent.checks);
    assert.equal(silentTokens.claims().sub, claims.sub);
    assert.equal(silentTokens.claims().sid, claims.sid);

    // RP-initiated logout ends the session and returns to the registered URI.
    const logoutState = client.randomState();
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: LOGGED_OUT,
      state: logoutState,
    });
    const loggedOut = await browser.get(endSession);
    assert.equal(loggedOut.status, 302);
    const back = new URL(loggedOut.headers.get("location"));
    assert.equal(`${back.origin}${back.pathname}`, LOGGED_OUT);
    assert.equal(back.searchParams.get("state"), logoutState);
    assert.ok(!browser.cookies.has("session"), "the session cookie is cleared");

    const after = await authorization(config, { prompt: "none" });
    const noSession = await browser.get(after.url);
    await rejects(
      client.authorizationCodeGrant(config, new URL(noSession.headers.get("location")), after.checks),
      "login_required",
    );
  });

  test("an existing user logs in through the custom UI", async () => {
    const config = await publicClient();
    const { user, tokens } = await signUpAndExchange(config);
    const { url, checks } = await authorization(config);
    const { callback } = await signInThroughCustomUi(new Browser(), server.base, url, "login", user);
    const again = await client.authorizationCodeGrant(config, callback, checks);
    assert.equal(again.claims().sub, tokens.claims().sub);
    assert.deepEqual(again.claims().amr, ["pwd"]);
  });

  test("a client without a custom UI is sent to the built-in UI", async () => {
    const config = await client.discovery(new URL(server.base), "builtin", undefined, client.None(), insecure);
    const { url, checks } = await authorization(config);
    const browser = new Browser();
    const authorize = await browser.get(url);
    assert.equal(authorize.status, 302);
    const ui = new URL(authorize.headers.get("location"));
    assert.equal(`${ui.origin}${ui.pathname}`, `${server.base}/login`);
    const page = await browser.get(ui);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /api\/v1\/authentication_flows/);
    // What the page's script does: run the flow with its query, follow finish_redirect_uri.
    const finished = await runFlow(browser, server.base, "signup", ui.search.slice(1), newUser());
    const consent = await browser.get(finished.finish_redirect_uri);
    const tokens = await client.authorizationCodeGrant(config, new URL(consent.headers.get("location")), checks);
    assert.ok(tokens.claims().sub);
  });
});

describe("authorization code", () => {
  test("a reused code is refused and revokes what it issued", async () => {
    const config = await publicClient();
    const { url, checks } = await authorization(config);
    const { callback } = await signInThroughCustomUi(new Browser(), server.base, url, "signup", newUser());
    const tokens = await client.authorizationCodeGrant(config, callback, checks);
    await rejects(client.authorizationCodeGrant(config, callback, checks), "invalid_grant");
    await assert.rejects(client.fetchUserInfo(config, tokens.access_token, client.skipSubjectCheck));
    await rejects(client.refreshTokenGrant(config, tokens.refresh_token), "invalid_grant");
  });

  test("a wrong code_verifier is refused", async () => {
    const config = await publicClient();
    const { url, checks } = await authorization(config);
    const { callback } = await signInThroughCustomUi(new Browser(), server.base, url, "signup", newUser());
    const wrong = { ...checks, pkceCodeVerifier: client.randomPKCECodeVerifier() };
    await rejects(client.authorizationCodeGrant(config, callback, wrong), "invalid_grant");
  });

  test("a different redirect_uri at the token endpoint is refused", async () => {
    const config = await publicClient();
    const { url, checks } = await authorization(config);
    const { callback } = await signInThroughCustomUi(new Browser(), server.base, url, "signup", newUser());
    // openid-client sends the callback URL without its query as redirect_uri.
    const elsewhere = new URL(`http://127.0.0.1:9/elsewhere${callback.search}`);
    await rejects(client.authorizationCodeGrant(config, elsewhere, checks), "invalid_grant");
  });

  test("an expired code is refused", async () => {
    const short = await startServer({ AUTHFLOW_TEST_AUTHORIZATION_CODE_TTL_SECONDS: "1" });
    try {
      const config = await publicClient(short.base);
      const { url, checks } = await authorization(config);
      const { callback } = await signInThroughCustomUi(new Browser(), short.base, url, "signup", newUser());
      await new Promise((r) => setTimeout(r, 2500));
      await rejects(client.authorizationCodeGrant(config, callback, checks), "invalid_grant");
    } finally {
      await short.stop();
    }
  });

  test("an unregistered redirect URI or unknown client gets an error page, never a redirect", async () => {
    const config = await publicClient();
    const { url } = await authorization(config, { redirect_uri: "http://127.0.0.1:9/evil" });
    const evil = await new Browser().get(url);
    assert.equal(evil.status, 400);
    assert.equal(evil.headers.get("location"), null);
    assert.match(evil.headers.get("content-type"), /text\/html/);
    const unknown = new URL(url);
    unknown.searchParams.set("client_id", "nobody");
    unknown.searchParams.set("redirect_uri", CALLBACK);
    const page = await new Browser().get(unknown);
    assert.equal(page.status, 400);
    assert.equal(page.headers.get("location"), null);
  });

  test("prompt=none without a session sends login_required to the client", async () => {
    const config = await publicClient();
    const { url, checks } = await authorization(config, { prompt: "none" });
    const answer = await new Browser().get(url);
    assert.equal(answer.status, 302);
    const callback = new URL(answer.headers.get("location"));
    assert.equal(`${callback.origin}${callback.pathname}`, CALLBACK);
    assert.equal(callback.searchParams.get("state"), checks.expectedState);
    await rejects(client.authorizationCodeGrant(config, callback, checks), "login_required");
  });

  test("a public client without PKCE is refused at the client", async () => {
    const config = await publicClient();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: "openid", state });
    const answer = await new Browser().get(url);
    const callback = new URL(answer.headers.get("location"));
    assert.equal(callback.searchParams.get("error"), "invalid_request");
    assert.equal(callback.searchParams.get("state"), state);
  });

  test("a tampered id_token is rejected by the library", async () => {
    const config = await publicClient();
    // Without this, the library trusts an ID token received over TLS from the token
    // endpoint (OIDC Core 3.1.3.7) and does not check its signature.
    client.enableNonRepudiationChecks(config);
    config[client.customFetch] = async (url, options) => {
      const response = await fetch(url, options);
      if (!url.endsWith("/oauth2/token")) return response;
      const body = await response.json();
      const [header, payload, signature] = body.id_token.split(".");
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
      claims.sub = "someone-else";
      body.id_token = [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
      return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
    };
    const { url, checks } = await authorization(config);
    const { callback } = await signInThroughCustomUi(new Browser(), server.base, url, "signup", newUser());
    await assert.rejects(client.authorizationCodeGrant(config, callback, checks), (e) => {
      assert.match(e.cause?.message ?? "", /signature verification failed/);
      return true;
    });
  });
});

describe("refresh tokens", () => {
  test("reusing a rotated refresh token revokes the family", async () => {
    const config = await publicClient();
    const { tokens } = await signUpAndExchange(config);
    const second = await client.refreshTokenGrant(config, tokens.refresh_token);
    await rejects(client.refreshTokenGrant(config, tokens.refresh_token), "invalid_grant");
    await rejects(client.refreshTokenGrant(config, second.refresh_token), "invalid_grant");
    await assert.rejects(client.fetchUserInfo(config, second.access_token, client.skipSubjectCheck));
  });
});

describe("confidential client", () => {
  test("client_secret_basic and _post, introspection, revocation, client_credentials", async () => {
    const basic = await backendClient();
    const { tokens } = await signUpAndExchange(basic);
    const post = await backendClient(client.ClientSecretPost(SECRET));
    const refreshed = await client.refreshTokenGrant(post, tokens.refresh_token);

    const active = await client.tokenIntrospection(basic, refreshed.access_token);
    assert.equal(active.active, true);
    assert.equal(active.client_id, "backend");
    assert.equal(active.sub, tokens.claims().sub);

    await client.tokenRevocation(basic, refreshed.access_token);
    assert.equal((await client.tokenIntrospection(basic, refreshed.access_token)).active, false);
    await client.tokenRevocation(basic, refreshed.refresh_token);
    await rejects(client.refreshTokenGrant(basic, refreshed.refresh_token), "invalid_grant");

    const m2m = await client.clientCredentialsGrant(post);
    assert.ok(m2m.access_token);
    assert.equal(m2m.refresh_token, undefined);

    // A failed client_secret_basic gets 401 invalid_client with a Basic challenge.
    const wrong = await backendClient(client.ClientSecretBasic("not-the-secret"));
    const failure = await client.clientCredentialsGrant(wrong).then(
      () => assert.fail("a wrong secret was accepted"),
      (e) => e,
    );
    assert.equal(failure.status, 401);
    assert.equal(failure.cause[0].scheme, "basic");
    assert.equal((await failure.response.json()).error, "invalid_client");
    const wrongPost = await backendClient(client.ClientSecretPost("not-the-secret"));
    await rejects(client.clientCredentialsGrant(wrongPost), "invalid_client");
  });

  test("a public client may not introspect or use client_credentials", async () => {
    const config = await publicClient();
    await assert.rejects(client.tokenIntrospection(config, "anything"));
    await rejects(client.clientCredentialsGrant(config), "unauthorized_client");
  });
});
