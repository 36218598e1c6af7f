// The dashboard (tray popover / window / browser page): everything comes from the pushed Status
// snapshot; the earnings report is re-read only when the snapshot says the earnings moved.

import "./style.css";
import { HourlyChart, Sparkline } from "./charts";
import { $, ago, clock, credits, duration, el, isRunning, outcomeWord, PHASE_LABEL, setText } from "./format";
import { formatCreditsUsd } from "./money";
import { mountDiagnostics, type Diagnostics } from "./diagnostics";
import { mountOnboarding, type OnboardingPanel } from "./onboarding";
import { connect, type LinkState, type Transport } from "./transport";
import type { EarningsRange, EarningsReport, PowerView, Status } from "./types";

const RECENT_SHOWN = 8;

let transport: Transport;
let status: Status | null = null;
let range: EarningsRange = "today";
let report: EarningsReport | null = null;
let reportKey = "";
let reportSeq = 0;
let pending = false;
let hourly: HourlyChart;
let spark: Sparkline;
let diagnostics: Diagnostics | undefined;
let onboarding: OnboardingPanel | undefined;

async function main(): Promise<void> {
  transport = await connect();
  hourly = new HourlyChart($("hourly-chart"));
  spark = new Sparkline($("spark"));
  diagnostics = mountDiagnostics(transport);
  onboarding = mountOnboarding(transport, () => status && render(status));
  $("toggle").addEventListener("click", () => void toggle());
  $("open-settings").addEventListener("click", () => transport.openSettings());
  $("export-csv").addEventListener("click", () => void exportCsv());
  for (const b of $("range").querySelectorAll<HTMLButtonElement>("button[data-range]")) {
    b.addEventListener("click", () => {
      range = b.dataset.range as EarningsRange;
      for (const o of $("range").querySelectorAll("button")) o.setAttribute("aria-selected", String(o === b));
      reportKey = "";
      if (status) refreshEarnings(status);
    });
  }
  transport.subscribe(onStatus, onLink);
  // Ages ("heartbeat 3 s ago") move with the clock even when nothing is pushed; this only
  // re-renders what we already have, it asks the engine nothing.
  window.setInterval(() => {
    if (status && !document.hidden) renderHealth(status);
  }, 1000);
}

function onLink(l: LinkState): void {
  const banner = $("link-banner");
  const text =
    l === "live"
      ? ""
      : l === "reconnecting"
        ? "Lost contact with Hearth; reconnecting…"
        : "Not signed in: open the dashboard from the Hearth app.";
  banner.textContent = text;
  banner.classList.toggle("hidden", text === "");
}

function onStatus(s: Status): void {
  status = s;
  diagnostics?.onStatus();
  onboarding?.onStatus(s);
  const tps = s.active_jobs.reduce((sum, j) => sum + (j.tokens_per_s ?? 0), 0);
  spark.push(Date.now(), tps);
  render(s);
  refreshEarnings(s);
}

async function toggle(): Promise<void> {
  if (!status) return;
  const button = $("toggle") as HTMLButtonElement;
  pending = true;
  button.disabled = true;
  try {
    if (isRunning(status.phase)) await transport.stop();
    else await transport.start();
  } catch (e) {
    showError((e as Error).message);
  } finally {
    pending = false;
    render(status);
  }
}

function showError(message: string): void {
  const banner = $("link-banner");
  banner.textContent = message;
  banner.classList.remove("hidden");
}

function render(s: Status): void {
  // While the first-launch panel asks for a model, the provider's "no model" error is not news.
  const settingUp = onboarding?.active === true && s.phase !== "ready" && s.phase !== "busy";
  $("state").dataset.phase = settingUp ? "stopped" : s.phase;
  setText("state-label", settingUp ? "Choose a model" : PHASE_LABEL[s.phase]);
  setText("reason", settingUp ? "" : s.not_earning ?? s.reason);
  $("reason").classList.toggle("ok", !s.not_earning);
  const button = $("toggle") as HTMLButtonElement;
  const running = isRunning(s.phase);
  button.textContent = running ? "Stop" : "Start";
  button.classList.toggle("primary", !running);
  button.disabled = pending || s.phase === "draining";

  const e = s.earnings;
  const usd = (n: number) => formatCreditsUsd(n, e.usd_per_million_credits);
  const tiles: [string, number][] = [
    ["earn-today", e.today_estimated_credits],
    ["earn-7d", e.last_7_days_estimated_credits],
    ["earn-30d", e.last_30_days_estimated_credits ?? 0],
    ["earn-total", e.total_estimated_credits],
  ];
  for (const [id, n] of tiles) {
    setText(id, usd(n));
    setText(`${id}-credits`, `${credits(n)} credits`);
  }
  const rate = effectiveRateText(e.usd_per_million_credits);
  const notes = [`Estimated (rate card ${e.rate_card_version || "?"}, ${e.rate_card_source || "?"}; ${rate})`];
  if (e.credited_total_credits !== null && e.credited_total_credits !== undefined) {
    notes.push(`credited by the pool: ${usd(e.credited_total_credits)} (${credits(e.credited_total_credits)} credits)`);
    if (e.estimated_minus_credited) {
      notes.push(`gap ${usd(e.estimated_minus_credited)} (${credits(e.estimated_minus_credited)} credits)`);
    }
  }
  if (e.lost_jobs > 0) notes.push(`${e.lost_jobs} job(s) lost to disconnects, unpaid`);
  if (e.error) notes.push(e.error);
  setText("earn-note", notes.join(" · "));

  renderPower(s);
  renderLive(s);
  renderHealth(s);
  renderPool(s);
  renderRecent(s);
  setText("foot", `${s.provider_id} · ${s.model_id || "default model"} · ${s.engine} engine`);
}

