"""Errors: one exception class per gRPC status code, all under `DBForgeError`.

```python
try:
    client.get_database("nope")
except dbforge.NotFound as e:
    print(e.code, e.message, e.reason)   # StatusCode.NOT_FOUND, "database nope ...", "NOT_FOUND"
```

`reason` and `metadata` come from the server's `google.rpc.ErrorInfo` detail: `reason` is
machine-readable (`UNIQUE_VIOLATION`, `SQL_ERROR`, `FORBIDDEN`, ...), `metadata` carries
`native_code` (the engine's own code), `statement_index` (batches) and `field`.

The gateway's messages name its RPCs ("use ExecuteBatch with `transaction` or a Session"); the
SDK says them with its own methods ("use batch(..., transaction=True) or
client.transaction(database)"), and keeps the server's text in `grpc_message`.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Tuple, Type

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DBForgeError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "ProtocolError",
]


class DBForgeError(Exception):
    """Base of every error the SDK raises for a failed call.

    Attributes:
        code: the gRPC status code the server chose.
        message: the server's message, with the gateway's RPC names replaced by this SDK's
            methods and arguments (see `sdk_words`).
        grpc_message: the server's message as it sent it.
        reason: the machine-readable reason of the server's ErrorInfo, if any.
        metadata: the ErrorInfo metadata (`native_code`, `statement_index`, `field`, ...).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: Optional[grpc.StatusCode] = None,
        reason: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        grpc_message: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.grpc_message = message if grpc_message is None else grpc_message
        self.reason = reason
        self.metadata: Dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class Cancelled(DBForgeError):
    """The call was cancelled (CANCELLED)."""

    code = grpc.StatusCode.CANCELLED


