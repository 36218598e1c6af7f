// The real app in a real window: the Tauri shell (WebKitGTK) under Xvfb, driven over WebDriver by
// tauri-driver + WebKitWebDriver, against a real local pool. Click Start in the app's window →
// "Ready"; the tray icon exists in a tray host (trayer); the idle footprint is measured.
//
// Needs: an X display (run-window-test.sh starts Xvfb, a D-Bus session and trayer), `tauri-driver`
// on PATH, `WebKitWebDriver` (Debian webkit2gtk-driver), and the app built with the UI embedded:
//   cargo build -p hearth-app --features custom-protocol
// HEARTH_APP_BIN points at it (default: $CARGO_TARGET_DIR/debug/hearth-app).

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { ARTIFACTS, POWER_TOML, ROOT, freePort, sleep, startPool, tempDir, until } from "./harness.mjs";

const IDLE_SECONDS = Number(process.env.HEARTH_IDLE_SECONDS ?? 60);
const appBin =
  process.env.HEARTH_APP_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug", "hearth-app");
const dir = tempDir("hearth-window-test-");
const home = join(dir, "home");
let pool, driver, driverPort, session;

async function wd(method, path, body) {
  const r = await fetch(`http://127.0.0.1:${driverPort}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value ?? json)}`);
  return json.value;
}
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const find = async (css) => (await wd("POST", `/session/${session}/element`, { using: "css selector", value: css }))[ELEMENT];
const text = async (css) => wd("GET", `/session/${session}/element/${await find(css)}/text`);
const click = async (css) => wd("POST", `/session/${session}/element/${await find(css)}/click`, {});
const prop = async (css, name) => wd("GET", `/session/${session}/element/${await find(css)}/property/${name}`);
const hasClass = async (css, cls) => (await prop(css, "className")).split(/\s+/).includes(cls);
/** Clears a text or number input and types into it. */
async function type(css, value) {
  const id = await find(css);
  await wd("POST", `/session/${session}/element/${id}/clear`, {});
  await wd("POST", `/session/${session}/element/${id}/value`, { text: value });
}
/** Time inputs take no typed text over WebDriver in WebKitGTK: set the value and fire the events an
 * edit fires. Answers what the input holds afterwards (a time input drops a value it cannot hold). */
async function setTime(css, value) {
  return wd("POST", `/session/${session}/execute/sync`, {
    script:
      "const e = document.querySelector(arguments[0]); e.value = arguments[1];" +
      "e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true }));" +
      "return e.value;",
    args: [css, value],
  });
}
/** Calls one of the shell's IPC commands from the page in front. */
async function invoke(cmd, args = {}) {
  const r = await wd("POST", `/session/${session}/execute/async`, {
    script:
      "const done = arguments[arguments.length - 1];" +
      "window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]).then((v) => done({ ok: v ?? null }), (e) => done({ err: String(e) }));",
    args: [cmd, args],
  });
  if ("err" in r) throw new Error(`${cmd}: ${r.err}`);
  return r.ok;
}
/** The app's own control API (the same the browser UI uses), as data/control.json names it. */
async function api(method, path, body) {
  const endpoint = JSON.parse(readFileSync(join(home, "data", "control.json"), "utf8"));
  const r = await fetch(`${endpoint.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${endpoint.token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}
async function screenshot(name) {
  const png = await wd("GET", `/session/${session}/screenshot`);
  writeFileSync(join(ARTIFACTS, `${name}.png`), Buffer.from(png, "base64"));
}

/** The app's pid and its WebKit helper processes (the web content and network processes). */
function appProcesses() {
  const procs = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0];
      const env = readFileSync(`/proc/${pid}/environ`, "utf8");
      if (!env.includes(`HEARTH_HOME=${home}`)) continue;
      if (cmd === appBin || /WebKit(Web|Network|GPU)Process/.test(cmd)) procs.push({ pid: Number(pid), cmd });
    } catch {
      // Gone or not ours.
    }
  }
  return procs;
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssKb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : 0;
}

before(async () => {
  assert.ok(existsSync(appBin), `no app at ${appBin}: cargo build -p hearth-app --features custom-protocol`);
  assert.ok(process.env.DISPLAY, "needs an X display (see run-window-test.sh)");
  mkdirSync(ARTIFACTS, { recursive: true });
  pool = await startPool(dir, await freePort());
  mkdirSync(join(home, "config"), { recursive: true });
  writeFileSync(
    join(home, "config", "settings.toml"),
    `coordinator = "${pool.ws}"\nprovider_id = "window-test"\nslots = 1\nengine = "scripted"\n` +
      POWER_TOML, // a table, so after the top-level keys
  );
  driverPort = await freePort();
  driver = spawn("tauri-driver", ["--port", String(driverPort), "--native-port", String(await freePort())], {
    env: { ...process.env, HEARTH_HOME: home, HEARTH_SHOW_DASHBOARD: "1", RUST_LOG: "info" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await until("tauri-driver", async () => (await fetch(`http://127.0.0.1:${driverPort}/status`)).ok);
  const created = await wd("POST", "/session", {
    capabilities: { alwaysMatch: { "tauri:options": { application: appBin }, browserName: "wry" } },
  });
  session = created.sessionId;
});

