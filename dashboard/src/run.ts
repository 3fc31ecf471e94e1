/**
 * Running one statement and keeping its result as it streams in. Rows are appended to one
 * array as batches arrive; the page is told at most once per animation frame, so a fast stream
 * does not re-render per batch, and the first rows are on screen before the query finishes.
 */
import { Truncation, type Column, type DBForgeClient, type Row, type SqlParam, type Summary } from "@dbforge/sdk/web";
import { errorText } from "./format";

export interface RunState {
  /** Which run this is on the page (1, 2, ...): tells a new result from the one before. */
  id: number;
  sql: string;
  columns: Column[];
  rows: Row[];
  count: number;
  running: boolean;
  summary: Summary | undefined;
  error: string;
  /** Wall time in the browser, ms. */
  wallMs: number;
  /** Time to the first batch on screen, ms. */
  firstRowsMs: number | undefined;
  cancelled: boolean;
}

export function truncationText(t: Truncation): string {
  return t === Truncation.ROW_LIMIT ? "truncated at the row limit" : t === Truncation.BYTE_LIMIT ? "truncated at the byte limit" : "";
}

/** Parameters typed by their JSON type: numbers (int when integral), text, true/false, null, objects as JSON. */
export function parseParams(text: string): SqlParam[] {
  const t = text.trim();
  if (!t) return [];
  const v: unknown = JSON.parse(t);
  if (!Array.isArray(v)) throw new Error("parameters must be a JSON array, e.g. [1, \"text\", null]");
  return v as SqlParam[];
}

let runs = 0;

export function startRun(
  client: DBForgeClient,
  db: string,
  sql: string,
  params: SqlParam[],
  onUpdate: (s: RunState) => void,
): { cancel: () => void; done: Promise<void> } {
  const abort = new AbortController();
  const t0 = performance.now();
  const st: RunState = {
    id: ++runs,
    sql,
    columns: [],
    rows: [],
    count: 0,
    running: true,
    summary: undefined,
    error: "",
    wallMs: 0,
    firstRowsMs: undefined,
    cancelled: false,
  };
  let frame = 0;
  const push = () => {
    frame = 0;
    st.count = st.rows.length;
    st.wallMs = performance.now() - t0;
    onUpdate({ ...st });
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(push);
  };
  const done = (async () => {
    try {
      const rows = await client.query(db, sql, params, { signal: abort.signal });
      st.columns = rows.columns;
      schedule();
      for (let b = await rows.nextBatch(); b; b = await rows.nextBatch()) {
        if (st.firstRowsMs === undefined) st.firstRowsMs = performance.now() - t0;
        for (const r of b) st.rows.push(r);
        schedule();
      }
      st.summary = rows.summary;
    } catch (e) {
      st.error = abort.signal.aborted ? "" : errorText(e);
    } finally {
      st.running = false;
      if (frame) cancelAnimationFrame(frame);
      push();
    }
  })();
  return {
    cancel: () => {
      st.cancelled = true;
      abort.abort();
    },
    done,
  };
}

const HISTORY_MAX = 50;

/** Statements run on a database (`<key id>/<database>`), newest first, in localStorage (statements only, never keys). */
export function history(db: string): string[] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(`dbforge.history.${db}`) ?? "[]");
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

export function remember(db: string, sql: string): string[] {
  const list = [sql, ...history(db).filter((s) => s !== sql)].slice(0, HISTORY_MAX);
  try {
    localStorage.setItem(`dbforge.history.${db}`, JSON.stringify(list));
  } catch {
    // storage full or disabled: history is a convenience
  }
  return list;
}

/** Saves bytes as a file through a temporary object URL. */
export function download(name: string, parts: BlobPart[], type: string): void {
  const url = URL.createObjectURL(new Blob(parts, { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * The statements of a script, split at `;` outside quotes ('…', "…", `…`), comments (`--`,
 * `#` on MySQL, `/* … *\/`) and PostgreSQL dollar quotes ($tag$ … $tag$); empty ones are
 * dropped. `mysql`: `#` starts a comment and a backslash escapes inside quotes, as MySQL reads
 * them (elsewhere a backslash is an ordinary character). Used by Preview, which takes the statements one by one and reports on each.
 */
export function splitStatements(script: string, opts: { mysql?: boolean } = {}): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;
  const push = (end: number) => {
    const s = script.slice(start, end).trim();
    if (s && !/^(\s|--[^\n]*(\n|$)|#[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*$/.test(s)) out.push(s);
  };
  while (i < n) {
    const ch = script[i]!;
    const next = script[i + 1];
    if (ch === "'" || ch === '"' || ch === "`") {
      // A doubled quote inside is the quote itself.
      i++;
      while (i < n) {
        if (opts.mysql && script[i] === "\\" && ch !== "`") i += 2;
        else if (script[i] === ch) {
          if (script[i + 1] === ch) i += 2;
          else break;
        } else i++;
      }
      i++;
    } else if (ch === "-" && next === "-") {
      const e = script.indexOf("\n", i);
      i = e < 0 ? n : e + 1;
    } else if (ch === "#" && opts.mysql) {
      const e = script.indexOf("\n", i);
      i = e < 0 ? n : e + 1;
    } else if (ch === "/" && next === "*") {
      const e = script.indexOf("*/", i + 2);
      i = e < 0 ? n : e + 2;
    } else if (ch === "$") {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i));
      if (m && !/[A-Za-z0-9_]/.test(script[i - 1] ?? "")) {
        const e = script.indexOf(m[0], i + m[0].length);
        i = e < 0 ? n : e + m[0].length;
      } else i++;
    } else if (ch === ";") {
      push(i);
      i++;
      start = i;
    } else i++;
  }
  push(n);
  return out;
}
