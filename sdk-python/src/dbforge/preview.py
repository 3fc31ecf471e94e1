"""Dry runs (`preview`): what statements would do, with nothing committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Tuple

from dbforge.errors import DBForgeError, error_for_number
from dbforge.schema import Plan
from dbforge.types import Column, StatementLike, columns_from_pb, statement_pb
from dbforge.v1 import query_pb2
from dbforge.values import decode_rows


@dataclass(frozen=True)
class StatementPreview:
    """What one statement would do. `kind` is "SELECT", "INSERT", "UPDATE", "DELETE" or
    "OTHER" (DDL and the rest: run, no sample). `before` holds sampled rows as they were before
    an UPDATE or DELETE; `after` the same rows after an UPDATE (same order), the new rows of an
    INSERT, or a query's first rows. `sample_note` says why a sample is missing or partial.
    `error` is the engine's error as the exception Execute would raise (not raised here);
    `skipped` means an earlier failure ended the transaction, so the statement did not run."""

    kind: str
    rows_affected: int
    columns: List[Column]
    before: List[Tuple[Any, ...]]
    after: List[Tuple[Any, ...]]
    sample_note: str
    plan: Optional[Plan]
    error: Optional[DBForgeError]
    skipped: bool

    @classmethod
    def from_pb(cls, p: query_pb2.StatementPreview) -> StatementPreview:
        error = None
        if p.HasField("error"):
            e = p.error
            error = error_for_number(e.code, e.message, e.reason or None, dict(e.metadata))
        return cls(
            kind=p.kind,
            rows_affected=p.rows_affected,
            columns=columns_from_pb(p.columns),
            before=decode_rows(p.before),
            after=decode_rows(p.after),
            sample_note=p.sample_note,
            plan=Plan.from_pb(p.plan) if p.HasField("plan") else None,
            error=error,
            skipped=p.skipped,
        )


def preview_request(
    database: str, statements: Iterable[StatementLike], sample_rows: int
) -> query_pb2.PreviewRequest:
    return query_pb2.PreviewRequest(
        database=database,
        statements=[statement_pb(s) for s in statements],
        sample_rows=sample_rows,
    )


def previews(resp: query_pb2.PreviewResponse) -> List[StatementPreview]:
    return [StatementPreview.from_pb(p) for p in resp.statements]
