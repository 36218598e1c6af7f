// The settings form. The engine validates (and is the only judge): a refused save comes back as
// field errors shown next to their fields, and nothing is saved. The one check done here first is
// that a coordinator URL is a URL at all, so an obvious typo is caught before a round trip.

import "./style.css";
import { $, bytes, el } from "./format";
import { connect, type Transport } from "./transport";
import type { EngineKind, FieldError, LocalModel, Settings, SettingsView } from "./types";

const FIELDS = ["coordinator", "token", "model_path", "engine", "loopback_url", "slots"] as const;

let transport: Transport;
let view: SettingsView | null = null;
let models: LocalModel[] = [];

const input = (id: string) => $(id) as HTMLInputElement;
const select = (id: string) => $(id) as HTMLSelectElement;

async function main(): Promise<void> {
  transport = await connect();
  $("back").addEventListener("click", () => transport.openDashboard());
  $("cancel").addEventListener("click", () => {
    if (view) fill(view);
    transport.closeSettings();
  });
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    void save();
  });
  for (const r of document.querySelectorAll<HTMLInputElement>("input[name=coord-kind]")) {
    r.addEventListener("change", syncCoordinator);
  }
  select("engine").addEventListener("change", syncEngine);
  select("model").addEventListener("change", describeModel);
  $("token-clear").addEventListener("click", () => void clearToken());
  // Any edit hides the "saved" note: it described the form as it was.
  $("form").addEventListener("input", () => $("saved").classList.add("hidden"));
  await load();
}

async function load(): Promise<void> {
  try {
    const [v, m] = await Promise.all([transport.settings(), transport.models().catch(() => [] as LocalModel[])]);
    view = v;
    models = m;
    fill(v);
  } catch (e) {
    showErrors([{ field: "other", message: (e as Error).message }]);
  }
}

function fill(v: SettingsView): void {
  const s = v.settings;
  const local = s.coordinator === "local_pool";
  input("coord-local").checked = local;
  input("coord-remote").checked = !local;
  input("coordinator").value = local ? "" : s.coordinator;
  select("engine").value = s.engine;
  input("loopback_url").value = s.loopback_url ?? "";
  input("slots").value = String(s.slots);
  input("start_at_login").checked = s.start_at_login;
  input("pause_on_battery").checked = s.pause_on_battery;
  input("token").value = "";

  const m = select("model");
  const options = [el("option", { text: "Engine default", attrs: { value: "" } })];
  for (const model of models) {
    const fit = model.fits_in_memory ? "" : " — too big for this Mac";
    const o = el("option", { text: `${model.name} (${bytes(model.size_bytes)})${fit}`, attrs: { value: model.path } });
    if (!model.loadable) o.disabled = true;
    options.push(o);
  }
  if (s.model_path && !models.some((x) => x.path === s.model_path)) {
    options.push(el("option", { text: `${s.model_path} (not found)`, attrs: { value: s.model_path } }));
  }
  m.replaceChildren(...options);
  m.value = s.model_path ?? "";

  const token = v.token_source;
  $("token-state").textContent =
    token === "keychain" ? "•••••••• stored in the keychain" : token === "env" ? "•••••••• from HEARTH_PROVIDER_TOKEN" : "No token set";
  $("token-edit").classList.toggle("hidden", !transport.canEditToken);
  $("token-clear").classList.toggle("hidden", token !== "keychain");
  $("token-note").textContent = transport.canEditToken
    ? "The token is kept in the OS keychain and never shown."
    : "The token can be changed in the Hearth app (it lives in the OS keychain).";

  const pinned = new Set(v.pinned);
  const pin: Record<string, string[]> = {
    coordinator: ["coord-local", "coord-remote", "coordinator"],
    engine: ["engine"],
    model_path: ["model"],
    slots: ["slots"],
  };
  for (const [field, ids] of Object.entries(pin)) {
    for (const id of ids) (input(id) as HTMLInputElement).disabled = pinned.has(field);
  }
  $("pinned").textContent = pinned.size
    ? `Set on the command line (not editable here): ${[...pinned].join(", ")}`
    : "";
  clearErrors();
  if (v.errors.length) showErrors(v.errors);
  syncCoordinator();
  syncEngine();
  describeModel();
}

function syncCoordinator(): void {
  const remote = input("coord-remote").checked;
  input("coordinator").disabled = !remote || (view?.pinned.includes("coordinator") ?? false);
}

