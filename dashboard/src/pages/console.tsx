/**
 * The console of one database: SQL (editor, parameters, run/cancel, explain, preview, export,
 * history, results, charts) or, on Redis, a command box and a key browser over the same result
 * table. One output shows at a time (the result, the plan or the preview), each headed by the
 * statement it is about; a switch names the others still at hand.
 */
import { lazy, Suspense } from "preact/compat";
import { useEffect, useRef, useState } from "preact/hooks";
import {
  Backend,
  walkPlan,
  type Column,
  type Database,
  type Plan,
  type PlanNode,
  type Row,
  type SqlParam,
  type StatementPreview,
} from "@dbforge/sdk/web";
import { SqlEditor, type EditorHandle } from "../components/editor";
import { ResultTable } from "../components/results";
import { backendName, cellKind, cellText, errorText } from "../format";
import { href } from "../router";
import { download, history, parseParams, remember, splitStatements, startRun, truncationText, type RunState } from "../run";
import type { Session } from "../session";

const ChartPanel = lazy(() => import("../components/chart").then((m) => m.ChartPanel));

export function ConsolePage({ session, db }: { session: Session; db: string }) {
  const [info, setInfo] = useState<Database | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setInfo(null);
    session.client.getDatabase(db).then(setInfo, (e: unknown) => setError(errorText(e)));
  }, [db]);
  return (
    <section aria-labelledby="console-title">
      <div class="page-head">
        <h1 id="console-title">
          {db} <span class="muted">{info ? backendName(info.backend) : ""}</span>
        </h1>
        <nav aria-label="Database" class="tabs">
          <a href={href({ page: "console", db })} aria-current="page">
            Console
          </a>
          <a href={href({ page: "schema", db })}>Schema</a>
        </nav>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {info && <Console key={db} session={session} db={info} />}
    </section>
  );
}

