// One UI, two ways to reach the engine. Inside the Tauri shell the engine runs in-process and is
// reached through IPC commands and a pushed `status` event; in an ordinary browser the same calls go
// to the local control API (the page is served by it, so requests are same-origin and carry the
// HttpOnly `hearth_token` cookie) and the snapshot stream is `GET /api/events` (SSE). Neither polls:
// the engine pushes every change. (A model fetch's progress is the one thing a page reads on a
// timer, and only while the fetch runs: see pull.ts.)

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

import type { DoctorReport, LogLevel, LogPage } from "./diagnostics-types";

import type {
  EarningsRange,
  EarningsReport,
  FieldError,
  LocalModel,
  Onboarding,
  PullRequest,
  PullView,
  SaveResult,
  Settings,
  SettingsView,
  Status,
} from "./types";

/** A failed call, with a message fit to show. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "TransportError";
  }
}

export type LinkState = "live" | "reconnecting" | "signed-out";

export interface Transport {
  readonly kind: "tauri" | "http";
  /** Calls `onStatus` with the current snapshot and then every change; returns an unsubscribe. */
  subscribe(onStatus: (s: Status) => void, onLink: (l: LinkState) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
  settings(): Promise<SettingsView>;
  saveSettings(patch: Partial<Settings>): Promise<SaveResult>;
  models(): Promise<LocalModel[]>;
  /** The first-launch view: this machine, the models on it, what to fetch, whether one is needed. */
  onboarding(): Promise<Onboarding>;
  /** Starts fetching a model from the Hugging Face hub (in the background). */
  pullModel(request: PullRequest): Promise<PullView>;
  /** Every fetch since the engine started, with its progress. */
  pulls(): Promise<PullView[]>;
  /** Cancels a running fetch (what it downloaded is kept for a resume), or forgets an ended one. */
  cancelPull(id: string): Promise<void>;
  earnings(range: EarningsRange): Promise<EarningsReport>;
  /** The range's jobs as CSV text (the ledger's one export writer, as `hearth earnings export`). */
  earningsCsv(range: EarningsRange): Promise<string>;
  /** The engine's recent log lines (redacted), at `level` and above, newest last. */
  logs(level: LogLevel | "", limit: number): Promise<LogPage>;
  /** Runs the doctor's checks now. */
  doctor(): Promise<DoctorReport>;
  /** Stores the provider token in the OS keychain; `null` removes it. Only the shell can. */
  readonly canEditToken: boolean;
  setToken(token: string | null): Promise<void>;
  openSettings(): void;
  openDashboard(): void;
  /** Closes the settings view (a window in the shell, a page in the browser). */
  closeSettings(): void;
}

export function inTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

export async function connect(): Promise<Transport> {
  // Statically imported: @tauri-apps/api touches Tauri's globals only when called, and a lazy
  // chunk would go through Vite's preload helper, whose link events WebKitGTK never fires for the
  // tauri:// protocol (the page then waits forever).
  if (inTauri()) return new TauriTransport(invoke as Invoke, listen as Listen);
  return new HttpTransport();
}

type Invoke = <T>(cmd: string, args?: Record<string, unknown>) => Promise<T>;
type Listen = <T>(event: string, cb: (e: { payload: T }) => void) => Promise<() => void>;

/** What the shell's commands reject with (see src-tauri/shell/src/commands.rs). */
interface ShellError {
  kind: "invalid" | "failed";
  message?: string;
  errors?: FieldError[];
}

function shellMessage(e: unknown): string {
  if (typeof e === "string") return e;
  const se = e as ShellError;
  return se?.message ?? JSON.stringify(e);
}

class TauriTransport implements Transport {
  readonly kind = "tauri" as const;
  readonly canEditToken = true;

  constructor(
    private invoke: Invoke,
    private listen: Listen,
  ) {}

  private async call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    try {
      return await this.invoke<T>(cmd, args);
    } catch (e) {
      throw new TransportError(shellMessage(e));
    }
  }

  subscribe(onStatus: (s: Status) => void, onLink: (l: LinkState) => void): () => void {
    let unlisten: (() => void) | undefined;
    let closed = false;
    // Listen first, then ask for the current snapshot, so no change falls in between.
    void this.listen<Status>("status", (e) => onStatus(e.payload)).then((u) => {
      if (closed) u();
      else unlisten = u;
      void this.call<Status>("status").then(onStatus);
      onLink("live");
    });
    return () => {
      closed = true;
      unlisten?.();
    };
  }

  start(): Promise<void> {
    return this.call("start");
  }
  stop(): Promise<void> {
    return this.call("stop");
  }
  settings(): Promise<SettingsView> {
    return this.call("get_settings");
  }
  async saveSettings(patch: Partial<Settings>): Promise<SaveResult> {
    try {
      const settings = await this.invoke<Settings>("put_settings", { patch });
      return { ok: true, settings };
    } catch (e) {
      const se = e as ShellError;
      if (se?.kind === "invalid" && se.errors) return { ok: false, errors: se.errors };
      throw new TransportError(shellMessage(e));
    }
  }
  async models(): Promise<LocalModel[]> {
    return this.call("models");
  }
  onboarding(): Promise<Onboarding> {
    return this.call("onboarding");
  }
  pullModel(request: PullRequest): Promise<PullView> {
    return this.call("pull_model", { request });
  }
  pulls(): Promise<PullView[]> {
    return this.call("pulls");
  }
  async cancelPull(id: string): Promise<void> {
    await this.call("cancel_pull", { id });
  }
  earnings(range: EarningsRange): Promise<EarningsReport> {
    return this.call("earnings", { range });
  }
  earningsCsv(range: EarningsRange): Promise<string> {
    return this.call("earnings_csv", { range });
  }
  logs(level: LogLevel | "", limit: number): Promise<LogPage> {
    return this.call("logs", { level: level || null, limit });
  }
  doctor(): Promise<DoctorReport> {
    return this.call("doctor");
  }
  setToken(token: string | null): Promise<void> {
    return this.call("set_token", { token });
  }
  openSettings(): void {
    void this.call("open_window", { which: "settings" });
  }
  openDashboard(): void {
    void this.call("open_window", { which: "dashboard" });
  }
  closeSettings(): void {
    void this.call("close_window", { which: "settings" });
  }
}

