// The dashboard's doctor card and log view. The doctor runs once when the page opens and again on
// "Run again"; the log view is read only while it is open: when it opens, when its level changes,
// and when a pushed status snapshot says something happened (at most once a second) — never on a
// timer, so an idle dashboard still makes no requests.

import { el, setText, $ } from "./format";
import type { DoctorReport, LogLevel, LogLine } from "./diagnostics-types";
import type { Transport } from "./transport";

/** Lines the log view asks for; the engine keeps up to 2000. */
const LOG_LIMIT = 500;
const LOG_MIN_GAP_MS = 1000;

export interface Diagnostics {
  /** Call on every pushed status snapshot. */
  onStatus(): void;
}

export function mountDiagnostics(transport: Transport): Diagnostics {
  const doctor = new DoctorCard(transport);
  const logs = new LogView(transport);
  void doctor.run();
  return { onStatus: () => logs.poke() };
}

class DoctorCard {
  private running = false;

  constructor(private transport: Transport) {
    $("doctor-run").addEventListener("click", () => void this.run());
  }

  async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const button = $("doctor-run") as HTMLButtonElement;
    button.disabled = true;
    setText("doctor-summary", "running the checks…");
    try {
      this.render(await this.transport.doctor());
    } catch (e) {
      setText("doctor-summary", `the checks could not run: ${(e as Error).message}`);
    } finally {
      this.running = false;
      button.disabled = false;
    }
  }

  private render(r: DoctorReport): void {
    const count = (v: string) => r.checks.filter((c) => c.verdict === v).length;
    const parts = [`${count("ok")} ok`];
    if (count("warn")) parts.push(`${count("warn")} warn`);
    if (count("fail")) parts.push(`${count("fail")} fail`);
    setText("doctor-summary", parts.join(" · "));
    const card = $("doctor-card");
    card.dataset.verdict = r.verdict;
    $("doctor-checks").replaceChildren(
      ...r.checks.map((c) =>
        el("li", { cls: `check ${c.verdict}`, attrs: { "data-check": c.name, "data-verdict": c.verdict } }, [
          el("span", { cls: `badge ${c.verdict}`, text: c.verdict }),
          el("span", { cls: "check-title", text: c.title }),
          el("span", { cls: "check-detail", text: c.detail }),
          ...(c.verdict === "ok" ? [] : [el("span", { cls: "check-action", text: c.action })]),
        ]),
      ),
    );
  }
}

class LogView {
  private lastSeq = -1;
  private lastLevel: string | null = null;
  private lastFetch = 0;
  private timer: number | undefined;
  private inFlight = false;

  constructor(private transport: Transport) {
    const card = $("log-card") as HTMLDetailsElement;
    card.addEventListener("toggle", () => {
      if (card.open) void this.refresh();
    });
    $("log-level").addEventListener("change", () => void this.refresh());
  }

  private get open(): boolean {
    return ($("log-card") as HTMLDetailsElement).open;
  }

  /** Something happened: re-read soon, if the view is open. */
  poke(): void {
    if (!this.open || this.timer !== undefined) return;
    const wait = Math.max(0, this.lastFetch + LOG_MIN_GAP_MS - Date.now());
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, wait);
  }

  private async refresh(): Promise<void> {
    if (!this.open || this.inFlight) return;
    this.inFlight = true;
    this.lastFetch = Date.now();
    const level = ($("log-level") as HTMLSelectElement).value as LogLevel | "";
    try {
      const page = await this.transport.logs(level, LOG_LIMIT);
      if (page.last_seq === this.lastSeq && level === this.lastLevel) return;
      this.lastSeq = page.last_seq;
      this.lastLevel = level;
      this.render(page.lines);
    } catch (e) {
      setText("log-note", `Logs unavailable: ${(e as Error).message}`);
    } finally {
      this.inFlight = false;
    }
  }

  private render(lines: LogLine[]): void {
    const box = $("log-lines");
    // Keep the reader's place unless they were already at the bottom (newest last).
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    setText("log-note", lines.length ? `${lines.length} line(s), newest last` : "No lines at this level yet.");
    box.replaceChildren(
      ...lines.map((l) =>
        el("div", { cls: `log-line ${l.level}`, attrs: { "data-level": l.level, "data-seq": String(l.seq) } }, [
          el("span", { cls: "log-time", text: time(l.ts_ms) }),
          el("span", { cls: "log-level", text: l.level.toUpperCase().padEnd(5) }),
          el("span", { cls: "log-target", text: l.target }),
          ...(l.spans.length ? [el("span", { cls: "log-spans", text: l.spans.join(":") })] : []),
          el("span", { cls: "log-message", text: l.message }),
          ...(l.fields.length ? [el("span", { cls: "log-fields", text: l.fields.map(([k, v]) => `${k}=${v}`).join(" ") })] : []),
        ]),
      ),
    );
    if (atBottom) box.scrollTop = box.scrollHeight;
  }
}

function time(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
