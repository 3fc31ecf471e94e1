"""Column summaries of a query's result (`summarize`): what an agent reads instead of rows that
would not fit its context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from dbforge.errors import ProtocolError
from dbforge.types import Column, Summary, columns_from_pb
from dbforge.v1 import query_pb2, types_pb2
from dbforge.values import from_value, to_values


@dataclass(frozen=True)
class ColumnSummary:
    """One column of a result: `count` (non-NULL values), `nulls`, `distinct` (exact when
    `distinct_exact`, else a HyperLogLog++ estimate past 10,000 distinct values), `min` and `max`
    (numbers < text < bytes; None for JSON), and the most frequent values as (value, count)
    pairs, most frequent first (`top_values_exact` says whether the counts are exact)."""

    name: str
    count: int
    nulls: int
    distinct: int
    distinct_exact: bool
    min: Any
    max: Any
    top_values: List[Tuple[Any, int]]
    top_values_exact: bool

    @classmethod
    def from_pb(cls, c: query_pb2.ColumnSummary) -> ColumnSummary:
        def value(v: types_pb2.Value, present: bool) -> Any:
            return from_value(v) if present else None

        return cls(
            name=c.name,
            count=c.count,
            nulls=c.nulls,
            distinct=c.distinct,
            distinct_exact=c.distinct_exact,
            min=value(c.min, c.HasField("min")),
            max=value(c.max, c.HasField("max")),
            top_values=[(from_value(t.value), t.count) for t in c.top_values],
            top_values_exact=c.top_values_exact,
        )


@dataclass(frozen=True)
class Summarized:
    """A summarized result: its columns, one `ColumnSummary` per column, and the stream's
    `summary` (rows read; `truncation` says whether `max_rows` cut them)."""

    columns: List[Column]
    summaries: List[ColumnSummary]
    summary: Summary

    def column(self, name: str) -> Optional[ColumnSummary]:
        """The summary of the column called `name`."""
        return next((c for c in self.summaries if c.name == name), None)


def summarize_request(
    database: str, sql: str, params: Sequence[Any], max_rows: int, read_only: bool
) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(
        database=database,
        sql=sql,
        params=to_values(params),
        max_rows=max_rows,
        summarize=True,
        read_only=read_only,
    )


def summarized(messages: List[query_pb2.QueryResponse]) -> Summarized:
    columns: List[Column] = []
    summaries: List[ColumnSummary] = []
    for m in messages:
        kind = m.WhichOneof("kind")
        if kind == "header":
            columns = columns_from_pb(m.header.columns)
        elif kind == "column_summaries":
            summaries = [ColumnSummary.from_pb(c) for c in m.column_summaries.columns]
        elif kind == "summary":
            return Summarized(columns, summaries, Summary.from_pb(m.summary))
    raise ProtocolError("the summarized stream ended without its summary")
