// The real UI in a real browser: Debian's Chromium (headless, via playwright-core) opens the page the
// provider's control API serves, signed in through the one-time URL, against a real local pool.
//
//   start → "Ready" · the power line says what the snapshot's power policy says · a completion through
//   the pool → the job appears and earnings rise · stop → "Stopped" · settings: an invalid URL →
//   inline error, nothing saved · a valid one → applied.
//
// Screenshots go to artifacts/ui/ (CI keeps them). Run: see tests/ui/README.md.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import {
  ARTIFACTS,
  completion,
  freePort,
  launchChromium,
  signInUrl,
  sleep,
  startPool,
  startProvider,
  tempDir,
  until,
} from "./harness.mjs";

const dir = tempDir("hearth-ui-test-");
let pool, pool2, provider, context, page;
const cspViolations = [];
const pageErrors = [];

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

const stateText = () => page.getByTestId("state").textContent();
const earnedToday = async () => Number((await page.getByTestId("earn-today").textContent()).replace(/[^\d-]/g, "")) || 0;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  pool = await startPool(dir, await freePort());
  pool2 = await startPool(dir, await freePort());
  provider = await startProvider(dir, { coordinator: pool.ws });
  context = await launchChromium();
  page = await context.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(await signInUrl(provider));
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of [provider?.proc, pool?.proc, pool2?.proc]) await p?.stop();
  if (process.env.HEARTH_UI_TEST_LOGS) {
    for (const p of [provider?.proc, pool?.proc]) if (p) console.log(`--- ${p.log}\n${p.logText().slice(-4000)}`);
  }
});

test("the one-time link signs the browser in and lands on the dashboard", async () => {
  assert.equal(new URL(page.url()).pathname, "/");
  const cookies = await context.cookies();
  const c = cookies.find((c) => c.name === "hearth_token");
  assert.ok(c?.httpOnly, "the control cookie is HttpOnly");
  // The same link does not work twice.
  const again = await page.request.get(`${provider.endpoint.url}/api/session?once=${new URL(await signInUrl(provider)).searchParams.get("once")}`, { maxRedirects: 0 });
  assert.equal(again.status(), 303);
  const reused = await page.request.get(again.url(), { maxRedirects: 0 });
  assert.equal(reused.status(), 403);
});

test("start → ready is shown", async () => {
  // `hearth serve` starts serving on its own; stop first so the Start button is what gets it ready.
  await until("a first snapshot", async () => (await stateText()) !== "Loading…");
  if ((await page.getByTestId("toggle").textContent()) === "Stop") {
    await page.getByTestId("toggle").click();
    await page.getByTestId("state").filter({ hasText: "Stopped" }).waitFor();
  }
  assert.match(await page.getByTestId("reason").textContent(), /stopped/);
  await shot("01-stopped");
  await page.getByTestId("toggle").click();
  await page.getByTestId("state").filter({ hasText: "Ready" }).waitFor({ timeout: 15000 });
  assert.equal(await page.getByTestId("toggle").textContent(), "Stop");
  // The pool view arrives through the same stream.
  await page.getByTestId("pool-summary").filter({ hasText: /1\/1 providers ready/ }).waitFor({ timeout: 10000 });
  // The session is encrypted (v2, the default against the local pool) and the card says so.
  const protocol = await page.locator("#h-protocol").textContent();
  assert.match(protocol, /^v2 · A256GCM · kid [A-Za-z0-9_-]{6}… · \d+ rekeys?$/);
  await shot("02-ready");
});

test("the power line shows the policy's reason from the snapshot", async () => {
  // The provider reads this machine's real probes; the test's settings turn off the rules that
  // depend on them, but what the line says is the snapshot's to decide, not this test's.
  const power = page.getByTestId("power");
  const s = await until("the power line to match the snapshot", async () => {
    const status = (await provider.api("GET", "/api/status")).json;
    return status.power && (await power.textContent()) === status.power.reason && status;
  });
  assert.ok(s.power.reason.length > 0);
  assert.ok(await page.getByTestId("power-card").isVisible());
  const warn = await page.getByTestId("power-card").evaluate((e) => e.classList.contains("warn"));
  assert.equal(warn, s.power.mode !== "serving", `mode ${s.power.mode} styles the card`);
  assert.notEqual(await page.getByTestId("power-source").textContent(), "", "the readings row is filled");
});