function Console({ session, db }: { session: Session; db: Database }) {
  const redis = db.backend === Backend.REDIS;
  const editor = useRef<EditorHandle | null>(null);
  const [command, setCommand] = useState("");
  const [params, setParams] = useState("");
  const [tables, setTables] = useState<Record<string, string[]>>({});
  const [run, setRun] = useState<RunState | null>(null);
  const [plan, setPlan] = useState<{ sql: string; plan: Plan } | null>(null);
  const [preview, setPreview] = useState<{ statements: string[]; results: StatementPreview[] } | null>(null);
  const [view, setView] = useState<View>("result");
  const [previewing, setPreviewing] = useState(false);
  const [note, setNote] = useState("");
  // History is kept per key and database, so keys sharing a browser do not see each other's.
  const histKey = `${session.me.id}/${db.name}`;
  const [hist, setHist] = useState(() => history(histKey));
  const [chart, setChart] = useState(false);
  // EXPLAIN ANALYZE runs the statement (in a transaction rolled back); SQLite has none.
  const [analyze, setAnalyze] = useState(false);
  const canAnalyze = db.backend === Backend.POSTGRES || db.backend === Backend.MYSQL;
  const current = useRef<{ cancel: () => void } | null>(null);

  useEffect(() => {
    if (redis) return;
    session.client.getSchema(db.name).then(
      (s) => setTables(Object.fromEntries(s.tables.map((t) => [t.name, t.columns.map((c) => c.name)]))),
      () => undefined,
    );
  }, [db.name]);
  useEffect(() => () => current.current?.cancel(), []);

  const statement = () => (redis ? command : editor.current?.text() ?? "").trim();
  const typedParams = (): SqlParam[] | null => {
    try {
      return parseParams(params);
    } catch (e) {
      setNote(`Parameters: ${errorText(e)}`);
      return null;
    }
  };

  const execute = (text = statement()) => {
    if (!text || run?.running) return;
    const p = typedParams();
    if (!p) return;
    setNote("");
    setView("result");
    setHist(remember(histKey, text));
    current.current = startRun(session.client, db.name, text, p, setRun);
  };
  const cancel = () => current.current?.cancel();

  const explain = async () => {
    const text = statement();
    const p = typedParams();
    if (!text || !p) return;
    setNote("");
    try {
      setPlan({ sql: text, plan: await session.client.explain(db.name, text, p, { analyze: canAnalyze && analyze }) });
      setView("plan");
    } catch (e) {
      setNote(`EXPLAIN: ${errorText(e)}`);
    }
  };

  // A dry run of every statement in the editor, rolled back by the gateway.
  const dryRun = async () => {
    const statements = splitStatements(statement(), { mysql: db.backend === Backend.MYSQL });
    const p = typedParams();
    if (!statements.length || !p) return;
    if (p.length && statements.length > 1) {
      setNote("Preview: parameters need a single statement (this script has several).");
      return;
    }
    setNote("");
    setPreviewing(true);
    try {
      const results = await session.client.preview(db.name, statements.length === 1 ? [{ sql: statements[0]!, params: p }] : statements, {
        sampleRows: 10,
      });
      setPreview({ statements, results });
      setView("preview");
    } catch (e) {
      setNote(`Preview: ${errorText(e)}`);
    } finally {
      setPreviewing(false);
    }
  };

  const exportAs = async (format: "csv" | "json") => {
    const text = statement();
    const p = typedParams();
    if (!text || !p) return;
    setNote(`Exporting ${format.toUpperCase()}…`);
    try {
      const exp = await session.client.exportQuery(db.name, text, p, { format });
      const parts: Uint8Array[] = [];
      for await (const chunk of exp) parts.push(chunk);
      download(`${db.name}.${format}`, parts as BlobPart[], format === "csv" ? "text/csv" : "application/json");
      setNote(`Exported ${exp.rows} rows as ${format.toUpperCase()}.`);
    } catch (e) {
      setNote(`Export: ${errorText(e)}`);
    }
  };

  return (
    <div class={redis ? "console console-redis" : "console"}>
      <div class="console-main">
        {redis ? (
          <form
            class="command"
            onSubmit={(e) => {
              e.preventDefault();
              execute();
            }}
          >
            <label for="redis-command">Command</label>
            <input
              id="redis-command"
              value={command}
              spellcheck={false}
              placeholder='SET greeting "hello"'
              onInput={(e) => setCommand((e.target as HTMLInputElement).value)}
            />
          </form>
        ) : (
          <>
            <SqlEditor
              backend={db.backend}
              tables={tables}
              initial={hist[0] ?? ""}
              onRun={() => execute()}
              handle={(h) => (editor.current = h)}
            />
            <div class="field params">
              <label for="params">Parameters (JSON array, typed: 1, 1.5, "text", true, null)</label>
              <input
                id="params"
                value={params}
                spellcheck={false}
                placeholder='[42, "x"]'
                onInput={(e) => setParams((e.target as HTMLInputElement).value)}
              />
            </div>
          </>
        )}
        <div class="toolbar" role="toolbar" aria-label="Statement">
          <button type="button" class="primary" onClick={() => execute()} disabled={run?.running} aria-keyshortcuts="Control+Enter Meta+Enter">
            Run
          </button>
          <button type="button" onClick={cancel} disabled={!run?.running}>
            Cancel
          </button>
          {!redis && (
            <>
              <button type="button" onClick={explain}>
                Explain
              </button>
              <button type="button" onClick={() => void dryRun()} disabled={previewing} aria-describedby="preview-help">
                {previewing ? "Previewing…" : "Preview"}
              </button>
              <span id="preview-help" class="sr-only">
                Runs the statements in a transaction that is always rolled back and shows what they would change.
              </span>
              {canAnalyze && (
                <label class="check">
                  <input type="checkbox" checked={analyze} onChange={(e) => setAnalyze((e.target as HTMLInputElement).checked)} /> analyze
                </label>
              )}
            </>
          )}
          {/* Exports run the statement again on the gateway (read-only, whatever the key's role):
              on Redis too, where a read command's reply is exported as its rows. */}
          <button type="button" onClick={() => exportAs("csv")}>
            Export CSV
          </button>
          <button type="button" onClick={() => exportAs("json")}>
            Export JSON
          </button>
          <button
            type="button"
            onClick={() => {
              // The chart belongs to the result: showing it brings the result back into view.
              setChart((c) => view !== "result" || !c);
              setView("result");
            }}
            aria-pressed={chart && view === "result"}
            disabled={!run?.columns.length}
          >
            Chart
          </button>
        </div>
        {note && (
          <p class="note" role="status">
            {note}
          </p>
        )}
        <OutputSwitch view={view} onView={setView} have={{ result: run !== null, plan: plan !== null, preview: preview !== null }} />
        {view === "plan" && plan && <PlanView sql={plan.sql} plan={plan.plan} />}
        {view === "preview" && preview && <PreviewView statements={preview.statements} results={preview.results} />}
        {view === "result" && run && (
          <section class="output" aria-labelledby="result-title" data-testid="result-output">
            <h2 id="result-title">
              Result <span class="muted code stmt">{oneLine(run.sql)}</span>
            </h2>
            <RunStatus run={run} />
            {chart && run.columns.length > 0 && !run.running && (
              <Suspense fallback={<p role="status">Loading charts…</p>}>
                <ChartPanel columns={run.columns} rows={run.rows} />
              </Suspense>
            )}
            {run.columns.length > 0 && <ResultTable columns={run.columns} rows={run.rows} count={run.count} />}
          </section>
        )}
      </div>
      <aside class="side">
        {redis && <KeyBrowser session={session} db={db.name} onPick={(cmd) => (setCommand(cmd), execute(cmd))} />}
        <History
          items={hist}
          onPick={(s) => {
            if (redis) setCommand(s);
            else editor.current?.set(s);
          }}
        />
      </aside>
    </div>
  );
}

