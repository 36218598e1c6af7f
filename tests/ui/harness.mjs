// Real processes for the browser tests: `hearth pool` and `hearth serve` on loopback ports, each
// with its own HEARTH_HOME, and Debian's Chromium through playwright-core (never a downloaded
// browser: this machine's network only reaches package registries).

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const MODEL = "hearth-scripted";
export const ARTIFACTS = process.env.HEARTH_ARTIFACTS_DIR ?? join(ROOT, "artifacts", "ui");
/** The `[power]` table the tests' settings end with: the rules that read this machine (its battery,
 * its user at the keyboard) are off, so where the tests run does not decide whether they serve. */
export const POWER_TOML = `[power]\non_battery = "never"\nuser_active = "ignore"\n`;

export function hearthBin() {
  const bin =
    process.env.HEARTH_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug", "hearth");
  if (!existsSync(bin)) throw new Error(`no hearth binary at ${bin}: build it (cargo build -p hearth-engine) or set HEARTH_BIN`);
  return bin;
}

export function uiDir() {
  const dir = process.env.HEARTH_UI_DIR ?? join(ROOT, "ui", "dist");
  if (!existsSync(join(dir, "index.html"))) throw new Error(`no built UI in ${dir}: run npm --prefix ui ci && npm --prefix ui run build`);
  return dir;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a truthy value (test harness only; the UI itself never polls). */
export async function until(what, probe, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A child process whose stderr goes to a log file; killed by `stop()`. */
export class Proc {
  constructor(args, { env = {}, log }) {
    this.log = log;
    const fd = openSync(log, "w");
    this.child = spawn(hearthBin(), args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", fd] });
    this.exited = new Promise((r) => this.child.once("exit", (code, signal) => r({ code, signal })));
  }
  logText() {
    try {
      return readFileSync(this.log, "utf8");
    } catch {
      return "";
    }
  }
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 10000);
    await this.exited;
    clearTimeout(t);
  }
}

export async function startPool(dir, port) {
  const proc = new Proc(["pool", "--listen", `127.0.0.1:${port}`], { log: join(dir, `pool-${port}.log`) });
  const base = `http://127.0.0.1:${port}`;
  await until(`pool on ${port}`, async () => (await fetch(`${base}/v1/status`)).ok);
  return { proc, port, base, ws: `ws://127.0.0.1:${port}/ws/provider` };
}

/**
 * A provider on its own HEARTH_HOME whose settings file points at `coordinator` (not a command
 * line flag, so the settings window can change it), serving the UI from ui/dist.
 */
export async function startProvider(dir, { coordinator, providerId = "ui-test", extraArgs = [] }) {
  const home = join(dir, providerId);
  mkdirSync(join(home, "config"), { recursive: true });
  writeFileSync(
    join(home, "config", "settings.toml"),
    `coordinator = "${coordinator}"\nprovider_id = "${providerId}"\nslots = 2\nengine = "scripted"\n` +
      POWER_TOML, // a table, so after the top-level keys
  );
  const controlPort = await freePort();
  const proc = new Proc(
    [
      "serve",
      "--model-id",
      MODEL,
      "--control-listen",
      `127.0.0.1:${controlPort}`,
      "--pool-poll-interval",
      "0.5",
      "--earnings-poll-interval",
      "1",
      ...extraArgs,
    ],
    { env: { HEARTH_HOME: home, HEARTH_UI_DIR: uiDir(), RUST_LOG: "info" }, log: join(dir, `${providerId}.log`) },
  );
  const endpointFile = join(home, "data", "control.json");
  const endpoint = await until("control.json", () => existsSync(endpointFile) && JSON.parse(readFileSync(endpointFile, "utf8")));
  const api = async (method, path, body) => {
    const r = await fetch(`${endpoint.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${endpoint.token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, json: await r.json().catch(() => null) };
  };
  await until("the control API", async () => (await api("GET", "/api/status")).status === 200);
  return { proc, home, endpoint, api };
}

/** A fresh one-time sign-in URL: the way the app opens the dashboard in a browser. */
export async function signInUrl(provider) {
  const r = await provider.api("POST", "/api/session");
  if (r.status !== 200) throw new Error(`POST /api/session answered ${r.status}`);
  return r.json.url;
}

export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  const userDataDir = tempDir("hearth-chromium-");
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  // The flags keep Chromium off the network it cannot reach here (and quiet in CI).
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 420, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return context;
}

export async function completion(pool, prompt, maxTokens = 5) {
  const r = await fetch(`${pool.base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, stream: false }),
  });
  if (r.status !== 200) throw new Error(`completion answered ${r.status}: ${await r.text()}`);
  const body = await r.json();
  return body.id.replace(/^chatcmpl-/, "");
}
