"""Moving data in and out of a database (`TransferService`): exports, dumps and imports.

Exports (`Client.export_table`, `export_query`, `dump_database`) return an `Export`: an
iterator of `bytes` chunks that reads from the server as it is consumed, so a file of any size
streams in constant memory. Concatenated, the chunks are the file. `Export.write_to` (and the
client's `*_to` methods) write it to a path or a binary file and return the row count.

Imports (`Client.import_csv`, `import_sql`, `import_ndjson`) are client-streaming: the SDK sends
a header naming the target, then the source in chunks of `chunk_size` bytes, read as they are
sent. A source is `bytes`, a path, a binary file object or an iterable of `bytes`.

Formats (set by the server, see transfer.proto): CSV is RFC 4180 with a header row and CRLF line
ends; JSON one array of objects; NDJSON one object per line. Bytes are base64, decimals strings,
timestamps RFC 3339 in UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    BinaryIO,
    Callable,
    Generic,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

import grpc

from dbforge.errors import ProtocolError, from_rpc_error
from dbforge.types import ColumnType
from dbforge.v1 import transfer_pb2, types_pb2
from dbforge.values import to_values

__all__ = [
    "ExportFormat",
    "Export",
    "AsyncExport",
    "RejectedRow",
    "ImportCsvResult",
    "ImportSqlResult",
    "DEFAULT_CHUNK_SIZE",
]

#: Bytes per import message: well under gRPC's 4 MiB message limit, large enough that the
#: per-message overhead does not matter.
DEFAULT_CHUNK_SIZE = 64 * 1024


class ExportFormat(enum.IntEnum):
    """The format of an export. The client methods also take "csv", "json" or "ndjson"."""

    UNSPECIFIED = 0
    CSV = 1
    JSON = 2
    NDJSON = 3


FormatLike = Union[ExportFormat, str]

#: What an import reads: bytes, a path (`str` or `os.PathLike`; for `import_sql` a `str` is the
#: script itself), a binary file object (anything with `read(n) -> bytes`), or an iterable of
#: bytes chunks.
Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO, Iterable[bytes]]

#: `Source`, or an async iterable of bytes chunks (the async client).
AsyncSource = Union[Source, AsyncIterable[bytes]]

#: Where an export is written: a path (`str` or `os.PathLike`) or a binary file object.
Destination = Union[str, "os.PathLike[str]", BinaryIO]

#: `import_csv(create=...)`: False (the table must exist), True (create it, inferring column
#: types), or a mapping of header name → `ColumnType` that overrides the inferred types.
CreateLike = Union[bool, Mapping[str, ColumnType]]


def format_pb(fmt: FormatLike) -> int:
    """The proto enum value of `fmt`; ValueError for an unknown name."""
    if isinstance(fmt, ExportFormat):
        return int(fmt)
    if isinstance(fmt, str):
        try:
            return int(ExportFormat[fmt.upper()])
        except KeyError:
            pass
    raise ValueError(f"unknown export format {fmt!r}: use 'csv', 'json' or 'ndjson'")


def csv_options(
    delimiter: Optional[str], null_text: Optional[str], no_header: bool = False
) -> transfer_pb2.CsvOptions:
    return transfer_pb2.CsvOptions(
        delimiter=delimiter or "", null_text=null_text or "", no_header=no_header
    )


def export_table_request(
    database: str,
    table: str,
    fmt: FormatLike,
    delimiter: Optional[str],
    null_text: Optional[str],
) -> transfer_pb2.ExportTableRequest:
    return transfer_pb2.ExportTableRequest(
        database=database,
        table=table,
        format=format_pb(fmt),  # type: ignore[arg-type]
        csv=csv_options(delimiter, null_text),
    )


def export_query_request(
    database: str,
    sql: str,
    params: Sequence[Any],
    fmt: FormatLike,
    delimiter: Optional[str],
    null_text: Optional[str],
) -> transfer_pb2.ExportQueryRequest:
    return transfer_pb2.ExportQueryRequest(
        database=database,
        statement=types_pb2.Statement(sql=sql, params=to_values(params)),
        format=format_pb(fmt),  # type: ignore[arg-type]
        csv=csv_options(delimiter, null_text),
    )


def import_csv_header(
    database: str,
    table: str,
    create: CreateLike,
    sample_rows: int,
    skip_bad_rows: bool,
    delimiter: Optional[str],
    null_text: Optional[str],
    no_header: bool,
) -> transfer_pb2.ImportCsvRequest:
    header = transfer_pb2.ImportCsvHeader(
        database=database,
        table=table,
        csv=csv_options(delimiter, null_text, no_header),
        skip_bad_rows=skip_bad_rows,
    )
    if create is not False:
        types = {} if create is True else {k: int(v) for k, v in create.items()}
        header.create.CopyFrom(
            transfer_pb2.CsvCreateTable(column_types=types, sample_rows=sample_rows)  # type: ignore[arg-type]
        )
    return transfer_pb2.ImportCsvRequest(header=header)


def csv_chunk(data: bytes) -> transfer_pb2.ImportCsvRequest:
    return transfer_pb2.ImportCsvRequest(chunk=data)


def import_sql_header(database: str) -> transfer_pb2.ImportSqlRequest:
    return transfer_pb2.ImportSqlRequest(header=transfer_pb2.ImportSqlHeader(database=database))


def sql_chunk(data: bytes) -> transfer_pb2.ImportSqlRequest:
    return transfer_pb2.ImportSqlRequest(chunk=data)


def import_ndjson_header(database: str) -> transfer_pb2.ImportNdjsonRequest:
    return transfer_pb2.ImportNdjsonRequest(
        header=transfer_pb2.ImportNdjsonHeader(database=database)
    )


def ndjson_chunk(data: bytes) -> transfer_pb2.ImportNdjsonRequest:
    return transfer_pb2.ImportNdjsonRequest(chunk=data)


RDF_FORMATS = {
    "nquads": transfer_pb2.RDF_FORMAT_N_QUADS,
    "ntriples": transfer_pb2.RDF_FORMAT_N_TRIPLES,
    "turtle": transfer_pb2.RDF_FORMAT_TURTLE,
    "jsonld": transfer_pb2.RDF_FORMAT_JSON_LD,
}


def rdf_format(format: str) -> "transfer_pb2.RdfFormat.ValueType":
    """An RDF format by name: "nquads", "ntriples", "turtle" or "jsonld"."""
    try:
        return RDF_FORMATS[format.lower().replace("-", "").replace("_", "")]
    except KeyError:
        raise ValueError(f"unknown RDF format {format!r}; use one of {sorted(RDF_FORMATS)}") from None


def import_rdf_header(
    database: str, format: str, base_iri: str, graph: str
) -> transfer_pb2.ImportRdfRequest:
    return transfer_pb2.ImportRdfRequest(
        header=transfer_pb2.ImportRdfHeader(
            database=database, format=rdf_format(format), base_iri=base_iri, graph=graph
        )
    )


def rdf_chunk(data: bytes) -> transfer_pb2.ImportRdfRequest:
    return transfer_pb2.ImportRdfRequest(chunk=data)


# ---- results -----------------------------------------------------------------------------------


class RejectedRow(NamedTuple):
    """A row `import_csv(..., skip_bad_rows=True)` rejected: the 1-based line of the file it
    starts on, and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class ImportCsvResult:
    """The answer of `import_csv`. `rejected` lists the first 1 000 rejected rows."""

    rows_read: int
    rows_inserted: int
    rows_rejected: int
    rejected: List[RejectedRow] = field(default_factory=list)
    table_created: bool = False

    @classmethod
    def from_pb(cls, r: transfer_pb2.ImportCsvResponse) -> ImportCsvResult:
        return cls(
            rows_read=r.rows_read,
            rows_inserted=r.rows_inserted,
            rows_rejected=r.rows_rejected,
            rejected=[RejectedRow(x.line, x.reason) for x in r.rejected],
            table_created=r.table_created,
        )


