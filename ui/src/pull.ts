// A model fetch as the pages show it (the dashboard's first-launch panel and Settings): a progress
// bar with bytes, rate and time left, Cancel while it runs, the reason and Retry when it ends
// without the model. A fetch's progress is not in the pushed status (it would push a snapshot per
// chunk to every window), so this one view reads it every half second while its fetch runs, and
// stops reading the moment it ends.

import { bytes, duration, el } from "./format";
import type { Transport } from "./transport";
import type { EngineKind, PullRequest, PullView } from "./types";

export const POLL_MS = 500;
const ASKING = "Asking the hub what to download…";

/** `org/name` or `org/name:file.gguf` (a page URL of the hub works too); `null` when empty. */
export function parseSpec(text: string): PullRequest | null {
  const t = text.trim();
  if (t === "") return null;
  // The `:` of `https://` is not the file separator.
  const scheme = t.indexOf("://");
  const colon = t.indexOf(":", scheme >= 0 ? scheme + 3 : 0);
  if (colon < 0) return { repo: t };
  const file = t.slice(colon + 1).trim();
  return file ? { repo: t.slice(0, colon), file } : { repo: t.slice(0, colon) };
}

/** The engine that serves a fetched model: llama.cpp for a GGUF file, else what runs a model
 * directory on this OS. */
export function engineOf(pull: PullView, modelDirEngine: EngineKind): EngineKind {
  const file = pull.path ?? pull.file ?? "";
  return file.toLowerCase().endsWith(".gguf") ? "gguf" : modelDirEngine;
}

export function specText(r: { repo: string; file?: string | null }): string {
  return r.file ? `${r.repo}:${r.file}` : r.repo;
}

/** "12 MB of 280 MB · 4.1 MB/s · 1 min left". */
export function progressText(p: PullView): string {
  if (p.bytes_total === 0) return p.state === "running" ? ASKING : "";
  const parts = [`${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`];
  if (p.state === "running") {
    if (p.rate_bps > 0) parts.push(`${bytes(p.rate_bps)}/s`);
    if (p.eta_s !== null) parts.push(`${duration(p.eta_s * 1000)} left`);
  }
  return parts.join(" · ");
}

/**
 * One fetch at a time, shown in `root`. `onDone` runs once the model is complete in the cache
 * (with the pull, whose `path` goes in `model_path`); its error, if it throws, is shown here.
 * `prefix` names the parts for tests (`<prefix>-progress`, `-bar`, `-cancel`, `-error`, `-retry`).
 */
export class PullBox {
  readonly root: HTMLElement;
  private readonly title: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly text: HTMLElement;
  private readonly note: HTMLElement;
  private readonly cancelButton: HTMLButtonElement;
  private readonly error: HTMLElement;
  private readonly retryButton: HTMLButtonElement;
  private readonly forceButton: HTMLButtonElement;
  private request: PullRequest | null = null;
  private id: string | null = null;
  private timer: number | undefined;
  private running = false;

  constructor(
    private readonly transport: Transport,
    prefix: string,
    private readonly onDone: (pull: PullView) => Promise<void> | void,
  ) {
    const tid = (part: string) => ({ "data-testid": `${prefix}-${part}` });
    this.title = el("p", { cls: "pull-title", attrs: tid("title") });
    this.bar = el("progress", { cls: "pull-bar", attrs: { ...tid("bar"), max: "1", value: "0" } });
    this.text = el("p", { cls: "fine pull-text", attrs: tid("text") });
    this.note = el("p", { cls: "fine pull-note", attrs: tid("note") });
    this.cancelButton = el("button", { cls: "small", text: "Cancel", attrs: { type: "button", ...tid("cancel") } });
    this.error = el("p", { cls: "error pull-error", attrs: { role: "alert", ...tid("error") } });
    this.retryButton = el("button", { cls: "small", text: "Retry", attrs: { type: "button", ...tid("retry") } });
    this.forceButton = el("button", { cls: "small hidden", text: "Fetch anyway", attrs: { type: "button", ...tid("force") } });
    this.root = el("div", { cls: "pull hidden", attrs: { ...tid("progress"), "aria-live": "polite" } }, [
      this.title,
      this.bar,
      el("div", { cls: "row pull-row" }, [this.text, this.cancelButton]),
      this.note,
      el("div", { cls: "row pull-row" }, [this.error, this.retryButton, this.forceButton]),
    ]);
    this.cancelButton.addEventListener("click", () => void this.cancel());
    this.retryButton.addEventListener("click", () => {
      if (this.request) void this.start(this.request);
    });
    // Only offered after the memory check refused it: the user may know better (other apps closed).
    this.forceButton.addEventListener("click", () => {
      if (this.request) void this.start({ ...this.request, force: true });
    });
  }

