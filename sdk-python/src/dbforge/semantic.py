"""Questions in natural language (`ask`): the gateway's model writes one SQL query grounded in
the schema, the engine's EXPLAIN checks it, and with `run` it runs read-only. And SQL databases
mapped into graph databases (`materialize_graph`)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from dbforge.errors import ProtocolError
from dbforge.types import Column, Summary, columns_from_pb
from dbforge.v1 import semantic_pb2
from dbforge.values import decode_rows

__all__ = ["Answer", "Asked", "Materialized", "MaterializedTable"]


@dataclass(frozen=True)
class Answer:
    """The model's query and what the engine made of it. `status` is "ANSWERED" or "GAVE_UP"
    (then `message` says why and `sql` is the last try); `valid` says the engine's EXPLAIN
    accepted one read-only query, `validation_error` why not; `full_scans` names the tables
    the plan reads in full. `rounds` counts the calls to the model (0 when `cached`)."""

    status: str
    sql: str
    rationale: str
    valid: bool
    validation_error: str
    plan: str
    full_scans: List[str]
    message: str
    rounds: int
    cached: bool
    model: str

    @property
    def answered(self) -> bool:
        """Whether the question got a valid query."""
        return self.status == "ANSWERED"

    @classmethod
    def from_pb(cls, a: semantic_pb2.AskAnswer) -> Answer:
        v = a.validation
        return cls(
            status=semantic_pb2.AskStatus.Name(a.status).removeprefix("ASK_STATUS_"),
            sql=a.sql,
            rationale=a.rationale,
            valid=v.valid,
            validation_error=v.error,
            plan=v.plan,
            full_scans=list(v.full_scans),
            message=a.message,
            rounds=a.rounds,
            cached=a.cached,
            model=a.model,
        )


@dataclass(frozen=True)
class Asked:
    """An `Answer` and, when the query ran (`run=True`), its columns, rows and summary."""

    answer: Answer
    columns: List[Column] = field(default_factory=list)
    rows: List[Tuple[Any, ...]] = field(default_factory=list)
    summary: Optional[Summary] = None

    @classmethod
    def from_pb(cls, r: semantic_pb2.AskResponse) -> Asked:
        return cls(
            answer=Answer.from_pb(r.answer),
            columns=columns_from_pb(r.columns),
            rows=decode_rows(r.rows),
            summary=Summary.from_pb(r.summary) if r.HasField("summary") else None,
        )


def ask_request(
    database: str,
    question: str,
    run: bool,
    max_rows: int,
    timeout: Optional[_dt.timedelta],
) -> semantic_pb2.AskRequest:
    ms = 0 if timeout is None else max(1, int(timeout.total_seconds() * 1000))
    return semantic_pb2.AskRequest(
        database=database, question=question, run=run, max_rows=max_rows, timeout_ms=ms
    )


def ask_stream_request(
    database: str,
    question: str,
    run: bool,
    max_rows: int,
    timeout: Optional[_dt.timedelta],
) -> semantic_pb2.AskStreamRequest:
    r = ask_request(database, question, run, max_rows, timeout)
    return semantic_pb2.AskStreamRequest(
        database=r.database,
        question=r.question,
        run=r.run,
        max_rows=r.max_rows,
        timeout_ms=r.timeout_ms,
    )


def first_answer(msg: Optional[semantic_pb2.AskStreamResponse]) -> Answer:
    """The answer an AskStream starts with."""
    if msg is None or msg.WhichOneof("kind") != "answer":
        raise ProtocolError("the AskStream response did not start with the answer")
    return Answer.from_pb(msg.answer)


@dataclass(frozen=True)
class MaterializedTable:
    """What one table of a `materialize_graph` gave: rows read, triples written for them."""

    table: str
    rows: int
    triples: int


@dataclass(frozen=True)
class Materialized:
    """What `materialize_graph` loaded: per base table (in name order), the triples the graph
    database loaded, the base IRI used and the gateway's time."""

    tables: List[MaterializedTable]
    triples: int
    base_iri: str
    elapsed: _dt.timedelta

    @classmethod
    def from_pb(cls, r: semantic_pb2.MaterializeGraphResponse) -> Materialized:
        return cls(
            tables=[MaterializedTable(t.table, t.rows, t.triples) for t in r.tables],
            triples=r.triples,
            base_iri=r.base_iri,
            elapsed=_dt.timedelta(milliseconds=r.elapsed_ms),
        )


def materialize_request(
    source: str,
    graph_database: str,
    base_iri: Optional[str],
    graph: Optional[str],
    replace: bool,
) -> semantic_pb2.MaterializeGraphRequest:
    return semantic_pb2.MaterializeGraphRequest(
        source_database=source,
        graph_database=graph_database,
        base_iri=base_iri or "",
        graph=graph or "",
        replace=replace,
    )
