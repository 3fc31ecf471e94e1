"""Lifecycle policies and size quotas (dbforge.policy, update_database's max_bytes): conversions
field by field, and the calls against a live server (SQLite, no authentication)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

import dbforge
from dbforge import LifecyclePolicy
from dbforge.v1 import database_pb2
from dbforge_server import unique


def test_every_proto_field_has_an_attribute_of_the_same_name() -> None:
    fields = {f.name for f in dataclasses.fields(LifecyclePolicy)}
    assert fields == {f.name for f in database_pb2.LifecyclePolicy.DESCRIPTOR.fields}
    assert LifecyclePolicy.__doc__ and all(name in LifecyclePolicy.__doc__ for name in fields)


def test_a_policy_round_trips_without_its_output_fields() -> None:
    p = LifecyclePolicy(
        "ci",
        name_pattern="ci-*",
        labels={"team": "a"},
        idle_ttl=dt.timedelta(minutes=5),
        max_databases_per_key=3,
        max_bytes=1 << 20,
    )
    wire = p.to_pb()
    assert not wire.HasField("updated_at") and not wire.HasField("max_age")
    assert LifecyclePolicy.from_pb(wire) == p


def test_policies_are_set_listed_and_deleted(client: dbforge.Client) -> None:
    name = unique("pypol")
    stored, created = client.set_lifecycle_policy(
        LifecyclePolicy(name, name_pattern=f"{name}-*", max_age=dt.timedelta(days=1), max_bytes=1 << 20)
    )
    assert created and stored.updated_by == "-" and stored.updated_at is not None
    assert stored.max_age == dt.timedelta(days=1) and stored.max_bytes == 1 << 20
    _, created = client.set_lifecycle_policy(dataclasses.replace(stored, idle_ttl=dt.timedelta(hours=1)))
    assert not created
    listed = [p for p in client.list_lifecycle_policies() if p.name == name]
    assert listed[0].idle_ttl == dt.timedelta(hours=1)
    db = f"{name}-1"
    client.create_database(db)
    got = client.get_database(db)
    assert (got.max_bytes, got.quota_source, got.over_quota) == (1 << 20, f"policy={name}", False)
    shown = client.update_database(db, max_bytes=4096 * 40)
    assert (shown.max_bytes, shown.own_max_bytes, shown.quota_source) == (4096 * 40, 4096 * 40, "database")
    client.execute(db, "CREATE TABLE t (v BLOB)")
    with pytest.raises(dbforge.ResourceExhausted, match="size quota"):
        for _ in range(60):
            client.execute(db, "INSERT INTO t VALUES (randomblob(8000))")
    assert client.update_database(db, clear_max_bytes=True).own_max_bytes is None
    with pytest.raises(dbforge.InvalidArgument):
        client.set_lifecycle_policy(LifecyclePolicy(f"{name}-x", name_pattern="x-*"))
    assert client.delete_lifecycle_policy(name)
    assert not client.delete_lifecycle_policy(name, allow_missing=True)
    with pytest.raises(dbforge.NotFound):
        client.delete_lifecycle_policy(name)
    client.delete_database(db)


def test_a_fork_takes_its_own_ttls(client: dbforge.Client, db: str) -> None:
    fork = unique("pyfork")
    forked = client.fork_database(db, fork, ttl=dt.timedelta(hours=1), idle_ttl=dt.timedelta(minutes=10))
    assert forked.database.idle_ttl == dt.timedelta(minutes=10)
    assert forked.database.expire_at is not None
    client.delete_database(fork)
