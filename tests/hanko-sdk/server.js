// Starts the real authflow binary on a free loopback port with SQLite in a temp dir and the
// Hanko dialect enabled, and reads passcodes from its development outbox.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.AUTHFLOW_BIN || join(ROOT, "target/debug/authflow");

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

/** Email login IDs, password and passcode by email; emails verified at registration. */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "authflow-hanko-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = join(dir, "authflow.yaml");
  writeFileSync(
    config,
    `server:\n  listen: 127.0.0.1:${port}\n  public_origin: "${base}"\n` +
      `database:\n  url: sqlite://${dir}/authflow.db\n` +
      "hanko_api:\n  enabled: true\n" +
      "authentication:\n  primary_authenticators: [password, oob_otp_email]\n",
  );
  const logs = [];
  const child = spawn(BIN, ["serve", "--config", config], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => logs.push(d.toString()));
  child.stderr.on("data", (d) => logs.push(d.toString()));
  await waitHealthy(base, child, logs);
  return {
    base,
    api: `${base}/hanko`,
    logs,
    /** The latest passcode mailed to `to`, from the development outbox. */
    async lastCode(to) {
      const r = await fetch(`${base}/authflow/outbox`);
      const { messages } = await r.json();
      const found = messages.filter((m) => m.to === to).pop();
      if (!found) throw new Error(`no message to ${to}`);
      return found.code;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
