"""Python values to and from `dbforge.v1.Value`.

| Python | Value kind |
|---|---|
| `None` | null |
| `bool` | bool |
| `int` (64-bit signed) | int |
| `float` | float |
| `str` | text |
| `bytes`, `bytearray`, `memoryview` | bytes |
| `decimal.Decimal` | decimal (exact, as text) |
| `dict`, `list` (and `Json(...)`) | json |
| `datetime.datetime` | timestamp (naive datetimes are taken as UTC) |
| `datetime.date` | date |
| `datetime.time` | time of day |
| `uuid.UUID` | uuid |
| `Array([...])`, `tuple` | array |

Results come back the same way: a JSON cell as the parsed document, a timestamp as an aware
UTC `datetime` (microsecond precision), an array as a `list`.
"""

from __future__ import annotations

import datetime as _dt
import json
import operator
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Sequence

from google.protobuf import struct_pb2

from dbforge.v1 import types_pb2

__all__ = ["Array", "Json", "to_value", "from_value", "to_values"]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NULL = struct_pb2.NULL_VALUE


class Json:
    """A JSON document parameter: any `json.dumps`-able value, or already-encoded text with
    `Json.raw(text)`."""

    __slots__ = ("text",)

    def __init__(self, document: Any) -> None:
        self.text: str = json.dumps(document, separators=(",", ":"))

    @classmethod
    def raw(cls, text: str) -> Json:
        """A parameter from JSON text as is."""
        j = cls(None)
        j.text = text
        return j

    def __repr__(self) -> str:
        return f"Json.raw({self.text!r})"


class Array:
    """An array parameter (PostgreSQL arrays): each element converts like any parameter."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items: List[Any] = list(items)

    def __repr__(self) -> str:
        return f"Array({self.items!r})"


def to_value(v: Any) -> types_pb2.Value:
    """Converts a Python value into a `Value`. Raises `TypeError` for unsupported types and
    `OverflowError` for integers outside 64 bits."""
    out = types_pb2.Value()
    _fill(out, v)
    return out


def to_values(params: Sequence[Any]) -> List[types_pb2.Value]:
    """Converts a parameter list."""
    return [to_value(p) for p in params]


def _fill(out: types_pb2.Value, v: Any) -> None:
    if v is None:
        out.null_value = _NULL
    elif isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int):
        if not _I64_MIN <= v <= _I64_MAX:
            raise OverflowError(f"integer {v} does not fit in 64 bits (pass a Decimal)")
        out.int_value = v
    elif isinstance(v, float):
        out.float_value = v
    elif isinstance(v, str):
        out.text_value = v
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.bytes_value = bytes(v)
    elif isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"decimal {v} is not finite")
        out.decimal_value = str(v)
    elif isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        delta = v - _EPOCH
        seconds = delta.days * 86400 + delta.seconds
        out.timestamp_value.seconds = seconds
        out.timestamp_value.nanos = delta.microseconds * 1000
    elif isinstance(v, _dt.date):
        out.date_value.year = v.year
        out.date_value.month = v.month
        out.date_value.day = v.day
    elif isinstance(v, _dt.time):
        out.time_value.hours = v.hour
        out.time_value.minutes = v.minute
        out.time_value.seconds = v.second
        out.time_value.nanos = v.microsecond * 1000
    elif isinstance(v, uuid.UUID):
        out.uuid_value = str(v)
    elif isinstance(v, Json):
        out.json_value = v.text
    elif isinstance(v, (dict, list)):
        out.json_value = json.dumps(v, separators=(",", ":"))
    elif isinstance(v, (Array, tuple)):
        items = v.items if isinstance(v, Array) else v
        out.array_value.SetInParent()
        for item in items:
            _fill(out.array_value.values.add(), item)
    else:
        raise TypeError(f"cannot convert {type(v).__name__} to a DB-Forge value")


def _timestamp(v: types_pb2.Value) -> _dt.datetime:
    t = v.timestamp_value
    return _EPOCH + _dt.timedelta(seconds=t.seconds, microseconds=t.nanos // 1000)


def _date(v: types_pb2.Value) -> _dt.date:
    d = v.date_value
    return _dt.date(d.year, d.month, d.day)


def _time(v: types_pb2.Value) -> _dt.time:
    t = v.time_value
    return _dt.time(t.hours, t.minutes, t.seconds, t.nanos // 1000)


def _array(v: types_pb2.Value) -> List[Any]:
    return [from_value(item) for item in v.array_value.values]


# Kind name → decoder. The plain kinds read the field with a C-level attrgetter (the hot path of
# streamed results); the others convert.
DECODERS: Dict[str, Callable[[types_pb2.Value], Any]] = {
    "int_value": operator.attrgetter("int_value"),
    "float_value": operator.attrgetter("float_value"),
    "text_value": operator.attrgetter("text_value"),
    "bytes_value": operator.attrgetter("bytes_value"),
    "bool_value": operator.attrgetter("bool_value"),
    "null_value": lambda v: None,
    "decimal_value": lambda v: Decimal(v.decimal_value),
    "json_value": lambda v: json.loads(v.json_value),
    "timestamp_value": _timestamp,
    "date_value": _date,
    "uuid_value": lambda v: uuid.UUID(v.uuid_value),
    "time_value": _time,
    "array_value": _array,
}


def from_value(v: types_pb2.Value) -> Any:
    """Converts a `Value` into its Python value (an unset kind is None)."""
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    return DECODERS[kind](v)


_which = types_pb2.Value.WhichOneof


def decode_row(values: Iterable[types_pb2.Value]) -> tuple[Any, ...]:
    """Converts the cells of a row into a tuple of Python values."""
    d = DECODERS
    w = _which
    return tuple([None if (k := w(v, "kind")) is None else d[k](v) for v in values])


def decode_rows(rows: Iterable[types_pb2.Row]) -> List[tuple[Any, ...]]:
    """Converts rows into tuples (one comprehension for the whole batch: the streaming hot path)."""
    d = DECODERS
    w = _which
    return [
        tuple([None if (k := w(v, "kind")) is None else d[k](v) for v in r.values]) for r in rows
    ]
