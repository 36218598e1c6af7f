// The real UI in a real browser: Debian's Chromium (headless, via playwright-core) opens the page the
// provider's control API serves, signed in through the one-time URL, against a real local pool.
//
//   start → "Ready" · the power line says what the snapshot's power policy says · a completion through
//   the pool → the job appears and earnings rise · dollars beside credits, earnings by model, and the
//   CSV export matching the ledger row for row · stop → "Stopped" · settings: an invalid URL →
//   inline error, nothing saved · a valid one → applied.
//
// Screenshots go to artifacts/ui/ (CI keeps them). Run: see tests/ui/README.md.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
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
import { loadTs } from "../../ui/tests/load-ts.mjs";

// The page's own dollar formatting (unit-tested in ui/tests/money.test.mjs): expected texts are
// computed from the snapshot's credits and rate with it, never written out here.
const { formatCreditsUsd } = await loadTs(new URL("../../ui/src/money.ts", import.meta.url));

const dir = tempDir("hearth-ui-test-");
let pool, pool2, provider, context, page;
const cspViolations = [];
const pageErrors = [];

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

const stateText = () => page.getByTestId("state").textContent();
const earnedToday = async () =>
  Number((await page.getByTestId("earn-today-credits").textContent()).replace(/[^\d-]/g, "")) || 0;

