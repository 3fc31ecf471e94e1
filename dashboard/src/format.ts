/**
 * How values from a database are shown. Everything here returns plain strings that the pages
 * render as text nodes (JSX text), never as HTML, so a cell holding markup stays markup-shaped
 * text. NULL is not a string: callers render it apart (a styled "NULL" marker) from "".
 */
import { Backend, CalendarDate, DatabaseStatus, Decimal, TimeOfDay, Unauthenticated, type Column, type SqlValue } from "@dbforge/sdk/web";

export type CellKind = "null" | "number" | "bytes" | "bool" | "text" | "json";

/** The kind decides the cell's style: numbers right-aligned, NULL apart, bytes in hex. */
export function cellKind(v: SqlValue): CellKind {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number" || typeof v === "bigint" || v instanceof Decimal) return "number";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "string" || v instanceof Date || v instanceof CalendarDate || v instanceof TimeOfDay) return "text";
  return "json";
}

/** The text of a cell (bytes as hex, `\x` first as PostgreSQL writes them). */
export function cellText(v: SqlValue): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v instanceof Uint8Array) return "\\x" + hex(v);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Decimal || v instanceof CalendarDate || v instanceof TimeOfDay) return v.toString();
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));
}

export function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function backendName(b: Backend): string {
  switch (b) {
    case Backend.SQLITE:
      return "SQLite";
    case Backend.POSTGRES:
      return "PostgreSQL";
    case Backend.MYSQL:
      return "MySQL";
    case Backend.REDIS:
      return "Redis";
    case Backend.GRAPH:
      return "Graph (SPARQL)";
    default:
      return "unknown";
  }
}

export function statusName(s: DatabaseStatus): string {
  switch (s) {
    case DatabaseStatus.PROVISIONING:
      return "provisioning";
    case DatabaseStatus.READY:
      return "ready";
    case DatabaseStatus.UNAVAILABLE:
      return "unavailable";
    case DatabaseStatus.DAMAGED:
      return "damaged";
    default:
      return "unknown";
  }
}

export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function timeText(d: Date | undefined): string {
  if (!d || d.getTime() === 0) return "—";
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** Whether a column holds numbers (for alignment and chart defaults). */
export function numericColumn(c: Column): boolean {
  // ValueKind: INT 1, FLOAT 2, DECIMAL 6
  return c.kind === 1 || c.kind === 2 || c.kind === 6;
}

/** Fired on window when a call says the key is no longer accepted; the shell signs out. */
export const KEY_REFUSED = "dbforge-key-refused";

/**
 * An error's message as text for the page (the SDK's errors name their status code). An
 * UNAUTHENTICATED answer (the key was revoked or expired meanwhile) also signs the tab out.
 */
export function errorText(e: unknown): string {
  if (e instanceof Unauthenticated) dispatchEvent(new Event(KEY_REFUSED));
  if (e instanceof Error) return e.message;
  return String(e);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration typed by a person: one or more `<number><unit>` parts with units s, m, h, d
 * (`90s`, `30m`, `1h30m`, `7d`). Empty text is undefined (no duration). Throws on anything else.
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase().replace(/\s+/g, "");
  if (!t) return undefined;
  if (!/^(\d+(\.\d+)?[smhd])+$/.test(t)) throw new Error(`"${text.trim()}" is not a duration such as 90s, 30m, 2h, 1h30m or 7d`);
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms <= 0) throw new Error("a duration must be longer than zero");
  return Math.round(ms);
}

/** A duration in its largest whole units, e.g. `1h 30m`, `45s`. */
export function durationText(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, secs] of [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]] as const) {
    if (rest >= secs) {
      parts.push(`${Math.floor(rest / secs)}${unit}`);
      rest %= secs;
    }
  }
  return parts.join(" ") || "0s";
}
