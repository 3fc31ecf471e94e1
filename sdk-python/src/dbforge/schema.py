"""Structure and query plans (`SchemaService`): what an agent reads before it writes SQL.

`Client.get_schema` returns a `Schema` (tables and views with their columns, keys, indexes and
constraints; on Redis a `KeySpaceSummary`; and `text`, a compact rendering for a prompt).
`Client.explain` returns a `Plan` (the backend's raw plan, a normalized tree, the tables read by
a full scan). Enums mirror the proto enums value for value (a test checks that they do not drift).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence

from dbforge.types import ValueKind, _enum
from dbforge.v1 import schema_pb2, types_pb2
from dbforge.values import to_values

__all__ = [
    "TableKind",
    "ColumnSchema",
    "IndexSchema",
    "ForeignKeySchema",
    "UniqueSchema",
    "CheckSchema",
    "TableSchema",
    "KeyPattern",
    "KeySpaceSummary",
    "GraphSummary",
    "Schema",
    "PlanNode",
    "Plan",
]


class TableKind(enum.IntEnum):
    """What a schema object is."""

    UNSPECIFIED = 0
    TABLE = 1
    VIEW = 2


@dataclass(frozen=True)
class ColumnSchema:
    """A column: its declared type, the `ValueKind` results carry for it, and its constraints."""

    name: str
    declared_type: str
    kind: ValueKind
    nullable: bool
    default_expression: Optional[str]
    primary_key: bool
    auto_increment: bool

    @classmethod
    def from_pb(cls, c: schema_pb2.ColumnSchema) -> ColumnSchema:
        return cls(
            name=c.name,
            declared_type=c.declared_type,
            kind=_enum(ValueKind, c.kind),
            nullable=c.nullable,
            default_expression=c.default_expression if c.HasField("default_expression") else None,
            primary_key=c.primary_key,
            auto_increment=c.auto_increment,
        )


@dataclass(frozen=True)
class IndexSchema:
    """An index (those backing the primary key included)."""

    name: str
    columns: List[str]
    unique: bool
    primary: bool

    @classmethod
    def from_pb(cls, i: schema_pb2.IndexSchema) -> IndexSchema:
        return cls(name=i.name, columns=list(i.columns), unique=i.unique, primary=i.primary)


@dataclass(frozen=True)
class ForeignKeySchema:
    """A foreign key: `columns` reference `referenced_columns` of `referenced_table`."""

    name: str
    columns: List[str]
    referenced_table: str
    referenced_columns: List[str]
    on_update: str
    on_delete: str

    @classmethod
    def from_pb(cls, f: schema_pb2.ForeignKeySchema) -> ForeignKeySchema:
        return cls(
            name=f.name,
            columns=list(f.columns),
            referenced_table=f.referenced_table,
            referenced_columns=list(f.referenced_columns),
            on_update=f.on_update,
            on_delete=f.on_delete,
        )


@dataclass(frozen=True)
class UniqueSchema:
    """A UNIQUE constraint."""

    name: str
    columns: List[str]

    @classmethod
    def from_pb(cls, u: schema_pb2.UniqueSchema) -> UniqueSchema:
        return cls(name=u.name, columns=list(u.columns))


@dataclass(frozen=True)
class CheckSchema:
    """A CHECK constraint; `expression` is its condition as SQL text."""

    name: str
    expression: str

    @classmethod
    def from_pb(cls, c: schema_pb2.CheckSchema) -> CheckSchema:
        return cls(name=c.name, expression=c.expression)


@dataclass(frozen=True)
class TableSchema:
    """A table or view. `row_estimate` is the backend's estimate (exact on SQLite), None when
    unknown; `definition` is the view's query or the table's CREATE statement where kept."""

    name: str
    kind: TableKind
    columns: List[ColumnSchema]
    primary_key: List[str]
    indexes: List[IndexSchema]
    foreign_keys: List[ForeignKeySchema]
    uniques: List[UniqueSchema]
    checks: List[CheckSchema]
    row_estimate: Optional[int]
    definition: str

    @classmethod
    def from_pb(cls, t: schema_pb2.TableSchema) -> TableSchema:
        return cls(
            name=t.name,
            kind=_enum(TableKind, t.kind),
            columns=[ColumnSchema.from_pb(c) for c in t.columns],
            primary_key=list(t.primary_key),
            indexes=[IndexSchema.from_pb(i) for i in t.indexes],
            foreign_keys=[ForeignKeySchema.from_pb(f) for f in t.foreign_keys],
            uniques=[UniqueSchema.from_pb(u) for u in t.uniques],
            checks=[CheckSchema.from_pb(c) for c in t.checks],
            row_estimate=t.row_estimate if t.HasField("row_estimate") else None,
            definition=t.definition,
        )

    @property
    def column_names(self) -> List[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        """The column called `name`; KeyError when there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class KeyPattern:
    """Redis keys sharing a shape (`user:*:profile`) and a type, from a sample."""

    pattern: str
    type: str
    count: int
    example: str
    with_ttl: int

    @classmethod
    def from_pb(cls, p: schema_pb2.KeyPattern) -> KeyPattern:
        return cls(
            pattern=p.pattern, type=p.type, count=p.count, example=p.example, with_ttl=p.with_ttl
        )


