/**
 * The schema browser: tables and views with columns, types, keys, indexes, uniques, checks and
 * row estimates, and a foreign-key diagram laid out by dagre (layered graph layout) and drawn as
 * SVG. On Redis: the key patterns GetSchema samples.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { Graph, layout } from "@dagrejs/dagre";
import { TableKind, type Schema, type TableSchema } from "@dbforge/sdk/web";
import { errorText } from "../format";
import { href } from "../router";
import type { Session } from "../session";

export function SchemaPage({ session, db }: { session: Session; db: string }) {
  const [schema, setSchema] = useState<Schema | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setSchema(null);
    setError("");
    session.client.getSchema(db).then(setSchema, (e: unknown) => setError(errorText(e)));
  }, [db]);
  return (
    <section aria-labelledby="schema-title">
      <div class="page-head">
        <h1 id="schema-title">{db}</h1>
        <nav aria-label="Database" class="tabs">
          <a href={href({ page: "console", db })}>Console</a>
          <a href={href({ page: "schema", db })} aria-current="page">
            Schema
          </a>
        </nav>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!schema && !error && <p role="status">Loading schema…</p>}
      {schema?.keySpace && <KeySpace schema={schema} />}
      {schema && !schema.keySpace && schema.tables.length === 0 && <p class="muted">No tables yet.</p>}
      {schema && schema.tables.length > 0 && (
        <>
          <Diagram tables={schema.tables} />
          <div class="tables">
            {schema.tables.map((t) => (
              <TableCard t={t} key={t.name} />
            ))}
          </div>
        </>
      )}
    </section>
  );
}

function KeySpace({ schema }: { schema: Schema }) {
  const k = schema.keySpace!;
  return (
    <div>
      <p>
        {k.totalKeys} keys; {k.sampledKeys} sampled.
      </p>
      <table class="grid" data-testid="key-patterns">
        <thead>
          <tr>
            <th scope="col">Pattern</th>
            <th scope="col">Type</th>
            <th scope="col" class="num">
              Keys
            </th>
            <th scope="col">Example</th>
            <th scope="col" class="num">
              With TTL
            </th>
          </tr>
        </thead>
        <tbody>
          {k.patterns.map((p, i) => (
            <tr key={i}>
              <td class="code">{p.pattern}</td>
              <td>{p.type}</td>
              <td class="num">{p.count}</td>
              <td class="code">{p.example}</td>
              <td class="num">{p.withTtl}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TableCard({ t }: { t: TableSchema }) {
  const fkOf = (col: string) => t.foreignKeys.find((f) => f.columns.includes(col));
  return (
    <article class="table-card" aria-label={`${t.kind === TableKind.VIEW ? "View" : "Table"} ${t.name}`} data-table={t.name}>
      <h2>
        <span class="muted">{t.kind === TableKind.VIEW ? "view " : "table "}</span>
        {t.name}
        {t.rowEstimate !== undefined && <span class="muted"> · ~{t.rowEstimate.toLocaleString("en")} {t.rowEstimate === 1 ? "row" : "rows"}</span>}
      </h2>
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Column</th>
            <th scope="col">Type</th>
            <th scope="col">Null</th>
            <th scope="col">Key</th>
            <th scope="col">Default</th>
          </tr>
        </thead>
        <tbody>
          {t.columns.map((c) => {
            const fk = fkOf(c.name);
            return (
              <tr key={c.name}>
                <th scope="row">{c.name}</th>
                <td class="code">{c.declaredType}</td>
                <td>{c.nullable ? "yes" : "no"}</td>
                <td class="keys">
                  {c.primaryKey && <span class="badge">PK</span>}
                  {fk && (
                    <span class="badge" title={`references ${fk.referencedTable} (${fk.referencedColumns.join(", ")})`}>
                      FK → {fk.referencedTable}
                    </span>
                  )}
                  {c.autoIncrement && <span class="badge">auto</span>}
                </td>
                <td class="code">{c.defaultExpression ?? ""}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {t.indexes.length > 0 && (
        <p>
          <strong>Indexes: </strong>
          {t.indexes.map((i) => `${i.name} (${i.columns.join(", ")})${i.unique ? " unique" : ""}${i.primary ? " primary" : ""}`).join("; ")}
        </p>
      )}
      {t.foreignKeys.length > 0 && (
        <p>
          <strong>Foreign keys: </strong>
          {t.foreignKeys
            .map((f) => `(${f.columns.join(", ")}) → ${f.referencedTable} (${f.referencedColumns.join(", ")})${f.onDelete ? ` on delete ${f.onDelete}` : ""}`)
            .join("; ")}
        </p>
      )}
      {t.uniques.length > 0 && (
        <p>
          <strong>Unique: </strong>
          {t.uniques.map((u) => `${u.name} (${u.columns.join(", ")})`).join("; ")}
        </p>
      )}
      {t.checks.length > 0 && (
        <p>
          <strong>Checks: </strong>
          {t.checks.map((c) => (c.name ? `${c.name}: ${c.expression}` : c.expression)).join("; ")}
        </p>
      )}
      {t.definition && (
        <details>
          <summary>Definition</summary>
          <pre>{t.definition}</pre>
        </details>
      )}
    </article>
  );
}

function line(points: { x: number; y: number }[]): string {
  return points.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
}

const CHAR_W = 7.2;
const LINE_H = 18;
const PAD = 8;

/** Boxes per table (name + columns), edges per foreign key, placed by dagre. */
function Diagram({ tables }: { tables: TableSchema[] }) {
  const laid = useMemo(() => {
    const g = new Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 60, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    const names = new Set(tables.map((t) => t.name));
    for (const t of tables) {
      const longest = Math.max(t.name.length + 2, ...t.columns.map((c) => c.name.length + c.declaredType.length + 2));
      g.setNode(t.name, { width: Math.min(320, longest * CHAR_W + 2 * PAD), height: (t.columns.length + 1) * LINE_H + 2 * PAD });
    }
    let n = 0;
    for (const t of tables) {
      for (const f of t.foreignKeys) {
        // A table referencing itself is drawn as a loop beside its box (dagre lays out no self-edges well).
        if (names.has(f.referencedTable) && f.referencedTable !== t.name) g.setEdge(t.name, f.referencedTable, {}, `fk${n++}`);
      }
    }
    layout(g);
    const info = g.graph();
    return {
      width: (info.width ?? 0) + 48,
      height: (info.height ?? 0) + 16,
      nodes: tables.map((t) => ({ t, box: g.node(t.name) })),
      edges: [
        ...g.edges().map((e) => ({ id: e.name ?? `${e.v}-${e.w}`, from: e.v, to: e.w, d: line((g.edge(e).points ?? []) as { x: number; y: number }[]) })),
        ...tables.flatMap((t) =>
          t.foreignKeys
            .filter((f) => f.referencedTable === t.name)
            .map((f, i) => {
              const b = g.node(t.name);
              const x = b.x + b.width / 2;
              const y = b.y - b.height / 4 + i * 6;
              return { id: `self-${t.name}-${f.name}-${i}`, from: t.name, to: t.name, d: `M ${x} ${y} C ${x + 36} ${y - 10}, ${x + 36} ${y + 30}, ${x} ${y + 20}` };
            }),
        ),
      ],
    };
  }, [tables]);
  return (
    <figure class="diagram">
      <figcaption>
        Foreign keys: {laid.edges.length === 0 ? "none" : laid.edges.map((e) => `${e.from} → ${e.to}`).join(", ")}
      </figcaption>
      <div class="diagram-scroll" tabIndex={0} aria-label="Foreign-key diagram (scrollable)">
        <svg width={laid.width} height={laid.height} viewBox={`0 0 ${laid.width} ${laid.height}`} role="img" aria-label="Tables and their foreign keys" data-testid="fk-diagram">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" class="arrow" />
            </marker>
          </defs>
          {laid.edges.map((e) => (
            <path
              key={e.id}
              class="edge"
              data-from={e.from}
              data-to={e.to}
              marker-end="url(#arrow)"
              d={e.d}
            />
          ))}
          {laid.nodes.map(({ t, box }) => {
            const x = box.x - box.width / 2;
            const y = box.y - box.height / 2;
            return (
              <g key={t.name} class="node" data-table={t.name} transform={`translate(${x.toFixed(1)} ${y.toFixed(1)})`}>
                <rect width={box.width} height={box.height} rx="4" />
                <text x={PAD} y={PAD + 13} class="node-title">
                  {t.name}
                </text>
                {t.columns.map((c, i) => (
                  <text key={c.name} x={PAD} y={PAD + 13 + (i + 1) * LINE_H} class={c.primaryKey ? "pk" : ""}>
                    {c.name} <tspan class="type">{c.declaredType}</tspan>
                  </text>
                ))}
              </g>
            );
          })}
        </svg>
      </div>
    </figure>
  );
}
