// The two charts, on uPlot: the hourly earnings history (bars) and the live tokens/s sparkline.
// uPlot sets sizes through the CSSOM (element.style), which a strict `style-src 'self'` allows.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import type { HourBucket } from "./types";

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** Keeps a chart as wide as its container. Only a real width change resizes: a resize that
 *  toggles a scrollbar would otherwise feed the observer back into itself and keep redrawing. */
function fitWidth(chart: uPlot, host: HTMLElement, height: number): void {
  let width = -1;
  const resize = () => {
    const w = Math.max(120, host.clientWidth);
    if (Math.abs(w - width) < 2) return;
    width = w;
    chart.setSize({ width: w, height });
  };
  new ResizeObserver(resize).observe(host);
  resize();
}

export class HourlyChart {
  private chart: uPlot;

  constructor(host: HTMLElement, height = 110) {
    const accent = cssVar("--accent", "#e8772e");
    const muted = cssVar("--muted", "#888");
    const grid = cssVar("--grid", "rgba(128,128,128,0.15)");
    const opts: uPlot.Options = {
      width: host.clientWidth || 320,
      height,
      legend: { show: false },
      cursor: { y: false, points: { show: false } },
      // Each bar covers its hour to the right of its start, so the scale runs one hour past the last.
      scales: {
        x: { time: true, range: (_u, min, max) => [min, max + 3600] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        {
          stroke: muted,
          grid: { show: false },
          ticks: { show: false },
          font: "10px system-ui",
          size: 22,
          // One short line per tick: hours within a day, days beyond.
          values: (u, splits) => {
            const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
            return splits.map((s) => {
              const d = new Date(s * 1000);
              return span > 2 * 86400
                ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
                : d.toLocaleTimeString(undefined, { hour: "numeric" });
            });
          },
        },
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { show: false }, font: "10px system-ui", size: 36 },
      ],
      series: [
        {},
        {
          label: "credits",
          fill: accent,
          stroke: accent,
          width: 0,
          paths: uPlot.paths.bars!({ size: [0.8, 40], align: 1 }),
          points: { show: false },
        },
      ],
    };
    this.chart = new uPlot(opts, [[], []], host);
    fitWidth(this.chart, host, height);
  }

  set(hourly: HourBucket[]): void {
    const xs = hourly.map((b) => b.hour_start_unix_ms / 1000);
    const ys = hourly.map((b) => b.estimated_credits);
    this.chart.setData([xs, ys]);
  }
}

/** tokens/s over the last few minutes, sampled whenever a snapshot arrives. */
export class Sparkline {
  private chart: uPlot;
  private xs: number[] = [];
  private ys: number[] = [];

  constructor(
    host: HTMLElement,
    private windowS = 300,
    height = 44,
  ) {
    const accent = cssVar("--accent", "#e8772e");
    const opts: uPlot.Options = {
      width: host.clientWidth || 320,
      height,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: accent, width: 1.5, fill: cssVar("--accent-soft", "rgba(232,119,46,0.15)"), points: { show: false } }],
      padding: [4, 0, 0, 0],
    };
    this.chart = new uPlot(opts, [[], []], host);
    fitWidth(this.chart, host, height);
  }

  push(atMs: number, value: number): void {
    const t = atMs / 1000;
    // A step chart from discrete snapshots: hold the previous value until this instant.
    if (this.ys.length > 0) {
      this.xs.push(t);
      this.ys.push(this.ys[this.ys.length - 1]);
    }
    this.xs.push(t);
    this.ys.push(value);
    const cutoff = t - this.windowS;
    while (this.xs.length > 2 && this.xs[0] < cutoff) {
      this.xs.shift();
      this.ys.shift();
    }
    this.chart.setData([this.xs, this.ys]);
  }
}
