// The first launch: with no model chosen, the dashboard shows this panel instead of the error the
// provider would report. It says what this machine can serve (memory, free disk, engine), lists the
// models already on it ("Use this") and the built-in suggestions that fit ("Fetch"), takes any
// other repository of the Hugging Face hub, and ends with the provider serving: the chosen model is
// saved in the settings and the provider started; the panel closes once the status says ready.

import { $, bytes, el, setText } from "./format";
import { engineOf, parseSpec, PullBox, specText } from "./pull";
import type { Transport } from "./transport";
import type { EngineKind, LocalModel, Onboarding, PullRequest, Status, Suggestion } from "./types";

const ENGINE_LABEL: Record<EngineKind, string> = {
  mlx: "MLX (Apple Silicon GPU)",
  cpu: "CPU",
  gguf: "llama.cpp (GGUF)",
  loopback: "a local server",
  scripted: "scripted (testing)",
};

/** The status the provider reports while no model is chosen (engines.rs). */
const NO_MODEL = /no model chosen/i;

export interface OnboardingPanel {
  /** The panel is shown (the dashboard then leaves out the provider's own error line). */
  readonly active: boolean;
  onStatus(s: Status): void;
}

export function mountOnboarding(transport: Transport, onChange: () => void): OnboardingPanel {
  const panel = $("onboarding");
  let view: Onboarding | null = null;
  let active = false;
  let loading = false;
  let asked = false;
  /** Saved a model and asked the provider to start: waiting for it to serve. */
  let starting = false;
  let lastNoModel = false;

  const pull = new PullBox(transport, "onb-pull", async (p) => {
    if (!p.path) throw new Error("The fetch finished without a model path.");
    await use(p.path, engineOf(p, view?.machine.engine ?? "cpu"), p.name ?? specText(p));
  });
  $("onb-pull").replaceChildren(pull.root);

  $("onb-other-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const request = parseSpec((document.getElementById("onb-other") as HTMLInputElement).value);
    if (!request) {
      setText("onb-other-error", "Enter a repository, e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit, or org/name:file.gguf.");
      return;
    }
    setText("onb-other-error", "");
    fetchModel(request);
  });

  function show(on: boolean): void {
    if (on === active) return;
    active = on;
    panel.classList.toggle("hidden", !on);
    document.body.classList.toggle("onboarding", on);
    onChange();
  }

  async function refresh(): Promise<void> {
    if (loading) return;
    loading = true;
    asked = true;
    try {
      view = await transport.onboarding();
      render(view);
      if (view.needs_model || lastNoModel) show(true);
    } catch (e) {
      // Without the view the panel would be empty; the provider's own status line stays.
      if (active) setText("onb-error", (e as Error).message);
    } finally {
      loading = false;
    }
  }

  function render(v: Onboarding): void {
    const here = v.machine.os === "macos" ? "this Mac" : "this computer";
    setText("onb-lead", `Hearth earns by serving a language model from ${here}. Choose one it already has, or fetch one.`);
    setText("onb-ram", v.machine.ram_bytes ? `${bytes(v.machine.ram_bytes)} of memory` : "unknown");
    setText("onb-disk", v.machine.disk_free_bytes !== null ? `${bytes(v.machine.disk_free_bytes)} free` : "unknown");
    setText("onb-engine", ENGINE_LABEL[v.machine.engine] ?? v.machine.engine);

    $("onb-found-block").classList.toggle("hidden", v.found.length === 0);
    $("onb-found").replaceChildren(...v.found.map(foundRow));

    // What does not fit is left out: offering it would only lead to a refused fetch.
    const fitting = v.suggestions.filter((s) => s.fit !== "does_not_fit");
    $("onb-suggestions").replaceChildren(
      ...(fitting.length ? fitting.map(suggestionRow) : [el("li", { cls: "empty", text: "None of the built-in models fits this machine's memory." })]),
    );
  }

  function foundRow(m: LocalModel): HTMLElement {
    const button = el("button", { cls: "small primary", text: "Use this", attrs: { type: "button", "data-testid": "onb-use" } });
    button.addEventListener("click", () => {
      if (pull.busy || starting) return;
      void use(m.path, m.engine ?? view?.machine.engine ?? "cpu", m.name).catch((e: Error) => setText("onb-error", e.message));
    });
    const detail = [m.engine, bytes(m.size_bytes), m.fit === "tight" ? "tight fit" : null].filter(Boolean).join(" · ");
    return el("li", { cls: "onb-row", attrs: { "data-path": m.path } }, [
      el("span", { cls: "onb-name", text: m.name, title: m.path }),
      el("span", { cls: "fine", text: detail }),
      button,
    ]);
  }

  function suggestionRow(s: Suggestion): HTMLElement {
    const button = el("button", { cls: "small", text: "Fetch", attrs: { type: "button", "data-testid": "onb-fetch" } });
    button.addEventListener("click", () => fetchModel(s.file ? { repo: s.repo, file: s.file } : { repo: s.repo }));
    const size = `~${bytes(s.approx_bytes)} · ${s.params_b}B params · ${s.engine}`;
    return el("li", { cls: "onb-row", attrs: { "data-repo": s.repo } }, [
      el("span", { cls: "onb-name", text: s.file ? `${s.repo} · ${s.file}` : s.repo, title: s.summary }),
      el("span", { cls: "fine", text: s.fit === "tight" ? `${size} · tight fit` : size, title: s.summary }),
      button,
    ]);
  }

  function fetchModel(request: PullRequest): void {
    if (pull.busy || starting) return;
    setText("onb-error", "");
    setText("onb-step", "");
    void pull.start(request);
  }

  /** Saves the model (and the engine that runs it) and starts the provider with it. */
  async function use(path: string, engine: EngineKind, name: string): Promise<void> {
    setText("onb-error", "");
    const saved = await transport.saveSettings({ model_path: path, engine });
    if (!saved.ok) throw new Error(saved.errors.map((e) => e.message).join(" "));
    starting = true;
    setText("onb-step", `Loading ${name} and connecting…`);
    await transport.start();
  }

  return {
    get active() {
      return active;
    },
    onStatus(s: Status): void {
      const noModel = s.phase === "error" && NO_MODEL.test(s.reason);
      if (s.phase === "ready" || s.phase === "busy") {
        starting = false;
        setText("onb-step", "");
        pull.reset();
        show(false);
      } else if (starting && s.phase === "error") {
        // The model chosen did not load: say why here, where it was chosen, and let another be.
        starting = false;
        setText("onb-step", "");
        setText("onb-error", s.reason);
      }
      // Read the view the first time, and again whenever the provider falls back to "no model".
      if ((!asked || (noModel && !lastNoModel)) && !starting) {
        lastNoModel = noModel;
        void refresh();
      }
      lastNoModel = noModel;
    },
  };
}
