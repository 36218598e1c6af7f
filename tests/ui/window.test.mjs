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

import { ARTIFACTS, ROOT, freePort, sleep, startPool, tempDir, until } from "./harness.mjs";

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
    `coordinator = "${pool.ws}"\nprovider_id = "window-test"\nslots = 1\nengine = "scripted"\npause_on_battery = false\n`,
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
