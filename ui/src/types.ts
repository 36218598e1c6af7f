// The engine's JSON shapes, as the control API and the shell's IPC both serve them
// (src-tauri/engine/src/status.rs, app/mod.rs, models.rs, earnings.rs). Only the fields the UI reads
// are typed; the engine may add more.

export type Phase =
  | "stopped"
  | "connecting"
  | "ready"
  | "busy"
  | "draining"
  | "degraded"
  | "paused"
  | "offline"
  | "error";

export interface ConnectionHealth {
  coordinator_url: string;
  connected: boolean;
  assigned_id: string | null;
  heartbeat_interval_s: number | null;
  last_heartbeat_sent_ms: number | null;
  last_frame_received_ms: number | null;
  rtt_ms: number | null;
  reconnects: number;
  session_started_ms: number | null;
  last_close_code: number | null;
  last_close_reason: string | null;
  last_error: string | null;
  protocol?: string | null;
  encrypted_leg?: { alg: string; kid: string; chunk_envelope: boolean; in_band_rekey: boolean } | null;
  rekeys?: number;
  v1_fallback?: boolean;
}

export interface ActiveJob {
  request_id: string;
  model: string;
  stream: boolean;
  started_ms: number;
  completion_tokens: number;
  tokens_per_s: number | null;
}

/** How a finished job ended, as the engine's status and the ledger both write it: any error end is
 * `error:<end status>` (e.g. `error:error_queue_full`). `outcomeWord` turns it into what the user reads. */
export type Outcome = "complete" | "cancelled" | "lost" | `error:${string}`;

/** The word the dashboard shows (and styles) for an outcome: every `error:*` is "failed". */
export type OutcomeWord = "complete" | "cancelled" | "failed" | "lost";

export interface FinishedJob {
  request_id: string;
  model: string;
  outcome: Outcome;
  status: string;
  reason: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  started_ms: number;
  ended_ms: number;
  prefill_ms: number;
  decode_ms: number;
}

export interface PoolModel {
  id: string;
  provider_count: number;
  ready_provider_count: number;
  total_slots: number;
  slots_free: number;
  available: boolean;
  availability: string;
}

export interface PoolView {
  gateway_url: string;
  status: string | null;
  providers_total: number;
  providers_ready: number;
  models: PoolModel[];
  fetched_ms: number | null;
  error: string | null;
}

export interface EarningsBrief {
  today_estimated_credits: number;
  last_7_days_estimated_credits: number;
  last_30_days_estimated_credits: number;
  total_estimated_credits: number;
  today_jobs: number;
  total_jobs: number;
  lost_jobs: number;
  credited_total_credits: number | null;
  credited_window_credits: number | null;
  credited_fetched_ms: number | null;
  estimated_minus_credited: number | null;
  rate_card_version: string;
  rate_card_source: string;
  /** Dollars per million credits from the card in force; 0/absent means the protocol's 1.0. */
  usd_per_million_credits?: number;
  error: string | null;
}

export interface FieldError {
  field: string;
  message: string;
}

export interface Status {
  phase: Phase;
  reason: string;
  provider_id: string;
  model_id: string;
  engine: string;
  slots_total: number;
  slots_free: number;
  connection: ConnectionHealth;
  active_jobs: ActiveJob[];
  recent_jobs: FinishedJob[];
  jobs_completed: number;
  jobs_failed: number;
  jobs_lost: number;
  updated_ms: number;
  not_earning: string | null;
  last_request_ms: number | null;
  pool: PoolView | null;
  earnings: EarningsBrief;
  settings: { path: string; errors: FieldError[]; pinned: string[] };
  /** The power policy in force; null where there is none (a bare provider). */
  power?: PowerView | null;
}

/** The power policy's verdict (src-tauri/engine/src/status.rs, `PowerView`). */
export interface PowerView {
  rule: "none" | "battery" | "thermal" | "user_active" | "schedule";
  /** `pausing`: finishing the jobs it holds, taking none. */
  mode: "serving" | "yielding" | "backing_off" | "pausing" | "paused";
  /** In words, e.g. "Paused: on battery at 38 %, below 50 %". */
  reason: string;
  slots_allowed: number;
  slots_total: number;
  power_source: "external" | "battery" | "unknown";
  charge_percent: number | null;
  /** `nominal`, `fair`, `serious`, `critical`; null without a thermal probe. */
  thermal: string | null;
  /** Seconds since the last keyboard or mouse input; null when it cannot be known. */
  idle_s: number | null;
  keep_awake: boolean;
  since_ms: number;
}

export type EngineKind = "cpu" | "mlx" | "gguf" | "loopback" | "scripted";

/** `settings.toml`; `coordinator` is `"local_pool"` or a URL. */
export interface Settings {
  coordinator: string;
  provider_id: string;
  model_path?: string | null;
  /** More folders to look for models in (absolute paths); absent when there are none. */
  model_folders?: string[];
  engine: EngineKind;
  loopback_url?: string | null;
  /** Absent or null: the engine chooses (from RAM and the model's size). */
  slots?: number | null;
  start_at_login: boolean;
  power: PowerSettings;
  control_port?: number | null;
  /** How sessions open: v2 (encrypted) with a v1 fallback, v2 only, or v1 only. */
  protocol?: "auto" | "v2" | "v1";
}

export type Day = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";