function RunStatus({ run }: { run: RunState }) {
  const s = run.summary;
  const parts: string[] = [];
  if (run.running) parts.push(`Running… ${plural(run.count, "row")} so far`);
  else if (run.cancelled) parts.push(`Cancelled after ${plural(run.count, "row")}`);
  else if (!run.error) {
    parts.push(run.columns.length ? plural(run.count, "row") : `${plural(s?.rowsAffected ?? 0, "row")} affected`);
    parts.push(`${run.wallMs.toFixed(0)} ms`);
    if (s) parts.push(`server ${s.elapsedMs.toFixed(1)} ms`);
    if (s && truncationText(s.truncation)) parts.push(truncationText(s.truncation));
  }
  return (
    <div class="run-status">
      <p role="status" data-testid="run-status" data-run={run.id} data-running={run.running ? "yes" : "no"}>
        {parts.join(" · ")}
      </p>
      {run.error && (
        <p class="error" role="alert" data-testid="run-error">
          {run.error}
        </p>
      )}
    </div>
  );
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
}

type View = "result" | "plan" | "preview";

const VIEW_NAMES: Record<View, string> = { result: "Result", plan: "Plan", preview: "Preview" };

/** Which output shows, when there is more than one to choose from. */
function OutputSwitch({ view, onView, have }: { view: View; onView: (v: View) => void; have: Record<View, boolean> }) {
  const views = (Object.keys(VIEW_NAMES) as View[]).filter((v) => have[v]);
  if (views.length < 2) return null;
  return (
    <div class="toolbar output-switch" role="group" aria-label="Output" data-testid="output-switch">
      <span class="muted">Show:</span>
      {views.map((v) => (
        <button type="button" key={v} aria-pressed={view === v} onClick={() => onView(v)}>
          {VIEW_NAMES[v]}
        </button>
      ))}
    </div>
  );
}

function oneLine(sql: string): string {
  const s = sql.replace(/\s+/g, " ").trim();
  return s.length > 100 ? s.slice(0, 100) + "…" : s;
}

function PlanView({ sql, plan }: { sql: string; plan: Plan }) {
  const scans = [...walkPlan(plan.nodes)].filter((n) => n.fullScan).length;
  return (
    <section class="plan output" aria-labelledby="plan-title" data-testid="plan">
      <h2 id="plan-title">
        Plan <span class="muted code stmt">{oneLine(sql)}</span>
      </h2>
      <p class={scans ? "warn" : "muted"}>
        {plan.fullScans.length ? `Full scans: ${plan.fullScans.join(", ")}` : "No full table scans."}
      </p>
      <PlanNodes nodes={plan.nodes} />
      <details>
        <summary>Raw plan</summary>
        <pre>{plan.raw}</pre>
      </details>
    </section>
  );
}

function PlanNodes({ nodes }: { nodes: PlanNode[] }) {
  if (!nodes.length) return null;
  return (
    <ul class="plan-tree">
      {nodes.map((n, i) => (
        <li key={i} class={n.fullScan ? "fullscan" : ""}>
          <span class="op">{n.operation}</span>
          {n.relation && <span> on {n.relation}</span>}
          {n.fullScan && <span class="badge warn">full scan</span>}
          {n.detail && <span class="muted"> {n.detail}</span>}
          {n.estimatedRows !== undefined && <span class="muted"> · ~{n.estimatedRows} rows</span>}
          {n.actualRows !== undefined && <span class="muted"> · {n.actualRows} actual</span>}
          <PlanNodes nodes={n.children} />
        </li>
      ))}
    </ul>
  );
}

