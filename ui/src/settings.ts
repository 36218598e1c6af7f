// The settings form. The engine validates (and is the only judge): a refused save comes back as
// field errors shown next to their fields, and nothing is saved. The one check done here first is
// that a coordinator URL is a URL at all, so an obvious typo is caught before a round trip.

import "./style.css";
import { $, bytes, el } from "./format";
import { parseSpec, PullBox } from "./pull";
import { connect, type Transport } from "./transport";
import type {
  Day,
  EngineKind,
  FieldError,
  LocalModel,
  ModelSource,
  PowerSettings,
  ScheduleWindow,
  Settings,
  SettingsView,
} from "./types";

const FIELDS = ["coordinator", "protocol", "token", "model_path", "model_folders", "engine", "loopback_url", "slots"] as const;

/** The `[power]` fields with an input of their own, `power-<field>`, and an `err-power.<field>`. */
const POWER_FIELDS = ["on_battery", "battery_threshold_percent", "thermal", "user_active", "yield_slots", "idle_minutes"] as const;

const DAYS: [Day, string][] = [
  ["mon", "Mon"],
  ["tue", "Tue"],
  ["wed", "Wed"],
  ["thu", "Thu"],
  ["fri", "Fri"],
  ["sat", "Sat"],
  ["sun", "Sun"],
];

/** What "Add window" starts from: the overnight case, which is what the hint explains. */
const NEW_WINDOW: ScheduleWindow = { days: [], start: "22:00", end: "07:00" };

/** The picker's groups, in the engine's order of sources. */
const SOURCE_LABEL: Record<ModelSource, string> = {
  hearth_models: "Hearth's models folder",
  hugging_face_cache: "Hugging Face cache",
  lm_studio: "LM Studio",
  ollama: "Ollama",
  user_folder: "Your folders",
};

let transport: Transport;
let view: SettingsView | null = null;
let models: LocalModel[] = [];

const input = (id: string) => $(id) as HTMLInputElement;
const select = (id: string) => $(id) as HTMLSelectElement;
const textarea = (id: string) => $(id) as HTMLTextAreaElement;

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
  select("power-on_battery").addEventListener("change", syncPower);
  select("power-user_active").addEventListener("change", syncPower);
  $("power-add-window").addEventListener("click", () => {
    renderSchedule([...readSchedule(), { ...NEW_WINDOW, days: [] }]);
    $("saved").classList.add("hidden");
  });
  select("model").addEventListener("change", () => {
    engineForModel();
    describeModel();
  });
  $("token-clear").addEventListener("click", () => void clearToken());
  mountFetch();
  // Any edit hides the "saved" note: it described the form as it was.
  $("form").addEventListener("input", () => $("saved").classList.add("hidden"));
  await load();
}

/** "Fetch a model": pulls into the Hugging Face cache; once done, the picker lists the model and
 * selects it (with the engine that runs it), to be saved with the rest of the form. */
function mountFetch(): void {
  const box = new PullBox(transport, "fetch-pull", async (p) => {
    models = await transport.models();
    const current = select("model").value || null;
    fillModels(current);
    if (p.path && models.some((m) => m.path === p.path)) {
      select("model").value = p.path;
      engineForModel();
      describeModel();
      $("saved").classList.add("hidden");
    } else {
      throw new Error(`Fetched, but ${p.path ?? "the model"} is not among the models found.`);
    }
  });
  $("fetch-pull").replaceChildren(box.root);
  const go = () => {
    const request = parseSpec(input("fetch-spec").value);
    $("fetch-error").textContent = request ? "" : "Enter a repository, e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit, or org/name:file.gguf.";
    if (request && !box.busy) void box.start(request);
  };
  $("fetch").addEventListener("click", go);
  // Enter in this box fetches; it must not submit (save) the whole form.
  input("fetch-spec").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      go();
    }
  });
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
  select("protocol").value = s.protocol ?? "auto";
  input("loopback_url").value = s.loopback_url ?? "";
  input("slots").value = s.slots == null ? "" : String(s.slots);
  input("start_at_login").checked = s.start_at_login;
  fillPower(s.power);
  input("token").value = "";
  textarea("model_folders").value = (s.model_folders ?? []).join("\n");

  fillModels(s.model_path ?? null);

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
    model_folders: ["model_folders"],
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
  syncPower();
  describeModel();
}

