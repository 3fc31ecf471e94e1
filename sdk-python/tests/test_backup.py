"""Backups, restores and policies (dbforge.backup): conversions field by field, and the whole
cycle against a live server (SQLite, the server's default `local` target)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import List, Tuple

import pytest

from google.protobuf import duration_pb2, timestamp_pb2

import dbforge
from dbforge import Backup, BackupManifest, BackupPolicy, BackupStatus, Restored, RestoreMode, TableRowCount
from dbforge.v1 import access_pb2, backup_pb2, types_pb2
from dbforge_server import DBForgeServer, unique

UTC = dt.timezone.utc
README = Path(__file__).resolve().parents[1] / "README.md"
NOTES = "SELECT id, body FROM notes ORDER BY id"


def notes_db(client: dbforge.Client, name: str) -> str:
    client.create_database(name)
    client.execute(name, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    client.execute(name, "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    return name


def rows(client: dbforge.Client, db: str) -> List[Tuple[object, ...]]:
    return list(client.query(db, NOTES))


# ---- conversions ------------------------------------------------------------------------------


def test_every_proto_field_has_an_attribute_of_the_same_name() -> None:
    for cls, message in [
        (Backup, backup_pb2.Backup),
        (BackupManifest, backup_pb2.BackupManifest),
        (TableRowCount, backup_pb2.TableRowCount),
        (Restored, backup_pb2.RestoreBackupResponse),
    ]:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == {f.name for f in message.DESCRIPTOR.fields}, cls.__name__
        assert cls.__doc__ and all(name in cls.__doc__ for name in fields), cls.__name__
    # A policy's oneofs are flattened: the selector's members stand for `selector`.
    policy = {f.name for f in dataclasses.fields(BackupPolicy)}
    proto = {f.name for f in backup_pb2.BackupPolicy.DESCRIPTOR.fields} - {"selector"}
    assert policy == proto | {f.name for f in backup_pb2.BackupSelector.DESCRIPTOR.fields}
    assert BackupPolicy.__doc__ and all(name in BackupPolicy.__doc__ for name in policy)


def test_backups_convert_times_durations_enums_and_the_manifest() -> None:
    b = Backup.from_pb(
        backup_pb2.Backup(
            id="bk-1",
            database="app",
            backend=types_pb2.BACKEND_SQLITE,
            created_at=timestamp_pb2.Timestamp(seconds=1_700_000_000),
            size_bytes=10,
            status=backup_pb2.BACKUP_STATUS_COMPLETED,
            duration=duration_pb2.Duration(seconds=1, nanos=500_000_000),
            labels={"k": "v"},
            manifest=backup_pb2.BackupManifest(
                format_version=1, row_counts=[backup_pb2.TableRowCount(table="t", rows=3)], total_rows=3
            ),
        )
    )
    assert (b.backend, b.status) == (dbforge.Backend.SQLITE, BackupStatus.COMPLETED)
    assert b.created_at == dt.datetime.fromtimestamp(1_700_000_000, UTC)
    assert b.duration == dt.timedelta(seconds=1.5)
    assert b.manifest is not None and b.manifest.row_counts == [TableRowCount("t", 3)]
    assert Backup.from_pb(backup_pb2.Backup(status=9)).status == BackupStatus.UNSPECIFIED
    assert Backup.from_pb(backup_pb2.Backup()).manifest is None


def test_policies_round_trip_without_their_output_fields() -> None:
    sent = BackupPolicy(
        "nightly",
        labels={"tier": "prod"},
        cron="0 3 * * *",
        keep_within=dt.timedelta(days=30),
        target="archive",
        last_error="ignored",
    )
    pb = sent.to_pb()
    assert pb.selector.labels == access_pb2.LabelSelector(labels={"tier": "prod"})
    assert pb.WhichOneof("schedule") == "cron" and pb.keep_within.seconds == 30 * 86400
    assert not pb.last_error and not pb.HasField("next_run_at")
    assert BackupPolicy.from_pb(pb) == dataclasses.replace(sent, last_error="")

    every = BackupPolicy("app", database="app", every=dt.timedelta(minutes=90), keep_last=3).to_pb()
    assert every.every == duration_pb2.Duration(seconds=5400)
    assert not every.HasField("keep_within"), "no age rule is unset, not zero"
    back = BackupPolicy.from_pb(every)
    assert (back.database, back.every, back.keep_within, back.cron) == ("app", dt.timedelta(minutes=90), None, "")


def test_a_policy_needs_exactly_one_selector_and_one_schedule() -> None:
    with pytest.raises(ValueError, match="database, pattern and labels"):
        BackupPolicy("x", every=dt.timedelta(hours=1), keep_last=1).to_pb()
    with pytest.raises(ValueError, match="database, pattern and labels"):
        BackupPolicy("x", database="a", pattern="a*", every=dt.timedelta(hours=1)).to_pb()
    with pytest.raises(ValueError, match="every and cron"):
        BackupPolicy("x", database="a", every=dt.timedelta(hours=1), cron="0 3 * * *").to_pb()
    with pytest.raises(ValueError, match="every and cron"):
        BackupPolicy("x", database="a").to_pb()


def test_modes_and_statuses_are_taken_by_name() -> None:
    from dbforge.backup import restore_mode_pb, status_pb

    assert restore_mode_pb("replace") == restore_mode_pb(RestoreMode.REPLACE) == 1
    assert restore_mode_pb("NEW") == 2
    assert status_pb("running") == int(BackupStatus.RUNNING)
    with pytest.raises(ValueError, match="'replace', 'new'"):
        restore_mode_pb("overwrite")


# ---- against a live server --------------------------------------------------------------------


def test_a_backup_restores_a_deleted_row_in_place_after_a_safety_backup(client: dbforge.Client) -> None:
    db = notes_db(client, unique("bk"))
    try:
        backup = client.create_backup(db, labels={"why": "test"})
        assert isinstance(backup, Backup)
        assert (backup.database, backup.backend, backup.status) == (db, dbforge.Backend.SQLITE, BackupStatus.COMPLETED)
        assert backup.size_bytes > 0 and len(backup.sha256) == 64 and backup.labels == {"why": "test"}
        assert backup.manifest is not None and backup.manifest.total_rows == 3
        assert backup.manifest.row_counts == [TableRowCount("notes", 3)]
        assert isinstance(backup.created_at, dt.datetime) and backup.created_at.tzinfo is not None

        assert client.get_backup(backup.id) == backup
        assert [b.id for b in client.list_backups(database=db)] == [backup.id]
        assert [b.id for b in client.list_backups(database=db, labels={"why": "test"})] == [backup.id]
        assert client.list_backups(database=db, status="failed") == []
        page, token = client.list_backups_page(database=db, page_size=1)
        assert [b.id for b in page] == [backup.id] and token is None

        client.execute(db, "DELETE FROM notes WHERE id = 2")
        restored = client.restore_backup(backup.id, RestoreMode.REPLACE)
        assert restored.database.name == db
        assert rows(client, db) == [(1, "one"), (2, "two"), (3, "three")], "the deleted row is back"
        safety = restored.safety_backup
        assert safety is not None and safety.database == db and safety.status == BackupStatus.COMPLETED
        assert safety.manifest is not None and safety.manifest.total_rows == 2
        assert [b.id for b in client.list_backups(database=db)] == [safety.id, backup.id], "newest first"

        assert client.delete_backup(backup.id)
        with pytest.raises(dbforge.NotFound):
            client.get_backup(backup.id)
        assert not client.delete_backup(backup.id, allow_missing=True)
    finally:
        for b in client.list_backups(database=db):
            client.delete_backup(b.id, allow_missing=True)
        client.delete_database(db, allow_missing=True)


def test_a_backup_restores_into_a_new_database_leaving_the_original_alone(client: dbforge.Client) -> None:
    db = notes_db(client, unique("bk"))
    copy = unique("bk-copy")
    try:
        backup = client.create_backup(db)
        client.execute(db, "DELETE FROM notes")
        restored = client.restore_backup(backup.id, "new", new_name=copy, labels={"from": backup.id})
        assert restored.database.name == copy and restored.database.labels == {"from": backup.id}
        assert restored.safety_backup is None and restored.rows == 3
        assert isinstance(restored.duration, dt.timedelta)
        assert rows(client, copy) == [(1, "one"), (2, "two"), (3, "three")]
        assert rows(client, db) == [], "the original is untouched"
        with pytest.raises(dbforge.AlreadyExists):
            client.restore_backup(backup.id, RestoreMode.NEW, new_name=copy)
    finally:
        for b in client.list_backups(database=db):
            client.delete_backup(b.id, allow_missing=True)
        client.delete_database(copy, allow_missing=True)
        client.delete_database(db, allow_missing=True)


def test_policies_are_set_listed_replaced_and_deleted(client: dbforge.Client) -> None:
    db = unique("bk-policy")
    client.create_database(db)
    name, nightly = unique("p"), unique("n")
    try:
        policy = BackupPolicy(name, database=db, every=dt.timedelta(hours=6), keep_last=5,
                              keep_within=dt.timedelta(days=7))
        stored, created = client.set_backup_policy(policy)
        assert created and isinstance(stored, BackupPolicy)
        assert (stored.name, stored.database, stored.every, stored.keep_last, stored.keep_within) == (
            name, db, dt.timedelta(hours=6), 5, dt.timedelta(days=7))
        assert stored.updated_at is not None and stored.next_run_at is not None

        client.set_backup_policy(BackupPolicy(nightly, pattern=db[:6] + "*", cron="0 3 * * *", keep_last=7))
        _, created = client.set_backup_policy(dataclasses.replace(policy, keep_last=9))
        assert not created, "the same name replaces"

        mine = {p.name: p for p in client.list_backup_policies() if p.name in (name, nightly)}
        assert sorted(mine) == sorted([name, nightly])
        assert mine[name].keep_last == 9 and mine[nightly].cron == "0 3 * * *"
        assert mine[nightly].pattern == db[:6] + "*" and mine[nightly].every is None

        assert client.delete_backup_policy(nightly)
        with pytest.raises(dbforge.NotFound):
            client.delete_backup_policy(nightly)
        assert not client.delete_backup_policy(nightly, allow_missing=True)
        with pytest.raises(dbforge.InvalidArgument):
            client.set_backup_policy(BackupPolicy(unique("r"), database=db,
                                                  every=dt.timedelta(hours=1)))  # no retention
    finally:
        client.delete_backup_policy(name, allow_missing=True)
        client.delete_backup_policy(nightly, allow_missing=True)
        client.delete_database(db, allow_missing=True)


def test_unknown_backups_and_databases_are_not_found(client: dbforge.Client) -> None:
    with pytest.raises(dbforge.NotFound):
        client.restore_backup("bk-000000000000-00000000", RestoreMode.REPLACE)
    with pytest.raises(dbforge.NotFound):
        client.create_backup(unique("missing"))


async def test_the_async_client_backs_up_and_restores(aclient: dbforge.AsyncClient) -> None:
    db = unique("bk-async")
    await aclient.create_database(db)
    try:
        await aclient.execute(db, "CREATE TABLE t (x INTEGER)")
        await aclient.execute(db, "INSERT INTO t VALUES (1)")
        backup = await aclient.create_backup(db)
        assert backup.status == BackupStatus.COMPLETED
        assert (await aclient.get_backup(backup.id)).id == backup.id
        assert [b.id async for b in aclient.iter_backups(database=db)] == [backup.id]
        await aclient.execute(db, "DELETE FROM t")
        restored = await aclient.restore_backup(backup.id, "replace")
        assert restored.safety_backup is not None
        assert (await aclient.execute(db, "SELECT count(*) FROM t")).rows == [(1,)]
        with pytest.raises(dbforge.NotFound):
            await aclient.restore_backup("bk-000000000000-00000000", "replace")
    finally:
        for b in await aclient.list_backups(database=db):
            await aclient.delete_backup(b.id, allow_missing=True)
        await aclient.delete_database(db, allow_missing=True)


def test_readme_backup_example(
    server: DBForgeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBFORGE_ENDPOINT", server.endpoint)
    monkeypatch.delenv("DBFORGE_API_KEY", raising=False)
    [block] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "restore_backup" in b]
    try:
        exec(compile(block, "README backup example", "exec"), {})
        assert capsys.readouterr().out.splitlines() == ["COMPLETED 3", "3 [(3,)]", "True", "True True"]
    finally:
        with dbforge.Client(server.endpoint) as c:
            for b in c.list_backups(database="ledger"):
                c.delete_backup(b.id, allow_missing=True)
            c.delete_database("ledger", allow_missing=True)
            c.delete_database("ledger-copy", allow_missing=True)
            c.delete_backup_policy("ledger-6h", allow_missing=True)
