// Small, pure formatting helpers shared by the pages.

import type { Outcome, OutcomeWord, Phase } from "./types";

export const PHASE_LABEL: Record<Phase, string> = {
  stopped: "Stopped",
  connecting: "Connecting…",
  ready: "Ready",
  busy: "Busy",
  draining: "Draining",
  degraded: "Warming up",
  paused: "Paused",
  offline: "Offline",
  error: "Error",
};

/** Phases in which the provider is (trying to be) on: the main button offers Stop. */
/** A provider paused by the power policy still runs (it resumes by itself), so it offers Stop. */
export function isRunning(p: Phase): boolean {
  return p !== "stopped" && p !== "error";
}

/** What the user reads for a job's outcome: the error's end status stays in the tooltip. */
export function outcomeWord(o: Outcome): OutcomeWord {
  return o === "complete" || o === "cancelled" || o === "lost" ? o : "failed";
}

export function credits(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(undefined).format(n);
}

export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** "3 s", "4 min", "2 h 5 min", "3 d". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

export function ago(ms: number | null | undefined, now: number): string {
  if (!ms) return "—";
  return `${duration(now - ms)} ago`;
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Creates an element with text and classes; the pages build DOM this way (no innerHTML). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: { cls?: string; text?: string; title?: string; attrs?: Record<string, string> } = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (opts.cls) e.className = opts.cls;
  if (opts.text !== undefined) e.textContent = opts.text;
  if (opts.title) e.title = opts.title;
  for (const [k, v] of Object.entries(opts.attrs ?? {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

export function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e;
}

export function setText(id: string, text: string): void {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
}
