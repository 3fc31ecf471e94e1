"""AsyncClient (grpc.aio) against a live server: the same methods as Client, awaited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import grpc
import pytest

import dbforge
from dbforge import ColumnDef, ColumnType, Filter, Truncation
from dbforge_server import unique

STREAM = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT x, 'row-' || x, x * 0.5 FROM c"
)


async def test_control_plane(aclient: dbforge.AsyncClient) -> None:
    label = unique("arun")
    names = sorted(unique("actl") for _ in range(3))
    for n in names:
        c = await aclient.create_database(n, labels={"run": label})
        assert c.created and c.database.name == n
    assert (await aclient.get_database(names[1])).labels == {"run": label}
    assert [d.name for d in await aclient.list_databases(labels={"run": label}, page_size=1)] == names
    page, token = await aclient.list_databases_page(labels={"run": label}, page_size=2)
    assert len(page) == 2 and token
    assert [d.name async for d in aclient.iter_databases(labels={"run": label})] == names
    assert (await aclient.create_database(names[0], if_not_exists=True)).created is False
    with pytest.raises(dbforge.AlreadyExists):
        await aclient.create_database(names[0])
    for n in names:
        assert await aclient.delete_database(n) is True
    with pytest.raises(dbforge.NotFound) as e:
        await aclient.get_database(names[0])
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert await aclient.delete_database(names[0], allow_missing=True) is False


async def test_sql_batch_and_stream(aclient: dbforge.AsyncClient) -> None:
    db = unique("asql")
    await aclient.create_database(db)
    try:
        await aclient.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at TIMESTAMP, d DECIMAL TEXT)")
        at = dt.datetime(2023, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
        r = await aclient.execute(db, "INSERT INTO t (name, at, d) VALUES (?, ?, ?)", ["Ada", at, Decimal("1.50")])
        assert r.rows_affected == 1 and r.last_insert_id == 1
        results = await aclient.batch(
            db, [("INSERT INTO t (name) VALUES (?)", ["Bob"]), "INSERT INTO t (name) VALUES ('Cy')"], transaction=True
        )
        assert [x.last_insert_id for x in results] == [2, 3]
        rows = await aclient.query(db, "SELECT id, name, at, d FROM t ORDER BY id")
        assert rows.column_names == ["id", "name", "at", "d"]
        first = await rows.__anext__()
        assert first == (1, "Ada", at, Decimal("1.50"))
        rest = [d async for d in rows.dicts()]
        assert [d["name"] for d in rest] == ["Bob", "Cy"]
        assert rows.summary is not None and rows.summary.row_count == 3

        limited = await aclient.query(db, "SELECT id FROM t", max_rows=2)
        assert await limited.fetchall() == [(1,), (2,)]
        assert limited.summary is not None and limited.summary.truncation == Truncation.ROW_LIMIT

        with pytest.raises(dbforge.InvalidArgument) as e:
            await aclient.query(db, "SELEC 1")
        assert e.value.reason == "SQL_ERROR"
        with pytest.raises(dbforge.FailedPrecondition) as e2:
            await aclient.execute(db, "INSERT INTO t (id) VALUES (1)")
        assert e2.value.reason == "UNIQUE_VIOLATION"

        pd = pytest.importorskip("pandas")
        df = await (await aclient.query(db, "SELECT id, name FROM t ORDER BY id")).to_pandas()
        assert isinstance(df, pd.DataFrame) and df["name"].tolist() == ["Ada", "Bob", "Cy"]
        table = await (await aclient.query(db, "SELECT id FROM t")).to_arrow()
        assert table.num_rows == 3
    finally:
        await aclient.delete_database(db)


async def test_stream_100k_rows(aclient: dbforge.AsyncClient) -> None:
    db = unique("astream")
    await aclient.create_database(db)
    try:
        n = 100_000
        rows = await aclient.query(db, STREAM, [n])
        count = total = 0
        last = None
        async for row in rows:
            count += 1
            total += row[0]
            last = row
        assert count == n and total == n * (n + 1) // 2
        assert last == (n, f"row-{n}", n * 0.5)
        assert rows.summary is not None and rows.summary.row_count == n
    finally:
        await aclient.delete_database(db)


async def test_transaction(aclient: dbforge.AsyncClient) -> None:
    db = unique("atx")
    await aclient.create_database(db)
    try:
        await aclient.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        async with aclient.transaction(db) as tx:
            await tx.execute("INSERT INTO t VALUES (1, 10)")
            assert (await tx.execute("SELECT v FROM t")).rows == [(10,)]
        assert (await aclient.execute(db, "SELECT count(*) FROM t")).rows == [(1,)]

        with pytest.raises(ValueError):
            async with aclient.transaction(db) as tx:
                await tx.execute("DELETE FROM t")
                raise ValueError("undo")
        assert (await aclient.execute(db, "SELECT count(*) FROM t")).rows == [(1,)]

        tx = await aclient.transaction(db).begin()
        with pytest.raises(dbforge.FailedPrecondition) as e:
            await tx.execute("INSERT INTO t VALUES (1, 0)")
        assert e.value.reason == "UNIQUE_VIOLATION"
        assert tx.active
        await tx.execute("INSERT INTO t VALUES (2, 20)")
        await tx.rollback()
        assert not tx.active
        assert (await aclient.execute(db, "SELECT count(*) FROM t")).rows == [(1,)]

        tx = await aclient.transaction(db).begin()
        await tx.execute("INSERT INTO t VALUES (3, 30)")
        await tx.commit()
        assert (await aclient.execute(db, "SELECT count(*) FROM t")).rows == [(2,)]

        with pytest.raises(dbforge.NotFound):
            async with aclient.transaction(unique("missing")):
                pass
    finally:
        await aclient.delete_database(db)


async def test_tables(aclient: dbforge.AsyncClient) -> None:
    db = unique("atab")
    await aclient.create_database(db)
    try:
        cols = [ColumnDef("id", ColumnType.INTEGER, primary_key=True), ColumnDef("name", ColumnType.TEXT, not_null=True)]
        assert await aclient.create_table(db, "p", cols) is True
        assert await aclient.create_table(db, "p", cols, if_not_exists=True) is False
        assert await aclient.insert_rows(db, "p", [{"name": "a"}, {"name": "b"}, {"name": "c"}]) == 3
        rows = await aclient.select_rows(db, "p", columns=["name"], where=[Filter.ge("id", 2)], order_by="-id")
        assert await rows.fetchall() == [("c",), ("b",)]
        assert await aclient.update_rows(db, "p", {"name": "z"}, where={"id": 1}) == 1
        assert await aclient.update_rows(db, "p", {"name": "y"}, all=True) == 3
        assert await aclient.delete_rows(db, "p", where={"id": [1, 2]}) == 2
        with pytest.raises(dbforge.InvalidArgument):
            await aclient.delete_rows(db, "p")
        assert await aclient.delete_rows(db, "p", all=True) == 1
    finally:
        await aclient.delete_database(db)


async def test_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dbforge.Unavailable):
        async with dbforge.AsyncClient(f"http://127.0.0.1:{port}", connect_timeout=0.5):
            pass
    async with dbforge.AsyncClient(f"http://127.0.0.1:{port}", timeout=2) as c:
        with pytest.raises(dbforge.Unavailable):
            await c.get_database("x")