class Unknown(DBForgeError):
    """UNKNOWN."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(DBForgeError):
    """A bad name, value or request field, or an SQL error (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(DBForgeError):
    """The call or statement ran out of time (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(DBForgeError):
    """No such database, table or key (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DBForgeError):
    """The name is taken (ALREADY_EXISTS)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DBForgeError):
    """The key lacks the grant, or the statement would leave its database (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(DBForgeError):
    """A size, row or rate limit was hit (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(DBForgeError):
    """A constraint was violated, or the backend is not configured (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DBForgeError):
    """A serialization failure or deadlock: retrying the transaction is safe (ABORTED)."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(DBForgeError):
    """OUT_OF_RANGE."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(DBForgeError):
    """The backend lacks the operation (UNIMPLEMENTED)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(DBForgeError):
    """A server fault (INTERNAL)."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(DBForgeError):
    """The gateway or its backend cannot be reached (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(DBForgeError):
    """DATA_LOSS."""

    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(DBForgeError):
    """No API key, or a wrong, expired or revoked one (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ProtocolError(DBForgeError):
    """The server sent something this SDK does not understand (reported as INTERNAL)."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: Dict[grpc.StatusCode, Type[DBForgeError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}
_BY_NUMBER: Dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}

_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_INFO = error_details_pb2.ErrorInfo.DESCRIPTOR.full_name

# The gateway's messages name RPCs ("use ExecuteBatch with `transaction`..."); a user of this SDK
# knows its methods and arguments. Each pair is the gateway's words and this SDK's, replaced in
# order (a longer phrase before any phrase it contains). The gateway's messages are in server/src
# (api/status.rs `alternative`, the backends' limit and transaction-control refusals,
# core/error.rs `Unsupported`); cli/src/error.rs `CLI_WORDS` does the same for the CLI. The
# names are the same on `Client` and `AsyncClient`.
SDK_WORDS: Tuple[Tuple[str, str], ...] = (
    (
        "use ExecuteBatch with `transaction` or a Session",
        "use batch(..., transaction=True) or client.transaction(database)",
    ),
    (
        "use ExecuteBatch with `transaction` for MULTI/EXEC",
        "use batch(..., transaction=True) for MULTI/EXEC",
    ),
    (
        "group statements atomically with ExecuteBatch and `transaction` instead",
        "group statements atomically with batch(..., transaction=True) instead",
    ),
    ("use ExecuteBatch for several", "use batch() for several"),
    (
        "KEYS is not available in ExecuteBatch (the gateway emulates it with SCAN): use Execute or Query, or SCAN",
        "KEYS is not available in batch() (the gateway emulates it with SCAN): use execute() or query(), or SCAN",
    ),
    ("use Query to stream large results", "use query() to stream large results"),
    ("use Query (it streams) or SCAN", "use query() (it streams) or SCAN"),
    (
        "use Query, or a ranged or SCAN command, for large results",
        "use query(), or a ranged or SCAN command, for large results",
    ),
    ("(use `transaction` for all-or-nothing)", "(pass transaction=True to batch() for all-or-nothing)"),
    (
        "use QueryService.Execute with the backend's own commands instead",
        "use execute() with the backend's own commands instead",
    ),
    ("InsertRows takes at most", "insert_rows() takes at most"),
    ("Session is not supported", "client.transaction() is not supported"),
    ("CreateTable is not", "create_table() is not"),
    ("InsertRows is not", "insert_rows() is not"),
    ("SelectRows is not", "select_rows() is not"),
    ("UpdateRows is not", "update_rows() is not"),
    ("DeleteRows is not", "delete_rows() is not"),
    ("ExportTable is not", "export_table() is not"),
    ("ExportQuery is not", "export_query() is not"),
    ("DumpDatabase of keys of module types is not", "dump_database() of keys of module types is not"),
    ("DumpDatabase is not", "dump_database() is not"),
    ("ImportCsv is not", "import_csv() is not"),
    ("ImportSql is not", "import_sql() is not"),
    ("ImportNdjson is not", "import_ndjson() is not"),
    ("GetSchema is not", "get_schema() is not"),
    ("Explain with analyze is not", "explain(..., analyze=True) is not"),
    ("Explain is not", "explain() is not"),
)


def sdk_words(message: str) -> str:
    """`message` in this SDK's words: the gateway's RPC names replaced by the methods and
    arguments that call them."""
    for rpc, sdk in SDK_WORDS:
        message = message.replace(rpc, sdk)
    return message


def error_for(
    code: grpc.StatusCode,
    message: str,
    reason: Optional[str] = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> DBForgeError:
    """The exception for a status code and the server's message (said in this SDK's words; the
    server's own text stays in `grpc_message`)."""
    cls = _BY_CODE.get(code, Unknown)
    return cls(sdk_words(message), code=code, reason=reason, metadata=metadata, grpc_message=message)


def error_for_number(
    code: int,
    message: str,
    reason: Optional[str] = None,
    metadata: Optional[Mapping[str, str]] = None,
) -> DBForgeError:
    """The exception for a numeric gRPC code (as in `SessionError.code`)."""
    return error_for(_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN), message, reason, metadata)


def _error_info(trailers: Any) -> Tuple[Optional[str], Dict[str, str]]:
    for key, value in trailers or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.TypeName() == _ERROR_INFO:
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info.reason, dict(info.metadata)
    return None, {}


# gRPC's own message-size checks, which refuse a message before DB-Forge sees it and so carry
# no ErrorInfo: the server's (tonic: "Error, decoded message length too large: found N bytes,
# the limit is: M bytes"; "encoded" for a response) and this client's (grpc core: "Sent message
# larger than max (N vs. M)", "Received ..." when a channel option sets a limit).
_SERVER_SIZE = re.compile(r"\b(decoded|encoded) message length too large: found (\d+) bytes, the limit is: (\d+) bytes")
_CLIENT_SIZE = re.compile(r"^(Sent|Received) message larger than max \((\d+) vs\. (\d+)\)")
_SERVER_LIMIT = "the server's limit of {limit} bytes (--max-message-size, DBFORGE_MAX_MESSAGE_SIZE)"
_TOO_LARGE_REQUEST = (
    "the request is {size} bytes, more than {whose}. Split large values across rows or statements, "
    "load bulk data with import_csv or import_sql (they stream it in chunks), or raise {what}"
)
_TOO_LARGE_RESPONSE = (
    "the response is {size} bytes, more than {whose}. Read large results with query() or "
    "select_rows() (they stream rows in batches), or raise {what}"
)


def _message_size_error(code: grpc.StatusCode, message: str) -> Optional[DBForgeError]:
    """The SDK's LIMIT_EXCEEDED error for gRPC's own refusal of a too-large message, which names
    the limit and what to do, as the server's limit errors do; None for any other error."""
    if code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE):
        return None
    m = _SERVER_SIZE.search(message)
    if m:
        direction, size, limit = m.groups()
        whose = _SERVER_LIMIT.format(limit=limit)
        what = "the server's --max-message-size"
        name = "max_message_size"
        request = direction == "decoded"  # the server decodes requests and encodes responses
    else:
        m = _CLIENT_SIZE.match(message)
        if not m:
            return None
        direction, size, limit = m.groups()
        request = direction == "Sent"
        name = "grpc.max_send_message_length" if request else "grpc.max_receive_message_length"
        whose = f"this client's limit of {limit} bytes (the channel option {name})"
        what = "that option"
    text = (_TOO_LARGE_REQUEST if request else _TOO_LARGE_RESPONSE).format(size=size, whose=whose, what=what)
    metadata = {"limit": name, "message_bytes": size, "limit_bytes": limit}
    return ResourceExhausted(text, code=grpc.StatusCode.RESOURCE_EXHAUSTED, reason="LIMIT_EXCEEDED", metadata=metadata)


def from_rpc_error(err: grpc.RpcError) -> DBForgeError:
    """Converts a grpc (or grpc.aio) error into the SDK's exception."""
    code: grpc.StatusCode = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message: str = (err.details() if hasattr(err, "details") else None) or str(code.name)
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    try:
        reason, metadata = _error_info(trailers)
    except Exception:  # a malformed detail must not hide the error itself
        reason, metadata = None, {}
    # gRPC's own size refusals carry no ErrorInfo; the gateway's say which limit it was. Either
    # way the SDK's message names its own methods.
    size_limit = reason is None or (reason == "LIMIT_EXCEEDED" and metadata.get("limit") == "max_message_size")
    out = (_message_size_error(code, message) if size_limit else None) or error_for(code, message, reason, metadata)
    out.__cause__ = err
    return out
