// authflow's Hanko-style Flow API driven by the published Hanko frontend SDK
// (@teamhanko/hanko-frontend-sdk) in a jsdom "browser" whose page is on another origin than
// the API: the SDK's XMLHttpRequests go through jsdom's CORS checks, and it reads the
// session headers only if they are exposed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { JSDOM } from "jsdom";

import { startServer } from "./server.js";

const PASSWORD = "correct horse 7";
const PAGE = "http://localhost:5173/";

let server;
let Hanko;
let dom;

/** The globals the SDK expects of a browser, from jsdom (set before importing it). */
function installBrowser() {
  dom = new JSDOM("<!doctype html><html><body></body></html>", {
    url: PAGE,
    pretendToBeVisual: true,
  });
  const w = dom.window;
  for (const name of [
    "window",
    "document",
    "navigator",
    "localStorage",
    "sessionStorage",
    "XMLHttpRequest",
    "CustomEvent",
    "Event",
    "location",
    "history",
  ]) {
    Object.defineProperty(globalThis, name, { value: name === "window" ? w : w[name], configurable: true, writable: true });
  }
}

function newUser() {
  return `user-${randomUUID()}@example.com`;
}

function hanko() {
  return new Hanko(server.api, { sessionCheckInterval: 600_000 });
}

/** A flow state of the SDK, skipping the automatic `success` step so tests see it. */
async function begin(sdk, flow) {
  const state = await sdk.createState(flow, { loadFromCache: false, excludeAutoSteps: ["success"] });
  assert.notEqual(state.name, "error", JSON.stringify(state.error));
  return state;
}

async function register(sdk, email) {
  let state = await begin(sdk, "registration");
  assert.equal(state.name, "registration_init");
  state = await state.actions.register_login_identifier.run({ email });
  assert.equal(state.name, "passcode_confirmation");
  state = await state.actions.verify_passcode.run({ code: await server.lastCode(email) });
  assert.equal(state.name, "password_creation");
  state = await state.actions.register_password.run({ new_password: PASSWORD });
  assert.equal(state.name, "success", JSON.stringify(state.error));
  return state;
}

async function finish(state) {
  assert.equal(state.name, "success", JSON.stringify(state.error));
  return state.autoStep();
}

before(async () => {
  server = await startServer();
  installBrowser();
  ({ Hanko } = await import("@teamhanko/hanko-frontend-sdk"));
});

after(async () => {
  await server?.stop();
  dom?.window.close();
  // The SDK's session relay keeps a BroadcastChannel and timers open, as in a browser tab.
  setImmediate(() => process.exit(process.exitCode ?? 0));
});