@dataclass(frozen=True)
class ImportSqlResult:
    """The answer of `import_sql`: statements run, and rows changed summed over them."""

    statements: int
    rows_affected: int

    @classmethod
    def from_pb(cls, r: transfer_pb2.ImportSqlResponse) -> ImportSqlResult:
        return cls(statements=r.statements, rows_affected=r.rows_affected)


# ---- import sources ----------------------------------------------------------------------------


def _split(data: Union[bytes, bytearray, memoryview], size: int) -> Iterator[bytes]:
    view = memoryview(data).cast("B")
    for i in range(0, len(view), size):
        yield bytes(view[i : i + size])


def _read_chunks(f: Any, size: int) -> Iterator[bytes]:
    while True:
        data = f.read(size)
        if not data:
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("an import source file must be opened in binary mode ('rb')")
        yield from _split(data, size)


def _split_each(pieces: Iterable[Any], size: int) -> Iterator[bytes]:
    for piece in pieces:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"an import source iterable must yield bytes, not {type(piece).__name__}")
        yield from _split(piece, size)


def _path(source: Any, str_is_path: bool) -> Optional[Union[str, "os.PathLike[str]"]]:
    """The path `source` names, or None when it is not a path."""
    if isinstance(source, os.PathLike) or (str_is_path and isinstance(source, str)):
        return source
    return None


