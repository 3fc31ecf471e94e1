"""Streamed results: an iterator of rows that reads from the server as it is consumed."""

from __future__ import annotations

from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple, Union

import grpc

from dbforge.errors import ProtocolError, from_rpc_error
from dbforge.types import Column, Summary, columns_from_pb
from dbforge.v1 import query_pb2, table_pb2
from dbforge.values import decode_rows

__all__ = ["Rows", "AsyncRows"]

# grpc.aio's end-of-stream sentinel (missing from grpc-stubs).
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

Part = Union[query_pb2.QueryResponse, table_pb2.SelectRowsResponse]
Row = Tuple[Any, ...]


def _header(first: Optional[Part]) -> List[Column]:
    if first is None:
        raise ProtocolError("the stream ended before its header")
    if first.WhichOneof("kind") != "header":
        raise ProtocolError("the stream did not start with a header")
    return columns_from_pb(first.header.columns)


class _Result:
    columns: List[Column]
    _summary: Optional[Summary]
    # On a resumable stream: the stream id and the rows received, from the last batch's token.
    _position: Optional[Tuple[str, int]] = None
    _buffer: List[Row]
    _pos: int

    @property
    def resume_token(self) -> Optional[str]:
        """On a resumable stream (`query(..., resumable=True)`): the token that resumes at the
        first row not yet read from this result (`Client.resume_query`), after an error or after
        a budget cut the page. None on other streams and once the whole result was read."""
        if self._summary is not None:
            return self._summary.resume_token
        if self._position is None:
            return None
        stream, received = self._position
        return f"{stream}.{received - (len(self._buffer) - self._pos)}"

    @property
    def column_names(self) -> List[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    @property
    def summary(self) -> Optional[Summary]:
        """Counts, timing and truncation, once the stream has ended (None before)."""
        return self._summary

    def _part(self, msg: Part) -> Optional[List[Row]]:
        kind = msg.WhichOneof("kind")
        if kind == "batch":
            token = msg.batch.resume_token if isinstance(msg, query_pb2.QueryResponse) else ""
            stream, _, offset = token.partition(".")
            if offset.isdigit():
                self._position = (stream, int(offset))
            return decode_rows(msg.batch.rows)
        if kind == "summary":
            self._summary = Summary.from_pb(msg.summary)
        return None

    def _end(self) -> None:
        if self._summary is None:
            raise ProtocolError("the stream ended without a summary")


class Rows(_Result):
    """A streamed result (`Client.query`, `Client.select_rows`).

    Iterating yields rows as tuples, reading batches from the server as they are needed, so a
    result of any size streams in constant memory. `dicts()` yields them as dicts instead. The
    columns are known when the call returns; `summary` once the stream has ended. Closing it
    (or leaving its `with` block) cancels the query on the server.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._summary = None
        try:
            first: Optional[Part] = next(call, None)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        self.columns = _header(first)
        self._stream = self._batches()
        self._buffer = []
        self._pos = 0

    def _batches(self) -> Iterator[List[Row]]:
        try:
            for msg in self._call:
                rows = self._part(msg)
                if rows:
                    yield rows
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        self._end()

    def batches(self) -> Iterator[List[Row]]:
        """The remaining rows a batch (a list of tuples) at a time, as the server sent them."""
        if self._pos < len(self._buffer):
            rest = self._buffer[self._pos :]
            self._buffer, self._pos = [], 0
            yield rest
        for batch in self._stream:
            yield batch

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        while self._pos >= len(self._buffer):
            self._buffer, self._pos = next(self._stream), 0
        row = self._buffer[self._pos]
        self._pos += 1
        return row

    def dicts(self) -> Iterator[Dict[str, Any]]:
        """The remaining rows as column name → value dicts."""
        names = self.column_names
        for row in self:
            yield dict(zip(names, row))

    def fetchall(self) -> List[Row]:
        """Every remaining row."""
        return list(self)

    def to_pandas(self) -> Any:
        """The remaining rows as a `pandas.DataFrame` (needs pandas installed)."""
        from dbforge._frames import to_pandas

        return to_pandas(self.column_names, self.fetchall())

    def to_arrow(self) -> Any:
        """The remaining rows as a `pyarrow.Table` (needs pyarrow installed)."""
        from dbforge._frames import to_arrow

        return to_arrow(self.column_names, self.fetchall())

    def close(self) -> None:
        """Stops reading; the server cancels the query."""
        self._call.cancel()

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRows(_Result):
    """The asyncio twin of `Rows`: `async for row in rows`, `rows.dicts()`, `await
    rows.fetchall()`, `await rows.to_pandas()`."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._summary = None
        self.columns = []
        self._buffer: List[Row] = []
        self._pos = 0
        self._done = False

    async def _start(self) -> AsyncRows:
        first = await self._read()
        self.columns = _header(first)
        return self

    async def _read(self) -> Optional[Part]:
        try:
            msg = await self._call.read()
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        if msg is EOF:
            return None
        part: Part = msg
        return part

    async def next_batch(self) -> Optional[List[Row]]:
        """The next batch of rows (the rest of the current one first); None at the end."""
        if self._pos < len(self._buffer):
            rest = self._buffer[self._pos :]
            self._buffer, self._pos = [], 0
            return rest
        while not self._done:
            msg = await self._read()
            if msg is None:
                self._done = True
                self._end()
                return None
            rows = self._part(msg)
            if rows:
                return rows
        return None

    def __aiter__(self) -> AsyncIterator[Row]:
        return self

    async def __anext__(self) -> Row:
        if self._pos >= len(self._buffer):
            batch = await self.next_batch()
            if batch is None:
                raise StopAsyncIteration
            self._buffer, self._pos = batch, 0
        row = self._buffer[self._pos]
        self._pos += 1
        return row

    async def dicts(self) -> AsyncIterator[Dict[str, Any]]:
        """The remaining rows as column name → value dicts."""
        names = self.column_names
        async for row in self:
            yield dict(zip(names, row))

    async def fetchall(self) -> List[Row]:
        """Every remaining row."""
        out: List[Row] = []
        while True:
            batch = await self.next_batch()
            if batch is None:
                return out
            out.extend(batch)

    async def to_pandas(self) -> Any:
        """The remaining rows as a `pandas.DataFrame` (needs pandas installed)."""
        from dbforge._frames import to_pandas

        return to_pandas(self.column_names, await self.fetchall())

    async def to_arrow(self) -> Any:
        """The remaining rows as a `pyarrow.Table` (needs pyarrow installed)."""
        from dbforge._frames import to_arrow

        return to_arrow(self.column_names, await self.fetchall())

    def close(self) -> None:
        """Stops reading; the server cancels the query."""
        self._call.cancel()

    async def __aenter__(self) -> AsyncRows:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