function fillPower(p: PowerSettings): void {
  select("power-on_battery").value = p.on_battery;
  input("power-battery_threshold_percent").value = String(p.battery_threshold_percent);
  select("power-thermal").value = p.thermal;
  select("power-user_active").value = p.user_active;
  input("power-yield_slots").value = String(p.yield_slots);
  input("power-idle_minutes").value = String(p.idle_minutes);
  renderSchedule(p.schedule ?? []);
}

/** The numbers only mean something with some choices: the others leave them greyed out (kept). */
function syncPower(): void {
  const userActive = select("power-user_active").value;
  input("power-battery_threshold_percent").disabled = select("power-on_battery").value !== "pause_below";
  input("power-yield_slots").disabled = userActive !== "yield";
  input("power-idle_minutes").disabled = userActive === "ignore";
}

/** One row per window. Rows are numbered as the list is sent, so `power.schedule[i]` errors land
 * on row i; removing a row renumbers the rest. */
function renderSchedule(windows: ScheduleWindow[]): void {
  const rows = windows.map((w, i) => {
    const id = `power-window-${i}`;
    const days = DAYS.map(([day, label]) => {
      const box = el("input", { attrs: { type: "checkbox", id: `${id}-day-${day}`, value: day, "data-testid": `${id}-day-${day}` } });
      box.checked = w.days.includes(day);
      return el("label", { cls: "day" }, [box, label]);
    });
    const time = (part: "start" | "end", label: string) => {
      const t = el("input", { attrs: { type: "time", id: `${id}-${part}`, "aria-label": label, "data-testid": `${id}-${part}` } });
      t.value = w[part];
      return t;
    };
    const remove = el("button", { cls: "small", text: "Remove", attrs: { type: "button", id: `${id}-remove`, "data-testid": `${id}-remove` } });
    remove.addEventListener("click", () => {
      renderSchedule(readSchedule().filter((_, j) => j !== i));
      $("saved").classList.add("hidden");
    });
    return el("li", { cls: "window", attrs: { "data-index": String(i) } }, [
      el("div", { cls: "days", attrs: { id: `${id}-days`, role: "group", "aria-label": "Days" } }, days),
      el("div", { cls: "row times" }, [time("start", "Start"), el("span", { text: "to" }), time("end", "End"), remove]),
      el("p", { cls: "error", attrs: { id: `err-power.schedule[${i}]`, "data-field": `power.schedule[${i}]`, "data-testid": `err-${id}` } }),
    ]);
  });
  $("power-schedule").replaceChildren(...rows);
}

function readSchedule(): ScheduleWindow[] {
  return [...$("power-schedule").querySelectorAll<HTMLLIElement>("li.window")].map((row) => {
    const i = row.dataset.index;
    return {
      days: DAYS.map(([d]) => d).filter((d) => input(`power-window-${i}-day-${d}`).checked),
      start: input(`power-window-${i}-start`).value,
      end: input(`power-window-${i}-end`).value,
    };
  });
}

