// The first launch, end to end, in a real browser: a provider with no model (`hearth serve --engine
// cpu`, settings naming none) opens the dashboard on the onboarding panel instead of an error; the
// panel says what this machine can serve; a repository typed into "another model" is fetched from a
// stand-in for the Hugging Face hub (HF_ENDPOINT) with progress; then the provider serves it, and a
// completion through the local pool answers with text from that model.
//
// The hub stand-in here speaks what a pull reads (src-tauri/engine/src/models/fetch/hub.rs, and the
// Rust stand-in in tests/fetch.rs): the revision API, `resolve` with X-Repo-Commit / ETag, LFS
// files redirected to a "CDN" with X-Linked-Etag / X-Linked-Size, and Range. It serves the tiny
// MLX fixture model from the shared fixtures folder (HEARTH_SHARED_DIR), throttled so that the
// progress can be seen. Last, the Settings window fetches a second copy into its model picker.
// Run: see tests/ui/README.md.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { ARTIFACTS, POWER_TOML, Proc, ROOT, freePort, launchChromium, startPool, tempDir, uiDir, until } from "./harness.mjs";

const COMMIT = "4f3c1d2e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";
const REPO = "test-org/tiny-llama-4bit";
/** The same files under a second name, fetched from the Settings window. */
const REPO2 = "test-org/tiny-llama-again";
/** Between 1 KiB chunks of a file body: the ~85 KB model takes a few seconds, long enough for the
 * page (which reads progress every 500 ms) to show it running. */
const CHUNK_GAP_MS = 30;
/** The panel says nothing of command lines or flags. */
const CLI_WORDS = /--model|command line|--[a-z]/i;

const sharedDir = process.env.HEARTH_SHARED_DIR ?? resolve(ROOT, "..", "shared");
const fixture = join(sharedDir, "fixtures", "models", "tiny-llama-4bit");

const dir = tempDir("hearth-onboarding-test-");
let hub, pool, provider, api, context, page;
const pageErrors = [];

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** The fixture's files as a repository: weights are LFS files (sha256 ETag, served by the CDN). */
function repoFiles() {
  return readdirSync(fixture)
    .sort()
    .map((name) => {
      const bytes = readFileSync(join(fixture, name));
      const lfs = name.endsWith(".safetensors");
      // A git blob id stands in for a small file's ETag: 40 hex digits.
      const etag = lfs ? sha256(bytes) : sha256(Buffer.concat([Buffer.from("blob "), bytes])).slice(0, 40);
      return { name, bytes, lfs, etag };
    });
}

function listen(handler) {
  return new Promise((ok) => {
    const server = createServer(handler);
    server.listen(0, "127.0.0.1", () => ok(server));
  });
}

/** A body honouring `Range: bytes=N-`, in throttled 1 KiB chunks. */
function sendBytes(req, res, bytes, etag) {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const from = m ? Number(m[1]) : 0;
  const headers = { "x-repo-commit": COMMIT, etag: `"${etag}"` };
  if (from >= bytes.length && m) {
    res.writeHead(416, { ...headers, "content-range": `bytes */${bytes.length}` }).end();
    return;
  }
  headers["content-length"] = String(bytes.length - from);
  if (m) headers["content-range"] = `bytes ${from}-${bytes.length - 1}/${bytes.length}`;
  res.writeHead(m ? 206 : 200, headers);
  if (req.method === "HEAD") return void res.end();
  let pos = from;
  const next = () => {
    if (res.destroyed) return;
    if (pos >= bytes.length) return void res.end();
    const end = Math.min(pos + 1024, bytes.length);
    res.write(bytes.subarray(pos, end));
    pos = end;
    setTimeout(next, CHUNK_GAP_MS);
  };
  next();
}