/** Per statement: what it did, samples before and after, its plan or its error (all rolled back). */
function PreviewView({ statements, results }: { statements: string[]; results: StatementPreview[] }) {
  return (
    <section class="preview output" aria-labelledby="preview-title" data-testid="preview">
      <h2 id="preview-title">
        Preview <span class="muted">{statements.length === 1 ? "1 statement" : `${statements.length} statements`}, rolled back: nothing was changed</span>
      </h2>
      <ol class="preview-list">
        {results.map((r, i) => (
          <li key={i} data-testid="preview-statement" data-kind={r.kind}>
            <h3>
              <span class="badge">{r.kind}</span> <span class="code stmt">{oneLine(statements[i] ?? "")}</span>
            </h3>
            {r.skipped ? (
              <p class="muted">Not run: an earlier statement ended the transaction.</p>
            ) : r.error ? (
              <p class="error" data-testid="preview-error">
                {r.error.message}
              </p>
            ) : (
              <p data-testid="preview-affected">{r.kind === "SELECT" ? `${plural(r.after.length, "row")} sampled` : `${plural(r.rowsAffected, "row")} affected`}</p>
            )}
            {r.sampleNote && <p class="muted">{r.sampleNote}</p>}
            {r.before.length > 0 && <Sample title="Before" testid="preview-before" columns={r.columns} rows={r.before} />}
            {r.after.length > 0 && <Sample title={r.kind === "SELECT" ? "First rows" : r.kind === "INSERT" ? "Inserted" : "After"} testid="preview-after" columns={r.columns} rows={r.after} />}
            {r.plan && (
              <details>
                <summary>Plan{r.plan.fullScans.length ? ` (full scans: ${r.plan.fullScans.join(", ")})` : ""}</summary>
                <PlanNodes nodes={r.plan.nodes} />
              </details>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Sample({ title, testid, columns, rows }: { title: string; testid: string; columns: Column[]; rows: Row[] }) {
  return (
    <div class="scroll-x">
      <table class="grid sample" data-testid={testid}>
        <caption>{title}</caption>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, ri) => (
            <tr key={ri}>
              {row.map((v, ci) => (
                <td key={ci} class={`cell ${cellKind(v)}`}>
                  {cellText(v)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function History({ items, onPick }: { items: string[]; onPick: (s: string) => void }) {
  return (
    <section aria-labelledby="history-title" class="history">
      <h2 id="history-title">History</h2>
      {items.length === 0 ? (
        <p class="muted">Statements you run here are kept in this browser.</p>
      ) : (
        <ol>
          {items.map((s, i) => (
            <li key={i}>
              <button type="button" class="link code" onClick={() => onPick(s)} title={s}>
                {s.length > 120 ? s.slice(0, 120) + "…" : s}
              </button>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** Redis keys by pattern (a confined KEYS, which the gateway emulates with SCAN), first 500. */
function KeyBrowser({ session, db, onPick }: { session: Session; db: string; onPick: (cmd: string) => void }) {
  const [pattern, setPattern] = useState("*");
  const [keys, setKeys] = useState<string[] | null>(null);
  const [error, setError] = useState("");
  const load = async () => {
    setError("");
    try {
      const rows = await session.client.query(db, "KEYS", [pattern], { maxRows: 500 });
      const out: string[] = [];
      for await (const r of rows) out.push(String(r[0]));
      setKeys(out.sort());
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    void load();
  }, [db]);
  const show = async (key: string) => {
    try {
      const r = await session.client.execute(db, "TYPE", [key]);
      const type = String(r.rows[0]?.[0] ?? "string");
      const q = JSON.stringify(key);
      const cmd: Record<string, string> = {
        string: `GET ${q}`,
        hash: `HGETALL ${q}`,
        list: `LRANGE ${q} 0 -1`,
        set: `SMEMBERS ${q}`,
        zset: `ZRANGE ${q} 0 -1 WITHSCORES`,
        stream: `XRANGE ${q} - +`,
      };
      onPick(cmd[type] ?? `TYPE ${q}`);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section aria-labelledby="keys-title" class="keys">
      <h2 id="keys-title">Keys</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label for="key-pattern">Pattern</label>
        <input id="key-pattern" value={pattern} onInput={(e) => setPattern((e.target as HTMLInputElement).value)} />
        <button type="submit">List</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {keys && (
        <ul data-testid="keys">
          {keys.map((k) => (
            <li key={k}>
              <button type="button" class="link code" onClick={() => show(k)}>
                {k}
              </button>
            </li>
          ))}
          {keys.length === 0 && <li class="muted">No keys.</li>}
        </ul>
      )}
    </section>
  );
}
