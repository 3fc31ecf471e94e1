"""The SDK's own types: databases, columns, results, table definitions, filters and grants.

Enums mirror the proto enums value for value (a test checks that they do not drift).
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from google.protobuf import duration_pb2, timestamp_pb2

from dbforge.errors import ProtocolError
from dbforge.v1 import access_pb2, database_pb2, table_pb2, types_pb2
from dbforge.values import decode_rows, to_value

__all__ = [
    "Backend",
    "DatabaseStatus",
    "ValueKind",
    "Truncation",
    "ColumnType",
    "Role",
    "Capabilities",
    "Database",
    "Created",
    "Forked",
    "DatabaseEventType",
    "DatabaseEvent",
    "Column",
    "ExecResult",
    "Summary",
    "Statement",
    "ColumnDef",
    "Filter",
    "Grant",
]


class Backend(enum.IntEnum):
    """The engine behind a database."""

    UNSPECIFIED = 0
    SQLITE = 1
    POSTGRES = 2
    MYSQL = 3
    REDIS = 4
    #: An RDF store queried with SPARQL (Oxigraph; a server built with the `graph` feature).
    GRAPH = 5


class DatabaseStatus(enum.IntEnum):
    """The lifecycle state of a database."""

    UNSPECIFIED = 0
    PROVISIONING = 1
    READY = 2
    UNAVAILABLE = 3
    DELETING = 4
    #: A SQLite file that failed its integrity check after an unclean shutdown: quarantined,
    #: refused to calls (FAILED_PRECONDITION) until restored from a backup or deleted.
    DAMAGED = 5


class ValueKind(enum.IntEnum):
    """The kind of Value a result column yields."""

    UNSPECIFIED = 0
    INT = 1
    FLOAT = 2
    TEXT = 3
    BYTES = 4
    BOOL = 5
    DECIMAL = 6
    JSON = 7
    TIMESTAMP = 8
    DATE = 9
    UUID = 10
    TIME = 11
    ARRAY = 12


class Truncation(enum.IntEnum):
    """Why a streamed result ended before its last row."""

    UNSPECIFIED = 0
    ROW_LIMIT = 1
    BYTE_LIMIT = 2


class ColumnType(enum.IntEnum):
    """Column types of `create_table`."""

    UNSPECIFIED = 0
    INTEGER = 1
    FLOAT = 2
    TEXT = 3
    BYTES = 4
    BOOL = 5
    DECIMAL = 6
    JSON = 7
    TIMESTAMP = 8
    DATE = 9


class Role(enum.IntEnum):
    """A level of access to a database; each includes the ones before it."""

    UNSPECIFIED = 0
    READ = 1
    WRITE = 2
    OWNER = 3


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        return cls.UNSPECIFIED


def timestamp(t: timestamp_pb2.Timestamp) -> _dt.datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
        seconds=t.seconds, microseconds=t.nanos // 1000
    )


@dataclass(frozen=True)
class Capabilities:
    """What a database's backend supports."""

    sql: bool
    transactions: bool
    sessions: bool
    typed_params: bool
    table_service: bool
    key_value: bool
    last_insert_id: bool
    returning: bool
    placeholder: str
    read_only_grants: bool
    transactional_ddl: bool
    sparql: bool = False

    @classmethod
    def from_pb(cls, c: database_pb2.Capabilities) -> Capabilities:
        return cls(
            sql=c.sql,
            transactions=c.transactions,
            sessions=c.sessions,
            typed_params=c.typed_params,
            table_service=c.table_service,
            key_value=c.key_value,
            last_insert_id=c.last_insert_id,
            returning=c.returning,
            placeholder=c.placeholder,
            read_only_grants=c.read_only_grants,
            transactional_ddl=c.transactional_ddl,
            sparql=c.sparql,
        )


