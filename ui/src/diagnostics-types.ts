// What GET /api/logs and GET /api/doctor answer (src-tauri/engine/src/log_ring.rs, doctor/mod.rs);
// the shell's `logs` and `doctor` commands answer the same.

export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

export interface LogLine {
  seq: number;
  ts_ms: number;
  level: LogLevel;
  target: string;
  message: string;
  /** [key, value] pairs, already redacted. */
  fields: [string, string][];
  /** Enclosing spans, outermost first, e.g. `job{request_id=…}`. */
  spans: string[];
}

export interface LogPage {
  lines: LogLine[];
  last_seq: number;
  capacity: number;
}

export type Verdict = "ok" | "warn" | "fail";

export interface DoctorCheck {
  name: string;
  title: string;
  verdict: Verdict;
  detail: string;
  action: string;
}

export interface DoctorReport {
  verdict: Verdict;
  checks: DoctorCheck[];
  source: "app" | "cli";
  ran_ms: number;
}
