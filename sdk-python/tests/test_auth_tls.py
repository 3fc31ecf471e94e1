"""API keys (AccessService), OperationsService, and TLS / mutual TLS, sync and async."""

from __future__ import annotations

import grpc
import pytest

import dbforge
from dbforge import Grant, Role
from dbforge_server import ADMIN_KEY, DBForgeServer, unique


def test_keys_grants_and_operations(auth_server: DBForgeServer) -> None:
    with dbforge.Client(auth_server.endpoint) as anonymous:
        with pytest.raises(dbforge.Unauthenticated) as e:
            anonymous.list_databases()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED

    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        me = admin.who_am_i()
        assert me.admin is True
        prefix = unique("agent")
        others = unique("admins")
        admin.create_database(others)
        info, secret = admin.create_api_key(
            "agent 42",
            can_create=True,
            create_quota=5,
            grants=[Grant.pattern(f"{prefix}-*", Role.OWNER), Grant.labels({"team": "x"}, Role.READ)],
        )
        assert info.name == "agent 42" and info.can_create and info.create_quota == 5
        assert secret.startswith(f"dbf_{info.id}_")
        assert [g.pattern for g in info.grants][0] == f"{prefix}-*"
        assert info.id in [k.id for k in admin.list_api_keys()]

        with dbforge.Client(auth_server.endpoint, api_key=secret) as agent:
            assert agent.who_am_i().id == info.id
            agent.create_database(f"{prefix}-scratch")
            agent.execute(f"{prefix}-scratch", "CREATE TABLE t (x INTEGER)")
            with pytest.raises(dbforge.PermissionDenied) as pd:
                agent.execute(others, "SELECT 1")  # not granted, not its own
            assert pd.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert others not in [d.name for d in agent.list_databases()]
            with pytest.raises(dbforge.PermissionDenied):
                agent.server_stats()
            with pytest.raises(dbforge.PermissionDenied):
                agent.list_api_keys()
            assert agent.delete_database(f"{prefix}-scratch") is True

        stats = admin.server_stats()
        assert stats.uptime.seconds >= 0
        assert any(r.rpc for r in stats.rpcs)
        events, _next = admin.list_audit_events(key_id=info.id, page_size=100)
        assert events and all(e.key_id == info.id for e in events)
        assert any(e.rpc.endswith("CreateDatabase") for e in events)
        admin.delete_database(others)
        verdict = admin.verify_audit_log()
        assert verdict.ok is True and verdict.checked > 0

        assert admin.revoke_api_key(info.id) is True
        assert admin.revoke_api_key(info.id) is False
        assert info.id not in [k.id for k in admin.list_api_keys()]
        assert info.id in [k.id for k in admin.list_api_keys(include_inactive=True)]
        with dbforge.Client(auth_server.endpoint, api_key=secret) as revoked:
            with pytest.raises(dbforge.Unauthenticated):
                revoked.who_am_i()
        with pytest.raises(dbforge.NotFound):
            admin.revoke_api_key("no-such-key")


async def test_keys_async(auth_server: DBForgeServer) -> None:
    async with dbforge.AsyncClient(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        assert (await admin.who_am_i()).admin
        info, secret = await admin.create_api_key("reader", grants=[Grant.database("nothing", Role.READ)])
        assert info.id in [k.id for k in await admin.list_api_keys()]
        async with dbforge.AsyncClient(auth_server.endpoint, api_key=secret) as reader:
            assert (await reader.who_am_i()).name == "reader"
            with pytest.raises(dbforge.PermissionDenied):
                await reader.create_database(unique("nope"))
            with pytest.raises(dbforge.PermissionDenied):
                await reader.verify_audit_log()
        assert (await admin.server_stats()).databases >= 0
        events, _ = await admin.list_audit_events(page_size=5)
        assert len(events) <= 5
        assert (await admin.verify_audit_log()).ok
        assert await admin.revoke_api_key(info.id) is True
    async with dbforge.AsyncClient(auth_server.endpoint) as anonymous:
        with pytest.raises(dbforge.Unauthenticated):
            await anonymous.list_databases()


def test_tls(tls_server: DBForgeServer, tls_files: dict) -> None:
    assert tls_server.endpoint.startswith("https://")
    with dbforge.Client(tls_server.endpoint, ca_file=tls_files["ca"], timeout=10) as c:
        name = unique("tls")
        c.create_database(name)
        assert c.execute(name, "SELECT 1 + 1").rows == [(2,)]
        assert c.delete_database(name)
    # Without the CA the server's certificate is not trusted.
    with dbforge.Client(tls_server.endpoint, timeout=5) as untrusted:
        with pytest.raises(dbforge.Unavailable):
            untrusted.list_databases()
    # Plaintext against a TLS port fails too.
    with dbforge.Client(f"http://{tls_server.addr}", timeout=5) as plain:
        with pytest.raises(dbforge.DBForgeError):
            plain.list_databases()


def test_mutual_tls(mtls_server: DBForgeServer, tls_files: dict) -> None:
    ok = dict(ca_file=tls_files["ca"], client_cert_file=tls_files["client_cert"], client_key_file=tls_files["client_key"])
    with dbforge.Client(mtls_server.endpoint, timeout=10, **ok) as c:
        name = unique("mtls")
        c.create_database(name)
        assert c.execute(name, "SELECT 'hi'").rows == [("hi",)]
        c.delete_database(name)
    with dbforge.Client(mtls_server.endpoint, ca_file=tls_files["ca"], timeout=5) as no_cert:
        with pytest.raises(dbforge.Unavailable):
            no_cert.list_databases()
    stranger = dict(
        ca_file=tls_files["ca"],
        client_cert_file=tls_files["stranger_cert"],
        client_key_file=tls_files["stranger_key"],
    )
    with dbforge.Client(mtls_server.endpoint, timeout=5, **stranger) as c2:
        with pytest.raises(dbforge.Unavailable):
            c2.list_databases()
    with pytest.raises(ValueError):
        dbforge.Client(mtls_server.endpoint, client_cert_file=tls_files["client_cert"])


async def test_mutual_tls_async(mtls_server: DBForgeServer, tls_files: dict) -> None:
    async with dbforge.AsyncClient(
        mtls_server.endpoint,
        ca_file=tls_files["ca"],
        client_cert_file=tls_files["client_cert"],
        client_key_file=tls_files["client_key"],
        timeout=10,
    ) as c:
        name = unique("amtls")
        await c.create_database(name)
        assert (await c.execute(name, "SELECT 40 + 2")).rows == [(42,)]
        await c.delete_database(name)