test("a completion through the pool shows up as a job and earnings rise", async () => {
  const before = await earnedToday();
  const id = await completion(pool, "hello from the browser test", 6);
  await page.locator(`[data-testid=recent-jobs] li[data-request-id="${id}"]`).waitFor({ timeout: 10000 });
  await until("today's earnings to rise", async () => (await earnedToday()) > before, 10000);
  const row = await page.locator(`li[data-request-id="${id}"]`).textContent();
  assert.match(row, /hearth-scripted/);
  // Its credits come from the ledger's report, which the page re-read because the snapshot moved.
  await until("the job's credits", async () => /\+\d/.test(await page.locator(`li[data-request-id="${id}"] .outcome`).textContent()), 5000);
  await shot("03-job-earned");
});

test("the page does not poll: an idle dashboard makes no requests", async () => {
  const requests = [];
  const onRequest = (r) => requests.push(r.url());
  page.on("request", onRequest);
  await sleep(3000);
  page.off("request", onRequest);
  assert.deepEqual(requests, [], "updates come only from the open /api/events stream");
});

test("stop → stopped", async () => {
  await page.getByTestId("toggle").click();
  await page.getByTestId("state").filter({ hasText: "Stopped" }).waitFor({ timeout: 15000 });
  assert.equal(await page.getByTestId("toggle").textContent(), "Start");
  const s = await provider.api("GET", "/api/status");
  assert.equal(s.json.phase, "stopped");
  await shot("04-stopped-again");
});

test("settings: an invalid coordinator URL is an inline error and nothing is saved", async () => {
  await page.getByTestId("open-settings").click();
  await page.waitForURL(/settings\.html$/);
  const coordinator = page.getByTestId("coordinator");
  await until("the form to load", async () => (await coordinator.inputValue()) === pool.ws);
  const before = (await provider.api("GET", "/api/settings")).json.settings;

  // Not a URL at all: caught in the page.
  await coordinator.fill("not a url");
  await page.getByTestId("save").click();
  await page.getByTestId("err-coordinator").filter({ hasText: /ws:\/\/ or wss:\/\// }).waitFor();

  // A URL the engine refuses (plain ws:// off this machine): its 422 is shown on the field.
  await coordinator.fill("ws://example.com/ws/provider");
  await page.getByTestId("save").click();
  await page.getByTestId("err-coordinator").filter({ hasText: /./ }).waitFor();
  const message = await page.getByTestId("err-coordinator").textContent();
  assert.match(message, /ws:\/\//, message);
  assert.ok(await coordinator.evaluate((e) => e.classList.contains("invalid")));
  assert.ok(await page.getByTestId("saved").isHidden());
  await shot("05-settings-invalid");

  const after = (await provider.api("GET", "/api/settings")).json.settings;
  assert.deepEqual(after, before, "nothing was saved");
});

test("settings: a valid coordinator URL is saved and applied", async () => {
  const coordinator = page.getByTestId("coordinator");
  await coordinator.fill(pool2.ws);
  await page.getByTestId("slots").fill("3");
  await page.getByTestId("save").click();
  await page.getByTestId("saved").waitFor({ state: "visible", timeout: 10000 });
  assert.equal(await page.getByTestId("err-coordinator").textContent(), "");
  const saved = (await provider.api("GET", "/api/settings")).json;
  assert.equal(saved.settings.coordinator, pool2.ws);
  assert.equal(saved.settings.slots, 3);
  await shot("06-settings-saved");

  // Applied: started again, the provider serves the new pool with the new slot count.
  await page.getByTestId("back").click();
  await page.waitForURL((u) => u.pathname === "/");
  await page.getByTestId("toggle").filter({ hasText: "Start" }).click();
  await page.getByTestId("state").filter({ hasText: "Ready" }).waitFor({ timeout: 15000 });
  await until("pool 2 to list the provider", async () => {
    const s = await (await fetch(`${pool2.base}/v1/status`)).json();
    return JSON.stringify(s).includes("hearth-scripted");
  });
  assert.match(await page.locator("#coord-url").textContent(), new RegExp(String(pool2.port)));
  assert.match(await page.getByTestId("live-summary").textContent(), /\/3 slots/);
  await shot("07-ready-on-new-pool");
});

test("the strict CSP held and the page threw nothing", () => {
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(pageErrors, []);
});