function syncEngine(): void {
  $("loopback-row").classList.toggle("hidden", select("engine").value !== "loopback");
}

function describeModel(): void {
  const path = select("model").value;
  const m = models.find((x) => x.path === path);
  if (!m) {
    $("model-detail").textContent = path ? "" : `${models.length} model(s) found on this machine.`;
    return;
  }
  const q = m.quantization
    ? `${m.quantization.bits ? `${m.quantization.bits}-bit ` : ""}${m.quantization.mode}`
    : "full precision";
  const fit = m.fits_in_memory
    ? `fits in memory (~${bytes(m.estimated_memory_bytes)})`
    : `needs ~${bytes(m.estimated_memory_bytes)}: does not fit comfortably`;
  const parts = [m.family ?? "unknown family", q, m.format, bytes(m.size_bytes), fit, ...m.problems];
  $("model-detail").textContent = parts.join(" · ");
}

/** The form as settings fields, only those that differ from what is in force. */
function patch(): { patch: Partial<Settings>; errors: FieldError[] } {
  const s = view!.settings;
  const errors: FieldError[] = [];
  const out: Record<string, unknown> = {};
  let coordinator = "local_pool";
  if (input("coord-remote").checked) {
    coordinator = input("coordinator").value.trim();
    let ok = false;
    try {
      const u = new URL(coordinator);
      ok = u.protocol === "ws:" || u.protocol === "wss:";
    } catch {
      ok = false;
    }
    if (!ok) errors.push({ field: "coordinator", message: "enter a ws:// or wss:// URL, e.g. wss://pool.example/ws/provider" });
  }
  if (coordinator !== s.coordinator) out.coordinator = coordinator;
  const model = select("model").value || null;
  if (model !== (s.model_path ?? null)) out.model_path = model;
  const engine = select("engine").value as EngineKind;
  if (engine !== s.engine) out.engine = engine;
  const loopback = input("loopback_url").value.trim() || null;
  if (loopback !== (s.loopback_url ?? null)) out.loopback_url = loopback;
  const slotsText = input("slots").value.trim();
  const slots = Number(slotsText);
  if (!/^\d+$/.test(slotsText)) errors.push({ field: "slots", message: "enter a whole number from 1 to 8" });
  else if (slots !== s.slots) out.slots = slots;
  if (input("start_at_login").checked !== s.start_at_login) out.start_at_login = input("start_at_login").checked;
  if (input("pause_on_battery").checked !== s.pause_on_battery) out.pause_on_battery = input("pause_on_battery").checked;
  return { patch: out as Partial<Settings>, errors };
}

async function save(): Promise<void> {
  if (!view) return;
  clearErrors();
  $("saved").classList.add("hidden");
  const { patch: p, errors } = patch();
  if (errors.length) return showErrors(errors);
  const token = input("token").value.trim();
  const button = $("save") as HTMLButtonElement;
  button.disabled = true;
  try {
    if (Object.keys(p).length > 0) {
      const result = await transport.saveSettings(p);
      if (!result.ok) return showErrors(result.errors);
    }
    if (token && transport.canEditToken) {
      try {
        await transport.setToken(token);
      } catch (e) {
        return showErrors([{ field: "token", message: (e as Error).message }]);
      }
    }
    view = await transport.settings();
    fill(view);
    $("saved").classList.remove("hidden");
  } catch (e) {
    showErrors([{ field: "other", message: (e as Error).message }]);
  } finally {
    button.disabled = false;
  }
}

async function clearToken(): Promise<void> {
  try {
    await transport.setToken(null);
    view = await transport.settings();
    fill(view);
  } catch (e) {
    showErrors([{ field: "token", message: (e as Error).message }]);
  }
}

function clearErrors(): void {
  for (const e of document.querySelectorAll<HTMLElement>("p.error")) e.textContent = "";
  for (const e of document.querySelectorAll(".invalid")) e.classList.remove("invalid");
}

function showErrors(errors: FieldError[]): void {
  for (const err of errors) {
    const known = (FIELDS as readonly string[]).includes(err.field);
    const target = document.getElementById(known ? `err-${err.field}` : "err-other");
    if (!target) continue;
    const text = known ? err.message.replace(new RegExp(`^${err.field}:\\s*`), "") : `${err.field}: ${err.message}`;
    target.textContent = target.textContent ? `${target.textContent} ${text}` : text;
    const control = document.getElementById(err.field === "model_path" ? "model" : err.field);
    control?.classList.add("invalid");
  }
}

void main();