/** RFC 4180 as the export writes it: quoted fields may hold commas, doubled quotes and newlines. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") row.push(field), (field = "");
    else if (c === "\n") row.push(field), rows.push(row), (row = []), (field = "");
    else if (c !== "\r") field += c;
  }
  if (field !== "" || row.length > 0) row.push(field), rows.push(row);
  const [header, ...body] = rows;
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

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
  await until(
    "the job's dollars and credits",
    async () => /^\+\$[\d.,]+ · [\d,]+ cr$/.test(await page.locator(`li[data-request-id="${id}"] .outcome`).textContent()),
    5000,
  );
  await shot("03-job-earned");
});

test("dollars beside credits, computed from the snapshot at the card's rate", async () => {
  const tiles = [
    ["earn-today", "today_estimated_credits"],
    ["earn-7d", "last_7_days_estimated_credits"],
    ["earn-30d", "last_30_days_estimated_credits"],
    ["earn-total", "total_estimated_credits"],
  ];
  const s = await until("the tiles to show the snapshot's figures", async () => {
    const status = (await provider.api("GET", "/api/status")).json;
    const e = status.earnings;
    for (const [id, field] of tiles) {
      if ((await page.getByTestId(id).textContent()) !== formatCreditsUsd(e[field], e.usd_per_million_credits)) return false;
      const shown = Number((await page.getByTestId(`${id}-credits`).textContent()).replace(/[^\d-]/g, ""));
      if (shown !== e[field]) return false;
    }
    return status;
  });
  const e = s.earnings;
  assert.ok(e.total_estimated_credits > 0 && e.usd_per_million_credits > 0, JSON.stringify(e));
  // And, independently of the formatter: the dollar text is the credits at the rate, to its precision.
  const dollars = Number((await page.getByTestId("earn-total").textContent()).replace(/[$,]/g, ""));
  const exact = (e.total_estimated_credits * e.usd_per_million_credits) / 1e6;
  assert.ok(Math.abs(dollars - exact) <= exact * 0.05, `${dollars} vs ${exact}`);
  assert.match(await page.locator("#earn-note").textContent(), /per 1,000,000 credits/);
});

test("earnings by model, and the export button's CSV is the ledger row for row", async () => {
  await completion(pool, "one more for the export", 4);
  await page.getByTestId("range-all").click();
  const report = await until("the all-time report with every job", async () => {
    const r = (await provider.api("GET", "/api/earnings?range=all&limit=1000")).json;
    const row = page.locator(`[data-testid=by-model] tr[data-model="hearth-scripted"]`);
    const jobs = Number(await row.locator(".jobs").textContent({ timeout: 1000 }));
    return r.by_model.length === 1 && jobs === r.by_model[0].jobs && r.recent_jobs.length === r.period.jobs && r;
  });
  const m = report.by_model[0];
  const row = page.locator(`[data-testid=by-model] tr[data-model="hearth-scripted"]`);
  assert.equal(m.jobs, report.period.jobs);
  assert.equal(m.estimated_credits, report.period.estimated_credits);
  assert.equal(await row.locator(".usd").textContent(), formatCreditsUsd(m.estimated_credits, report.usd_per_million_credits));
  assert.equal(Number((await row.locator(".credits").textContent()).replace(/[^\d-]/g, "")), m.estimated_credits);
  await shot("03b-by-model");

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-csv").click()]);
  assert.equal(download.suggestedFilename(), "hearth-earnings-all.csv");
  const text = readFileSync(await download.path(), "utf8");
  // The button saves exactly what the API serves (one writer for the API, the CLI and the page).
  const api = await fetch(`${provider.endpoint.url}/api/earnings.csv?range=all`, {
    headers: { authorization: `Bearer ${provider.endpoint.token}` },
  });
  assert.equal(text, await api.text());
  const rows = parseCsv(text);
  const jobs = [...report.recent_jobs].reverse(); // the report is newest first, the CSV oldest first
  assert.equal(rows.length, jobs.length, "one row per ledger job");
  rows.forEach((r, i) => {
    const j = jobs[i];
    assert.equal(r.request_id, j.request_id);
    assert.equal(r.model_id, j.model_id);
    assert.equal(r.outcome, j.outcome);
    assert.equal(Number(r.prompt_tokens), j.prompt_tokens);
    assert.equal(Number(r.completion_tokens), j.completion_tokens);
    assert.equal(Number(r.estimated_credits), j.estimated_credits);
    assert.ok(Math.abs(Number(r.estimated_usd) - (j.estimated_credits * report.usd_per_million_credits) / 1e6) < 1e-12);
    assert.equal(r.rate_card_version, j.rate_card_version);
    assert.equal(r.started_at, new Date(j.started_at).toISOString());
    assert.equal(r.ended_at, new Date(j.ended_at).toISOString());
  });
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

test("the doctor card shows the checks /api/doctor reports, each with its verdict", async () => {
  await page.goto(`${provider.endpoint.url}/`);
  const card = page.getByTestId("doctor-card");
  await card.locator("li[data-check]").first().waitFor({ timeout: 20000 });
  const report = (await provider.api("GET", "/api/doctor")).json;
  assert.ok(report.checks.length >= 5, JSON.stringify(report));
  await until("the card to list the report's checks", async () => {
    const names = await card.locator("li[data-check]").evaluateAll((li) => li.map((e) => e.dataset.check));
    return JSON.stringify(names) === JSON.stringify(report.checks.map((c) => c.name));
  });
  for (const c of report.checks) {
    const row = card.locator(`li[data-check="${c.name}"]`);
    assert.equal(await row.locator(".check-title").textContent(), c.title);
    const shown = await row.getAttribute("data-verdict");
    assert.ok(["ok", "warn", "fail"].includes(shown), `${c.name}: ${shown}`);
    assert.equal(await row.locator(".badge").textContent(), shown);
    // Something to do is shown only when the check is not ok.
    assert.equal(await row.locator(".check-action").count(), shown === "ok" ? 0 : 1);
  }
  // "Run again" asks the engine anew.
  const asked = page.waitForRequest((r) => r.url().endsWith("/api/doctor"));
  await page.getByTestId("doctor-run").click();
  await asked;
  await shot("07-doctor");
});

test("the log view shows the engine's recent lines and filters them by level", async () => {
  const card = page.getByTestId("log-card");
  assert.equal(await card.evaluate((d) => d.open), false, "collapsed until asked for");
  await card.locator("summary").click();
  const lines = page.getByTestId("log-lines").locator(".log-line");
  await lines.first().waitFor({ timeout: 10000 });
  const all = (await provider.api("GET", "/api/logs?limit=500")).json;
  assert.ok(all.lines.some((l) => l.level === "info"), "info lines are kept");
  assert.ok(await lines.filter({ hasText: "control API listening" }).count() >= 1);
  const levels = async () => lines.evaluateAll((ls) => ls.map((l) => l.dataset.level));
  assert.ok((await levels()).includes("info"));

  await page.getByTestId("log-level").selectOption("warn");
  const warn = (await provider.api("GET", "/api/logs?limit=500&level=warn")).json;
  await until("only warnings and errors", async () => {
    const shown = await levels();
    return shown.every((l) => l === "warn" || l === "error") && shown.length >= warn.lines.length;
  });
  if (warn.lines.length === 0) assert.match(await page.getByTestId("log-note").textContent(), /No lines/);
  await shot("08-logs-warn");
  await page.getByTestId("log-level").selectOption("");
  await until("every level again", async () => (await levels()).includes("info"));
  // Collapsed again, the page goes back to making no requests of its own.
  await card.locator("summary").click();
});

test("the strict CSP held and the page threw nothing", () => {
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(pageErrors, []);
});