/** The form's power table, whole (the settings API replaces `power` as one value). */
function readPower(current: PowerSettings, errors: FieldError[]): PowerSettings {
  // A greyed-out number is not the user's to fix: it keeps what is in force if it does not parse.
  const whole = (field: "battery_threshold_percent" | "yield_slots" | "idle_minutes", hint: string): number => {
    const box = input(`power-${field}`);
    const text = box.value.trim();
    if (/^\d+$/.test(text)) return Number(text);
    if (!box.disabled) errors.push({ field: `power.${field}`, message: `enter a whole number ${hint}` });
    return current[field];
  };
  return {
    on_battery: select("power-on_battery").value as PowerSettings["on_battery"],
    battery_threshold_percent: whole("battery_threshold_percent", "from 0 to 100"),
    thermal: select("power-thermal").value as PowerSettings["thermal"],
    user_active: select("power-user_active").value as PowerSettings["user_active"],
    yield_slots: whole("yield_slots", "of at least 1"),
    idle_minutes: whole("idle_minutes", "of minutes from 1 to 1440"),
    schedule: readSchedule(),
  };
}

/** Equal as settings: an absent schedule is an empty one. */
function samePower(a: PowerSettings, b: PowerSettings): boolean {
  const norm = (p: PowerSettings) =>
    JSON.stringify([
      ...POWER_FIELDS.map((f) => p[f]),
      (p.schedule ?? []).map((w) => [[...w.days].sort(), w.start, w.end]),
    ]);
  return norm(a) === norm(b);
}

/** The picker: loadable models grouped by where they were found, then everything that cannot be
 * loaded (disabled, with the reason), so a model the user put somewhere is never silently missing. */
function fillModels(current: string | null): void {
  const groups: HTMLElement[] = [];
  for (const [source, label] of Object.entries(SOURCE_LABEL)) {
    const here = models.filter((m) => m.loadable && m.source === source);
    if (here.length === 0) continue;
    groups.push(el("optgroup", { attrs: { label } }, here.map((m) => el("option", { text: modelLabel(m), attrs: { value: m.path } }))));
  }
  const refused = models.filter((m) => !m.loadable);
  if (refused.length > 0) {
    const options = refused.map((m) => {
      const o = el("option", { text: `${m.name} — ${m.problems[0] ?? "cannot be loaded"}`, title: m.problems.join("\n"), attrs: { value: m.path } });
      // The one in force stays selectable, so the form shows it (and why it fails) rather than lying.
      o.disabled = m.path !== current;
      return o;
    });
    groups.push(el("optgroup", { attrs: { label: "Cannot be loaded" } }, options));
  }
  const options: HTMLElement[] = [el("option", { text: "Engine default", attrs: { value: "" } }), ...groups];
  if (current && !models.some((x) => x.path === current)) {
    options.push(el("option", { text: `${current} (not found)`, attrs: { value: current } }));
  }
  select("model").replaceChildren(...options);
  select("model").value = current ?? "";
  const notes = models.filter((m) => m.format === null).flatMap((m) => m.problems);
  $("folders-note").textContent = notes.length
    ? notes.join(" ")
    : "Hearth also looks in the Hugging Face cache, LM Studio, Ollama and its own models folder.";
}

function modelLabel(m: LocalModel): string {
  const tight = m.fit === "tight" ? " · tight fit" : "";
  return `${m.name} (${m.engine ?? m.format ?? "?"} · ${bytes(m.size_bytes)}${tight})`;
}

