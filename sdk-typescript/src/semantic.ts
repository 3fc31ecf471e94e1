// Questions in natural language (SemanticService.Ask): the gateway's model writes one SQL query
// grounded in the schema, the engine's EXPLAIN checks it, and with `run` it runs read-only. And
// SQL databases mapped into graph databases (SemanticService.MaterializeGraph).

import {
  AskStatus,
  type AskAnswer,
  type AskResponse,
  type AskStreamResponse,
  type MaterializeGraphResponse,
} from "./gen/dbforge/v1/semantic_pb.js";
import type { StreamPart } from "./fastpath.js";
import { columnsFromPb, rowsFromPb, summaryFromPb, type Column, type Row, type Summary } from "./types.js";

/** The model's query and what the engine made of it. */
export interface Answer {
  /** "ANSWERED", or "GAVE_UP" when no valid query came after the repair rounds (`message` says why). */
  status: "ANSWERED" | "GAVE_UP";
  /** The query (the model's last try when given up). */
  sql: string;
  /** The model's explanation, one paragraph. */
  rationale: string;
  /** One read-only query that the engine's EXPLAIN accepted. */
  valid: boolean;
  /** Why not, when not valid. */
  validationError: string;
  /** The engine's plan of the query. */
  plan: string;
  /** Tables the plan reads in full. */
  fullScans: string[];
  /** When given up: why. */
  message: string;
  /** Calls made to the model (0 when cached). */
  rounds: number;
  /** Served from the gateway's cache. */
  cached: boolean;
  /** The model that answered. */
  model: string;
}

/** An `Answer` with the rows, when the query ran (`run: true`). */
export interface Asked {
  answer: Answer;
  columns: Column[];
  rows: Row[];
  summary: Summary | undefined;
}

/** Options of `ask`. */
export interface AskOptions {
  /** Run the query on the read-only login and return its rows. */
  run?: boolean;
  /** Rows at most (default 100, capped by the server). */
  maxRows?: number;
  /** Time the query may run, in milliseconds (default: the server's statement timeout). */
  timeoutMs?: number;
}

export function answerFromPb(a: AskAnswer | undefined): Answer {
  const v = a?.validation;
  return {
    status: a?.status === AskStatus.ANSWERED ? "ANSWERED" : "GAVE_UP",
    sql: a?.sql ?? "",
    rationale: a?.rationale ?? "",
    valid: v?.valid ?? false,
    validationError: v?.error ?? "",
    plan: v?.plan ?? "",
    fullScans: [...(v?.fullScans ?? [])],
    message: a?.message ?? "",
    rounds: a?.rounds ?? 0,
    cached: a?.cached ?? false,
    model: a?.model ?? "",
  };
}

export function askedFromPb(r: AskResponse): Asked {
  return {
    answer: answerFromPb(r.answer),
    columns: columnsFromPb(r.columns),
    rows: rowsFromPb(r.rows),
    summary: r.summary ? summaryFromPb(r.summary) : undefined,
  };
}

/** The rows of an AskStream (after its answer) as the parts `Rows` reads. */
export async function* askStreamParts(it: AsyncIterator<AskStreamResponse>): AsyncIterable<StreamPart> {
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    const k = next.value.kind;
    if (k.case === "header") yield { case: "header", columns: columnsFromPb(k.value.columns) };
    else if (k.case === "batch") yield { case: "batch", rows: rowsFromPb(k.value.rows) };
    else if (k.case === "summary") yield { case: "summary", summary: summaryFromPb(k.value) };
  }
}

/** Options of `materializeGraph`. */
export interface MaterializeOptions {
  /** The IRI every table, column and row IRI starts with (default `urn:dbforge:<source>/`). */
  baseIri?: string;
  /** The named graph the triples go into (default: the default graph). */
  graph?: string;
  /** Clear that graph first, in the same transaction (a refresh); otherwise the triples are added. */
  replace?: boolean;
}

/** What one table of a `materializeGraph` gave. */
export interface MaterializedTable {
  table: string;
  /** Rows read. */
  rows: number;
  /** Triples written for them. */
  triples: number;
}

/** What `materializeGraph` loaded. */
export interface Materialized {
  /** Per base table, in name order. */
  tables: MaterializedTable[];
  /** Triples the graph database loaded. */
  triples: number;
  /** The base IRI used. */
  baseIri: string;
  /** The gateway's time, in milliseconds. */
  elapsedMs: number;
}

export function materializedFromPb(r: MaterializeGraphResponse): Materialized {
  return {
    tables: r.tables.map((t) => ({ table: t.table, rows: Number(t.rows), triples: Number(t.triples) })),
    triples: Number(r.triples),
    baseIri: r.baseIri,
    elapsedMs: Number(r.elapsedMs),
  };
}
