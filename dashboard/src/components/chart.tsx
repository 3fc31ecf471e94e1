/**
 * Charts from a result with Chart.js (canvas; bar, line, pie, scatter), registering only the
 * controllers and elements used so the chunk stays small. Defaults come from column types: the
 * first non-numeric column labels, the first numeric one gives values (scatter: the first two
 * numeric columns). PNG export comes from the canvas; Chart.js draws no SVG, so there is no SVG
 * export. A table of the chart's own data (read back from the Chart instance) sits beside it
 * for screen readers and for the test.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import {
  ArcElement,
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

export function ChartPanel({ columns, rows }: { columns: Column[]; rows: Row[] }) {
  const d = defaults(columns);
  const [kind, setKind] = useState<Kind>(d.kind);
  const [label, setLabel] = useState(d.label);
  const [value, setValue] = useState(d.value);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [shown, setShown] = useState<{ labels: string[]; values: number[] }>({ labels: [], values: [] });

  useEffect(() => {
    const data = rows.slice(0, MAX_POINTS);
    const name = columns[value]?.name ?? "value";
    const cfg: ChartConfiguration =
      kind === "scatter"
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
    const chart = new Chart(canvas.current!, cfg);
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
      </div>
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