/** Serving is allowed on `days` from `start` to `end` ("HH:MM", local time); an `end` at or before
 * `start` runs past midnight, and `days` name the day a window starts on. */
export interface ScheduleWindow {
  days: Day[];
  start: string;
  end: string;
}

/** The `[power]` table (src-tauri/settings/src/power.rs). The settings API replaces it whole. */
export interface PowerSettings {
  on_battery: "pause" | "pause_below" | "never";
  /** Used with `pause_below` (0–100). */
  battery_threshold_percent: number;
  /** `back_off`: one slot at `serious`, pause at `critical`. */
  thermal: "back_off" | "ignore";
  user_active: "yield" | "pause" | "ignore";
  /** Slots offered while the user is active (with `yield`); at least 1. */
  yield_slots: number;
  /** Minutes without input after which the user counts as away (1–1440). */
  idle_minutes: number;
  /** Absent when empty: serve any time. */
  schedule?: ScheduleWindow[];
}

export interface SettingsView {
  settings: Settings;
  path: string;
  errors: FieldError[];
  pinned: string[];
  effective: {
    coordinator: string;
    provider_id: string;
    slots: number | null;
    engine: EngineKind;
    model_id: string | null;
    model_path: string | null;
  };
  /** `keychain`, `env`, or null when there is no token; the token itself is never served. */
  token_source: string | null;
}

/** Where a model was found, in the order the picker groups them. */
export type ModelSource = "hearth_models" | "hugging_face_cache" | "lm_studio" | "ollama" | "user_folder";

/** The engine that runs a model (spelled as the `engine` setting's values). */
export type ModelEngine = "gguf" | "mlx" | "cpu";

/** The memory estimate against this machine's RAM. */
export type Fit = "fits" | "tight" | "does_not_fit";

export interface LocalModel {
  name: string;
  /** What goes in `model_path`. */
  path: string;
  source: ModelSource;
  /** `null` for an entry about a folder (missing, unreadable, empty) rather than a model. */
  format: "safetensors" | "gguf" | null;
  engine: ModelEngine | null;
  family: string | null;
  quantization: { bits: number | null; group_size: number | null; mode: string } | null;
  context_length: number | null;
  size_bytes: number;
  estimated_memory_bytes: number | null;
  machine_ram_bytes: number | null;
  fit: Fit | null;
  loadable: boolean;
  /** Why it cannot be loaded (first), then warnings; each names the file and what to do. */
  problems: string[];
}

export type EarningsRange = "today" | "7d" | "30d" | "all";

export interface PeriodTotals {
  jobs: number;
  prompt_tokens: number;
  completion_tokens: number;
  estimated_credits: number;
  lost_jobs: number;
  error_jobs: number;
}

export interface HourBucket {
  hour_start_unix_ms: number;
  jobs: number;
  tokens: number;
  estimated_credits: number;
}

export interface JobRecord {
  request_id: string;
  model_id: string;
  prompt_tokens: number;
  completion_tokens: number;
  ended_at: number;
  outcome: Outcome;
  reason: string | null;
  estimated_credits: number;
}

/** One model's totals over the report's range (`by_model`). */
export interface ModelTotals extends PeriodTotals {
  model_id: string;
}

export interface EarningsReport {
  range: EarningsRange;
  period: PeriodTotals;
  /** The range's totals per model, best-earning first; they sum to `period`. */
  by_model: ModelTotals[];
  usd_per_million_credits: number;
  hourly_from_unix_ms: number;
  hourly: HourBucket[];
  recent_jobs: JobRecord[];
  rate_card_version: string;
  rate_card_source: string;
}

/** A settings save either applied or was refused field by field (nothing saved). */
export type SaveResult = { ok: true; settings: Settings } | { ok: false; errors: FieldError[] };

/** A model fetch from the Hugging Face hub (src-tauri/engine/src/models/fetch/pulls.rs, `PullView`). */
export interface PullView {
  id: string;
  repo: string;
  file: string | null;
  state: "running" | "done" | "failed" | "cancelled";
  bytes_done: number;
  bytes_total: number;
  rate_bps: number;
  eta_s: number | null;
  /** Why it failed, for people. */
  error: string | null;
  current_file: string | null;
  disk: { path: string; needed_bytes: number; free_bytes: number | null } | null;
  memory: { needed_bytes: number | null; ram_bytes: number | null; fit: Fit | null; summary: string } | null;
  notes: string[];
  /** Once done: its name in the picker, and what goes in `model_path`. */
  name: string | null;
  path: string | null;
}

/** What to fetch: a repository, and one GGUF file of it for a GGUF repository. */
export interface PullRequest {
  repo: string;
  file?: string;
  force?: boolean;
}

/** A built-in known-good model judged against this machine (models/catalog.rs, `Suggestion`). */
export interface Suggestion {
  repo: string;
  file: string | null;
  name: string;
  engine: ModelEngine;
  /** Approximate: the hub's size when the list was written. */
  approx_bytes: number;
  approx_memory_bytes: number;
  params_b: number;
  fit: Fit | null;
  summary: string;
}

/** `GET /api/onboarding`: the first-launch view. */
export interface Onboarding {
  machine: { ram_bytes: number | null; disk_free_bytes: number | null; engine: EngineKind; os: string };
  /** Models on this machine that load. */
  found: LocalModel[];
  suggestions: Suggestion[];
  /** No model is chosen and the engine in force needs one. */
  needs_model: boolean;
}