describe("Hanko frontend SDK against authflow", () => {
  test("registration with email passcode and password, a validation error on the right input", async () => {
    const sdk = hanko();
    const email = newUser();
    let state = await begin(sdk, "registration");
    assert.equal(state.name, "registration_init");
    assert.equal(state.actions.register_login_identifier.enabled, true);
    assert.equal(state.actions.register_login_identifier.inputs.email.type, "email");

    state = await state.actions.register_login_identifier.run({ email: "not-an-email" });
    assert.equal(state.name, "registration_init");
    assert.equal(state.status, 400);
    assert.equal(state.error.code, "form_data_invalid_error");
    assert.equal(state.actions.register_login_identifier.inputs.email.error.code, "value_invalid_error");

    state = await state.actions.register_login_identifier.run({ email });
    assert.equal(state.name, "passcode_confirmation");
    assert.equal(state.payload.code_length, 6);
    assert.equal(state.payload.purpose, "verification");
    const code = await server.lastCode(email);

    state = await state.actions.verify_passcode.run({ code: code === "000000" ? "111111" : "000000" });
    assert.equal(state.name, "passcode_confirmation");
    assert.equal(state.actions.verify_passcode.inputs.code.error.code, "passcode_invalid");
    state = await state.actions.verify_passcode.run({ code });
    assert.equal(state.name, "password_creation");

    state = await state.actions.register_password.run({ new_password: "short" });
    assert.equal(state.name, "password_creation");
    assert.equal(state.actions.register_password.inputs.new_password.error.code, "value_too_short_error");
    state = await state.actions.register_password.run({ new_password: PASSWORD });

    let created;
    sdk.onSessionCreated((detail) => (created = detail), true);
    await finish(state);
    assert.ok(sdk.getSessionToken(), "the SDK stored the X-Auth-Token");
    assert.equal(created?.claims?.email?.address, email);
    await sdk.logout();
  });

  test("login with password, session validation, /me and logout", async () => {
    const sdk = hanko();
    const email = newUser();
    await finish(await register(sdk, email));
    await sdk.logout();
    assert.equal(sdk.getSessionToken(), undefined);

    let state = await begin(sdk, "login");
    assert.equal(state.name, "login_init");
    state = await state.actions.continue_with_login_identifier.run({ email });
    assert.equal(state.name, "login_method_chooser");
    state = await state.actions.continue_to_password_login.run();
    assert.equal(state.name, "login_password");
    state = await state.actions.password_login.run({ password: "wrong password" });
    assert.equal(state.name, "login_password");
    assert.equal(state.actions.password_login.inputs.password.error.code, "value_invalid_error");
    state = await state.actions.password_login.run({ password: PASSWORD });
    assert.equal(state.payload.last_login.login_method, "password");
    await finish(state);

    const session = await sdk.validateSession();
    assert.equal(session.is_valid, true);
    assert.equal(session.claims.email.address, email);
    assert.deepEqual(session.claims.amr, ["pwd"]);
    const me = await sdk.getCurrentUser();
    assert.equal(me.emails[0].address, email);
    const user = await sdk.getUser();
    assert.equal(user.id, me.id);
    assert.equal(user.emails[0].is_verified, true);

    await sdk.logout();
    assert.equal(sdk.getSessionToken(), undefined);
    assert.equal((await sdk.validateSession()).is_valid, false);
    await assert.rejects(sdk.getCurrentUser(), (e) => e.constructor.name === "UnauthorizedError" || /unauthorized/i.test(e.code ?? e.message));
  });

  test("login with passcode: a wrong passcode, then the right one", async () => {
    const sdk = hanko();
    const email = newUser();
    await finish(await register(sdk, email));
    await sdk.logout();

    let state = await begin(sdk, "login");
    state = await state.actions.continue_with_login_identifier.run({ email });
    assert.equal(state.name, "login_method_chooser");
    state = await state.actions.continue_to_passcode_confirmation.run();
    assert.equal(state.name, "passcode_confirmation", JSON.stringify(state.error));
    assert.equal(state.payload.purpose, "login");
    const code = await server.lastCode(email);
    state = await state.actions.verify_passcode.run({ code: code === "000000" ? "111111" : "000000" });
    assert.equal(state.name, "passcode_confirmation");
    assert.equal(state.actions.verify_passcode.inputs.code.error.code, "passcode_invalid");
    state = await state.actions.verify_passcode.run({ code });
    assert.equal(state.payload.last_login.login_method, "passcode");
    await finish(state);
    const session = await sdk.validateSession();
    assert.equal(session.is_valid, true);
    assert.deepEqual(session.claims.amr, ["otp"]);
    await sdk.logout();
  });
});

describe("Hanko frontend SDK: password recovery", () => {
  test("forgot password from login_password: a mailed passcode, a new password, logged in", async () => {
    const sdk = hanko();
    const email = newUser();
    await finish(await register(sdk, email));
    await sdk.logout();

    let state = await begin(sdk, "login");
    state = await state.actions.continue_with_login_identifier.run({ email });
    state = await state.actions.continue_to_password_login.run();
    assert.equal(state.name, "login_password");
    state = await state.actions.continue_to_passcode_confirmation_recovery.run();
    assert.equal(state.name, "passcode_confirmation", JSON.stringify(state.error));
    assert.equal(state.payload.purpose, "recovery");
    state = await state.actions.verify_passcode.run({ code: await server.lastCode(email) });
    assert.equal(state.name, "login_password_recovery", JSON.stringify(state.error));
    const newPassword = "recovered horse 8";
    state = await state.actions.password_recovery.run({ new_password: newPassword });
    await finish(state);
    const session = await sdk.validateSession();
    assert.equal(session.is_valid, true);
    assert.deepEqual([...session.claims.amr].sort(), ["otp", "pwd"]);
    await sdk.logout();

    // The new password logs in.
    state = await begin(sdk, "login");
    state = await state.actions.continue_with_login_identifier.run({ email });
    state = await state.actions.continue_to_password_login.run();
    state = await state.actions.password_login.run({ password: newPassword });
    await finish(state);
    assert.equal((await sdk.validateSession()).is_valid, true);
    await sdk.logout();
  });
});
