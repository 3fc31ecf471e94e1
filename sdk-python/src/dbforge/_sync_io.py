"""The synchronous client's I/O: its channel, the four call shapes and the transaction session.

`Client` (client.py, generated from aio.py) builds each request and reads each answer; this
module is the part that differs between grpcio and grpc.aio, so it is written by hand twice,
here and in `_async_io.py`, and nothing else is.
"""

from __future__ import annotations

import queue
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import grpc

from dbforge import _requests as rq
from dbforge.errors import DBForgeError, ProtocolError, Unavailable, error_for_number, from_rpc_error
from dbforge._connection import Connection
from dbforge.rows import Rows
from dbforge.semantic import Answer, first_answer
from dbforge.transfer import Export, RequestStream, Source, source_chunks
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

__all__ = ["SyncConnection", "Transaction"]

_Resp = TypeVar("_Resp")
_Self = TypeVar("_Self", bound="SyncConnection")
_END = object()


class SyncConnection(Connection):
    """The channel, the generated stubs and the calls over them that `Client` builds on."""

    # The generated stubs over this channel (set by `Connection`), typed for grpcio.
    databases: database_pb2_grpc.DatabaseServiceStub
    queries: query_pb2_grpc.QueryServiceStub
    tables: table_pb2_grpc.TableServiceStub
    access: access_pb2_grpc.AccessServiceStub
    operations: operations_pb2_grpc.OperationsServiceStub
    schema: schema_pb2_grpc.SchemaServiceStub
    transfer: transfer_pb2_grpc.TransferServiceStub
    backups: backup_pb2_grpc.BackupServiceStub

    def _open(self) -> grpc.Channel:
        self.channel: grpc.Channel = self.options.channel()
        if self.options.connect_timeout is not None:
            try:
                grpc.channel_ready_future(self.channel).result(
                    timeout=self.options.connect_timeout
                )
            except grpc.FutureTimeoutError:
                self.channel.close()
                raise Unavailable(
                    f"cannot connect to {self.options.endpoint} within "
                    f"{self.options.connect_timeout} s"
                ) from None
        return self.channel

    def close(self) -> None:
        """Closes the connection."""
        self.channel.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, method: Callable[..., _Resp], request: Any) -> _Resp:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _stream(self, method: Callable[..., Any], request: Any) -> Rows:
        return Rows(method(request, metadata=self._metadata, timeout=self._timeout))

    def _answer_stream(
        self, method: Callable[..., Any], request: Any, rows_follow: bool
    ) -> Tuple[Answer, Optional[Rows]]:
        """AskStream: the answer first, then (when the query ran) rows as Query streams them."""
        call = method(request, metadata=self._metadata, timeout=self._timeout)
        try:
            msg = next(call, None)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        answer = first_answer(msg)
        if not (rows_follow and answer.answered):
            return answer, None
        return answer, Rows(call)

    def _collect(self, method: Callable[..., Any], request: Any) -> List[Any]:
        """Every message of a short server stream."""
        try:
            return list(method(request, metadata=self._metadata, timeout=self._timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _export(self, method: Callable[..., Any], request: Any) -> Export:
        return Export(method(request, metadata=self._metadata, timeout=self._timeout))

    def _import(
        self,
        method: Callable[..., _Resp],
        requests: RequestStream[Any],
        source: Source,
        chunk_size: int,
        str_is_path: bool,
    ) -> _Resp:
        with source_chunks(source, chunk_size, str_is_path=str_is_path) as chunks:
            try:
                return method(
                    requests.iterate(chunks), metadata=self._metadata, timeout=self._timeout
                )
            except grpc.RpcError as e:
                if requests.error is not None:
                    raise requests.error from None  # reading the source failed, not the call
                raise from_rpc_error(e) from None


class Transaction:
    """An interactive transaction (`QueryService.Session`) on a connection the server pins to
    it. Statements see each other's effects; nothing is visible to others until commit.

    As a context manager it commits when the block ends normally and rolls back when it
    raises. `commit()` and `rollback()` end it early; a transaction that is neither committed
    nor rolled back is rolled back by the server when the stream closes.
    """

    def __init__(self, client: SyncConnection, database: str) -> None:
        self.database = database
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(rq.session_begin(database))
        try:
            self._responses: Any = client.queries.Session(
                iter(self._requests.get, _END),
                metadata=client._metadata,
                timeout=client._timeout,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        self.active = False
        try:
            self._expect(self._next(), "begun")
        except BaseException:
            self._close()
            raise
        self.active = True

    def _next(self) -> query_pb2.SessionResponse:
        try:
            resp: Optional[query_pb2.SessionResponse] = next(self._responses, None)
        except grpc.RpcError as e:
            self.active = False
            raise from_rpc_error(e) from None
        if resp is None:
            self.active = False
            raise ProtocolError("the session ended unexpectedly")
        if resp.WhichOneof("kind") == "error":
            if not resp.error.transaction_active:
                self.active = False
            err = resp.error
            raise error_for_number(err.code, err.message, err.reason or None, dict(err.metadata))
        return resp

    @staticmethod
    def _expect(resp: query_pb2.SessionResponse, kind: str) -> None:
        got = resp.WhichOneof("kind")
        if got != kind:
            raise ProtocolError(f"unexpected session response {got}, wanted {kind}")

    def _call(self, req: query_pb2.SessionRequest, kind: str) -> query_pb2.SessionResponse:
        if not self.active:
            raise ProtocolError("the transaction has ended")
        self._requests.put(req)
        resp = self._next()
        self._expect(resp, kind)
        return resp

    def _close(self) -> None:
        self.active = False
        self._requests.put(_END)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> ExecResult:
        """Runs a statement inside the transaction. A failing statement raises and leaves the
        transaction open unless the engine ended it (then `active` is False)."""
        resp = self._call(rq.session_statement(sql, params), "result")
        return ExecResult.from_pb(resp.result)

    def commit(self) -> None:
        """Commits and ends the transaction."""
        try:
            self._call(rq.SESSION_COMMIT, "committed")
        finally:
            self._close()

    def rollback(self) -> None:
        """Rolls back and ends the transaction."""
        try:
            if self.active:
                self._call(rq.SESSION_ROLLBACK, "rolled_back")
        finally:
            self._close()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Any) -> None:
        if not self.active:
            self._close()
            return
        if exc_type is None:
            self.commit()
            return
        try:
            self.rollback()
        except DBForgeError:
            pass  # the stream closes either way, and the server rolls back; keep the original
