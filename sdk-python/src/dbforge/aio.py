"""The asyncio client: the same methods as `Client`, awaited (grpc.aio)."""

from __future__ import annotations

import asyncio
import datetime as _dt
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

import grpc

from dbforge import _requests as rq
from dbforge.errors import DBForgeError, ProtocolError, Unavailable, error_for_number, from_rpc_error
from dbforge.options import ClientOptions
from dbforge.rows import EOF, AsyncRows
from dbforge.schema import Plan, Schema, explain_request, get_schema_request
from dbforge.transfer import (
    DEFAULT_CHUNK_SIZE,
    AsyncExport,
    AsyncSource,
    CreateLike,
    Destination,
    FormatLike,
    ImportCsvResult,
    ImportSqlResult,
    RequestStream,
    asource_chunks,
    csv_chunk,
    export_query_request,
    export_table_request,
    import_csv_header,
    import_ndjson_header,
    import_sql_header,
    ndjson_chunk,
    sql_chunk,
)
from dbforge.types import (
    Backend,
    ColumnDef,
    Created,
    Database,
    ExecResult,
    Grant,
    StatementLike,
    Where,
)
from dbforge.v1 import (
    access_pb2,
    access_pb2_grpc,
    database_pb2,
    database_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
    table_pb2_grpc,
    transfer_pb2,
    transfer_pb2_grpc,
)

__all__ = ["AsyncClient", "AsyncTransaction"]

_Resp = TypeVar("_Resp")