/** Picking a model picks the engine that runs it, where the form offers that engine. */
function engineForModel(): void {
  const m = models.find((x) => x.path === select("model").value);
  const engine = select("engine");
  if (!m?.engine || engine.disabled) return;
  if ([...engine.options].some((o) => o.value === m.engine)) {
    engine.value = m.engine;
    syncEngine();
  }
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
    const loadable = models.filter((x) => x.loadable).length;
    const refused = models.filter((x) => !x.loadable && x.format !== null).length;
    $("model-detail").textContent = path
      ? ""
      : `${loadable} model(s) on this machine can be loaded${refused ? `; ${refused} found cannot` : ""}.`;
    return;
  }
  if (m.format === null) {
    $("model-detail").textContent = m.problems.join(" ");
    return;
  }
  const q = m.quantization
    ? `${m.quantization.bits ? `${m.quantization.bits}-bit ` : ""}${m.quantization.mode}`
    : m.family
      ? "full precision"
      : null;
  const need = m.estimated_memory_bytes;
  const ram = m.machine_ram_bytes ? ` of ${bytes(m.machine_ram_bytes)} RAM` : "";
  const fit =
    need === null
      ? null
      : m.fit === "fits"
        ? `fits: needs ~${bytes(need)}${ram}`
        : m.fit === "tight"
          ? `tight: needs ~${bytes(need)}${ram}`
          : m.fit === "does_not_fit"
            ? `does not fit: needs ~${bytes(need)}${ram}`
            : `needs ~${bytes(need)}`;
  const context = m.context_length ? `${m.context_length.toLocaleString()} tokens of context` : null;
  const parts = [
    SOURCE_LABEL[m.source],
    m.engine ? `${m.engine} engine` : null,
    m.family ?? "unknown architecture",
    q,
    bytes(m.size_bytes),
    context,
    fit,
    ...m.problems,
  ].filter((p): p is string => p !== null);
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
  const folders = textarea("model_folders")
    .value.split("\n")
    .map((f) => f.trim())
    .filter((f) => f.length > 0);
  if (folders.join("\n") !== (s.model_folders ?? []).join("\n")) out.model_folders = folders;
  const engine = select("engine").value as EngineKind;
  if (engine !== s.engine) out.engine = engine;
  const protocol = select("protocol").value as Settings["protocol"];
  if (protocol !== (s.protocol ?? "auto")) out.protocol = protocol;
  const loopback = input("loopback_url").value.trim() || null;
  if (loopback !== (s.loopback_url ?? null)) out.loopback_url = loopback;
  // Empty means "let the engine choose", sent as null (which clears the setting).
  const slotsText = input("slots").value.trim();
  const slots = slotsText === "" ? null : Number(slotsText);
  if (slotsText !== "" && !/^\d+$/.test(slotsText)) {
    errors.push({ field: "slots", message: "enter a whole number from 1 to 8, or leave it empty to choose from RAM" });
  } else if (slots !== (s.slots ?? null)) out.slots = slots;
  if (input("start_at_login").checked !== s.start_at_login) out.start_at_login = input("start_at_login").checked;
  const power = readPower(s.power, errors);
  if (!samePower(power, s.power)) out.power = power;
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
    // The folders may have changed what there is to pick from.
    models = await transport.models().catch(() => models);
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

/** Where a field's error is shown (`err-…`) and which control it marks, if the form has them. */
function errorPlace(field: string): { target: string; control: string | null } | null {
  if ((FIELDS as readonly string[]).includes(field)) {
    return { target: `err-${field}`, control: field === "model_path" ? "model" : field };
  }
  const power = /^power\.(\w+)$/.exec(field);
  if (power && (POWER_FIELDS as readonly string[]).includes(power[1])) {
    return { target: `err-${field}`, control: `power-${power[1]}` };
  }
  // A window's own error goes on its row; one about the list as a whole under it.
  const row = /^power\.schedule\[(\d+)\](?:\.(days|start|end))?/.exec(field);
  if (row && document.getElementById(`err-power.schedule[${row[1]}]`)) {
    return { target: `err-power.schedule[${row[1]}]`, control: row[2] ? `power-window-${row[1]}-${row[2]}` : null };
  }
  if (field === "power.schedule" || field.startsWith("power.schedule[")) return { target: "err-power.schedule", control: null };
  if (field === "power" || field.startsWith("power.")) return { target: "err-power", control: null };
  return null;
}

function showErrors(errors: FieldError[]): void {
  for (const err of errors) {
    const place = errorPlace(err.field);
    const target = document.getElementById(place?.target ?? "err-other");
    if (!target) continue;
    const text = place ? err.message.replace(new RegExp(`^${escapeRegExp(err.field)}:\\s*`), "") : `${err.field}: ${err.message}`;
    target.textContent = target.textContent ? `${target.textContent} ${text}` : text;
    if (place?.control) document.getElementById(place.control)?.classList.add("invalid");
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

void main();