async function startHub() {
  const repos = new Map([
    [REPO, repoFiles()],
    [REPO2, repoFiles()],
  ]);
  const seen = [];
  const notFound = (res, code) => res.writeHead(404, { "x-error-code": code }).end(code);
  const cdn = await listen((req, res) => {
    const m = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const f = m && repos.get(m[1])?.find((f) => f.name === m[2]);
    if (!f) return void res.writeHead(404).end();
    sendBytes(req, res, f.bytes, "cdn");
  });
  const cdnPort = cdn.address().port;
  const server = await listen((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    seen.push(`${req.method} ${path}`);
    const rev = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    if (rev) {
      const files = repos.get(rev[1]);
      if (!files) return notFound(res, "RepoNotFound");
      const body = JSON.stringify({ id: rev[1], sha: COMMIT, siblings: files.map((f) => ({ rfilename: f.name })) });
      return void res.writeHead(200, { "content-type": "application/json" }).end(body);
    }
    const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!file) return notFound(res, "EntryNotFound");
    const files = repos.get(file[1]);
    if (!files) return notFound(res, "RepoNotFound");
    const f = files.find((f) => f.name === file[3]);
    if (!f) return notFound(res, "EntryNotFound");
    if (f.lfs) {
      // As the hub does: the metadata on the redirect itself, the bytes from the CDN.
      res
        .writeHead(302, {
          location: `http://127.0.0.1:${cdnPort}/cdn/${file[1]}/${f.name}`,
          "x-repo-commit": COMMIT,
          etag: `"${f.etag}"`,
          "x-linked-etag": `"${f.etag}"`,
          "x-linked-size": String(f.bytes.length),
        })
        .end();
      return;
    }
    sendBytes(req, res, f.bytes, f.etag);
  });
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    seen,
    close: () => Promise.all([server, cdn].map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r))))),
  };
}

/** `hearth serve --engine cpu` on a fresh HEARTH_HOME whose settings name no model, with the hub's
 * cache (HF_HOME) and every other model folder (HOME, Ollama) in empty temp dirs. */
async function startModelLessProvider(coordinator) {
  const home = join(dir, "hearth");
  mkdirSync(join(home, "config"), { recursive: true });
  writeFileSync(
    join(home, "config", "settings.toml"),
    `coordinator = "${coordinator}"\nprovider_id = "onboarding-test"\n` + POWER_TOML,
  );
  const hfHome = join(dir, "hf");
  const controlPort = await freePort();
  const proc = new Proc(["serve", "--engine", "cpu", "--control-listen", `127.0.0.1:${controlPort}`, "--pool-poll-interval", "0.5"], {
    env: {
      HEARTH_HOME: home,
      HEARTH_UI_DIR: uiDir(),
      HF_ENDPOINT: hub.endpoint,
      HF_HOME: hfHome,
      HF_HUB_CACHE: "",
      XDG_CACHE_HOME: "",
      HF_TOKEN: "",
      HOME: join(dir, "user"),
      OLLAMA_MODELS: join(dir, "ollama"),
      RUST_LOG: "info",
    },
    log: join(dir, "provider.log"),
  });
  const endpointFile = join(home, "data", "control.json");
  const endpoint = await until("control.json", () => existsSync(endpointFile) && JSON.parse(readFileSync(endpointFile, "utf8")));
  const call = async (method, path, body) => {
    const r = await fetch(`${endpoint.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${endpoint.token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, json: await r.json().catch(() => null) };
  };
  await until("the control API", async () => (await call("GET", "/api/status")).status === 200);
  return { proc, endpoint, hfHome, api: call };
}

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Every text in the panel a user can read, including tooltips and placeholders. */
async function panelTexts() {
  return page.getByTestId("onboarding").evaluate((root) => {
    const out = [root.innerText];
    for (const e of root.querySelectorAll("*")) {
      for (const a of ["title", "placeholder", "aria-label"]) if (e.getAttribute(a)) out.push(e.getAttribute(a));
    }
    return out;
  });
}

before(async () => {
  assert.ok(existsSync(join(fixture, "config.json")), `the tiny MLX fixture is missing at ${fixture} (set HEARTH_SHARED_DIR)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  hub = await startHub();
  pool = await startPool(dir, await freePort());
  provider = await startModelLessProvider(pool.ws);
  api = provider.api;
  context = await launchChromium();
  page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  const session = await api("POST", "/api/session");
  await page.goto(session.json.url);
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of [provider?.proc, pool?.proc]) await p?.stop();
  await hub?.close();
  if (process.env.HEARTH_UI_TEST_LOGS) {
    for (const p of [provider?.proc, pool?.proc]) if (p) console.log(`--- ${p.log}\n${p.logText().slice(-4000)}`);
  }
});

