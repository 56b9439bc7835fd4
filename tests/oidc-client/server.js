// Starts the real authflow binary on a free loopback port with SQLite in a temp dir, and
// plays the custom UI of the OAuth tie-in through the Authentication Flow API.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.AUTHFLOW_BIN || join(ROOT, "target/debug/authflow");

/** The app of the tests: a custom UI and a callback on a loopback origin it controls. */
export const APP = "http://127.0.0.1:9";
export const CUSTOM_UI = `${APP}/custom-ui`;
export const CALLBACK = `${APP}/callback`;
export const LOGGED_OUT = `${APP}/logged-out`;
export const SECRET = "backend-secret-0123456789";

function clientsYaml() {
  return `oauth:
  clients:
  - client_id: spa
    x_application_type: spa
    redirect_uris: ["${CALLBACK}"]
    post_logout_redirect_uris: ["${LOGGED_OUT}"]
    x_custom_ui_uri: "${CUSTOM_UI}"
    access_token_lifetime_seconds: 300
  - client_id: backend
    x_application_type: confidential
    client_secret: "\${BACKEND_SECRET}"
    redirect_uris: ["${CALLBACK}"]
    x_custom_ui_uri: "${CUSTOM_UI}"
  - client_id: builtin
    x_application_type: spa
    redirect_uris: ["${CALLBACK}"]
`;
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

async function waitHealthy(base, child, logs) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`authflow exited early:\n${logs.join("")}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`authflow did not become healthy:\n${logs.join("")}`);
}

const PASSWORD_ONLY = "verification: {claims: {email: {required: false}}}\n";

/**
 * Start authflow; `env` adds variables (e.g. the authorization code TTL override) and
 * `verification` replaces the password-only signup section.
 */
export async function startServer(env = {}, verification = PASSWORD_ONLY) {
  const dir = mkdtempSync(join(tmpdir(), "authflow-oidc-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = join(dir, "authflow.yaml");
  writeFileSync(
    config,
    `server:\n  listen: 127.0.0.1:${port}\ndatabase:\n  url: sqlite://${dir}/authflow.db\n` +
      verification +
      clientsYaml(),
  );
  const logs = [];
  const child = spawn(BIN, ["serve", "--config", config], {
    env: { ...process.env, BACKEND_SECRET: SECRET, RUST_LOG: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => logs.push(d.toString()));
  child.stderr.on("data", (d) => logs.push(d.toString()));
  await waitHealthy(base, child, logs);
  return {
    base,
    logs,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A tiny cookie jar for one "browser". */
export class Browser {
  constructor() {
    this.cookies = new Map();
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  remember(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(";");
      const [name, value] = pair.split("=");
      const expired = attrs.some((a) => a.trim().toLowerCase() === "max-age=0");
      if (expired || value === "") this.cookies.delete(name.trim());
      else this.cookies.set(name.trim(), value.trim());
    }
  }

  /** GET without following redirects. */
  async get(url) {
    const response = await fetch(url, { redirect: "manual", headers: { cookie: this.header() } });
    this.remember(response);
    return response;
  }

  async postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", cookie: this.header() },
      body: JSON.stringify(body),
    });
    this.remember(response);
    return { status: response.status, body: await response.json() };
  }
}

/** Answer each action of a password signup or login until the flow finishes. */
function nextInput(action, { email, password }) {
  switch (action.type) {
    case "identify":
      return { identification: "email", login_id: email };
    case "authenticate":
      return { authentication: "primary_password", password };
    case "create_authenticator":
      return { authentication: "primary_password", new_password: password };
    default:
      throw new Error(`unexpected action ${JSON.stringify(action)}`);
  }
}

/** Run a flow of `type` as the custom UI does, passing its query as `url_query`. */
export async function runFlow(browser, base, type, urlQuery, user) {
  let state = await browser.postJson(`${base}/api/v1/authentication_flows`, {
    type,
    name: "default",
    url_query: urlQuery,
  });
  for (let i = 0; i < 10; i++) {
    if (state.status !== 200) throw new Error(`flow failed: ${JSON.stringify(state.body)}`);
    const { action, state_token } = state.body.result;
    if (action.type === "finished") return action.data;
    state = await browser.postJson(`${base}/api/v1/authentication_flows/states/input`, {
      state_token,
      input: nextInput(action, user),
    });
  }
  throw new Error("flow did not finish");
}

/**
 * Open the authorization URL in `browser`, play the custom UI (signup or login), follow
 * `finish_redirect_uri`, and return the callback URL the app receives.
 */
export async function signInThroughCustomUi(browser, base, authorizationUrl, type, user) {
  const authorize = await browser.get(authorizationUrl);
  if (authorize.status !== 302) throw new Error(`authorize answered ${authorize.status}`);
  const ui = new URL(authorize.headers.get("location"));
  if (`${ui.origin}${ui.pathname}` !== CUSTOM_UI) throw new Error(`not sent to the custom UI: ${ui}`);
  const finished = await runFlow(browser, base, type, ui.search.slice(1), user);
  const consent = await browser.get(finished.finish_redirect_uri);
  if (consent.status !== 302) throw new Error(`consent answered ${consent.status}`);
  return { customUi: ui, callback: new URL(consent.headers.get("location")) };
}