/** Our app processes: this binary, started with this test's HEARTH_HOME (other runs may share it). */
function ourAppPids() {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0];
        const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
        return argv0 === appBin && env.includes(`HEARTH_HOME=${home}`);
      } catch {
        return false; // gone meanwhile, or not ours to read
      }
    })
    .map(Number);
}

after(async () => {
  if (session) await wd("DELETE", `/session/${session}`).catch(() => {});
  driver?.kill("SIGTERM");
  // A menu-bar app outlives its window by design, and WebKitWebDriver does not always take it down
  // with the session. A survivor holds the test runner's output pipe open and the run never ends.
  await sleep(1000);
  for (const pid of ourAppPids()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await pool?.proc.stop();
});

test("click Start in the app window → Ready against the local pool", async () => {
  await until("the dashboard", async () => (await text("[data-testid=state]")) !== "Loading…", 30000);
  assert.equal(await text("[data-testid=state]"), "Stopped", "the app waits for a click");
  assert.equal(await text("[data-testid=toggle]"), "Start");
  await screenshot("window-01-stopped");
  await click("[data-testid=toggle]");
  await until("Ready", async () => (await text("[data-testid=state]")) === "Ready", 20000);
  const s = await (await fetch(`${pool.base}/v1/status`)).json();
  assert.match(JSON.stringify(s), /hearth-scripted/, "the pool lists the app's model");
  await screenshot("window-02-ready");
});

test("the tray icon is shown by the tray host", async () => {
  // trayer is an XEmbed tray: the app's icon is embedded as a child window of it.
  const trayer = execFileSync("xdotool", ["search", "--class", "trayer"], { encoding: "utf8" }).trim().split("\n")[0];
  assert.ok(trayer, "trayer is running");
  await until("an icon in the tray", () => {
    const tree = execFileSync("xwininfo", ["-children", "-id", trayer], { encoding: "utf8" });
    return /(\d+) child(ren)?/.exec(tree)?.[1] > 0;
  }, 15000);
  execFileSync("import", ["-window", "root", join(ARTIFACTS, "window-03-screen-with-tray.png")]);
});

/** RSS and CPU% of the app's processes over `seconds` of wall time. */
async function footprint(seconds) {
  const procs = appProcesses();
  assert.ok(procs.some((p) => p.cmd === appBin), "found the app's process");
  assert.ok(procs.some((p) => /WebKitWebProcess/.test(p.cmd)), "found its web process");
  const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  const t0 = procs.map((p) => cpuTicks(p.pid));
  const start = Date.now();
  await sleep(seconds * 1000);
  const elapsed = (Date.now() - start) / 1000;
  const rows = procs.map((p, i) => ({
    process: p.cmd.split("/").pop(),
    pid: p.pid,
    rss_mb: +(rssKb(p.pid) / 1024).toFixed(1),
    cpu_percent: +((100 * (cpuTicks(p.pid) - t0[i])) / hz / elapsed).toFixed(2),
  }));
  const total = {
    rss_mb: +rows.reduce((a, r) => a + r.rss_mb, 0).toFixed(1),
    cpu_percent: +rows.reduce((a, r) => a + r.cpu_percent, 0).toFixed(2),
    seconds: +elapsed.toFixed(1),
  };
  return { processes: rows, total };
}

const idle = {};
const poolLists = async () => JSON.stringify(await (await fetch(`${pool.base}/v1/status`)).json()).includes("hearth-scripted");

test(`idle footprint over ${IDLE_SECONDS} s while connected, dashboard open`, async () => {
  idle.dashboard_open = await footprint(IDLE_SECONDS);
  console.log(`idle, dashboard open: ${JSON.stringify(idle.dashboard_open)}`);
  assert.equal(await text("[data-testid=state]"), "Ready", "still connected after idling");
});

test(`idle footprint over ${IDLE_SECONDS} s while connected, dashboard closed (menu bar only)`, async () => {
  // Closing goes through the same command the UI's close button uses; the window only hides.
  const visibleDashboards = () => {
    try {
      return execFileSync("xdotool", ["search", "--onlyvisible", "--name", "^Hearth$"], { encoding: "utf8" }).trim();
    } catch {
      return ""; // xdotool exits 1 when nothing matches
    }
  };
  assert.ok(visibleDashboards(), "the dashboard window is on screen before");
  await wd("POST", `/session/${session}/execute/async`, {
    script: "const done = arguments[arguments.length - 1]; window.__TAURI_INTERNALS__.invoke('close_window', { which: 'dashboard' }).then(() => done(true), (e) => done(String(e)));",
    args: [],
  });
  await until("the dashboard to hide", () => visibleDashboards() === "", 5000);
  idle.dashboard_closed = await footprint(IDLE_SECONDS);
  console.log(`idle, dashboard closed: ${JSON.stringify(idle.dashboard_closed)}`);
  assert.ok(await poolLists(), "still serving the pool after idling");
  writeFileSync(
    join(ARTIFACTS, "idle-footprint.json"),
    JSON.stringify({ build: appBin.includes("/release/") ? "release" : "debug", ...idle }, null, 2),
  );
});

// Last: a schedule window takes the provider off the pool outside its hours, which the footprint
// tests above must not see.
test("settings: the Power fieldset saves pause-below and a schedule window; bad values are refused at their inputs", async () => {
  // The way a user gets there: the dashboard's ⚙ opens the settings window.
  await invoke("open_window", { which: "dashboard" });
  const dashboard = await wd("GET", `/session/${session}/window`);
  await click("[data-testid=open-settings]");
  const handles = await until("the settings window", async () => {
    const all = await wd("GET", `/session/${session}/window/handles`);
    return all.length > 1 && all;
  }, 10000);
  await wd("POST", `/session/${session}/window`, { handle: handles.find((h) => h !== dashboard) });
  // The form shows the file's power table (keep serving on battery, ignore the user).
  await until("the form to load", async () => (await prop("[data-testid=power-on_battery]", "value")) === "never", 15000);
  assert.equal(await prop("[data-testid=power-user_active]", "value"), "ignore");
  assert.ok(await prop("[data-testid=power-battery_threshold_percent]", "disabled"), "no percentage unless pause_below");

  await click("[data-testid=power-on_battery] option[value=pause_below]");
  await until("the percentage to be editable", async () => !(await prop("[data-testid=power-battery_threshold_percent]", "disabled")), 3000);
  await type("[data-testid=power-battery_threshold_percent]", "30");
  await click("[data-testid=power-add-window]");
  await click("[data-testid=power-window-0-day-sat]");
  assert.equal(await setTime("[data-testid=power-window-0-start]", "22:00"), "22:00");
  assert.equal(await setTime("[data-testid=power-window-0-end]", "07:00"), "07:00");
  await screenshot("window-04-settings-power");
  await click("[data-testid=save]");
  await until("saved", async () => (await text("[data-testid=saved]")) !== "", 10000);

  const saved = (await api("GET", "/api/settings")).json.settings.power;
  assert.equal(saved.on_battery, "pause_below");
  assert.equal(saved.battery_threshold_percent, 30);
  assert.equal(saved.user_active, "ignore", "the rest of the table is kept");
  assert.deepEqual(saved.schedule, [{ days: ["sat"], start: "22:00", end: "07:00" }]);
  const file = readFileSync(join(home, "config", "settings.toml"), "utf8");
  assert.match(file, /battery_threshold_percent = 30/);

  // Out of range, and a second window with no day: both refused by the engine, each at its input.
  await type("[data-testid=power-battery_threshold_percent]", "140");
  await click("[data-testid=power-add-window]");
  await click("[data-testid=save]");
  await until("the percentage's error", async () => /140 is not a percentage/.test(await text("[data-testid='err-power.battery_threshold_percent']")), 10000);
  assert.ok(await hasClass("[data-testid=power-battery_threshold_percent]", "invalid"));
  assert.match(await text("[data-testid=err-power-window-1]"), /at least one day/);
  assert.ok(await hasClass("#power-window-1-days", "invalid"), "the days of the window at fault are marked");
  assert.equal(await text("[data-testid=err-power-window-0]"), "", "the good window has no error");
  assert.equal(await text("[data-testid=err-other]"), "", "nothing fell through to the catch-all");
  assert.equal(await text("[data-testid=saved]"), "");
  await screenshot("window-05-settings-power-invalid");
  assert.deepEqual((await api("GET", "/api/settings")).json.settings.power, saved, "nothing was saved");
  assert.equal(readFileSync(join(home, "config", "settings.toml"), "utf8"), file);
});