test("with no model, the dashboard opens on the onboarding panel, not an error", async () => {
  const view = (await api("GET", "/api/onboarding")).json;
  assert.equal(view.needs_model, true, JSON.stringify(view));
  assert.equal(view.machine.engine, process.platform === "darwin" ? "mlx" : "cpu");
  assert.ok(view.machine.ram_bytes > 0 && view.machine.disk_free_bytes > 0, JSON.stringify(view.machine));
  assert.deepEqual(view.found, [], "nothing on this machine yet");
  assert.ok(view.suggestions.some((s) => s.engine === "gguf" && s.file?.endsWith(".gguf")), JSON.stringify(view.suggestions));
  if (process.platform !== "darwin") assert.ok(view.suggestions.every((s) => s.engine !== "mlx"), "MLX only on macOS");

  await page.getByTestId("onboarding").waitFor({ state: "visible", timeout: 15000 });
  // The provider reports its "no model" error meanwhile; the page shows the panel instead.
  await until("the provider's no-model error", async () => /no model chosen/.test((await api("GET", "/api/status")).json.reason));
  await page.getByTestId("state").filter({ hasText: "Choose a model" }).waitFor();
  assert.equal(await page.getByTestId("reason").isVisible(), false, "no red error line under the panel");

  assert.match(await page.getByTestId("onb-ram").textContent(), /\d+(\.\d)? [MGT]B of memory/);
  assert.match(await page.getByTestId("onb-disk").textContent(), /\d+(\.\d)? [KMGT]?B free/);
  assert.equal(await page.getByTestId("onb-engine").textContent(), process.platform === "darwin" ? "MLX (Apple Silicon GPU)" : "CPU");
  // The suggestions that fit, each with its approximate size and a Fetch button.
  const rows = page.getByTestId("onb-suggestions").locator("li.onb-row");
  const fitting = view.suggestions.filter((s) => s.fit !== "does_not_fit");
  assert.equal(await rows.count(), fitting.length);
  assert.match(await rows.first().textContent(), /~\d+(\.\d)? [MG]B · [\d.]+B params/);
  assert.equal(await page.getByTestId("onb-fetch").count(), fitting.length);
  for (const text of await panelTexts()) assert.doesNotMatch(text, CLI_WORDS);
  await shot("onboarding-01-panel");
});

test("a repository that does not exist: the hub's 404 in the panel, with Retry", async () => {
  await page.getByTestId("onb-other").fill("test-org/no-such-model");
  await page.getByTestId("onb-other-fetch").click();
  const error = page.getByTestId("onb-pull-error");
  await error.filter({ hasText: /404/ }).waitFor({ timeout: 15000 });
  assert.match(await error.textContent(), /no repository test-org\/no-such-model/);
  assert.equal(await page.getByTestId("onb-pull-title").textContent(), "Not fetched: test-org/no-such-model");
  assert.ok(await page.getByTestId("onb-pull-retry").isVisible());
  assert.equal(await page.getByTestId("onb-pull-cancel").isVisible(), false, "nothing runs to cancel");
  for (const text of await panelTexts()) assert.doesNotMatch(text, CLI_WORDS);
  await shot("onboarding-02-not-found");
});

