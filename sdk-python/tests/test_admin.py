"""The admin calls answer with the SDK's own dataclasses (dbforge.admin), not generated
messages: conversions field by field, and the types a live server's answers arrive as."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from google.protobuf import duration_pb2, timestamp_pb2

import dbforge
from dbforge import (
    ApiKey,
    AuditEvent,
    AuditVerdict,
    ConnectionCap,
    Grant,
    KeyGrant,
    Node,
    Role,
    RpcStats,
    ServerStats,
)
from dbforge.v1 import access_pb2, operations_pb2, types_pb2
from dbforge_server import ADMIN_KEY, DBForgeServer, unique

UTC = dt.timezone.utc
README = Path(__file__).resolve().parents[1] / "README.md"


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def test_api_key_reads_every_field_and_leaves_unset_times_none() -> None:
    pb = access_pb2.ApiKey(
        id="k1",
        name="agent",
        can_create=True,
        create_quota=3,
        grants=[
            access_pb2.Grant(database="reports", role=access_pb2.ROLE_READ),
            access_pb2.Grant(pattern="agent-*", role=access_pb2.ROLE_OWNER),
            access_pb2.Grant(labels=access_pb2.LabelSelector(labels={"team": "x"}), role=access_pb2.ROLE_WRITE),
        ],
        created_at=ts(1_700_000_000, 5_000),
        expires_at=ts(1_800_000_000),
    )
    key = ApiKey.from_pb(pb)
    assert (key.id, key.name, key.admin, key.can_create, key.create_quota) == ("k1", "agent", False, True, 3)
    assert key.created_at == dt.datetime.fromtimestamp(1_700_000_000, UTC) + dt.timedelta(microseconds=5)
    assert key.expires_at == dt.datetime.fromtimestamp(1_800_000_000, UTC)
    assert key.revoked_at is None
    assert key.grants == [
        KeyGrant(database="reports", pattern="", labels={}, role=Role.READ),
        KeyGrant(database="", pattern="agent-*", labels={}, role=Role.OWNER),
        KeyGrant(database="", pattern="", labels={"team": "x"}, role=Role.WRITE),
    ]
    assert [g.to_grant() for g in key.grants] == [
        Grant.database("reports", Role.READ),
        Grant.pattern("agent-*", Role.OWNER),
        Grant.labels({"team": "x"}, Role.WRITE),
    ]


def test_every_proto_field_has_an_attribute_of_the_same_name() -> None:
    for cls, message in [
        (ApiKey, access_pb2.ApiKey),
        (KeyGrant, access_pb2.Grant),
        (ServerStats, operations_pb2.GetServerStatsResponse),
        (RpcStats, operations_pb2.RpcStats),
        (AuditEvent, operations_pb2.AuditEvent),
        (AuditVerdict, operations_pb2.VerifyAuditLogResponse),
    ]:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == {f.name for f in message.DESCRIPTOR.fields}, cls.__name__
        assert cls.__doc__ and all(name in cls.__doc__ for name in fields), cls.__name__


def test_server_stats_and_audit_records_convert_durations_times_and_optionals() -> None:
    stats = ServerStats.from_pb(
        operations_pb2.GetServerStatsResponse(
            uptime=duration_pb2.Duration(seconds=90_000, nanos=1_000),
            active_connections=1,
            active_streams=2,
            active_sessions=3,
            databases=4,
            open_databases=5,
            rpcs=[
                operations_pb2.RpcStats(
                    rpc="Execute",
                    calls=10,
                    errors=1,
                    mean_duration=duration_pb2.Duration(nanos=2_500_000),
                    max_duration=duration_pb2.Duration(seconds=1),
                )
            ],
            error_rate=0.1,
            node="a1",
            nodes=[
                operations_pb2.Node(
                    name="a1",
                    address="10.0.0.1:50051",
                    started=ts(1_700_000_000),
                    heartbeat=ts(1_700_000_060),
                    free_bytes=1 << 40,
                )
            ],
            connection_caps=[operations_pb2.ConnectionCap(backend=types_pb2.BACKEND_POSTGRES, cap=48, open=5)],
        )
    )
    assert stats.node == "a1"
    assert stats.nodes == [
        Node(
            "a1",
            "10.0.0.1:50051",
            dt.datetime.fromtimestamp(1_700_000_000, UTC),
            dt.datetime.fromtimestamp(1_700_000_060, UTC),
            1 << 40,
        )
    ]
    assert stats.connection_caps == [ConnectionCap(types_pb2.BACKEND_POSTGRES, 48, 5)]
    assert stats.uptime == dt.timedelta(days=1, seconds=3600, microseconds=1)
    assert (stats.active_connections, stats.active_streams, stats.active_sessions) == (1, 2, 3)
    assert (stats.databases, stats.open_databases, stats.error_rate) == (4, 5, 0.1)
    assert stats.rpcs == [RpcStats("Execute", 10, 1, dt.timedelta(milliseconds=2.5), dt.timedelta(seconds=1))]

    fields = dict(seq=7, time=ts(1_700_000_000), key_id="k1", rpc="/dbforge.v1.QueryService/Execute",
                  database="db", statement="DELETE FROM t", statement_hash="ab", outcome="OK",
                  duration=duration_pb2.Duration(nanos=1_000_000), prev_hash="01", hash="02")
    event = AuditEvent.from_pb(operations_pb2.AuditEvent(rows_affected=0, **fields))
    assert event.rows_affected == 0 and event.seq == 7 and event.hash == "02"
    assert event.time == dt.datetime.fromtimestamp(1_700_000_000, UTC)
    assert event.duration == dt.timedelta(milliseconds=1)
    assert AuditEvent.from_pb(operations_pb2.AuditEvent(**fields)).rows_affected is None

    assert AuditVerdict.from_pb(operations_pb2.VerifyAuditLogResponse(ok=True, checked=3)) == AuditVerdict(
        ok=True, checked=3, first_broken_seq=None, problem=""
    )
    broken = operations_pb2.VerifyAuditLogResponse(ok=False, checked=3, first_broken_seq=2, problem="hash")
    assert AuditVerdict.from_pb(broken).first_broken_seq == 2


def test_admin_calls_answer_with_sdk_types(auth_server: DBForgeServer) -> None:
    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        me = admin.who_am_i()
        assert isinstance(me, ApiKey) and me.admin and me.revoked_at is None
        expires = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=1)
        info, secret = admin.create_api_key(
            unique("typed"), grants=[Grant.database("reports", Role.READ)], expires_at=expires
        )
        assert isinstance(info, ApiKey) and info.expires_at == expires
        assert info.grants == [KeyGrant(database="reports", pattern="", labels={}, role=Role.READ)]
        assert isinstance(info.created_at, dt.datetime) and info.created_at.tzinfo is not None
        assert all(isinstance(k, ApiKey) for k in admin.list_api_keys())
        assert admin.revoke_api_key(info.id)
        revoked = [k for k in admin.list_api_keys(include_inactive=True) if k.id == info.id]
        assert revoked and revoked[0].revoked_at is not None

        stats = admin.server_stats()
        assert isinstance(stats, ServerStats) and isinstance(stats.uptime, dt.timedelta)
        assert all(isinstance(r, RpcStats) for r in stats.rpcs)
        # One gateway on its own catalog: it is the only node.
        assert [n.name for n in stats.nodes] == [stats.node]
        assert isinstance(stats.nodes[0].heartbeat, dt.datetime)
        events, _ = admin.list_audit_events(key_id=me.id, page_size=3)
        assert events and all(isinstance(e, AuditEvent) and e.key_id == me.id for e in events)
        verdict = admin.verify_audit_log()
        assert isinstance(verdict, AuditVerdict) and verdict.ok and verdict.first_broken_seq is None


async def test_async_admin_calls_answer_with_sdk_types(auth_server: DBForgeServer) -> None:
    async with dbforge.AsyncClient(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        assert isinstance(await admin.who_am_i(), ApiKey)
        assert isinstance(await admin.server_stats(), ServerStats)
        events, _ = await admin.list_audit_events(page_size=2)
        assert all(isinstance(e, AuditEvent) for e in events)
        assert isinstance(await admin.verify_audit_log(), AuditVerdict)


def test_readme_admin_example(
    auth_server: DBForgeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBFORGE_ENDPOINT", auth_server.endpoint)
    monkeypatch.setenv("DBFORGE_API_KEY", ADMIN_KEY)
    [block] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "who_am_i" in b]
    exec(compile(block, "README admin example", "exec"), {"dbforge": dbforge})
    assert capsys.readouterr().out.splitlines() == ["ci reports READ None", "True 0", "True True"]