/** The power policy's verdict; a provider without one (plain `hearth serve`) shows no card. */
function renderPower(s: Status): void {
  const p = s.power ?? null;
  const card = $("power-card");
  card.classList.toggle("hidden", p === null);
  card.classList.toggle("warn", p !== null && p.mode !== "serving");
  card.dataset.mode = p?.mode ?? "";
  setText("h-power", p?.reason ?? "—");
  setText("h-power-source", p ? powerSource(p) : "—");
  setText("h-thermal", p?.thermal ?? "—");
  setText("h-idle", p?.idle_s !== null && p?.idle_s !== undefined ? duration(p.idle_s * 1000) : "—");
  setText("h-keep-awake", p ? (p.keep_awake ? "on" : "off") : "—");
}

function powerSource(p: PowerView): string {
  const source = p.power_source === "external" ? "power adapter" : p.power_source === "battery" ? "battery" : "unknown";
  return p.charge_percent !== null && p.charge_percent !== undefined ? `${source} · ${p.charge_percent} %` : source;
}

function renderLive(s: Status): void {
  const busy = s.slots_total - s.slots_free;
  const tps = s.active_jobs.reduce((sum, j) => sum + (j.tokens_per_s ?? 0), 0);
  setText("live-summary", `${s.active_jobs.length} job(s) · ${busy}/${s.slots_total} slots · ${tps.toFixed(1)} tok/s`);
  const list = $("active-jobs");
  list.replaceChildren(
    ...s.active_jobs.map((j) =>
      el("li", { cls: "job active" }, [
        el("span", { cls: "model", text: j.model }),
        el("span", { cls: "num", text: `${j.completion_tokens} tok` }),
        el("span", { cls: "num", text: j.tokens_per_s ? `${j.tokens_per_s.toFixed(1)} tok/s` : "prefill" }),
      ]),
    ),
  );
}

/** The session's protocol and encryption, e.g. "v2 · A256GCM · kid DqOg… · 2 rekeys". */
function protocolText(c: Status["connection"]): string {
  if (!c.protocol) return "—";
  if (c.protocol === "v1") return c.v1_fallback ? "v1 (plaintext: this coordinator refused v2)" : "v1 (plaintext)";
  const leg = c.encrypted_leg;
  if (!leg) return c.protocol;
  const rekeys = c.rekeys ?? 0;
  return `${c.protocol} · ${leg.alg} · kid ${leg.kid.slice(0, 6)}… · ${rekeys} rekey${rekeys === 1 ? "" : "s"}`;
}

function renderHealth(s: Status): void {
  const c = s.connection;
  const now = Date.now();
  setText("coord-url", c.coordinator_url);
  setText("h-rtt", c.rtt_ms !== null && c.rtt_ms !== undefined ? `${c.rtt_ms.toFixed(1)} ms` : "—");
  setText("h-protocol", protocolText(c));
  setText("h-hb", ago(c.last_heartbeat_sent_ms, now));
  setText("h-frame", ago(c.last_frame_received_ms, now));
  setText("h-uptime", c.connected && c.session_started_ms ? duration(now - c.session_started_ms) : "not connected");
  setText("h-reconnects", String(c.reconnects));
  setText(
    "h-close",
    c.last_close_code ? `${c.last_close_code}${c.last_close_reason ? ` ${c.last_close_reason}` : ""}` : c.last_error ?? "—",
  );
}

function renderPool(s: Status): void {
  const p = s.pool;
  const list = $("pool-models");
  if (!p || (!p.fetched_ms && p.error)) {
    setText("pool-summary", p?.error ? `unknown: ${p.error}` : "not known yet");
    list.replaceChildren();
    return;
  }
  setText("pool-summary", `${p.providers_ready}/${p.providers_total} providers ready${p.status ? ` · ${p.status}` : ""}`);
  list.replaceChildren(
    ...p.models.map((m) =>
      el("li", { cls: `model-row ${m.available ? "up" : "down"}`, attrs: { "data-model": m.id } }, [
        el("span", { cls: "dot", attrs: { "aria-hidden": "true" } }),
        el("span", { cls: "model", text: m.id, title: m.availability }),
        el("span", { cls: "num", text: `${m.ready_provider_count}/${m.provider_count} ready` }),
        el("span", { cls: "num", text: `${m.slots_free}/${m.total_slots} free` }),
      ]),
    ),
  );
}