@contextlib.contextmanager
def source_chunks(source: Source, chunk_size: int, *, str_is_path: bool) -> Iterator[Iterator[bytes]]:
    """The source as bytes chunks of at most `chunk_size`. A path is opened here, before the
    call starts (so a missing file raises at once), and closed when the block ends."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    path = _path(source, str_is_path)
    if path is not None:
        with open(path, "rb") as f:
            yield _read_chunks(f, chunk_size)
        return
    if isinstance(source, str):
        yield _split(source.encode("utf-8"), chunk_size)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield _split(source, chunk_size)
    elif callable(getattr(source, "read", None)):
        yield _read_chunks(source, chunk_size)
    elif isinstance(source, Iterable):
        yield _split_each(source, chunk_size)
    else:
        raise TypeError(
            f"cannot import from {type(source).__name__}: pass bytes, a path, a binary file "
            "or an iterable of bytes"
        )


def _open_binary(path: Union[str, "os.PathLike[str]"]) -> BinaryIO:
    return open(path, "rb")


async def _aread_chunks(f: Any, size: int) -> AsyncIterator[bytes]:
    while True:
        # File reads block; a worker thread keeps the event loop free meanwhile.
        data = await asyncio.to_thread(f.read, size)
        if not data:
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("an import source file must be opened in binary mode ('rb')")
        for piece in _split(data, size):
            yield piece


async def _asplit_each(pieces: AsyncIterable[Any], size: int) -> AsyncIterator[bytes]:
    async for piece in pieces:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"an import source iterable must yield bytes, not {type(piece).__name__}")
        for part in _split(piece, size):
            yield part


async def _from_sync(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


@contextlib.asynccontextmanager
async def asource_chunks(
    source: AsyncSource, chunk_size: int, *, str_is_path: bool
) -> AsyncIterator[AsyncIterator[bytes]]:
    """`source_chunks` for asyncio: also takes an async iterable of bytes, and reads files in a
    worker thread."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    path = _path(source, str_is_path)
    if path is not None:
        f = await asyncio.to_thread(_open_binary, path)
        try:
            yield _aread_chunks(f, chunk_size)
        finally:
            f.close()
        return
    if isinstance(source, AsyncIterable):
        yield _asplit_each(source, chunk_size)
    elif callable(getattr(source, "read", None)) and not isinstance(source, (bytes, bytearray, memoryview, str)):
        yield _aread_chunks(source, chunk_size)
    else:
        with source_chunks(source, chunk_size, str_is_path=str_is_path) as chunks:
            yield _from_sync(chunks)


_Req = TypeVar("_Req")


class RequestStream(Generic[_Req]):
    """The requests of a client-streaming import: the header, then one message per chunk.

    grpc reports an exception raised while iterating requests only as a cancelled call, so the
    exception is kept here and the client re-raises it instead (a missing file stays a
    FileNotFoundError, not a CANCELLED status)."""

    def __init__(self, header: _Req, wrap: Callable[[bytes], _Req]) -> None:
        self.header = header
        self.wrap = wrap
        self.error: Optional[BaseException] = None

    def iterate(self, chunks: Iterator[bytes]) -> Iterator[_Req]:
        yield self.header
        while True:
            # Only reading the source counts as its failure (not grpc closing this generator).
            try:
                c = next(chunks)
            except StopIteration:
                return
            except Exception as e:
                self.error = e
                raise
            yield self.wrap(c)

    async def aiterate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[_Req]:
        yield self.header
        while True:
            try:
                c = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception as e:
                self.error = e
                raise
            yield self.wrap(c)


# ---- exports -----------------------------------------------------------------------------------

# grpc.aio's end-of-stream sentinel (missing from grpc-stubs).
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