class AsyncClient:
    """The asyncio twin of `Client`: the same methods and options, awaited.

    ```python
    async with dbforge.AsyncClient() as client:
        await client.create_database("scratch")
        rows = await client.query("scratch", "SELECT 1")
        async for row in rows:
            ...
    ```
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        ca_file: Optional[str] = None,
        client_cert_file: Optional[str] = None,
        client_key_file: Optional[str] = None,
        tls_server_name: Optional[str] = None,
        timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        options: Optional[ClientOptions] = None,
    ) -> None:
        """Arguments override `options` (default: `ClientOptions()`); whatever stays unset
        comes from DBFORGE_ENDPOINT / DBFORGE_API_KEY, then the defaults. See `ClientOptions`."""
        opts = (options or ClientOptions()).with_overrides(
            endpoint=endpoint,
            api_key=api_key,
            ca_file=ca_file,
            client_cert_file=client_cert_file,
            client_key_file=client_key_file,
            tls_server_name=tls_server_name,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self.options = opts.resolved()
        self._metadata = self.options.metadata()
        self._timeout = self.options.timeout
        self.channel: grpc.aio.Channel = self.options.aio_channel()
        self.databases = database_pb2_grpc.DatabaseServiceStub(self.channel)
        self.queries = query_pb2_grpc.QueryServiceStub(self.channel)
        self.tables = table_pb2_grpc.TableServiceStub(self.channel)
        self.access = access_pb2_grpc.AccessServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsServiceStub(self.channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(self.channel)
        self.transfer = transfer_pb2_grpc.TransferServiceStub(self.channel)

    async def connect(self) -> AsyncClient:
        """Waits for the connection (at most `connect_timeout` seconds when set)."""
        try:
            await _wait_for(self.channel.channel_ready(), self.options.connect_timeout)
        except asyncio.TimeoutError:  # not yet the builtin TimeoutError on 3.9 and 3.10
            raise Unavailable(
                f"cannot connect to {self.options.endpoint} within "
                f"{self.options.connect_timeout} s"
            ) from None
        return self

    async def close(self) -> None:
        """Closes the connection."""
        await self.channel.close(grace=None)

    async def __aenter__(self) -> AsyncClient:
        if self.options.connect_timeout is not None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def _stream(self, method: Callable[..., Any], request: Any) -> AsyncRows:
        call = method(request, metadata=self._metadata, timeout=self._timeout)
        return await AsyncRows(call)._start()

    async def _export(self, method: Callable[..., Any], request: Any) -> AsyncExport:
        call = method(request, metadata=self._metadata, timeout=self._timeout)
        return await AsyncExport(call)._start()

    async def _import(
        self,
        method: Callable[..., Any],
        requests: RequestStream[Any],
        source: AsyncSource,
        chunk_size: int,
        str_is_path: bool,
    ) -> Any:
        async with asource_chunks(source, chunk_size, str_is_path=str_is_path) as chunks:
            try:
                return await method(
                    requests.aiterate(chunks), metadata=self._metadata, timeout=self._timeout
                )
            except (grpc.RpcError, asyncio.CancelledError) as e:
                # grpc.aio cancels the call when the request iterator raises; report why.
                if requests.error is not None:
                    raise requests.error from None
                if isinstance(e, grpc.RpcError):
                    raise from_rpc_error(e) from None
                raise

    # ---- control plane ----------------------------------------------------------------------

    async def create_database(
        self,
        name: str,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        if_not_exists: bool = False,
        labels: Optional[Mapping[str, str]] = None,
    ) -> Created:
        """Spawns a database; see `Client.create_database`."""
        req = rq.create_database(name, backend, if_not_exists, labels)
        return rq.created(await self._unary(self.databases.CreateDatabase, req))

    async def get_database(self, name: str) -> Database:
        """Looks a database up. NotFound when it does not exist."""
        req = database_pb2.GetDatabaseRequest(name=name)
        return rq.database(await self._unary(self.databases.GetDatabase, req), "database")

    async def list_databases(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> List[Database]:
        """Every database that matches, in name order, following pages for you."""
        return [
            d async for d in self.iter_databases(backend=backend, labels=labels, page_size=page_size)
        ]

    async def iter_databases(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> AsyncIterator[Database]:
        """Like `list_databases`, fetching each page when the previous one is used up."""
        token: Optional[str] = ""
        while token is not None:
            page, token = await self.list_databases_page(
                backend=backend, labels=labels, page_size=page_size, page_token=token
            )
            for d in page:
                yield d

    async def list_databases_page(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Tuple[List[Database], Optional[str]]:
        """One page of databases and the token of the next page (None on the last page)."""
        req = rq.list_databases(page_size, page_token, backend, labels)
        return rq.database_page(await self._unary(self.databases.ListDatabases, req))

    async def delete_database(self, name: str, *, allow_missing: bool = False) -> bool:
        """Prunes a database; see `Client.delete_database`."""
        req = database_pb2.DeleteDatabaseRequest(name=name, allow_missing=allow_missing)
        resp: database_pb2.DeleteDatabaseResponse = await self._unary(
            self.databases.DeleteDatabase, req
        )
        return resp.deleted

    # ---- SQL ----------------------------------------------------------------------------------

    async def execute(self, database: str, sql: str, params: Sequence[Any] = ()) -> ExecResult:
        """Runs one statement and returns its whole result."""
        req = rq.execute(database, sql, params)
        return rq.exec_result(await self._unary(self.queries.Execute, req))

    async def query(
        self, database: str, sql: str, params: Sequence[Any] = (), *, max_rows: int = 0
    ) -> AsyncRows:
        """Runs one statement and streams its rows (`async for row in rows`)."""
        return await self._stream(self.queries.Query, rq.query(database, sql, params, max_rows))

    async def batch(
        self, database: str, statements: Iterable[StatementLike], *, transaction: bool = False
    ) -> List[ExecResult]:
        """Runs statements in order; with `transaction`, all or nothing."""
        req = rq.batch(database, statements, transaction)
        return rq.batch_results(await self._unary(self.queries.ExecuteBatch, req))

    def transaction(self, database: str) -> AsyncTransaction:
        """An interactive transaction: `async with client.transaction(db) as tx:` commits when
        the block succeeds and rolls back when it raises."""
        return AsyncTransaction(self, database)

    # ---- tables -------------------------------------------------------------------------------

    async def create_table(
        self,
        database: str,
        table: str,
        columns: Sequence[ColumnDef],
        *,
        if_not_exists: bool = False,
    ) -> bool:
        """Creates a table; with `if_not_exists`, returns False when it was already there."""
        req = rq.create_table(database, table, columns, if_not_exists)
        resp = await self._unary(self.tables.CreateTable, req)
        return bool(resp.created)

    async def insert_rows(
        self, database: str, table: str, rows: Iterable[Mapping[str, Any]]
    ) -> int:
        """Inserts rows in one transaction; returns how many."""
        resp = await self._unary(self.tables.InsertRows, rq.insert_rows(database, table, rows))
        return int(resp.rows_inserted)

    async def select_rows(
        self,
        database: str,
        table: str,
        *,
        columns: Optional[Sequence[str]] = None,
        where: Where = None,
        order_by: rq.OrderBy = None,
        limit: int = 0,
        offset: int = 0,
    ) -> AsyncRows:
        """Streams the rows matching `where`; see `Client.select_rows`."""
        req = rq.select_rows(database, table, columns, where, order_by, limit, offset)
        return await self._stream(self.tables.SelectRows, req)

    async def update_rows(
        self,
        database: str,
        table: str,
        set: Mapping[str, Any],
        *,
        where: Where = None,
        all: bool = False,
    ) -> int:
        """Sets columns on the rows matching `where` (required unless `all=True`)."""
        req = rq.update_rows(database, table, set, where, all)
        resp = await self._unary(self.tables.UpdateRows, req)
        return int(resp.rows_affected)

    async def delete_rows(
        self, database: str, table: str, *, where: Where = None, all: bool = False
    ) -> int:
        """Deletes the rows matching `where` (required unless `all=True`)."""
        resp = await self._unary(self.tables.DeleteRows, rq.delete_rows(database, table, where, all))
        return int(resp.rows_affected)

    # ---- schema and plans ---------------------------------------------------------------------

    async def get_schema(self, database: str, table: Optional[str] = None) -> Schema:
        """Describes the database or one table; see `Client.get_schema`."""
        resp: schema_pb2.GetSchemaResponse = await self._unary(
            self.schema.GetSchema, get_schema_request(database, table)
        )
        return Schema.from_pb(resp)

    async def explain(
        self, database: str, sql: str, params: Sequence[Any] = (), *, analyze: bool = False
    ) -> Plan:
        """The statement's query plan; see `Client.explain`."""
        resp: schema_pb2.ExplainResponse = await self._unary(
            self.schema.Explain, explain_request(database, sql, params, analyze)
        )
        return Plan.from_pb(resp)

    # ---- export and import --------------------------------------------------------------------

    async def export_table(
        self,
        database: str,
        table: str,
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> AsyncExport:
        """Streams a table as a file (`async for chunk in export`); see `Client.export_table`."""
        req = export_table_request(database, table, format, delimiter, null_text)
        return await self._export(self.transfer.ExportTable, req)

    async def export_query(
        self,
        database: str,
        sql: str,
        params: Sequence[Any] = (),
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> AsyncExport:
        """Streams the rows of one read statement as a file; see `Client.export_query`."""
        req = export_query_request(database, sql, params, format, delimiter, null_text)
        return await self._export(self.transfer.ExportQuery, req)

    async def dump_database(self, database: str, *, schema_only: bool = False) -> AsyncExport:
        """Streams a dump of the whole database; see `Client.dump_database`."""
        req = transfer_pb2.DumpDatabaseRequest(database=database, schema_only=schema_only)
        return await self._export(self.transfer.DumpDatabase, req)

    async def export_table_to(
        self,
        database: str,
        table: str,
        dest: Destination,
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> int:
        """`export_table` written to a path or binary file; returns the row count."""
        export = await self.export_table(
            database, table, format, delimiter=delimiter, null_text=null_text
        )
        async with export:
            return await export.write_to(dest)

    async def export_query_to(
        self,
        database: str,
        sql: str,
        dest: Destination,
        params: Sequence[Any] = (),
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> int:
        """`export_query` written to a path or binary file; returns the row count."""
        export = await self.export_query(
            database, sql, params, format, delimiter=delimiter, null_text=null_text
        )
        async with export:
            return await export.write_to(dest)

    async def dump_database_to(
        self, database: str, dest: Destination, *, schema_only: bool = False
    ) -> int:
        """`dump_database` written to a path or binary file; returns the rows (or keys) dumped."""
        export = await self.dump_database(database, schema_only=schema_only)
        async with export:
            return await export.write_to(dest)

    async def import_csv(
        self,
        database: str,
        table: str,
        source: AsyncSource,
        *,
        create: CreateLike = False,
        sample_rows: int = 0,
        skip_bad_rows: bool = False,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
        no_header: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> ImportCsvResult:
        """Imports a CSV file into a table; see `Client.import_csv`. `source` may also be an
        async iterable of bytes; files are read in a worker thread."""
        header = import_csv_header(
            database, table, create, sample_rows, skip_bad_rows, delimiter, null_text, no_header
        )
        resp: transfer_pb2.ImportCsvResponse = await self._import(
            self.transfer.ImportCsv, RequestStream(header, csv_chunk), source, chunk_size, True
        )
        return ImportCsvResult.from_pb(resp)

    async def import_sql(
        self,
        database: str,
        script: AsyncSource,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> ImportSqlResult:
        """Runs a multi-statement SQL script (a `str` is the SQL itself); see
        `Client.import_sql`."""
        resp: transfer_pb2.ImportSqlResponse = await self._import(
            self.transfer.ImportSql,
            RequestStream(import_sql_header(database), sql_chunk),
            script,
            chunk_size,
            False,
        )
        return ImportSqlResult.from_pb(resp)

    async def import_ndjson(
        self, database: str, source: AsyncSource, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> int:
        """Imports NDJSON key records atomically; returns how many. See `Client.import_ndjson`."""
        resp: transfer_pb2.ImportNdjsonResponse = await self._import(
            self.transfer.ImportNdjson,
            RequestStream(import_ndjson_header(database), ndjson_chunk),
            source,
            chunk_size,
            True,
        )
        return resp.records

    # ---- access -------------------------------------------------------------------------------

    async def create_api_key(
        self,
        name: str,
        *,
        admin: bool = False,
        can_create: bool = False,
        create_quota: int = 0,
        grants: Sequence[Grant] = (),
        expires_at: Optional[_dt.datetime] = None,
    ) -> Tuple[access_pb2.ApiKey, str]:
        """Creates an API key (admin keys only): its description and its secret."""
        req = rq.create_api_key(name, admin, can_create, create_quota, grants, expires_at)
        return rq.created_key(await self._unary(self.access.CreateApiKey, req))

    async def list_api_keys(self, *, include_inactive: bool = False) -> List[access_pb2.ApiKey]:
        """Lists API keys, never their secrets (admin keys only)."""
        req = access_pb2.ListApiKeysRequest(include_inactive=include_inactive)
        resp: access_pb2.ListApiKeysResponse = await self._unary(self.access.ListApiKeys, req)
        return list(resp.api_keys)

    async def revoke_api_key(self, key_id: str) -> bool:
        """Revokes a key at once (admin keys only); False when it already was."""
        resp = await self._unary(self.access.RevokeApiKey, access_pb2.RevokeApiKeyRequest(id=key_id))
        return bool(resp.revoked)

    async def who_am_i(self) -> access_pb2.ApiKey:
        """Describes the key this client uses."""
        return rq.who_am_i(await self._unary(self.access.WhoAmI, access_pb2.WhoAmIRequest()))

    # ---- operations (admin keys) --------------------------------------------------------------

    async def server_stats(self) -> operations_pb2.GetServerStatsResponse:
        """Operational figures: connections, streams, sessions, per-RPC calls and errors."""
        resp: operations_pb2.GetServerStatsResponse = await self._unary(
            self.operations.GetServerStats, operations_pb2.GetServerStatsRequest()
        )
        return resp

    async def list_audit_events(
        self,
        *,
        key_id: str = "",
        database: str = "",
        outcome: str = "",
        since: Optional[_dt.datetime] = None,
        until: Optional[_dt.datetime] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Tuple[List[operations_pb2.AuditEvent], Optional[str]]:
        """One page of audit records and the token of the next page (None on the last)."""
        req = rq.list_audit_events(key_id, database, outcome, since, until, page_size, page_token)
        resp: operations_pb2.ListAuditEventsResponse = await self._unary(
            self.operations.ListAuditEvents, req
        )
        return list(resp.events), resp.next_page_token or None

    async def verify_audit_log(self) -> operations_pb2.VerifyAuditLogResponse:
        """Walks the audit log's hash chain and reports the first broken record."""
        resp: operations_pb2.VerifyAuditLogResponse = await self._unary(
            self.operations.VerifyAuditLog, operations_pb2.VerifyAuditLogRequest()
        )
        return resp


async def _wait_for(aw: Any, timeout: Optional[float]) -> Any:
    return await asyncio.wait_for(aw, timeout)


class AsyncTransaction:
    """The asyncio twin of `Transaction`: `async with client.transaction(db) as tx:`, or
    `tx = await client.transaction(db).begin()` with explicit `commit()` / `rollback()`."""

    def __init__(self, client: AsyncClient, database: str) -> None:
        self.database = database
        self._client = client
        self._call: Any = None
        self.active = False

    async def begin(self) -> AsyncTransaction:
        """Opens the session and begins the transaction."""
        c = self._client
        # Without a request iterator, grpc.aio lets us write() requests one at a time (the
        # stubs do not know that form).
        self._call = c.queries.Session(  # type: ignore[call-arg]
            metadata=c._metadata, timeout=c._timeout
        )
        self.active = True
        try:
            await self._roundtrip(rq.session_begin(self.database), "begun")
        except BaseException:
            await self._close()
            raise
        return self

    async def _next(self) -> query_pb2.SessionResponse:
        try:
            resp = await self._call.read()
        except grpc.RpcError as e:
            self.active = False
            raise from_rpc_error(e) from None
        if resp is EOF:
            self.active = False
            raise ProtocolError("the session ended unexpectedly")
        out: query_pb2.SessionResponse = resp
        if out.WhichOneof("kind") == "error":
            if not out.error.transaction_active:
                self.active = False
            err = out.error
            raise error_for_number(err.code, err.message, err.reason or None, dict(err.metadata))
        return out

    async def _roundtrip(
        self, req: query_pb2.SessionRequest, kind: str
    ) -> query_pb2.SessionResponse:
        if not self.active:
            raise ProtocolError("the transaction has ended")
        try:
            await self._call.write(req)
        except grpc.RpcError as e:
            self.active = False
            raise from_rpc_error(e) from None
        resp = await self._next()
        got = resp.WhichOneof("kind")
        if got != kind:
            raise ProtocolError(f"unexpected session response {got}, wanted {kind}")
        return resp

    async def _close(self) -> None:
        self.active = False
        if self._call is not None and not self._call.done():
            try:
                await self._call.done_writing()
            except (grpc.RpcError, Exception):
                self._call.cancel()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> ExecResult:
        """Runs a statement inside the transaction."""
        resp = await self._roundtrip(rq.session_statement(sql, params), "result")
        return ExecResult.from_pb(resp.result)

    async def commit(self) -> None:
        """Commits and ends the transaction."""
        try:
            await self._roundtrip(rq.SESSION_COMMIT, "committed")
        finally:
            await self._close()

    async def rollback(self) -> None:
        """Rolls back and ends the transaction."""
        try:
            if self.active:
                await self._roundtrip(rq.SESSION_ROLLBACK, "rolled_back")
        finally:
            await self._close()

    async def __aenter__(self) -> AsyncTransaction:
        return await self.begin()

    async def __aexit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if not self.active:
            await self._close()
            return
        if exc_type is None:
            await self.commit()
            return
        try:
            await self.rollback()
        except DBForgeError:
            pass  # the stream closes either way, and the server rolls back; keep the original
