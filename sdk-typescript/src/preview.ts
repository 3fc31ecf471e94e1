// Dry runs (QueryService.Preview): what statements would do, with nothing committed.

import type { StatementPreview as PbStatementPreview } from "./gen/dbforge/v1/query_pb.js";
import { errorFor, type DBForgeError } from "./errors.js";
import { planFromPb, type Plan } from "./schema.js";
import { columnsFromPb, rowsFromPb, type Column, type Row } from "./types.js";

/** What one statement would do, as `preview` reports it. */
export interface StatementPreview {
  /** "SELECT", "INSERT", "UPDATE", "DELETE" or "OTHER" (DDL and the rest: run, no sample). */
  kind: string;
  /** Rows the statement changed. */
  rowsAffected: number;
  /** Columns of `before` and `after`. */
  columns: Column[];
  /** UPDATE and DELETE: sampled rows as they were before the statement. */
  before: Row[];
  /** UPDATE: the same rows after it, in the same order; INSERT: new rows; SELECT: first rows. */
  after: Row[];
  /** Why a sample is missing or partial; empty when complete. */
  sampleNote: string;
  /** The plan, taken inside the transaction before the statement ran. */
  plan: Plan | undefined;
  /** The engine's error as the exception `execute` would throw (not thrown here). */
  error: DBForgeError | undefined;
  /** Not run: an earlier failure ended the transaction. */
  skipped: boolean;
}

export function statementPreviewFromPb(p: PbStatementPreview): StatementPreview {
  const e = p.error;
  return {
    kind: p.kind,
    rowsAffected: Number(p.rowsAffected),
    columns: columnsFromPb(p.columns),
    before: rowsFromPb(p.before),
    after: rowsFromPb(p.after),
    sampleNote: p.sampleNote,
    plan: p.plan ? planFromPb(p.plan) : undefined,
    error: e ? errorFor(e.code, e.message, e.reason || undefined, { ...e.metadata }) : undefined,
    skipped: p.skipped,
  };
}
