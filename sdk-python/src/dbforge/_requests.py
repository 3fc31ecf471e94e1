"""Request builders and response readers shared by `Client` and `AsyncClient`, so the two
differ only in how they wait."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from dbforge.admin import ApiKey, AuditEvent
from dbforge.errors import ProtocolError
from dbforge.types import (
    Backend,
    ColumnDef,
    Created,
    Database,
    ExecResult,
    Grant,
    StatementLike,
    TtlLike,
    Where,
    expires_pb,
    timedelta_pb,
    filters_pb,
    order_by_pb,
    record_pb,
    statement_pb,
)
from dbforge.v1 import (
    access_pb2,
    database_pb2,
    operations_pb2,
    query_pb2,
    table_pb2,
    types_pb2,
)
from dbforge.values import to_values

Params = Sequence[Any]
OrderBy = Union[str, Sequence[str], None]


def create_database(
    name: str,
    backend: Backend,
    if_not_exists: bool,
    labels: Optional[Mapping[str, str]],
    ttl: Optional[TtlLike] = None,
    idle_ttl: Optional[_dt.timedelta] = None,
    backup_before_prune: bool = False,
) -> database_pb2.CreateDatabaseRequest:
    req = database_pb2.CreateDatabaseRequest(
        name=name,
        backend=int(backend),  # type: ignore[arg-type]
        if_not_exists=if_not_exists,
        labels=dict(labels or {}),
        backup_before_prune=backup_before_prune,
    )
    if isinstance(ttl, _dt.datetime):
        req.expire_at.FromDatetime(ttl if ttl.tzinfo else ttl.replace(tzinfo=_dt.timezone.utc))
    elif ttl is not None:
        req.expire_after.CopyFrom(timedelta_pb(ttl))
    if idle_ttl is not None:
        req.idle_ttl.CopyFrom(timedelta_pb(idle_ttl))
    return req


def fork_database(
    source: str,
    name: str,
    labels: Optional[Mapping[str, str]],
    from_backup: str,
    ttl: Optional[TtlLike],
    idle_ttl: Optional[_dt.timedelta],
    backup_before_prune: bool,
) -> database_pb2.ForkDatabaseRequest:
    req = database_pb2.ForkDatabaseRequest(
        source=source,
        name=name,
        labels=dict(labels or {}),
        from_backup=from_backup,
        backup_before_prune=backup_before_prune,
    )
    if isinstance(ttl, _dt.datetime):
        req.expire_at.FromDatetime(ttl if ttl.tzinfo else ttl.replace(tzinfo=_dt.timezone.utc))
    elif ttl is not None:
        req.expire_after.CopyFrom(timedelta_pb(ttl))
    if idle_ttl is not None:
        req.idle_ttl.CopyFrom(timedelta_pb(idle_ttl))
    return req


def watch_databases(
    labels: Optional[Mapping[str, str]], backend: Backend, since: Optional[int]
) -> database_pb2.WatchDatabasesRequest:
    req = database_pb2.WatchDatabasesRequest(
        labels=dict(labels or {}),
        backend=int(backend),  # type: ignore[arg-type]
    )
    if since is not None:
        req.since = since
    return req


def update_database(
    name: str,
    labels: Optional[Mapping[str, str]],
    ttl: Optional[TtlLike],
    clear_ttl: bool,
    idle_ttl: Optional[_dt.timedelta],
    clear_idle_ttl: bool,
    backup_before_prune: Optional[bool],
    max_bytes: Optional[int] = None,
    clear_max_bytes: bool = False,
) -> database_pb2.UpdateDatabaseRequest:
    if max_bytes is not None and clear_max_bytes:
        raise ValueError("give max_bytes or clear_max_bytes, not both")
    if ttl is not None and clear_ttl:
        raise ValueError("give ttl or clear_ttl, not both")
    if idle_ttl is not None and clear_idle_ttl:
        raise ValueError("give idle_ttl or clear_idle_ttl, not both")
    req = database_pb2.UpdateDatabaseRequest(name=name)
    if labels is not None:
        req.labels.values.update(dict(labels))
        req.labels.SetInParent()
    if isinstance(ttl, _dt.datetime):
        req.expire_at.FromDatetime(ttl if ttl.tzinfo else ttl.replace(tzinfo=_dt.timezone.utc))
    elif ttl is not None:
        req.expire_after.CopyFrom(timedelta_pb(ttl))
    elif clear_ttl:
        req.clear_ttl = True
    if idle_ttl is not None:
        req.idle_ttl.CopyFrom(timedelta_pb(idle_ttl))
    elif clear_idle_ttl:
        req.clear_idle_ttl = True
    if backup_before_prune is not None:
        req.backup_before_prune = backup_before_prune
    if max_bytes is not None:
        req.max_bytes = max_bytes
    elif clear_max_bytes:
        req.clear_max_bytes = True
    return req


def created(resp: database_pb2.CreateDatabaseResponse) -> Created:
    return Created(database=database(resp, "database"), created=resp.created)


def database(resp: Any, what: str) -> Database:
    if not resp.HasField(what):
        raise ProtocolError("the response carries no database")
    return Database.from_pb(getattr(resp, what))


def list_databases(
    page_size: int,
    page_token: str,
    backend: Backend,
    labels: Optional[Mapping[str, str]],
) -> database_pb2.ListDatabasesRequest:
    return database_pb2.ListDatabasesRequest(
        page_size=page_size,
        page_token=page_token,
        backend=int(backend),  # type: ignore[arg-type]
        labels=dict(labels or {}),
    )


def database_page(resp: database_pb2.ListDatabasesResponse) -> Tuple[List[Database], Optional[str]]:
    return [Database.from_pb(d) for d in resp.databases], resp.next_page_token or None


def execute(database: str, sql: str, params: Params) -> query_pb2.ExecuteRequest:
    return query_pb2.ExecuteRequest(database=database, sql=sql, params=to_values(params))


def exec_result(resp: query_pb2.ExecuteResponse) -> ExecResult:
    return ExecResult.from_pb(resp.result)


def query(
    database: str,
    sql: str,
    params: Params,
    max_rows: int,
    max_bytes: int = 0,
    read_only: bool = False,
    resumable: bool = False,
) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(
        database=database,
        sql=sql,
        params=to_values(params),
        max_rows=max_rows,
        max_bytes=max_bytes,
        read_only=read_only,
        resumable=resumable,
    )


def resume(token: str, max_rows: int, max_bytes: int) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(resume_token=token, max_rows=max_rows, max_bytes=max_bytes)


def batch(
    database: str, statements: Iterable[StatementLike], transaction: bool
) -> query_pb2.ExecuteBatchRequest:
    return query_pb2.ExecuteBatchRequest(
        database=database,
        statements=[statement_pb(s) for s in statements],
        transaction=transaction,
    )


def batch_results(resp: query_pb2.ExecuteBatchResponse) -> List[ExecResult]:
    return [ExecResult.from_pb(r) for r in resp.results]


def session_begin(database: str) -> query_pb2.SessionRequest:
    return query_pb2.SessionRequest(begin=query_pb2.SessionBegin(database=database))


def session_statement(sql: str, params: Params) -> query_pb2.SessionRequest:
    return query_pb2.SessionRequest(
        statement=types_pb2.Statement(sql=sql, params=to_values(params))
    )


SESSION_COMMIT = query_pb2.SessionRequest(commit=query_pb2.SessionCommit())
SESSION_ROLLBACK = query_pb2.SessionRequest(rollback=query_pb2.SessionRollback())


def create_table(
    database: str, table: str, columns: Sequence[ColumnDef], if_not_exists: bool
) -> table_pb2.CreateTableRequest:
    return table_pb2.CreateTableRequest(
        database=database,
        table=table,
        columns=[c.to_pb() for c in columns],
        if_not_exists=if_not_exists,
    )


def insert_rows(
    database: str, table: str, rows: Iterable[Mapping[str, Any]]
) -> table_pb2.InsertRowsRequest:
    return table_pb2.InsertRowsRequest(
        database=database, table=table, rows=[record_pb(r) for r in rows]
    )


def select_rows(
    database: str,
    table: str,
    columns: Optional[Sequence[str]],
    where: Where,
    order_by: OrderBy,
    limit: int,
    offset: int,
) -> table_pb2.SelectRowsRequest:
    return table_pb2.SelectRowsRequest(
        database=database,
        table=table,
        columns=list(columns or ()),
        filters=filters_pb(where),
        order_by=order_by_pb(order_by),
        limit=limit,
        offset=offset,
    )


def update_rows(
    database: str, table: str, set: Mapping[str, Any], where: Where, all: bool
) -> table_pb2.UpdateRowsRequest:
    return table_pb2.UpdateRowsRequest(
        database=database,
        table=table,
        set=dict(record_pb(set).values),
        filters=filters_pb(where),
        all=all,
    )


def delete_rows(database: str, table: str, where: Where, all: bool) -> table_pb2.DeleteRowsRequest:
    return table_pb2.DeleteRowsRequest(
        database=database, table=table, filters=filters_pb(where), all=all
    )


def create_api_key(
    name: str,
    admin: bool,
    can_create: bool,
    create_quota: int,
    grants: Sequence[Grant],
    expires_at: Optional[_dt.datetime],
) -> access_pb2.CreateApiKeyRequest:
    return access_pb2.CreateApiKeyRequest(
        name=name,
        admin=admin,
        can_create=can_create,
        create_quota=create_quota,
        grants=[g.pb for g in grants],
        expires_at=expires_pb(expires_at),
    )


def created_key(resp: access_pb2.CreateApiKeyResponse) -> Tuple[ApiKey, str]:
    if not resp.HasField("api_key"):
        raise ProtocolError("the response carries no key")
    return ApiKey.from_pb(resp.api_key), resp.secret


def who_am_i(resp: access_pb2.WhoAmIResponse) -> ApiKey:
    if not resp.HasField("api_key"):
        raise ProtocolError("the response carries no key")
    return ApiKey.from_pb(resp.api_key)


def audit_page(resp: operations_pb2.ListAuditEventsResponse) -> Tuple[List[AuditEvent], Optional[str]]:
    return [AuditEvent.from_pb(e) for e in resp.events], resp.next_page_token or None


def list_audit_events(
    key_id: str,
    database: str,
    outcome: str,
    since: Optional[_dt.datetime],
    until: Optional[_dt.datetime],
    page_size: int,
    page_token: str,
) -> operations_pb2.ListAuditEventsRequest:
    return operations_pb2.ListAuditEventsRequest(
        key_id=key_id,
        database=database,
        outcome=outcome,
        since=expires_pb(since),
        until=expires_pb(until),
        page_size=page_size,
        page_token=page_token,
    )
