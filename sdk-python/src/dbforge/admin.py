"""What the admin calls answer: API keys, server figures and audit records, as the SDK's own
frozen dataclasses rather than the generated messages.

Field names are the proto's, so code written against the messages keeps reading the same
attributes; the values are Python's own: `datetime` (aware, UTC) for timestamps, `timedelta` for
durations, `None` for a time or number that is not set, `Role` for roles and a plain dict for
label selectors.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Dict, List, Optional

from google.protobuf import duration_pb2

from dbforge.types import Grant, Role, _enum, timestamp
from dbforge.v1 import access_pb2, operations_pb2

__all__ = ["ApiKey", "AuditEvent", "AuditVerdict", "KeyGrant", "RpcStats", "ServerStats"]


def duration(d: duration_pb2.Duration) -> _dt.timedelta:
    """A protobuf Duration as a timedelta (microsecond precision)."""
    return _dt.timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


@dataclass(frozen=True)
class KeyGrant:
    """A grant as an API key carries it: `role` on one target, which is exactly one of
    `database` (a name), `pattern` (`*` stands for any characters) or `labels` (all of them);
    the other two are empty."""

    database: str
    pattern: str
    labels: Dict[str, str]
    role: Role

    @classmethod
    def from_pb(cls, g: access_pb2.Grant) -> KeyGrant:
        return cls(
            database=g.database,
            pattern=g.pattern,
            labels=dict(g.labels.labels),
            role=_enum(Role, g.role),
        )

    def to_grant(self) -> Grant:
        """The same grant, as `create_api_key` takes it."""
        if self.database:
            return Grant.database(self.database, self.role)
        if self.pattern:
            return Grant.pattern(self.pattern, self.role)
        return Grant.labels(self.labels, self.role)


@dataclass(frozen=True)
class ApiKey:
    """An API key, never its secret.

    Attributes:
        id: the key's id (the secret reads `dbf_<id>_…`).
        name: the name it was created with.
        admin: whether it may do everything, including the admin calls.
        can_create: whether it may create databases (it owns those it creates).
        create_quota: how many databases it may own at once; 0: no limit.
        grants: roles on other databases.
        created_at: when it was created.
        expires_at: when it stops working; None: never.
        revoked_at: when it was revoked; None: it was not.
    """

    id: str
    name: str
    admin: bool
    can_create: bool
    create_quota: int
    grants: List[KeyGrant]
    created_at: _dt.datetime
    expires_at: Optional[_dt.datetime]
    revoked_at: Optional[_dt.datetime]

    @classmethod
    def from_pb(cls, k: access_pb2.ApiKey) -> ApiKey:
        return cls(
            id=k.id,
            name=k.name,
            admin=k.admin,
            can_create=k.can_create,
            create_quota=k.create_quota,
            grants=[KeyGrant.from_pb(g) for g in k.grants],
            created_at=timestamp(k.created_at),
            expires_at=timestamp(k.expires_at) if k.HasField("expires_at") else None,
            revoked_at=timestamp(k.revoked_at) if k.HasField("revoked_at") else None,
        )


@dataclass(frozen=True)
class RpcStats:
    """Calls of one RPC since the server started.

    Attributes:
        rpc: the RPC, e.g. "Execute".
        calls: how many calls.
        errors: how many of them ended with an error.
        mean_duration, max_duration: their mean and longest duration.
    """

    rpc: str
    calls: int
    errors: int
    mean_duration: _dt.timedelta
    max_duration: _dt.timedelta

    @classmethod
    def from_pb(cls, r: operations_pb2.RpcStats) -> RpcStats:
        return cls(
            rpc=r.rpc,
            calls=r.calls,
            errors=r.errors,
            mean_duration=duration(r.mean_duration),
            max_duration=duration(r.max_duration),
        )


@dataclass(frozen=True)
class ConnectionShare:
    """One database's share of its server's connection cap, which follows its demand.

    Attributes:
        backend: the database's engine.
        database: the database's name.
        share: the pooled connections it may hold now.
        in_use: connections running a call now.
        idle: connections kept open, idle.
        waiters: calls waiting for a connection.
        min: the least it is given while the cap allows.
        max: the most it may hold.
    """

    backend: int
    database: str
    share: int
    in_use: int
    idle: int
    waiters: int
    min: int
    max: int

    @classmethod
    def from_pb(cls, c: operations_pb2.ConnectionShare) -> ConnectionShare:
        return cls(
            backend=int(c.backend),
            database=c.database,
            share=c.share,
            in_use=c.in_use,
            idle=c.idle,
            waiters=c.waiters,
            min=c.min,
            max=c.max,
        )


@dataclass(frozen=True)
class Node:
    """A gateway sharing the catalog, as its last heartbeat recorded it.

    Attributes:
        name: its node name.
        address: the address it listens on for gRPC.
        started: when its process started.
        heartbeat: its last heartbeat.
        free_bytes: free bytes on its data directory's filesystem (new SQLite databases go to
            the most).
    """

    name: str
    address: str
    started: _dt.datetime
    heartbeat: _dt.datetime
    free_bytes: int

    @classmethod
    def from_pb(cls, n: operations_pb2.Node) -> Node:
        return cls(
            name=n.name,
            address=n.address,
            started=timestamp(n.started),
            heartbeat=timestamp(n.heartbeat),
            free_bytes=n.free_bytes,
        )


@dataclass(frozen=True)
class ConnectionCap:
    """This gateway's share of one engine server's connection cap (1/N with N live gateways).

    Attributes:
        backend: the engine.
        cap: data-plane connections this gateway may open now.
        open: data-plane connections open now.
    """

    backend: int
    cap: int
    open: int

    @classmethod
    def from_pb(cls, c: operations_pb2.ConnectionCap) -> ConnectionCap:
        return cls(backend=int(c.backend), cap=c.cap, open=c.open)


@dataclass(frozen=True)
class ServerStats:
    """The answer of `server_stats`: the gateway's operational figures now.

    Attributes:
        uptime: time since the server started.
        active_connections: open client connections (HTTP/2 and HTTP/1.1).
        active_streams: streamed results being sent now.
        active_sessions: open interactive sessions (transactions).
        databases: spawned databases.
        open_databases: databases with open connections.
        rpcs: calls, errors and durations per RPC.
        error_rate: errors over calls, all RPCs together (0 when there were no calls).
        connection_shares: each open PostgreSQL/MySQL database's share of its server's cap.
        nodes: the gateways sharing this gateway's catalog with a recent heartbeat.
        node: this gateway's node name.
        connection_caps: per server engine, this gateway's share of the server's cap.
    """

    uptime: _dt.timedelta
    active_connections: int
    active_streams: int
    active_sessions: int
    databases: int
    open_databases: int
    rpcs: List[RpcStats]
    error_rate: float
    connection_shares: List[ConnectionShare]
    nodes: List[Node]
    node: str
    connection_caps: List[ConnectionCap]

    @classmethod
    def from_pb(cls, s: operations_pb2.GetServerStatsResponse) -> ServerStats:
        return cls(
            uptime=duration(s.uptime),
            active_connections=s.active_connections,
            active_streams=s.active_streams,
            active_sessions=s.active_sessions,
            databases=s.databases,
            open_databases=s.open_databases,
            rpcs=[RpcStats.from_pb(r) for r in s.rpcs],
            error_rate=s.error_rate,
            connection_shares=[ConnectionShare.from_pb(c) for c in s.connection_shares],
            nodes=[Node.from_pb(n) for n in s.nodes],
            node=s.node,
            connection_caps=[ConnectionCap.from_pb(c) for c in s.connection_caps],
        )


@dataclass(frozen=True)
class AuditEvent:
    """One audited call, a link of the audit log's hash chain.

    Attributes:
        seq: its position in the chain.
        time: when it happened.
        key_id: the calling key's id ("-" without authentication).
        rpc: the RPC.
        database: the database, when the call named one (else empty).
        statement: the statement or operation text, cut at 256 characters; parameters are never
            recorded.
        statement_hash: SHA-256 (hex) of the full statement text.
        rows_affected: rows changed; None when not known.
        outcome: the outcome's gRPC code name ("OK", "PERMISSION_DENIED", …).
        duration: how long the call took.
        prev_hash: the hash of the record before (hex).
        hash: this record's hash (hex).
    """

    seq: int
    time: _dt.datetime
    key_id: str
    rpc: str
    database: str
    statement: str
    statement_hash: str
    rows_affected: Optional[int]
    outcome: str
    duration: _dt.timedelta
    prev_hash: str
    hash: str

    @classmethod
    def from_pb(cls, e: operations_pb2.AuditEvent) -> AuditEvent:
        return cls(
            seq=e.seq,
            time=timestamp(e.time),
            key_id=e.key_id,
            rpc=e.rpc,
            database=e.database,
            statement=e.statement,
            statement_hash=e.statement_hash,
            rows_affected=e.rows_affected if e.HasField("rows_affected") else None,
            outcome=e.outcome,
            duration=duration(e.duration),
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


@dataclass(frozen=True)
class AuditVerdict:
    """The answer of `verify_audit_log`.

    Attributes:
        ok: whether the whole hash chain holds.
        checked: how many records were checked.
        first_broken_seq: the `seq` of the first record that was edited or whose predecessors
            were deleted; None when `ok`.
        problem: what is wrong with that record (empty when `ok`).
    """

    ok: bool
    checked: int
    first_broken_seq: Optional[int]
    problem: str

    @classmethod
    def from_pb(cls, v: operations_pb2.VerifyAuditLogResponse) -> AuditVerdict:
        return cls(
            ok=v.ok,
            checked=v.checked,
            first_broken_seq=None if v.ok else v.first_broken_seq,
            problem=v.problem,
        )
