/**
 * Charts from a result with Chart.js (canvas; bar, line, pie, scatter), registering only the
 * controllers and elements used so the chunk stays small. Defaults come from column types: the
 * first non-numeric column labels, the first numeric one gives values (scatter: the first two
 * numeric columns). PNG export comes from the canvas. SVG export draws the same configuration
 * once more onto svgcanvas (a maintained canvas-2D-to-SVG context, loaded only when asked for,
 * so it stays out of the chart chunk), so the SVG has real vector marks and text, not an
 * embedded bitmap. A table of the chart's own data (read back from the Chart instance) sits
 * beside it for screen readers and for the test.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import {
  ArcElement,
  BasicPlatform,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Colors,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PieController,
  PointElement,
  ScatterController,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import type { Column, Row } from "@dbforge/sdk/web";
import { cellText, numericColumn } from "../format";
import { download } from "../run";

Chart.register(BarController, LineController, PieController, ScatterController, BarElement, LineElement, PointElement, ArcElement, CategoryScale, LinearScale, Tooltip, Legend, Colors);

/** Points drawn at most: a chart of more is unreadable and slow. */
export const MAX_POINTS = 2000;

type Kind = "bar" | "line" | "pie" | "scatter";

export function defaults(columns: Column[]): { label: number; value: number; kind: Kind } {
  const nums = columns.map((c, i) => (numericColumn(c) ? i : -1)).filter((i) => i >= 0);
  const text = columns.findIndex((c) => !numericColumn(c));
  if (text < 0 && nums.length >= 2) return { label: nums[0]!, value: nums[1]!, kind: "scatter" };
  const label = text >= 0 ? text : 0;
  const value = nums.find((i) => i !== label) ?? (label === 0 ? Math.min(1, columns.length - 1) : 0);
  return { label, value, kind: "bar" };
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return Number(cellText(v as never));
}

declare global {
  interface Window {
    /** The chart on screen, for the end-to-end test to read its data. */
    __dbforgeChart?: Chart;
  }
}

/**
 * Runs `fn` with `style` attribute writes on HTML elements going through the CSSOM instead.
 * svgcanvas parses each font shorthand by writing it into a detached span's style attribute,
 * which the page's CSP (no 'unsafe-inline') blocks, leaving the SVG's text without fonts;
 * `style.cssText` parses the same text and is allowed. Synchronous, and undone at once.
 */
function withCssomStyleAttributes<T>(fn: () => T): T {
  const proto = Element.prototype;
  const original = proto.setAttribute;
  proto.setAttribute = function (this: Element, name: string, value: string) {
    if (name === "style" && this instanceof HTMLElement) this.style.cssText = value;
    else original.call(this, name, value);
  };
  try {
    return fn();
  } finally {
    proto.setAttribute = original;
  }
}