test("another model from the hub: fetched with progress, then served", async () => {
  await page.getByTestId("onb-other").fill(REPO);
  await page.getByTestId("onb-other-fetch").click();
  // Running: bytes of the total, the rate, time left, and a Cancel button.
  const text = page.getByTestId("onb-pull-text");
  await text.filter({ hasText: /\d+(\.\d)? [KM]?B of \d+(\.\d)? [KM]?B · \d+(\.\d)? [KM]?B\/s/ }).waitFor({ timeout: 15000 });
  assert.ok(await page.getByTestId("onb-pull-cancel").isVisible(), "Cancel while it runs");
  assert.equal(await page.getByTestId("onb-pull-error").textContent(), "");
  const bar = page.getByTestId("onb-pull-bar");
  const [value, max] = await bar.evaluate((b) => [b.value, b.max]);
  assert.ok(value > 0 && value < max, `the bar is partway: ${value}/${max}`);
  await shot("onboarding-03-fetching");

  // Done: the settings name the fetched snapshot, and the provider serves it.
  const pull = await until("the pull to finish", async () => {
    const p = (await api("GET", "/api/models/pulls")).json.pulls.find((p) => p.repo === REPO);
    return p?.state === "done" ? p : p?.state === "running" ? null : Promise.reject(new Error(JSON.stringify(p)));
  }, 60000);
  assert.ok(pull.path.startsWith(provider.hfHome), pull.path);
  const status = await until("the provider serving the fetched model", async () => {
    const s = (await api("GET", "/api/status")).json;
    return s.phase === "ready" && s.model_id ? s : s.phase === "error" && !/no model chosen/.test(s.reason) ? Promise.reject(new Error(s.reason)) : null;
  }, 90000);
  const settings = (await api("GET", "/api/settings")).json;
  assert.equal(settings.settings.model_path, pull.path);
  assert.equal(settings.effective.engine, "cpu");

  // The panel closes once the provider serves; the dashboard shows it ready.
  await page.getByTestId("onboarding").waitFor({ state: "hidden", timeout: 15000 });
  await page.getByTestId("state").filter({ hasText: "Ready" }).waitFor({ timeout: 15000 });
  await shot("onboarding-04-serving");

  // A real completion through the pool, answered by the fetched model.
  await until("the pool to list the model", async () => {
    const r = await fetch(`${pool.base}/v1/status`);
    return r.ok && JSON.stringify(await r.json()).includes(status.model_id);
  });
  const r = await fetch(`${pool.base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: status.model_id, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, stream: false }),
  });
  const body = await r.text();
  assert.equal(r.status, 200, body);
  const content = JSON.parse(body).choices[0].message.content;
  assert.ok(typeof content === "string" && content.length > 0, body);
  assert.ok(hub.seen.some((s) => s.startsWith("GET /api/models/test-org/tiny-llama-4bit/revision/main")), hub.seen.join("\n"));
  assert.deepEqual(pageErrors, []);
});

test("Settings: Fetch a model, and the picker lists it, selected", async () => {
  await page.goto(`${provider.endpoint.url}/settings.html`);
  await page.getByTestId("fetch-spec").waitFor();
  await page.getByTestId("fetch-spec").fill(REPO2);
  // Enter fetches (it does not save the form).
  await page.getByTestId("fetch-spec").press("Enter");
  await page.getByTestId("fetch-pull-text").filter({ hasText: / of / }).waitFor({ timeout: 15000 });
  assert.ok(await page.getByTestId("fetch-pull-cancel").isVisible());
  await page.getByTestId("fetch-pull-title").filter({ hasText: `Fetched ${REPO2}` }).waitFor({ timeout: 60000 });
  const pull = (await api("GET", "/api/models/pulls")).json.pulls.find((p) => p.repo === REPO2 && p.state === "done");
  assert.ok(pull, "the pull is done");
  assert.equal(await page.getByTestId("model").inputValue(), pull.path, "the fetched model is selected");
  assert.match(await page.getByTestId("model").locator("option:checked").textContent(), /tiny-llama-again/);
  // `--engine cpu` pins the engine; the picker still shows the model it would run.
  assert.equal(await page.getByTestId("engine").inputValue(), "cpu");
  // Not saved until Save: the one in force is still the first.
  assert.notEqual((await api("GET", "/api/settings")).json.settings.model_path, pull.path);
  await page.screenshot({ path: join(ARTIFACTS, "onboarding-05-settings-fetched.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