class _ExportState:
    rows: int
    done: bool

    def _chunk(self, msg: Any) -> bytes:
        if self.done:
            raise ProtocolError("the export sent a chunk after its last one")
        if not msg.HasField("chunk"):
            raise ProtocolError("the export sent a message without a chunk")
        chunk: transfer_pb2.FileChunk = msg.chunk
        self.rows = chunk.rows
        self.done = chunk.done
        return chunk.data

    def _end(self) -> None:
        if not self.done:
            # Without the `done` chunk the file would be silently truncated.
            raise ProtocolError("the export ended before its last chunk")


class _Sink:
    """The binary file an export is written to. A path is opened (created or truncated) here,
    closed at the end, and removed again when the export fails, so a failed export never leaves
    a truncated file that looks complete; a file object is the caller's to close."""

    def __init__(self, dest: Destination) -> None:
        self.path: Optional[Union[str, "os.PathLike[str]"]] = None
        if isinstance(dest, (str, os.PathLike)):
            self.path = dest
            self.file: Any = open(dest, "wb")
        elif callable(getattr(dest, "write", None)):
            self.file = dest
        else:
            raise TypeError(
                f"cannot write an export to {type(dest).__name__}: pass a path or a binary file"
            )

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def finish(self, ok: bool) -> None:
        if self.path is None:
            return
        self.file.close()
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class Export(_ExportState):
    """A streamed export or dump (`Client.export_table`, `export_query`, `dump_database`).

    Iterating yields the file as `bytes` chunks (at most about 64 KiB each), read from the
    server as they are consumed. `rows` counts the rows (or Redis keys) written so far, and is
    the total once iteration has ended; `done` tells that the server sent the last chunk. The
    first chunk is read when the call returns, so a bad request raises there. Closing it (or
    leaving its `with` block) cancels the export on the server.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self.rows = 0
        self.done = False
        self._finished = False
        self._pending: Optional[bytes] = self._read()

    def _read(self) -> Optional[bytes]:
        """The next non-empty chunk, or None at the end of the stream."""
        while not self._finished:
            try:
                msg = next(self._call, None)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
            if msg is None:
                self._finished = True
                self._end()
                return None
            data = self._chunk(msg)
            if data:
                return data
        return None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        data = self._read()
        if data is None:
            raise StopIteration
        return data

    def read_all(self) -> bytes:
        """The rest of the file in one `bytes` (it must fit in memory; prefer `write_to`)."""
        return b"".join(self)

    def text(self, encoding: str = "utf-8") -> str:
        """The rest of the file decoded (CSV, JSON, NDJSON and SQL dumps are UTF-8)."""
        return self.read_all().decode(encoding)

    def write_to(self, dest: Destination) -> int:
        """Writes the rest of the file to `dest`, a path (created or truncated; removed again
        when the export fails) or a binary file object, and returns the row count."""
        sink = _Sink(dest)
        try:
            for data in self:
                sink.write(data)
        except BaseException:
            sink.finish(False)
            raise
        sink.finish(True)
        return self.rows

    def close(self) -> None:
        """Stops reading; the server cancels the export."""
        self._call.cancel()

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncExport(_ExportState):
    """The asyncio twin of `Export`: `async for chunk in export`, `await export.read_all()`,
    `await export.write_to(path)`."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.rows = 0
        self.done = False
        self._finished = False
        self._pending: Optional[bytes] = None

    async def _start(self) -> AsyncExport:
        self._pending = await self._read()
        return self

    async def _read(self) -> Optional[bytes]:
        while not self._finished:
            try:
                msg = await self._call.read()
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
            if msg is _EOF:
                self._finished = True
                self._end()
                return None
            data = self._chunk(msg)
            if data:
                return data
        return None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        data = await self._read()
        if data is None:
            raise StopAsyncIteration
        return data

    async def read_all(self) -> bytes:
        """The rest of the file in one `bytes`."""
        return b"".join([c async for c in self])

    async def text(self, encoding: str = "utf-8") -> str:
        """The rest of the file decoded."""
        return (await self.read_all()).decode(encoding)

    async def write_to(self, dest: Destination) -> int:
        """Writes the rest of the file to a path or binary file object; returns the row count.
        Writes happen on the event loop's thread, a chunk (≤ ~64 KiB) at a time."""
        sink = _Sink(dest)
        try:
            async for data in self:
                sink.write(data)
        except BaseException:
            sink.finish(False)
            raise
        sink.finish(True)
        return self.rows

    def close(self) -> None:
        """Stops reading; the server cancels the export."""
        self._call.cancel()

    async def __aenter__(self) -> AsyncExport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