@dataclass(frozen=True)
class KeySpaceSummary:
    """Redis: what a bounded sample of keys looks like, most common pattern first."""

    total_keys: int
    sampled_keys: int
    patterns: List[KeyPattern]

    @classmethod
    def from_pb(cls, k: schema_pb2.KeySpaceSummary) -> KeySpaceSummary:
        return cls(
            total_keys=k.total_keys,
            sampled_keys=k.sampled_keys,
            patterns=[KeyPattern.from_pb(p) for p in k.patterns],
        )


@dataclass(frozen=True)
class GraphSummary:
    """A graph database: its quad count, and its classes (objects of rdf:type), predicates and
    named graphs as (IRI, count) pairs, most first, 100 of each at most."""

    total_quads: int
    classes: List[tuple[str, int]]
    predicates: List[tuple[str, int]]
    named_graphs: List[tuple[str, int]]

    @classmethod
    def from_pb(cls, g: schema_pb2.GraphSummary) -> GraphSummary:
        def pairs(items: Sequence[schema_pb2.GraphTermCount]) -> List[tuple[str, int]]:
            return [(c.iri, c.count) for c in items]

        return cls(
            total_quads=g.total_quads,
            classes=pairs(g.classes),
            predicates=pairs(g.predicates),
            named_graphs=pairs(g.named_graphs),
        )


@dataclass(frozen=True)
class Schema:
    """The answer of `get_schema`: tables and views by name, the Redis key space (None on SQL
    backends), and `text`, the same rendered compactly for a language model's prompt."""

    tables: List[TableSchema]
    key_space: Optional[KeySpaceSummary]
    text: str
    graph: Optional[GraphSummary] = None

    @classmethod
    def from_pb(cls, r: schema_pb2.GetSchemaResponse) -> Schema:
        return cls(
            tables=[TableSchema.from_pb(t) for t in r.tables],
            key_space=KeySpaceSummary.from_pb(r.key_space) if r.HasField("key_space") else None,
            text=r.text,
            graph=GraphSummary.from_pb(r.graph) if r.HasField("graph") else None,
        )

    def table(self, name: str) -> TableSchema:
        """The table or view called `name`; KeyError when there is none."""
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class PlanNode:
    """One node of a normalized plan. The estimates are None where the backend gives none;
    `actual_rows` is set by `explain(..., analyze=True)` only."""

    operation: str
    relation: str
    detail: str
    estimated_rows: Optional[float]
    estimated_cost: Optional[float]
    actual_rows: Optional[float]
    full_scan: bool
    children: List[PlanNode]

    @classmethod
    def from_pb(cls, n: schema_pb2.PlanNode) -> PlanNode:
        return cls(
            operation=n.operation,
            relation=n.relation,
            detail=n.detail,
            estimated_rows=n.estimated_rows if n.HasField("estimated_rows") else None,
            estimated_cost=n.estimated_cost if n.HasField("estimated_cost") else None,
            actual_rows=n.actual_rows if n.HasField("actual_rows") else None,
            full_scan=n.full_scan,
            children=[PlanNode.from_pb(c) for c in n.children],
        )

    def walk(self) -> Iterator[PlanNode]:
        """This node and every node below it, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass(frozen=True)
class Plan:
    """The answer of `explain`: the plan as the backend wrote it (`raw`: JSON on PostgreSQL and
    MySQL, EXPLAIN QUERY PLAN rows on SQLite), its root `nodes`, and the tables read by a full
    scan."""

    raw: str
    nodes: List[PlanNode]
    full_scans: List[str]

    @classmethod
    def from_pb(cls, r: schema_pb2.ExplainResponse) -> Plan:
        return cls(
            raw=r.raw,
            nodes=[PlanNode.from_pb(n) for n in r.nodes],
            full_scans=list(r.full_scans),
        )

    def walk(self) -> Iterator[PlanNode]:
        """Every node of the plan, depth first."""
        for n in self.nodes:
            yield from n.walk()


def get_schema_request(database: str, table: Optional[str]) -> schema_pb2.GetSchemaRequest:
    return schema_pb2.GetSchemaRequest(database=database, table=table or "")


def explain_request(
    database: str, sql: str, params: Sequence[Any], analyze: bool
) -> schema_pb2.ExplainRequest:
    return schema_pb2.ExplainRequest(
        database=database,
        statement=types_pb2.Statement(sql=sql, params=to_values(params)),
        analyze=analyze,
    )