export function ChartPanel({ columns, rows }: { columns: Column[]; rows: Row[] }) {
  const d = defaults(columns);
  const [kind, setKind] = useState<Kind>(d.kind);
  const [label, setLabel] = useState(d.label);
  const [value, setValue] = useState(d.value);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [shown, setShown] = useState<{ labels: string[]; values: number[] }>({ labels: [], values: [] });
  const [svgNote, setSvgNote] = useState("");

  const config = (): ChartConfiguration => {
    const data = rows.slice(0, MAX_POINTS);
    const name = columns[value]?.name ?? "value";
    return kind === "scatter"
        ? {
            type: "scatter",
            data: { datasets: [{ label: name, data: data.map((r) => ({ x: num(r[label]), y: num(r[value]) })) }] },
            options: { animation: false, maintainAspectRatio: false },
          }
        : {
            type: kind,
            data: { labels: data.map((r) => cellText(r[label] ?? null)), datasets: [{ label: name, data: data.map((r) => num(r[value])) }] },
            options: { animation: false, maintainAspectRatio: false },
          };
  };

  useEffect(() => {
    const chart = new Chart(canvas.current!, config());
    window.__dbforgeChart = chart;
    const ds = chart.data.datasets[0]?.data ?? [];
    setShown({
      labels: kind === "scatter" ? ds.map((p) => String((p as { x: number }).x)) : (chart.data.labels ?? []).map(String),
      values: ds.map((p) => (typeof p === "number" ? p : (p as { y: number }).y)),
    });
    return () => {
      chart.destroy();
      if (window.__dbforgeChart === chart) delete window.__dbforgeChart;
    };
  }, [kind, label, value, rows, columns]);

  const png = () => {
    const c = canvas.current;
    if (!c) return;
    c.toBlob((b) => b && download("chart.png", [b], "image/png"));
  };

  const svg = async () => {
    const c = canvas.current;
    if (!c) return;
    setSvgNote("");
    try {
      const { Context } = await import("svgcanvas");
      const width = Math.max(1, Math.round(c.clientWidth));
      const height = Math.max(1, Math.round(c.clientHeight));
      const ctx = new Context({ width, height });
      // A stand-in canvas for Chart.js: the basic platform (no DOM events, no resize observer)
      // takes its size and its 2D context, which records SVG instead of pixels.
      const target = { width, height, style: {}, getContext: () => ctx };
      const cfg = config();
      const text = withCssomStyleAttributes(() => {
        const chart = new Chart(target as unknown as HTMLCanvasElement, {
          ...cfg,
          platform: BasicPlatform,
          options: { ...cfg.options, responsive: false, animation: false, devicePixelRatio: 1, events: [] },
        } as ChartConfiguration);
        try {
          chart.draw();
          return ctx.getSerializedSvg(true);
        } finally {
          chart.destroy();
        }
      });
      download("chart.svg", [text], "image/svg+xml");
    } catch (e) {
      setSvgNote(`SVG export: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  return (
    <section class="chart" aria-labelledby="chart-title">
      <h2 id="chart-title">Chart</h2>
      <div class="toolbar">
        <label for="chart-kind">Type</label>
        <select id="chart-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Kind)}>
          <option value="bar">Bar</option>
          <option value="line">Line</option>
          <option value="pie">Pie</option>
          <option value="scatter">Scatter</option>
        </select>
        <label for="chart-label">{kind === "scatter" ? "X" : "Labels"}</label>
        <select id="chart-label" value={label} onChange={(e) => setLabel(Number((e.target as HTMLSelectElement).value))}>
          {columns.map((c, i) => (
            <option value={i} key={i}>
              {c.name}
            </option>
          ))}
        </select>
        <label for="chart-value">{kind === "scatter" ? "Y" : "Values"}</label>
        <select id="chart-value" value={value} onChange={(e) => setValue(Number((e.target as HTMLSelectElement).value))}>
          {columns.map((c, i) => (
            <option value={i} key={i}>
              {c.name}
            </option>
          ))}
        </select>
        <button type="button" onClick={png}>
          Export PNG
        </button>
        <button type="button" onClick={() => void svg()}>
          Export SVG
        </button>
      </div>
      {svgNote && (
        <p class="error" role="alert">
          {svgNote}
        </p>
      )}
      {rows.length > MAX_POINTS && <p class="muted">The first {MAX_POINTS} of {rows.length} rows are drawn.</p>}
      <div class="chart-box">
        <canvas ref={canvas} role="img" aria-label={`${kind} chart of ${columns[value]?.name ?? ""} by ${columns[label]?.name ?? ""}`} />
      </div>
      <details>
        <summary>Chart data</summary>
        <table class="grid" data-testid="chart-data">
          <thead>
            <tr>
              <th scope="col">{columns[label]?.name}</th>
              <th scope="col">{columns[value]?.name}</th>
            </tr>
          </thead>
          <tbody>
            {shown.labels.slice(0, 200).map((l, i) => (
              <tr key={i}>
                <td>{l}</td>
                <td class="num">{shown.values[i]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}
