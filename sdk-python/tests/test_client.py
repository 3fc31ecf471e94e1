"""The synchronous Client against a live server: every method, values, streaming, errors."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

import grpc
import pytest

import dbforge
from dbforge import Backend, ColumnDef, ColumnType, Filter, Statement, Truncation, ValueKind
from dbforge_server import unique


# ---- control plane ---------------------------------------------------------------------------


def test_create_get_list_delete(client: dbforge.Client) -> None:
    label = unique("run")
    names = sorted(unique("ctl") for _ in range(5))
    for n in names:
        created = client.create_database(n, labels={"run": label})
        assert created.created is True
        assert created.database.name == n
        assert created.database.backend == Backend.SQLITE
        assert created.database.status == dbforge.DatabaseStatus.READY
        assert created.database.labels == {"run": label}
        assert created.database.capabilities.sql is True
        assert created.database.capabilities.placeholder == "?"

    got = client.get_database(names[0])
    assert got.name == names[0]
    assert got.created_at.tzinfo is not None
    assert abs(got.created_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)

    # page_size 2 forces three pages; list_databases follows them.
    listed = client.list_databases(labels={"run": label}, page_size=2)
    assert [d.name for d in listed] == names
    page, token = client.list_databases_page(labels={"run": label}, page_size=2)
    assert [d.name for d in page] == names[:2] and token is not None
    page2, _ = client.list_databases_page(labels={"run": label}, page_size=2, page_token=token)
    assert [d.name for d in page2] == names[2:4]
    assert [d.name for d in client.iter_databases(labels={"run": label})] == names
    assert client.list_databases(labels={"run": label}, backend=Backend.REDIS) == []

    again = client.create_database(names[0], if_not_exists=True)
    assert again.created is False and again.database.name == names[0]
    with pytest.raises(dbforge.AlreadyExists) as e:
        client.create_database(names[0])
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert names[0] in e.value.message

    for n in names:
        assert client.delete_database(n) is True
    with pytest.raises(dbforge.NotFound) as nf:
        client.get_database(names[0])
    assert nf.value.code == grpc.StatusCode.NOT_FOUND
    assert nf.value.reason == "NOT_FOUND"
    with pytest.raises(dbforge.NotFound):
        client.delete_database(names[0])
    assert client.delete_database(names[0], allow_missing=True) is False


def test_fork_database(client: dbforge.Client) -> None:
    src, dst = unique("fks"), unique("fkd")
    client.create_database(src)
    client.execute(src, "CREATE TABLE t (x INTEGER)")
    client.execute(src, "INSERT INTO t VALUES (1)")
    forked = client.fork_database(src, dst, labels={"kind": "fork"})
    assert isinstance(forked, dbforge.Forked)
    assert forked.database.name == dst and forked.database.labels == {"kind": "fork"}
    assert forked.method == "sqlite-backup-api"
    assert forked.duration >= dt.timedelta(0)
    client.execute(src, "INSERT INTO t VALUES (2)")
    assert list(client.query(dst, "SELECT x FROM t")) == [(1,)]
    assert list(client.query(src, "SELECT x FROM t ORDER BY x")) == [(1,), (2,)]
    with pytest.raises(dbforge.AlreadyExists):
        client.fork_database(src, dst)
    with pytest.raises(dbforge.NotFound):
        client.fork_database(unique("nope"), unique("fkx"))
    for d in (src, dst):
        client.delete_database(d)


def test_ttl_and_update_database(client: dbforge.Client) -> None:
    name = unique("ttl")
    before = dt.datetime.now(dt.timezone.utc)
    db = client.create_database(
        name, ttl=dt.timedelta(hours=1), idle_ttl=dt.timedelta(minutes=30), backup_before_prune=True
    ).database
    assert db.expire_at is not None
    assert before + dt.timedelta(minutes=59) < db.expire_at < before + dt.timedelta(minutes=61)
    assert db.idle_ttl == dt.timedelta(minutes=30) and db.backup_before_prune
    at = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    db = client.update_database(name, ttl=at, labels={"team": "a"}, backup_before_prune=False)
    assert db.expire_at == at and db.labels == {"team": "a"} and not db.backup_before_prune
    assert db.idle_ttl == dt.timedelta(minutes=30), "what is not given keeps its value"
    db = client.update_database(name, clear_ttl=True, clear_idle_ttl=True)
    assert db.expire_at is None and db.idle_ttl is None
    assert client.get_database(name).expire_at is None
    with pytest.raises(dbforge.InvalidArgument):
        client.update_database(name, ttl=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(dbforge.NotFound):
        client.update_database(unique("nope"), clear_ttl=True)
    client.delete_database(name)


def test_watch_databases(client: dbforge.Client) -> None:
    tag, name = unique("tag"), unique("watched")
    # From the start of the log, narrowed to this test's label: the create below comes first.
    events = client.watch_databases(since=0, labels={"watch": tag})
    client.create_database(name, labels={"watch": tag})
    created = next(events)
    assert isinstance(created, dbforge.DatabaseEvent)
    assert (created.type, created.database) == (dbforge.DatabaseEventType.CREATED, name)
    assert created.labels == {"watch": tag} and created.backend == Backend.SQLITE
    client.delete_database(name)
    deleted = next(events)
    assert (deleted.type, deleted.sequence) == (dbforge.DatabaseEventType.DELETED, created.sequence + 1)
    events.close()  # type: ignore[attr-defined]
    resumed = client.watch_databases(since=created.sequence, labels={"watch": tag})
    assert next(resumed).sequence == deleted.sequence
    resumed.close()  # type: ignore[attr-defined]
    with pytest.raises(dbforge.OutOfRange):
        next(client.watch_databases(since=deleted.sequence + 10_000))


def test_invalid_name(client: dbforge.Client) -> None:
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.create_database("Not A Valid Name!")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "INVALID_ARGUMENT"


def test_backend_not_configured(client: dbforge.Client) -> None:
    with pytest.raises(dbforge.FailedPrecondition) as e:
        client.create_database(unique("pg"), backend=Backend.POSTGRES)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION


# ---- SQL -------------------------------------------------------------------------------------


def test_execute(client: dbforge.Client, db: str) -> None:
    r = client.execute(db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    assert r.rows_affected == 0 and r.rows == []
    r = client.execute(db, "INSERT INTO people (name, age) VALUES (?, ?), (?, ?)", ["Ada", 36, "Alan", 41])
    assert r.rows_affected == 2
    assert r.last_insert_id == 2
    r = client.execute(db, "SELECT id, name, age FROM people WHERE age > ? ORDER BY id", [30])
    assert r.column_names == ["id", "name", "age"]
    assert [c.kind for c in r.columns] == [ValueKind.INT, ValueKind.TEXT, ValueKind.INT]
    assert r.columns[1].declared_type == "TEXT"
    assert r.rows == [(1, "Ada", 36), (2, "Alan", 41)]
    assert r.dicts() == [{"id": 1, "name": "Ada", "age": 36}, {"id": 2, "name": "Alan", "age": 41}]
    r = client.execute(db, "UPDATE people SET age = age + 1 RETURNING age")
    assert r.rows_affected == 2 and sorted(r.rows) == [(37,), (42,)]


VALUES = [
    ("i", "INTEGER", -(2**63), ValueKind.INT),
    ("f", "REAL", 3.25, ValueKind.FLOAT),
    ("s", "TEXT", "héllo ✓", ValueKind.TEXT),
    ("b", "BLOB", b"\x00\x01\xfe\xff", ValueKind.BYTES),
    ("o", "BOOLEAN", True, ValueKind.BOOL),
    ("d", "DECIMAL TEXT", Decimal("-12345678901234567890.000000000012"), ValueKind.DECIMAL),
    ("j", "JSON", {"a": [1, 2, {"b": None}], "c": "d"}, ValueKind.JSON),
    ("ts", "TIMESTAMP", dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone.utc), ValueKind.TIMESTAMP),
    ("dd", "DATE", dt.date(1999, 12, 31), ValueKind.DATE),
    ("u", "UUID", uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2"), ValueKind.UUID),
    ("tm", "TIME", dt.time(13, 14, 15, 500), ValueKind.TIME),
    ("n", "INTEGER", None, ValueKind.INT),
]


def test_value_roundtrip(client: dbforge.Client, db: str) -> None:
    cols = ", ".join(f"{name} {decl}" for name, decl, _, _ in VALUES)
    client.execute(db, f"CREATE TABLE v ({cols})")
    params = [v for _, _, v, _ in VALUES]
    client.execute(db, f"INSERT INTO v VALUES ({', '.join('?' * len(VALUES))})", params)
    rows = client.query(db, "SELECT * FROM v")
    assert [c.kind for c in rows.columns] == [k for _, _, _, k in VALUES]
    (row,) = rows.fetchall()
    for (name, _, want, _), got in zip(VALUES, row):
        assert got == want, name
        assert type(got) is type(want), name
    assert str(row[5]) == "-12345678901234567890.000000000012"  # every digit kept


def test_value_params(client: dbforge.Client, db: str) -> None:
    r = client.execute(db, "SELECT ?, ?, ?, ?", [None, dbforge.Json.raw('{"x":1}'), [1, 2], False])
    assert r.rows == [(None, '{"x":1}', "[1,2]", 0)]
    naive = dt.datetime(2020, 1, 1, 12, 0)
    client.execute(db, "CREATE TABLE t (at TIMESTAMP)")
    client.execute(db, "INSERT INTO t VALUES (?)", [naive])
    (at,) = client.execute(db, "SELECT at FROM t").rows[0]
    assert at == naive.replace(tzinfo=dt.timezone.utc)  # naive datetimes are UTC
    with pytest.raises(OverflowError):
        client.execute(db, "SELECT ?", [2**63])
    with pytest.raises(TypeError):
        client.execute(db, "SELECT ?", [object()])


def test_query_streams_tuples_dicts_and_summary(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    client.batch(db, [("INSERT INTO t (name) VALUES (?)", [f"n{i}"]) for i in range(10)])
    rows = client.query(db, "SELECT id, name FROM t WHERE id <= ? ORDER BY id", [3])
    assert rows.column_names == ["id", "name"]
    assert rows.summary is None
    assert next(rows) == (1, "n0")
    assert list(rows.dicts()) == [{"id": 2, "name": "n1"}, {"id": 3, "name": "n2"}]
    assert rows.summary is not None
    assert rows.summary.row_count == 3
    assert rows.summary.truncation == Truncation.UNSPECIFIED

    limited = client.query(db, "SELECT id FROM t ORDER BY id", max_rows=4)
    assert [r[0] for r in limited] == [1, 2, 3, 4]
    assert limited.summary is not None and limited.summary.truncation == Truncation.ROW_LIMIT

    with client.query(db, "SELECT id FROM t") as early:
        assert next(early) == (1,)  # leaving the block cancels the rest


def test_query_100k_rows_streamed(client: dbforge.Client, db: str) -> None:
    n = 100_000
    rows = client.query(
        db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
        "SELECT x, 'row-' || x, x * 0.5 FROM c",
        [n],
    )
    count = 0
    total = 0
    batches = 0
    for batch in rows.batches():
        batches += 1
        for x, text, half in batch:
            count += 1
            total += x
            assert text == f"row-{x}" and half == x * 0.5
    assert count == n
    assert total == n * (n + 1) // 2
    assert batches > 1  # it really streamed in several messages
    assert rows.summary is not None and rows.summary.row_count == n


def test_query_error_midway_and_unknown_db(client: dbforge.Client, db: str) -> None:
    with pytest.raises(dbforge.NotFound):
        client.query(unique("missing"), "SELECT 1")
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.query(db, "SELEC 1")
    assert e.value.reason == "SQL_ERROR"
    assert "syntax error" in e.value.message
    assert e.value.metadata.get("native_code", "").startswith("SQLITE")


def test_preview(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    client.execute(db, "INSERT INTO p (v) VALUES ('a'), ('b')")
    update, insert, dup = client.preview(
        db,
        [
            ("UPDATE p SET v = v || ? WHERE id = ?", ["!", 2]),
            "INSERT INTO p (v) VALUES ('c')",
            "INSERT INTO p (v) VALUES ('a')",
        ],
        sample_rows=3,
    )
    assert (update.kind, update.rows_affected) == ("UPDATE", 1)
    assert (update.before, update.after) == ([(2, "b")], [(2, "b!")])
    assert update.plan is not None and update.columns[1].name == "v"
    assert insert.after == [(3, "c")]
    assert isinstance(dup.error, dbforge.FailedPrecondition)
    assert dup.error.reason == "UNIQUE_VIOLATION"
    assert client.execute(db, "SELECT id, v FROM p ORDER BY id").rows == [(1, "a"), (2, "b")]
    with pytest.raises(dbforge.InvalidArgument):
        client.preview(db, ["SELECT 1"], sample_rows=1000)


def test_query_budgets_and_read_only(client: dbforge.Client, db: str) -> None:
    sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000) SELECT x, 'row ' || x FROM n"
    rows = client.query(db, sql, max_bytes=2000)
    got = rows.fetchall()
    assert 10 < len(got) < 1000 and rows.summary is not None
    assert rows.summary.truncation == dbforge.Truncation.BYTE_LIMIT
    client.execute(db, "CREATE TABLE ro (a INTEGER)")
    with pytest.raises(dbforge.DBForgeError):
        client.query(db, "INSERT INTO ro (a) VALUES (1)", read_only=True).fetchall()
    assert client.execute(db, "SELECT count(*) FROM ro").rows == [(0,)]


def test_a_resumable_query_continues_page_by_page_and_mid_batch(client: dbforge.Client, db: str) -> None:
    sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 250) SELECT x FROM n"
    rows = client.query(db, sql, max_rows=100, resumable=True)
    got = [r[0] for r in rows]
    while rows.summary is not None and rows.summary.resume_token:
        assert rows.summary.truncation == dbforge.Truncation.ROW_LIMIT
        assert rows.resume_token == rows.summary.resume_token
        rows = client.resume_query(rows.summary.resume_token, max_rows=100)
        got += [r[0] for r in rows]
    assert got == list(range(1, 251)) and rows.resume_token is None
    # Stopping part way through a batch: the token resumes at the first row not read.
    rows = client.query(db, sql, resumable=True)
    first = [next(rows)[0] for _ in range(7)]
    token = rows.resume_token
    assert token is not None
    rows.close()
    rest = [r[0] for r in client.resume_query(token)]
    assert first + rest == list(range(1, 251))
    with pytest.raises(dbforge.NotFound):
        client.resume_query("AAAAAAAAAAAAAAAAAAAAAA.0").fetchall()
    # Plain streams carry no token.
    plain = client.query(db, sql)
    plain.fetchall()
    assert plain.resume_token is None


def test_summarize(client: dbforge.Client, db: str) -> None:
    sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100) SELECT x, x % 3, NULL FROM n"
    got = client.summarize(db, sql)
    assert got.summary.row_count == 100
    x, m, nothing = got.summaries
    assert (x.count, x.distinct, x.min, x.max, x.distinct_exact) == (100, 100, 1, 100, True)
    assert m.top_values[0] == (1, 34)
    assert (nothing.count, nothing.nulls, nothing.min) == (0, 100, None)
    assert client.summarize(db, sql, max_rows=10).summary.truncation == dbforge.Truncation.ROW_LIMIT


def test_batch(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    results = client.batch(
        db,
        [
            Statement("INSERT INTO t (v) VALUES (?)", ["a"]),
            "INSERT INTO t (v) VALUES ('b')",
            ("UPDATE t SET v = v || ?", ["!"]),
        ],
        transaction=True,
    )
    assert [r.rows_affected for r in results] == [1, 1, 2]
    assert results[0].last_insert_id == 1

    with pytest.raises(dbforge.FailedPrecondition) as e:
        client.batch(
            db,
            [("INSERT INTO t (v) VALUES (?)", ["c"]), ("INSERT INTO t (v) VALUES (?)", ["a!"])],
            transaction=True,
        )
    assert e.value.reason == "UNIQUE_VIOLATION"
    assert e.value.metadata["statement_index"] == "1"
    assert client.execute(db, "SELECT count(*) FROM t").rows == [(2,)]  # all or nothing

    with pytest.raises(dbforge.FailedPrecondition):
        client.batch(db, [("INSERT INTO t (v) VALUES (?)", ["c"]), ("INSERT INTO t (v) VALUES (?)", ["a!"])])
    assert client.execute(db, "SELECT count(*) FROM t").rows == [(3,)]  # the first one stayed


def test_transaction_commit_and_rollback(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER)")
    client.execute(db, "INSERT INTO acct VALUES (1, 100), (2, 0)")

    with client.transaction(db) as tx:
        tx.execute("UPDATE acct SET balance = balance - ? WHERE id = ?", [30, 1])
        r = tx.execute("UPDATE acct SET balance = balance + ? WHERE id = ? RETURNING balance", [30, 2])
        assert r.rows == [(30,)]
        assert tx.execute("SELECT balance FROM acct WHERE id = 1").rows == [(70,)]
    assert not tx.active
    assert client.execute(db, "SELECT balance FROM acct ORDER BY id").rows == [(70,), (30,)]

    with pytest.raises(RuntimeError, match="boom"):
        with client.transaction(db) as tx:
            tx.execute("UPDATE acct SET balance = 0")
            raise RuntimeError("boom")
    assert client.execute(db, "SELECT balance FROM acct ORDER BY id").rows == [(70,), (30,)]

    tx = client.transaction(db)
    tx.execute("DELETE FROM acct")
    tx.rollback()
    assert client.execute(db, "SELECT count(*) FROM acct").rows == [(2,)]
    with pytest.raises(dbforge.ProtocolError):
        tx.execute("SELECT 1")

    # A failing statement leaves the transaction open.
    with client.transaction(db) as tx:
        with pytest.raises(dbforge.FailedPrecondition) as e:
            tx.execute("INSERT INTO acct VALUES (1, 5)")
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert e.value.reason == "UNIQUE_VIOLATION"  # the session's ErrorInfo fields
        assert tx.active
        tx.execute("INSERT INTO acct VALUES (3, 5)")
    assert client.execute(db, "SELECT count(*) FROM acct").rows == [(3,)]

    with pytest.raises(dbforge.NotFound):
        client.transaction(unique("missing"))


# ---- tables ----------------------------------------------------------------------------------


def test_table_helpers(client: dbforge.Client, db: str) -> None:
    cols = [
        ColumnDef("id", ColumnType.INTEGER, primary_key=True),
        ColumnDef("title", ColumnType.TEXT, not_null=True),
        ColumnDef.with_default("done", ColumnType.BOOL, False),
        ColumnDef("score", ColumnType.FLOAT),
        ColumnDef("price", ColumnType.DECIMAL),
        ColumnDef("due", ColumnType.DATE),
    ]
    assert client.create_table(db, "tasks", cols) is True
    assert client.create_table(db, "tasks", cols, if_not_exists=True) is False
    with pytest.raises(dbforge.AlreadyExists):
        client.create_table(db, "tasks", cols)

    n = client.insert_rows(
        db,
        "tasks",
        [
            {"title": "write docs", "score": 0.5, "price": Decimal("10.10")},
            {"title": "ship", "done": True, "score": 0.9, "due": dt.date(2025, 1, 31)},
            {"title": "celebrate", "score": None},
        ],
    )
    assert n == 3
    with pytest.raises(dbforge.FailedPrecondition) as e:
        client.insert_rows(db, "tasks", [{"title": "ok"}, {"title": None}])
    assert e.value.reason == "NOT_NULL_VIOLATION"
    assert client.execute(db, "SELECT count(*) FROM tasks").rows == [(3,)]  # all or nothing

    everything = client.select_rows(db, "tasks", order_by="id")
    assert everything.column_names == ["id", "title", "done", "score", "price", "due"]
    all_rows = everything.fetchall()
    assert all_rows[0] == (1, "write docs", False, 0.5, Decimal("10.10"), None)
    assert all_rows[1][2] is True and all_rows[1][5] == dt.date(2025, 1, 31)

    def titles(**kw: object) -> list:
        return [r[0] for r in client.select_rows(db, "tasks", columns=["title"], **kw)]  # type: ignore[arg-type]

    assert titles(where={"done": False}, order_by="id") == ["write docs", "celebrate"]
    assert titles(where=[Filter.gt("score", 0.6)]) == ["ship"]
    assert titles(where={"score": None}) == ["celebrate"]
    assert titles(where=Filter.is_not_null("due")) == ["ship"]
    assert titles(where={"id": [1, 3]}, order_by="-id") == ["celebrate", "write docs"]
    assert titles(where=[Filter.like("title", "s%")], order_by=["-title"]) == ["ship"]
    assert titles(where=[Filter.is_in("id", [])]) == []
    assert titles(where=[Filter.ge("id", 2), Filter.le("id", 3), Filter.ne("id", 3)]) == ["ship"]
    assert titles(where=[Filter.lt("id", 2), Filter.eq("title", "write docs")]) == ["write docs"]
    assert titles(order_by="id", limit=1, offset=1) == ["ship"]
    dicts = list(client.select_rows(db, "tasks", columns=["id", "title"], where={"id": 2}).dicts())
    assert dicts == [{"id": 2, "title": "ship"}]

    assert client.update_rows(db, "tasks", {"done": True}, where={"id": [1, 3]}) == 2
    with pytest.raises(dbforge.InvalidArgument):
        client.update_rows(db, "tasks", {"done": False})  # no filter and not all
    assert client.update_rows(db, "tasks", {"score": 1.0}, all=True) == 3
    assert client.delete_rows(db, "tasks", where=[Filter.eq("title", "ship")]) == 1
    with pytest.raises(dbforge.InvalidArgument):
        client.delete_rows(db, "tasks")
    assert client.delete_rows(db, "tasks", all=True) == 2
    assert client.select_rows(db, "tasks").fetchall() == []


# ---- conversions -----------------------------------------------------------------------------


def test_to_pandas_and_arrow(client: dbforge.Client, db: str) -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT x, 'r' || x AS name FROM c"
    df = client.query(db, sql).to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["x", "name"]
    assert df["x"].tolist() == [1, 2, 3, 4, 5]
    table = client.query(db, sql).to_arrow()
    assert isinstance(table, pa.Table)
    assert table.column_names == ["x", "name"]
    assert table.column("name").to_pylist() == ["r1", "r2", "r3", "r4", "r5"]
    assert client.execute(db, sql).to_pandas()["name"].tolist() == ["r1", "r2", "r3", "r4", "r5"]
    assert client.execute(db, sql).to_arrow().num_rows == 5


# ---- errors and options ----------------------------------------------------------------------


def test_error_classes(client: dbforge.Client, db: str) -> None:
    with pytest.raises(dbforge.PermissionDenied) as e:
        client.execute(db, "ATTACH DATABASE '/tmp/x.db' AS x")
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert e.value.reason == "FORBIDDEN"
    with pytest.raises(dbforge.InvalidArgument) as e2:
        client.execute(db, "BEGIN")
    assert isinstance(e2.value, dbforge.DBForgeError)
    assert str(e2.value).startswith("INVALID_ARGUMENT: ")
    with pytest.raises(dbforge.ResourceExhausted):
        client.execute(
            db,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c",
        )


def test_a_server_refusal_names_the_sdks_methods_not_rpcs(client: dbforge.Client, db: str) -> None:
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.execute(db, "BEGIN")
    assert e.value.message.endswith(": use batch(..., transaction=True) or client.transaction(database)")
    assert "ExecuteBatch" not in e.value.message and "Session" not in e.value.message
    assert "ExecuteBatch" not in str(e.value)
    # The server's own words stay available.
    assert e.value.grpc_message.endswith(": use ExecuteBatch with `transaction` or a Session")


def test_every_gateway_phrase_is_said_in_the_sdks_words() -> None:
    from dbforge.errors import SDK_WORDS, error_for, sdk_words

    rpcs = re.compile(
        r"ExecuteBatch|QueryService|\bQuery\b|\bExecute\b|\bSession\b|`transaction`|"
        r"\b(?:CreateTable|InsertRows|SelectRows|UpdateRows|DeleteRows|ExportTable|ExportQuery|"
        r"DumpDatabase|ImportCsv|ImportSql|ImportNdjson|GetSchema|Explain)\b"
    )
    assert len(SDK_WORDS) >= 25
    for server, sdk in SDK_WORDS:
        assert rpcs.search(server), server  # each phrase names an RPC...
        assert not rpcs.search(sdk), sdk  # ...and its replacement none
        said = sdk_words(f"something failed; {server} (more)")
        assert said == f"something failed; {sdk} (more)"
        assert not rpcs.search(said), said
        err = error_for(grpc.StatusCode.INVALID_ARGUMENT, server)
        assert err.message == sdk and err.grpc_message == server
    cases = [
        (
            "transaction control (BEGIN …) is not accepted here: use ExecuteBatch with `transaction` or a Session",
            "transaction control (BEGIN …) is not accepted here: use batch(..., transaction=True) or "
            "client.transaction(database)",
        ),
        (
            "Session is not supported by the redis backend; group statements atomically with ExecuteBatch "
            "and `transaction` instead",
            "client.transaction() is not supported by the redis backend; group statements atomically with "
            "batch(..., transaction=True) instead",
        ),
        (
            "InsertRows takes at most 10000 rows per call, got 10001",
            "insert_rows() takes at most 10000 rows per call, got 10001",
        ),
        (
            "Explain with analyze is not supported by the sqlite backend",
            "explain(..., analyze=True) is not supported by the sqlite backend",
        ),
        (
            "SelectRows is not supported by the redis backend; use QueryService.Execute with the backend's own "
            "commands instead (on Redis: HSET/HGETALL/HSCAN for records)",
            "select_rows() is not supported by the redis backend; use execute() with the backend's own "
            "commands instead (on Redis: HSET/HGETALL/HSCAN for records)",
        ),
    ]
    for server, sdk in cases:
        assert sdk_words(server) == sdk
    # A message without those phrases is left as it is.
    assert sdk_words("no such table: Query") == "no such table: Query"


def test_a_parameter_over_the_message_limit_is_resource_exhausted_with_a_reason(
    client: dbforge.Client, db: str
) -> None:
    # 5 MB against the server's default --max-message-size of 4 MiB: gRPC itself refuses the
    # request before DB-Forge sees it, and the SDK reports it as the server's own limits are.
    client.execute(db, "CREATE TABLE big (b BLOB)")
    for value in (b"x" * 5_000_000, "y" * 5_000_000):
        with pytest.raises(dbforge.ResourceExhausted) as e:
            client.execute(db, "INSERT INTO big VALUES (?)", [value])
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.reason == "LIMIT_EXCEEDED"
        assert e.value.metadata["limit"] == "max_message_size"
        assert e.value.metadata["limit_bytes"] == str(4 << 20)
        assert int(e.value.metadata["message_bytes"]) > 5_000_000
        assert e.value.message.startswith(f"the request is {e.value.metadata['message_bytes']} bytes, ")
        assert "server's limit of 4194304 bytes (--max-message-size" in e.value.message
        assert "import_csv" in e.value.message  # what to do instead
    assert client.execute(db, "SELECT count(*) FROM big").rows == [(0,)]


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> None:
        return None


def test_the_clients_own_message_limits_are_named_too() -> None:
    from dbforge.errors import from_rpc_error

    sent = from_rpc_error(
        _FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Sent message larger than max (5000041 vs. 1024)")
    )
    assert isinstance(sent, dbforge.ResourceExhausted) and sent.reason == "LIMIT_EXCEEDED"
    assert sent.metadata == {"limit": "grpc.max_send_message_length", "message_bytes": "5000041", "limit_bytes": "1024"}
    assert sent.message.startswith("the request is 5000041 bytes, more than this client's limit of 1024 bytes")
    received = from_rpc_error(
        _FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9000 vs. 4096)")
    )
    assert isinstance(received, dbforge.ResourceExhausted) and received.reason == "LIMIT_EXCEEDED"
    assert received.metadata["limit"] == "grpc.max_receive_message_length"
    assert received.message.startswith("the response is 9000 bytes, more than this client's limit of 4096 bytes")
    # A server error that merely mentions such words keeps its own code and message.
    other = from_rpc_error(
        _FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "no such column: decoded message length too large")
    )
    assert isinstance(other, dbforge.InvalidArgument) and other.reason is None


def test_deadline(server: object, db: str) -> None:
    endpoint = server.endpoint  # type: ignore[attr-defined]
    with dbforge.Client(endpoint, timeout=0.05) as slow:
        with pytest.raises(dbforge.DeadlineExceeded) as e:
            for _ in slow.query(
                db,
                # Rows (not one aggregate), so the server notices the cancelled call on its
                # next send and stops the statement.
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
                "SELECT x FROM c",
            ):
                pass
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dbforge.Unavailable):
        dbforge.Client(f"http://127.0.0.1:{port}", connect_timeout=0.5)
    with dbforge.Client(f"http://127.0.0.1:{port}", timeout=2) as c:
        with pytest.raises(dbforge.Unavailable) as e:
            c.list_databases()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_options_from_environment(monkeypatch: pytest.MonkeyPatch, server: object) -> None:
    endpoint = server.endpoint  # type: ignore[attr-defined]
    monkeypatch.setenv("DBFORGE_ENDPOINT", endpoint)
    monkeypatch.setenv("DBFORGE_API_KEY", "k-from-env")
    opts = dbforge.ClientOptions.from_env(timeout=5)
    assert opts.endpoint == endpoint and opts.api_key == "k-from-env" and opts.timeout == 5
    with dbforge.Client() as c:
        assert c.options.endpoint == endpoint
        assert c.options.api_key == "k-from-env"
        c.list_databases()  # the no-auth server ignores the key
    monkeypatch.delenv("DBFORGE_ENDPOINT")
    monkeypatch.delenv("DBFORGE_API_KEY")
    assert dbforge.ClientOptions().resolved().endpoint == dbforge.DEFAULT_ENDPOINT
    assert dbforge.ClientOptions().resolved().api_key is None


def test_enums_match_the_proto() -> None:
    from dbforge.v1 import access_pb2, database_pb2, table_pb2, types_pb2

    pairs = [
        (dbforge.Backend, types_pb2.Backend, "BACKEND_"),
        (dbforge.ValueKind, types_pb2.ValueKind, "VALUE_KIND_"),
        (dbforge.Truncation, types_pb2.Truncation, "TRUNCATION_"),
        (dbforge.DatabaseStatus, database_pb2.DatabaseStatus, "DATABASE_STATUS_"),
        (dbforge.ColumnType, table_pb2.ColumnType, "COLUMN_TYPE_"),
        (dbforge.Role, access_pb2.Role, "ROLE_"),
    ]
    for ours, theirs, prefix in pairs:
        assert {m.name: m.value for m in ours} == {
            k[len(prefix) :]: v for k, v in theirs.items()
        }, ours.__name__