  /** A fetch is under way (or its result is being applied). */
  get busy(): boolean {
    return this.running;
  }

  async start(request: PullRequest): Promise<void> {
    this.stopPolling();
    this.request = request;
    this.running = true;
    this.root.classList.remove("hidden");
    this.title.textContent = `Fetching ${specText(request)}`;
    this.showError("");
    this.cancelButton.classList.remove("hidden");
    this.cancelButton.disabled = false;
    this.bar.removeAttribute("value"); // indeterminate until the sizes are known
    this.text.textContent = ASKING;
    this.note.textContent = "";
    try {
      const pull = await this.transport.pullModel(request);
      this.id = pull.id;
      await this.show(pull);
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  /** Hides the box (nothing running). */
  reset(): void {
    if (this.running) return;
    this.stopPolling();
    this.root.classList.add("hidden");
  }

  private async cancel(): Promise<void> {
    if (!this.id) return;
    this.cancelButton.disabled = true;
    try {
      await this.transport.cancelPull(this.id);
    } catch (e) {
      this.showError((e as Error).message);
    }
    // The next read shows it cancelled once it has stopped.
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    try {
      const pull = (await this.transport.pulls()).find((p) => p.id === this.id);
      if (!pull) return this.fail("The fetch is no longer known to Hearth (it restarted?).");
      await this.show(pull);
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  private async show(p: PullView): Promise<void> {
    if (p.bytes_total > 0) {
      this.bar.max = p.bytes_total;
      this.bar.value = p.bytes_done;
    }
    this.text.textContent = progressText(p);
    this.note.textContent = [p.memory?.summary, p.current_file && p.state === "running" ? `now: ${p.current_file}` : null]
      .filter((x): x is string => !!x)
      .join(" · ");
    if (p.state === "running") {
      this.timer = window.setTimeout(() => void this.poll(), POLL_MS);
      return;
    }
    this.cancelButton.classList.add("hidden");
    if (p.state === "cancelled") return this.fail("Cancelled. What was downloaded is kept: Retry resumes it.");
    if (p.state === "failed") {
      this.fail(p.error ?? "The fetch failed.");
      this.forceButton.classList.toggle("hidden", p.memory?.fit !== "does_not_fit");
      return;
    }
    this.title.textContent = `Fetched ${p.name ?? specText(p)}`;
    this.bar.max = 1;
    this.bar.value = 1;
    try {
      await this.onDone(p);
      this.running = false;
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  private fail(message: string): void {
    this.stopPolling();
    this.running = false;
    this.cancelButton.classList.add("hidden");
    if (this.request) this.title.textContent = `Not fetched: ${specText(this.request)}`;
    // An ended fetch is not "in progress": no indeterminate bar, no "asking the hub".
    if (!this.bar.hasAttribute("value")) this.bar.value = 0;
    if (this.text.textContent === ASKING) this.text.textContent = "";
    this.showError(message);
  }

  private showError(message: string): void {
    this.error.textContent = message;
    this.forceButton.classList.add("hidden");
    this.retryButton.classList.toggle("hidden", message === "" || this.request === null);
  }

  private stopPolling(): void {
    if (this.timer !== undefined) window.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