class HttpTransport implements Transport {
  readonly kind = "http" as const;
  readonly canEditToken = false;

  private async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new TransportError(`Hearth is not reachable: ${(e as Error).message}`);
    }
    const json = (await response.json().catch(() => ({}))) as T;
    return { status: response.status, json };
  }

  private async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, json } = await this.request<T>(method, path, body);
    if (status >= 200 && status < 300) return json;
    const message = (json as { error?: string }).error ?? `the control API answered ${status}`;
    throw new TransportError(status === 401 ? "Not signed in: open this page from the Hearth app." : message, status);
  }

  subscribe(onStatus: (s: Status) => void, onLink: (l: LinkState) => void): () => void {
    // EventSource reconnects by itself after a drop; the first event after that is a full snapshot.
    const source = new EventSource("/api/events", { withCredentials: true });
    source.addEventListener("status", (e) => {
      onLink("live");
      onStatus(JSON.parse((e as MessageEvent<string>).data) as Status);
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // A 401 closes the stream for good: without the cookie nothing will get better.
        onLink("signed-out");
      } else {
        onLink("reconnecting");
      }
    };
    return () => source.close();
  }

  async start(): Promise<void> {
    await this.ok("POST", "/api/start");
  }
  async stop(): Promise<void> {
    await this.ok("POST", "/api/stop");
  }
  settings(): Promise<SettingsView> {
    return this.ok("GET", "/api/settings");
  }
  async saveSettings(patch: Partial<Settings>): Promise<SaveResult> {
    const { status, json } = await this.request<{ settings?: Settings; errors?: FieldError[]; error?: string }>(
      "PUT",
      "/api/settings",
      patch,
    );
    if (status === 422 && json.errors) return { ok: false, errors: json.errors };
    if (status >= 200 && status < 300 && json.settings) return { ok: true, settings: json.settings };
    throw new TransportError(json.error ?? `saving failed (${status})`, status);
  }
  async models(): Promise<LocalModel[]> {
    const r = await this.ok<{ models: LocalModel[] }>("GET", "/api/models");
    return r.models;
  }
  onboarding(): Promise<Onboarding> {
    return this.ok("GET", "/api/onboarding");
  }
  async pullModel(request: PullRequest): Promise<PullView> {
    const r = await this.ok<{ pull: PullView }>("POST", "/api/models/pull", request);
    return r.pull;
  }
  async pulls(): Promise<PullView[]> {
    const r = await this.ok<{ pulls: PullView[] }>("GET", "/api/models/pulls");
    return r.pulls;
  }
  async cancelPull(id: string): Promise<void> {
    await this.ok("DELETE", `/api/models/pulls/${encodeURIComponent(id)}`);
  }
  earnings(range: EarningsRange): Promise<EarningsReport> {
    return this.ok("GET", `/api/earnings?range=${encodeURIComponent(range)}&limit=50`);
  }
  async earningsCsv(range: EarningsRange): Promise<string> {
    // Not a plain link: the request must carry the control cookie and its errors must be shown,
    // so the page fetches the file and hands it to the browser as a Blob.
    let response: Response;
    try {
      response = await fetch(`/api/earnings.csv?range=${encodeURIComponent(range)}`, { credentials: "same-origin" });
    } catch (e) {
      throw new TransportError(`Hearth is not reachable: ${(e as Error).message}`);
    }
    if (response.ok) return response.text();
    const json = (await response.json().catch(() => ({}))) as { error?: string };
    throw new TransportError(json.error ?? `the export failed (${response.status})`, response.status);
  }
  logs(level: LogLevel | "", limit: number): Promise<LogPage> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (level) q.set("level", level);
    return this.ok("GET", `/api/logs?${q.toString()}`);
  }
  doctor(): Promise<DoctorReport> {
    return this.ok("GET", "/api/doctor");
  }
  setToken(): Promise<void> {
    return Promise.reject(new TransportError("The provider token can only be changed in the Hearth app."));
  }
  openSettings(): void {
    window.location.assign("settings.html");
  }
  openDashboard(): void {
    window.location.assign("./");
  }
  closeSettings(): void {
    window.location.assign("./");
  }
}
