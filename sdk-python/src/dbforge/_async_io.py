"""The asyncio client's I/O: its channel, the four call shapes and the transaction session.

`AsyncClient` (aio.py) builds each request and reads each answer; this module is the part that
differs between grpc.aio and grpcio, so it is written by hand twice, here and in `_sync_io.py`,
and nothing else is.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import grpc

from dbforge import _requests as rq
from dbforge.errors import DBForgeError, ProtocolError, Unavailable, error_for_number, from_rpc_error
from dbforge._connection import Connection
from dbforge.rows import EOF, AsyncRows
from dbforge.semantic import Answer, first_answer
from dbforge.transfer import AsyncExport, AsyncSource, RequestStream, asource_chunks
from dbforge.types import ExecResult
from dbforge.v1 import (
    access_pb2_grpc,
    backup_pb2_grpc,
    database_pb2_grpc,
    operations_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    schema_pb2_grpc,
    table_pb2_grpc,
    transfer_pb2_grpc,
)

__all__ = ["AsyncConnection", "AsyncTransaction"]

_Self = TypeVar("_Self", bound="AsyncConnection")


class AsyncConnection(Connection):
    """The channel, the generated stubs and the calls over them that `AsyncClient` builds on."""

    # The generated stubs over this channel (set by `Connection`), typed for grpc.aio.
    databases: database_pb2_grpc.DatabaseServiceAsyncStub
    queries: query_pb2_grpc.QueryServiceAsyncStub
    tables: table_pb2_grpc.TableServiceAsyncStub
    access: access_pb2_grpc.AccessServiceAsyncStub
    operations: operations_pb2_grpc.OperationsServiceAsyncStub
    schema: schema_pb2_grpc.SchemaServiceAsyncStub
    transfer: transfer_pb2_grpc.TransferServiceAsyncStub
    backups: backup_pb2_grpc.BackupServiceAsyncStub

    def _open(self) -> grpc.aio.Channel:
        self.channel: grpc.aio.Channel = self.options.aio_channel()
        return self.channel

    async def connect(self: _Self) -> _Self:
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

    async def __aenter__(self: _Self) -> _Self:
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

    async def _answer_stream(
        self, method: Callable[..., Any], request: Any, rows_follow: bool
    ) -> Tuple[Answer, Optional[AsyncRows]]:
        """AskStream: the answer first, then (when the query ran) rows as Query streams them."""
        call = method(request, metadata=self._metadata, timeout=self._timeout)
        try:
            msg = await call.read()
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        answer = first_answer(None if msg is EOF else msg)
        if not (rows_follow and answer.answered):
            return answer, None
        return answer, await AsyncRows(call)._start()

    async def _collect(self, method: Callable[..., Any], request: Any) -> List[Any]:
        """Every message of a short server stream."""
        try:
            return [m async for m in method(request, metadata=self._metadata, timeout=self._timeout)]
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

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


async def _wait_for(aw: Any, timeout: Optional[float]) -> Any:
    return await asyncio.wait_for(aw, timeout)


class AsyncTransaction:
    """The asyncio twin of `Transaction`: `async with client.transaction(db) as tx:`, or
    `tx = await client.transaction(db).begin()` with explicit `commit()` / `rollback()`."""

    def __init__(self, client: AsyncConnection, database: str) -> None:
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
