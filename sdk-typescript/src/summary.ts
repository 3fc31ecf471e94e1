// Column summaries of a query's result (Query with `summarize`): what an agent reads instead of
// rows that would not fit its context.

import type { ColumnSummary as PbColumnSummary, QueryResponse } from "./gen/dbforge/v1/query_pb.js";
import { Internal } from "./errors.js";
import { columnsFromPb, summaryFromPb, type Column, type Summary } from "./types.js";
import { fromValue, type SqlValue } from "./values.js";

/** One column of a result, summarized by `summarize`. */
export interface ColumnSummary {
  name: string;
  /** Values that are not NULL. */
  count: number;
  nulls: number;
  /** Distinct non-NULL values: exact when `distinctExact`, else a HyperLogLog++ estimate. */
  distinct: number;
  distinctExact: boolean;
  /** The smallest value (numbers < text < bytes); undefined when there is none (JSON). */
  min: SqlValue | undefined;
  max: SqlValue | undefined;
  /** The most frequent values with their counts, most frequent first (at most 5). */
  topValues: [SqlValue, number][];
  topValuesExact: boolean;
}

/** A summarized result: the columns, one summary per column, and the stream's summary. */
export interface Summarized {
  columns: Column[];
  summaries: ColumnSummary[];
  /** Rows read; `truncation` says whether `maxRows` cut them. */
  summary: Summary;
}

function columnSummaryFromPb(c: PbColumnSummary): ColumnSummary {
  return {
    name: c.name,
    count: Number(c.count),
    nulls: Number(c.nulls),
    distinct: Number(c.distinct),
    distinctExact: c.distinctExact,
    min: c.min ? fromValue(c.min) : undefined,
    max: c.max ? fromValue(c.max) : undefined,
    topValues: c.topValues.map((t) => [t.value ? fromValue(t.value) : null, Number(t.count)]),
    topValuesExact: c.topValuesExact,
  };
}

export function summarizedFromPb(messages: readonly QueryResponse[]): Summarized {
  let columns: Column[] = [];
  let summaries: ColumnSummary[] = [];
  for (const m of messages) {
    switch (m.kind.case) {
      case "header":
        columns = columnsFromPb(m.kind.value.columns);
        break;
      case "columnSummaries":
        summaries = m.kind.value.columns.map(columnSummaryFromPb);
        break;
      case "summary":
        return { columns, summaries, summary: summaryFromPb(m.kind.value) };
      default:
        break;
    }
  }
  throw new Internal("the summarized stream ended without its summary");
}