/** "$1 = 1,000,000 credits" at the card's rate. */
function effectiveRateText(usdPerMillion: number | undefined): string {
  return `${formatCreditsUsd(1_000_000, usdPerMillion)} per 1,000,000 credits`;
}

/** The report's range, model by model, dollars beside credits. */
function renderByModel(r: EarningsReport): void {
  const rate = status?.earnings.usd_per_million_credits ?? r.usd_per_million_credits;
  const body = $("by-model");
  const label = RANGE_LABEL[r.range];
  setText("by-model-summary", `${label} · ${r.period.jobs} job(s) · ${formatCreditsUsd(r.period.estimated_credits, rate)}`);
  if (r.by_model.length === 0) {
    body.replaceChildren(el("tr", {}, [el("td", { cls: "empty", text: "No jobs in this range.", attrs: { colspan: "4" } })]));
    return;
  }
  body.replaceChildren(
    ...r.by_model.map((m) => {
      const unpaid = m.lost_jobs + m.error_jobs;
      return el("tr", { attrs: { "data-model": m.model_id } }, [
        el("td", { cls: "model", text: m.model_id, title: m.model_id }),
        el("td", {
          cls: "num jobs",
          text: String(m.jobs),
          title: unpaid > 0 ? `${m.lost_jobs} lost, ${m.error_jobs} failed: unpaid` : "",
        }),
        el("td", { cls: "num credits", text: credits(m.estimated_credits) }),
        el("td", { cls: "num usd", text: formatCreditsUsd(m.estimated_credits, rate) }),
      ]);
    }),
  );
}

const RANGE_LABEL: Record<EarningsRange, string> = { today: "Today", "7d": "7 days", "30d": "30 days", all: "All time" };

/** Downloads the selected range as CSV: fetched (with the control cookie, or over IPC in the app),
 * then saved through a temporary `<a download>` of a Blob. */
async function exportCsv(): Promise<void> {
  const button = $("export-csv") as HTMLButtonElement;
  button.disabled = true;
  try {
    const text = await transport.earningsCsv(range);
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const a = el("a", { attrs: { href: url, download: `hearth-earnings-${range}.csv` } });
    a.classList.add("hidden");
    document.body.append(a);
    a.click();
    a.remove();
    // The click has handed the Blob to the download; revoke on the next turn, not before it.
    window.setTimeout(() => URL.revokeObjectURL(url), 0);
  } catch (e) {
    showError(`Export failed: ${(e as Error).message}`);
  } finally {
    button.disabled = false;
  }
}

function renderRecent(s: Status): void {
  const creditsById = new Map((report?.recent_jobs ?? []).map((j) => [j.request_id, j.estimated_credits]));
  setText("jobs-summary", `${s.jobs_completed} done · ${s.jobs_failed} failed · ${s.jobs_lost} lost`);
  const list = $("recent-jobs");
  const jobs = s.recent_jobs.slice(0, RECENT_SHOWN);
  if (jobs.length === 0) {
    list.replaceChildren(el("li", { cls: "empty", text: "No jobs yet." }));
    return;
  }
  list.replaceChildren(
    ...jobs.map((j) => {
      const c = creditsById.get(j.request_id);
      const word = outcomeWord(j.outcome);
      return el("li", { cls: `job ${word}`, title: j.reason ?? j.status, attrs: { "data-request-id": j.request_id } }, [
        el("span", { cls: "time", text: clock(j.ended_ms) }),
        el("span", { cls: "model", text: j.model }),
        el("span", { cls: "num", text: `${j.prompt_tokens}+${j.completion_tokens} tok` }),
        el("span", {
          cls: `outcome ${word}`,
          text:
            word === "complete"
              ? c !== undefined
                ? `+${formatCreditsUsd(c, s.earnings.usd_per_million_credits)} · ${credits(c)} cr`
                : "✓"
              : word,
        }),
      ]);
    }),
  );
}

/** Re-reads the report when the jobs or the hour changed, or the range did. */
function refreshEarnings(s: Status): void {
  const hour = Math.floor(Date.now() / 3_600_000);
  const e = s.earnings;
  // The rate is in the key: a rate card arriving re-prices the by-model table's dollars.
  const key = `${range}|${e.total_jobs}|${e.total_estimated_credits}|${e.usd_per_million_credits}|${hour}`;
  if (key === reportKey) return;
  reportKey = key;
  const seq = ++reportSeq;
  transport
    .earnings(range)
    .then((r) => {
      if (seq !== reportSeq) return;
      report = r;
      hourly.set(r.hourly);
      renderByModel(r);
      if (status) renderRecent(status);
    })
    .catch((e: Error) => {
      if (seq === reportSeq) setText("earn-note", `Earnings history unavailable: ${e.message}`);
    });
}

void main().catch((e: Error) => showError(e.message));