@dataclass(frozen=True)
class Database:
    """A spawned database."""

    name: str
    backend: Backend
    status: DatabaseStatus
    created_at: _dt.datetime
    last_accessed_at: _dt.datetime
    size_bytes: int
    labels: Dict[str, str]
    capabilities: Capabilities
    #: When the gateway prunes it (its TTL); None: no TTL.
    expire_at: Optional[_dt.datetime] = None
    #: The gateway prunes it after this long without a data-plane call; None: no idle TTL.
    idle_ttl: Optional[_dt.timedelta] = None
    #: Whether a TTL or idle prune is preceded by a backup (and skipped when that fails).
    backup_before_prune: bool = False
    #: Its size quota in bytes (the smaller of its own and its policies'); None: none.
    max_bytes: Optional[int] = None
    #: Where `max_bytes` comes from: "database" or "policy=<name>"; empty without one.
    quota_source: str = ""
    #: Whether it is over its quota (writes fail with ResourceExhausted).
    over_quota: bool = False
    #: Its own size quota in bytes (update_database `max_bytes`); None: none.
    own_max_bytes: Optional[int] = None
    #: The gateway whose disk holds it (SQLite databases; empty for the server engines). Calls
    #: through another gateway sharing the catalog are forwarded there.
    node: str = ""

    @classmethod
    def from_pb(cls, d: database_pb2.Database) -> Database:
        return cls(
            name=d.name,
            backend=_enum(Backend, d.backend),
            status=_enum(DatabaseStatus, d.status),
            created_at=timestamp(d.created_at),
            last_accessed_at=timestamp(d.last_accessed_at),
            size_bytes=d.size_bytes,
            labels=dict(d.labels),
            capabilities=Capabilities.from_pb(d.capabilities),
            expire_at=timestamp(d.expire_at) if d.HasField("expire_at") else None,
            idle_ttl=(
                _dt.timedelta(seconds=d.idle_ttl.seconds, microseconds=d.idle_ttl.nanos // 1000)
                if d.HasField("idle_ttl")
                else None
            ),
            backup_before_prune=d.backup_before_prune,
            max_bytes=d.max_bytes or None,
            quota_source=d.quota_source,
            over_quota=d.over_quota,
            own_max_bytes=d.own_max_bytes or None,
            node=d.node,
        )


class DatabaseEventType(enum.IntEnum):
    """What happened to a database (WatchDatabases)."""

    UNSPECIFIED = 0
    CREATED = 1
    DELETED = 2
    FORKED = 3
    EXPIRED = 4
    PRUNED_IDLE = 5
    BACKED_UP = 6
    RESTORED = 7
    #: It went over its size quota (writes are refused).
    QUOTA_EXCEEDED = 8
    #: It is back under its size quota, or the quota rose or went away.
    QUOTA_CLEARED = 9
    #: Its engine's server stopped answering (``cause`` says why).
    UNAVAILABLE = 10
    #: Its engine's server answers again (``cause``: ``down_for=<duration>``).
    RECOVERED = 11
    #: Its SQLite file failed its integrity check and was quarantined.
    DAMAGED = 12
    #: UpdateDatabase changed its labels or lifecycle settings (`cause` lists what).
    UPDATED = 13


@dataclass(frozen=True)
class DatabaseEvent:
    """One lifecycle event of `watch_databases`.

    Attributes:
        sequence: its position in the gateway's event log, one more than the event before;
            pass the last one seen as `since` to resume.
        type: what happened.
        database, backend: the database.
        time: when it happened.
        cause: "ttl", "idle_ttl", "source=<name>", "backup=<id>", … or empty.
        key_id: the key whose call caused it; "gateway" for the gateway's own doing.
        labels: the database's labels then.
    """

    sequence: int
    type: DatabaseEventType
    database: str
    backend: Backend
    time: _dt.datetime
    cause: str
    key_id: str
    labels: Dict[str, str]

    @classmethod
    def from_pb(cls, e: database_pb2.DatabaseEvent) -> DatabaseEvent:
        return cls(
            sequence=e.sequence,
            type=_enum(DatabaseEventType, e.type),
            database=e.database,
            backend=_enum(Backend, e.backend),
            time=timestamp(e.time),
            cause=e.cause,
            key_id=e.key_id,
            labels=dict(e.labels),
        )


@dataclass(frozen=True)
class Created:
    """The answer of `create_database`: the database, and False when `if_not_exists` found it."""

    database: Database
    created: bool


@dataclass(frozen=True)
class Forked:
    """The answer of `fork_database`.

    Attributes:
        database: the new database.
        method: how the data was copied: "sqlite-backup-api" (SQLite), "template"
            (PostgreSQL), "dump-replay" (MySQL, or PostgreSQL with the source in use),
            "key-records" (Redis) or "backup" (from a backup).
        duration: how long the fork took.
    """

    database: Database
    method: str
    duration: _dt.timedelta

    @classmethod
    def from_pb(cls, r: database_pb2.ForkDatabaseResponse) -> Forked:
        if not r.HasField("database"):
            raise ProtocolError("the response carries no database")
        return cls(
            database=Database.from_pb(r.database),
            method=r.method,
            duration=_dt.timedelta(seconds=r.duration.seconds, microseconds=r.duration.nanos // 1000),
        )


@dataclass(frozen=True)
class Column:
    """Metadata of a result column."""

    name: str
    declared_type: str
    kind: ValueKind

    @classmethod
    def from_pb(cls, c: types_pb2.Column) -> Column:
        return cls(name=c.name, declared_type=c.declared_type, kind=_enum(ValueKind, c.kind))


def columns_from_pb(cols: Iterable[types_pb2.Column]) -> List[Column]:
    return [Column.from_pb(c) for c in cols]


@dataclass(frozen=True)
class Summary:
    """The end of a streamed result: counts, server-side time, truncation."""

    row_count: int
    rows_affected: int
    elapsed: _dt.timedelta
    truncation: Truncation
    # On a resumable stream a budget cut while rows remain: continues it (`resume_query`).
    resume_token: Optional[str] = None

    @classmethod
    def from_pb(cls, s: types_pb2.ResultSummary) -> Summary:
        return cls(
            row_count=s.row_count,
            rows_affected=s.rows_affected,
            elapsed=_dt.timedelta(seconds=s.elapsed.seconds, microseconds=s.elapsed.nanos // 1000),
            truncation=_enum(Truncation, s.truncation),
            resume_token=s.resume_token or None,
        )


@dataclass(frozen=True)
class ExecResult:
    """The whole result of one statement: rows affected, last insert id, columns and rows."""

    rows_affected: int
    last_insert_id: Optional[int]
    columns: List[Column]
    rows: List[Tuple[Any, ...]]

    @classmethod
    def from_pb(cls, r: types_pb2.StatementResult) -> ExecResult:
        return cls(
            rows_affected=r.rows_affected,
            last_insert_id=r.last_insert_id if r.HasField("last_insert_id") else None,
            columns=columns_from_pb(r.columns),
            rows=decode_rows(r.rows),
        )

    @property
    def column_names(self) -> List[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def dicts(self) -> List[Dict[str, Any]]:
        """The rows as column name → value dicts."""
        names = self.column_names
        return [dict(zip(names, row)) for row in self.rows]

    def to_pandas(self) -> Any:
        """The rows as a `pandas.DataFrame` (needs pandas installed)."""
        from dbforge._frames import to_pandas

        return to_pandas(self.column_names, self.rows)

    def to_arrow(self) -> Any:
        """The rows as a `pyarrow.Table` (needs pyarrow installed)."""
        from dbforge._frames import to_arrow

        return to_arrow(self.column_names, self.rows)


@dataclass(frozen=True)
class Statement:
    """One statement of a batch: SQL text and positional parameters."""

    sql: str
    params: Sequence[Any] = ()

    def to_pb(self) -> types_pb2.Statement:
        return types_pb2.Statement(sql=self.sql, params=[to_value(p) for p in self.params])


StatementLike = Union[Statement, str, Tuple[str, Sequence[Any]]]


def statement_pb(s: StatementLike) -> types_pb2.Statement:
    """A batch entry: a `Statement`, bare SQL, or an `(sql, params)` pair."""
    if isinstance(s, Statement):
        return s.to_pb()
    if isinstance(s, str):
        return types_pb2.Statement(sql=s)
    sql, params = s
    return Statement(sql, params).to_pb()


@dataclass(frozen=True)
class ColumnDef:
    """A column of `create_table`.

    `ColumnDef("id", ColumnType.INTEGER, primary_key=True)`
    """

    name: str
    type: ColumnType
    primary_key: bool = False
    not_null: bool = False
    unique: bool = False
    default: Any = field(default=None)
    has_default: bool = False

    @classmethod
    def with_default(
        cls,
        name: str,
        type: ColumnType,
        default: Any,
        *,
        primary_key: bool = False,
        not_null: bool = False,
        unique: bool = False,
    ) -> ColumnDef:
        """A column with a DEFAULT value (which may be None for DEFAULT NULL)."""
        return cls(name, type, primary_key, not_null, unique, default, True)

    def to_pb(self) -> table_pb2.ColumnDefinition:
        c = table_pb2.ColumnDefinition(
            name=self.name,
            type=int(self.type),  # type: ignore[arg-type]
            primary_key=self.primary_key,
            not_null=self.not_null,
            unique=self.unique,
        )
        if self.has_default or self.default is not None:
            c.default_value.CopyFrom(to_value(self.default))
        return c


_OPS = {
    "=": table_pb2.FILTER_OPERATOR_EQ,
    "!=": table_pb2.FILTER_OPERATOR_NE,
    "<": table_pb2.FILTER_OPERATOR_LT,
    "<=": table_pb2.FILTER_OPERATOR_LE,
    ">": table_pb2.FILTER_OPERATOR_GT,
    ">=": table_pb2.FILTER_OPERATOR_GE,
    "like": table_pb2.FILTER_OPERATOR_LIKE,
}


@dataclass(frozen=True)
class Filter:
    """A condition on a column; the filters of a call are combined with AND.

    Build them with the class methods: `Filter.gt("age", 30)`, `Filter.like("name", "A%")`,
    `Filter.is_in("team", ["red", "blue"])`, `Filter.is_null("deleted_at")`.
    """

    pb: table_pb2.Filter

    @classmethod
    def _cmp(cls, column: str, op: str, value: Any) -> Filter:
        return cls(table_pb2.Filter(column=column, op=_OPS[op], value=to_value(value)))

    @classmethod
    def eq(cls, column: str, value: Any) -> Filter:
        """`column = value`"""
        return cls._cmp(column, "=", value)

    @classmethod
    def ne(cls, column: str, value: Any) -> Filter:
        """`column <> value`"""
        return cls._cmp(column, "!=", value)

    @classmethod
    def lt(cls, column: str, value: Any) -> Filter:
        """`column < value`"""
        return cls._cmp(column, "<", value)

    @classmethod
    def le(cls, column: str, value: Any) -> Filter:
        """`column <= value`"""
        return cls._cmp(column, "<=", value)

    @classmethod
    def gt(cls, column: str, value: Any) -> Filter:
        """`column > value`"""
        return cls._cmp(column, ">", value)

    @classmethod
    def ge(cls, column: str, value: Any) -> Filter:
        """`column >= value`"""
        return cls._cmp(column, ">=", value)

    @classmethod
    def like(cls, column: str, pattern: str) -> Filter:
        """`column LIKE pattern` (`%` and `_` wildcards)"""
        return cls._cmp(column, "like", pattern)

    @classmethod
    def is_in(cls, column: str, values: Iterable[Any]) -> Filter:
        """`column IN (values)`; an empty list matches nothing."""
        return cls(
            table_pb2.Filter(
                column=column,
                op=table_pb2.FILTER_OPERATOR_IN,
                values=[to_value(v) for v in values],
            )
        )

    @classmethod
    def is_null(cls, column: str) -> Filter:
        """`column IS NULL`"""
        return cls(table_pb2.Filter(column=column, op=table_pb2.FILTER_OPERATOR_IS_NULL))

    @classmethod
    def is_not_null(cls, column: str) -> Filter:
        """`column IS NOT NULL`"""
        return cls(table_pb2.Filter(column=column, op=table_pb2.FILTER_OPERATOR_IS_NOT_NULL))


Where = Union[Mapping[str, Any], Sequence[Filter], Filter, None]


def filters_pb(where: Where) -> List[table_pb2.Filter]:
    """Filters from `where`: a list of `Filter`s, one `Filter`, or a dict of column → value
    where a value means `=`, None means `IS NULL`, and a list, tuple or set means `IN`."""
    if where is None:
        return []
    if isinstance(where, Filter):
        return [where.pb]
    if isinstance(where, Mapping):
        out = []
        for column, value in where.items():
            if value is None:
                out.append(Filter.is_null(column).pb)
            elif isinstance(value, (list, tuple, set, frozenset)):
                out.append(Filter.is_in(column, value).pb)
            else:
                out.append(Filter.eq(column, value).pb)
        return out
    return [f.pb for f in where]


def order_by_pb(order_by: Union[str, Sequence[str], None]) -> List[table_pb2.OrderBy]:
    """Sort keys: column names, most significant first; a leading `-` sorts descending."""
    if order_by is None:
        return []
    keys = [order_by] if isinstance(order_by, str) else list(order_by)
    return [
        table_pb2.OrderBy(column=k[1:], descending=True)
        if k.startswith("-")
        else table_pb2.OrderBy(column=k)
        for k in keys
    ]


def record_pb(row: Mapping[str, Any]) -> table_pb2.Record:
    return table_pb2.Record(values={k: to_value(v) for k, v in row.items()})


@dataclass(frozen=True)
class Grant:
    """A role on some databases, for `create_api_key`.

    `Grant.database("reports", Role.READ)`, `Grant.pattern("agent-42-*", Role.OWNER)`,
    `Grant.labels({"team": "search"}, Role.WRITE)`.
    """

    pb: access_pb2.Grant

    @classmethod
    def database(cls, name: str, role: Role) -> Grant:
        """`role` on the database named `name`."""
        return cls(access_pb2.Grant(database=name, role=int(role)))  # type: ignore[arg-type]

    @classmethod
    def pattern(cls, pattern: str, role: Role) -> Grant:
        """`role` on databases whose name matches `pattern` (`*` stands for any characters)."""
        return cls(access_pb2.Grant(pattern=pattern, role=int(role)))  # type: ignore[arg-type]

    @classmethod
    def labels(cls, labels: Mapping[str, str], role: Role) -> Grant:
        """`role` on databases carrying all of these labels."""
        return cls(
            access_pb2.Grant(
                labels=access_pb2.LabelSelector(labels=dict(labels)),
                role=int(role),  # type: ignore[arg-type]
            )
        )


def timedelta_pb(d: _dt.timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(d)
    return out


#: A TTL: a duration from now, or an absolute time.
TtlLike = Union[_dt.timedelta, _dt.datetime]


def expires_pb(at: Optional[_dt.datetime]) -> Optional[timestamp_pb2.Timestamp]:
    if at is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(at if at.tzinfo else at.replace(tzinfo=_dt.timezone.utc))
    return t
