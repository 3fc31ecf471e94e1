"""Exports, imports, dumps, schema and plans (TransferService, SchemaService) against a live
server, with the sync Client and the AsyncClient."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, List, Tuple

import grpc
import pytest

import dbforge
from dbforge import ColumnType, ExportFormat, TableKind, ValueKind
from dbforge_server import unique

# Awkward values: NULL next to the empty string, unicode, quotes, delimiters and line breaks
# (bare LF and CRLF) inside fields, leading/trailing spaces.
AWKWARD: List[Tuple[int, Any, Any]] = [
    (1, "plain", 1.5),
    (2, None, None),
    (3, "", 0.0),
    (4, 'say "hi", then leave', -2.25),
    (5, "line one\nline two", 3.0),
    (6, "crlf\r\ninside", 4.0),
    (7, "héllo ✓ 日本語 🚀", 5.5),
    (8, "  padded  ", 6.0),
    (9, 'only"quote', 7.0),
    (10, "semi;colon,comma", 8.0),
]


@pytest.fixture
def fresh(client: dbforge.Client) -> Iterator[str]:
    """A second fresh SQLite database (the target of round trips), pruned afterwards."""
    name = unique("py-to")
    client.create_database(name)
    yield name
    client.delete_database(name, allow_missing=True)


def people(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    client.batch(
        db,
        [("INSERT INTO people (id, name, score) VALUES (?, ?, ?)", list(r)) for r in AWKWARD],
        transaction=True,
    )


def all_rows(client: dbforge.Client, db: str, table: str) -> List[Tuple[Any, ...]]:
    return client.execute(db, f'SELECT * FROM "{table}" ORDER BY 1').rows


# ---- CSV ---------------------------------------------------------------------------------------


def test_csv_export_import_roundtrip(client: dbforge.Client, db: str, fresh: str, tmp_path: Path) -> None:
    people(client, db)
    export = client.export_table(db, "people")
    data = export.read_all()
    assert export.done and export.rows == len(AWKWARD)
    text = data.decode("utf-8")
    assert text.startswith("id,name,score\r\n")
    assert text.endswith("\r\n")
    assert '4,"say ""hi"", then leave",-2.25\r\n' in text  # RFC 4180 quoting
    assert '5,"line one\nline two",' in text
    assert "\r\n2,,\r\n" in text  # NULL is the empty field...
    assert '\r\n3,"",' in text  # ...and the empty string a quoted empty field

    client.execute(fresh, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    # Tiny chunks split quoted fields, CRLFs and multi-byte characters across messages.
    result = client.import_csv(fresh, "people", data, chunk_size=7)
    assert result == dbforge.ImportCsvResult(
        rows_read=len(AWKWARD), rows_inserted=len(AWKWARD), rows_rejected=0, rejected=[], table_created=False
    )
    assert all_rows(client, fresh, "people") == AWKWARD

    # To a path and back from a path, a file object and an iterable of chunks.
    path = tmp_path / "people.csv"
    assert client.export_table_to(db, "people", path) == len(AWKWARD)
    assert path.read_bytes() == data
    buf = io.BytesIO()
    assert client.export_table_to(db, "people", buf) == len(AWKWARD)
    assert buf.getvalue() == data
    for i, source in enumerate([str(path), path, open(path, "rb"), iter([data[:100], data[100:]])]):
        table = f"copy{i}"
        client.execute(fresh, f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        assert client.import_csv(fresh, table, source).rows_inserted == len(AWKWARD)
        assert all_rows(client, fresh, table) == AWKWARD


def test_csv_options_and_null_text(client: dbforge.Client, db: str, fresh: str) -> None:
    people(client, db)
    text = client.export_query(
        db, "SELECT id, name FROM people WHERE id <= ? ORDER BY id", [3], delimiter=";", null_text="NULL"
    ).text()
    lines = text.split("\r\n")
    assert lines[:3] == ["id;name", "1;plain", "2;NULL"] and lines[3] in ('3;""', "3;") and lines[4:] == [""]
    client.execute(fresh, "CREATE TABLE t (id INTEGER, name TEXT)")
    r = client.import_csv(fresh, "t", text.encode(), delimiter=";", null_text="NULL")
    assert r.rows_inserted == 3
    assert all_rows(client, fresh, "t") == [(1, "plain"), (2, None), (3, "")]
    # Without a header, columns are taken in the table's order.
    r = client.import_csv(fresh, "t", b"4,four\r\n5,five\r\n", no_header=True)
    assert (r.rows_read, r.rows_inserted) == (2, 2)
    assert all_rows(client, fresh, "t")[-2:] == [(4, "four"), (5, "five")]


def test_csv_create_infers_and_overrides_types(client: dbforge.Client, db: str) -> None:
    csv = b"id,price,ok,day,code,note\r\n1,1.5,true,2024-02-29,007,a\r\n2,2,false,2024-03-01,010,b\r\n"
    r = client.import_csv(db, "items", csv, create={"code": ColumnType.TEXT})
    assert r.table_created is True and r.rows_inserted == 2
    cols = {c.name: c for c in client.get_schema(db, "items").table("items").columns}
    assert [cols[n].kind for n in ("id", "price", "ok", "day", "code", "note")] == [
        ValueKind.INT, ValueKind.FLOAT, ValueKind.BOOL, ValueKind.DATE, ValueKind.TEXT, ValueKind.TEXT,
    ]
    rows = client.execute(db, "SELECT id, price, ok, code FROM items ORDER BY id").rows
    assert rows == [(1, 1.5, True, "007"), (2, 2.0, False, "010")]  # "007" kept as text
    with pytest.raises(dbforge.AlreadyExists):
        client.import_csv(db, "items", csv, create=True)


# A quoted field spans lines 2-3, so the bad rows are on lines 5 (not an integer) and 6 (one
# field short): line numbers count lines of the file, not records.
BAD_CSV = b'id,name\r\n1,"two\r\nlines"\r\n2,c\r\nx,d\r\n3\r\n4,e\r\n'


def test_skip_bad_rows_reports_lines(client: dbforge.Client, db: str) -> None:
    types = {"id": ColumnType.INTEGER, "name": ColumnType.TEXT}
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.import_csv(db, "strict", BAD_CSV, create=types)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 5" in e.value.message
    assert client.execute(db, "SELECT count(*) FROM sqlite_master WHERE name = 'strict'").rows == [(0,)] or (
        all_rows(client, db, "strict") == []
    )  # nothing inserted

    r = client.import_csv(db, "lenient", BAD_CSV, create=types, skip_bad_rows=True)
    assert (r.rows_read, r.rows_inserted, r.rows_rejected, r.table_created) == (5, 3, 2, True)
    assert [line for line, _ in r.rejected] == [5, 6]
    assert all(reason for _, reason in r.rejected)
    assert r.rejected[0].line == 5
    assert all_rows(client, db, "lenient") == [(1, "two\r\nlines"), (2, "c"), (4, "e")]


def test_import_errors(client: dbforge.Client, db: str, tmp_path: Path) -> None:
    with pytest.raises(dbforge.NotFound):
        client.import_csv(db, "missing", b"a\r\n1\r\n")
    with pytest.raises(dbforge.NotFound):
        client.import_csv(unique("nodb"), "t", b"a\r\n1\r\n")
    client.execute(db, "CREATE TABLE t (a INTEGER)")
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.import_csv(db, "t", b"a,nope\r\n1,2\r\n")
    assert "nope" in e.value.message  # the unknown header is named
    # A source that cannot be read fails with its own error, and the call sends nothing more.
    with pytest.raises(FileNotFoundError):
        client.import_csv(db, "t", str(tmp_path / "absent.csv"))

    def broken() -> Iterator[bytes]:
        yield b"a\r\n1\r\n"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        client.import_csv(db, "t", broken())
    assert all_rows(client, db, "t") == []  # the cancelled import applied nothing
    with pytest.raises(TypeError):
        client.import_csv(db, "t", io.StringIO("a\n1\n"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.export_table(db, "t", "xml")
    with pytest.raises(dbforge.Unimplemented) as un:  # NDJSON key records are for Redis
        client.import_ndjson(db, b'{"key": "a", "type": "string", "ttl_ms": 0, "value": "x"}\n')
    assert un.value.reason == "UNSUPPORTED"


# ---- JSON, NDJSON, large exports -----------------------------------------------------------------


def test_json_and_ndjson_exports(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE v (id INTEGER, t TEXT, b BLOB, f REAL)")
    client.execute(db, "INSERT INTO v VALUES (1, 'a\"b', ?, 0.5), (2, NULL, NULL, NULL)", [b"\x00\xff"])
    doc = json.loads(client.export_table(db, "v", "json").text())
    assert doc == [
        {"id": 1, "t": 'a"b', "b": base64.b64encode(b"\x00\xff").decode(), "f": 0.5},
        {"id": 2, "t": None, "b": None, "f": None},
    ]
    export = client.export_table(db, "v", ExportFormat.NDJSON)
    lines = export.text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2]
    assert export.rows == 2


def test_large_export_streams_in_chunks(client: dbforge.Client, db: str) -> None:
    n = 100_000
    export = client.export_query(
        db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x, 'row-' || x AS s FROM c",
        [n],
        format="ndjson",
    )
    chunks = 0
    lines = 0
    tail = b""
    for chunk in export:
        chunks += 1
        # transfer.proto: FileChunk.data is "at most about 64 KiB" (a row may overshoot a little).
        assert len(chunk) <= 64 * 1024 + 4096, f"a {len(chunk)}-byte chunk"
        tail += chunk
        *complete, tail = tail.split(b"\n")
        lines += len(complete)
    assert tail == b"" and lines == n and export.rows == n
    assert chunks > 10  # streamed, not built in one piece
    with client.export_query(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c") as e:
        assert next(e).startswith(b"x\r\n1\r\n")  # leaving the block cancels the endless export


def test_export_errors(client: dbforge.Client, db: str, tmp_path: Path) -> None:
    with pytest.raises(dbforge.NotFound):
        client.export_table(db, "nope")
    with pytest.raises(dbforge.NotFound):
        client.export_table_to(db, "nope", tmp_path / "nope.csv")
    assert not (tmp_path / "nope.csv").exists()  # a failed export leaves no file behind
    # An error after several chunks (integer overflow at row 50 000) removes the partial file.
    failing = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000) "
        "SELECT CASE WHEN x < 50000 THEN x ELSE abs(-9223372036854775807 - 1) END AS v FROM c"
    )
    with pytest.raises(dbforge.DBForgeError) as e:
        client.export_query_to(db, failing, tmp_path / "partial.csv")
    assert "overflow" in e.value.message
    assert not (tmp_path / "partial.csv").exists()
    with pytest.raises(dbforge.NotFound):
        client.export_table(unique("nodb"), "t")
    with pytest.raises(dbforge.InvalidArgument) as e:
        client.export_query(db, "SELEC 1")
    assert e.value.reason == "SQL_ERROR"


# ---- SQL scripts and dumps -----------------------------------------------------------------------

SCRIPT = """
-- a comment; with a semicolon
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, n INTEGER DEFAULT 0);
CREATE TABLE log (note_id INTEGER, what TEXT);
CREATE TRIGGER note_added AFTER INSERT ON notes BEGIN
  INSERT INTO log VALUES (NEW.id, 'added; really');
END;
INSERT INTO notes (body) VALUES ('a; b'), ('it''s');
/* block comment; */ UPDATE notes SET n = n + 1;
"""


def test_import_sql_script(client: dbforge.Client, db: str) -> None:
    r = client.import_sql(db, SCRIPT, chunk_size=5)
    assert r == dbforge.ImportSqlResult(statements=5, rows_affected=4)  # 2 inserted + 2 updated
    assert all_rows(client, db, "notes") == [(1, "a; b", 1), (2, "it's", 1)]
    assert all_rows(client, db, "log") == [(1, "added; really"), (2, "added; really")]

    # A failing statement is reported with its number, and nothing of the script applies.
    bad = "CREATE TABLE more (x INTEGER);\nINSERT INTO more VALUES (1);\nINSERT INTO nowhere VALUES (2);\n"
    with pytest.raises(dbforge.DBForgeError) as e:
        client.import_sql(db, bad)
    assert "3" in e.value.message
    with pytest.raises(dbforge.NotFound):
        client.get_schema(db, "more")


def test_dump_and_replay_gives_the_same_database(client: dbforge.Client, db: str, fresh: str, tmp_path: Path) -> None:
    people(client, db)
    client.import_sql(db, SCRIPT)
    client.execute(db, "CREATE INDEX people_name ON people (name)")
    client.execute(db, "CREATE VIEW good AS SELECT id, name FROM people WHERE score > 2")
    client.execute(db, "CREATE TABLE blobs (k TEXT PRIMARY KEY, v BLOB)")
    client.execute(db, "INSERT INTO blobs VALUES ('zero', ?), ('none', NULL)", [b"\x00\x01\xff"])

    path = tmp_path / "dump.sql"
    rows = client.dump_database_to(db, path)
    assert rows == len(AWKWARD) + 2 + 2 + 2  # people, notes, log, blobs
    dump = path.read_text("utf-8")
    assert "CREATE TABLE" in dump and "INSERT INTO" in dump
    # Replayable statement by statement as the database's own user: no transaction control.
    control = {"BEGIN;", "BEGIN TRANSACTION;", "COMMIT;"}
    assert not [line for line in dump.splitlines() if line.strip().upper() in control]

    client.import_sql(fresh, path)
    for table in ("people", "notes", "log", "blobs", "good"):
        assert all_rows(client, fresh, table) == all_rows(client, db, table), table
    # The trigger and the autoincrement state came along too.
    client.execute(fresh, "INSERT INTO notes (body) VALUES ('after')")
    assert all_rows(client, fresh, "log")[-1] == (3, "added; really")
    assert {i.name for i in client.get_schema(fresh, "people").table("people").indexes} >= {"people_name"}

    schema_only = client.dump_database(db, schema_only=True)
    text = schema_only.text()
    assert "CREATE TABLE" in text and schema_only.rows == 0
    assert not [line for line in text.splitlines() if line.startswith("INSERT")]  # the trigger's is indented


# ---- schema and plans ----------------------------------------------------------------------------


def test_get_schema(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE teams (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)")
    client.execute(
        db,
        "CREATE TABLE players (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams (id) ON DELETE CASCADE, "
        "name TEXT NOT NULL DEFAULT 'anon', age INTEGER CHECK (age >= 0))",
    )
    client.execute(db, "CREATE INDEX players_team ON players (team_id)")
    client.execute(db, "CREATE VIEW rookies AS SELECT name FROM players WHERE age < 20")
    client.execute(db, "INSERT INTO teams (name) VALUES ('red'), ('blue')")

    s = client.get_schema(db)
    assert {t.name for t in s.tables} == {"teams", "players", "rookies"}
    players = s.table("players")
    assert players.kind == TableKind.TABLE
    assert players.column_names == ["id", "team_id", "name", "age"]
    assert players.primary_key == ["id"]
    name = players.column("name")
    assert (name.declared_type, name.kind, name.nullable, name.default_expression) == ("TEXT", ValueKind.TEXT, False, "'anon'")
    assert players.column("age").nullable is True and players.column("age").default_expression is None
    assert players.column("id").primary_key is True
    [fk] = players.foreign_keys
    assert (fk.columns, fk.referenced_table, fk.referenced_columns, fk.on_delete) == (["team_id"], "teams", ["id"], "CASCADE")
    assert any(i.name == "players_team" and i.columns == ["team_id"] and not i.unique for i in players.indexes)
    assert any("age >= 0" in c.expression for c in players.checks)
    teams = s.table("teams")
    assert teams.row_estimate == 2  # exact on SQLite
    assert teams.column("id").auto_increment is True
    assert ["name"] in [u.columns for u in teams.uniques] or any(i.unique and i.columns == ["name"] for i in teams.indexes)
    assert s.table("rookies").kind == TableKind.VIEW
    assert "age < 20" in s.table("rookies").definition
    assert s.key_space is None
    assert "CREATE TABLE" in s.text and "players" in s.text and "teams" in s.text

    one = client.get_schema(db, "teams")
    assert [t.name for t in one.tables] == ["teams"]
    assert "players" not in one.text
    with pytest.raises(dbforge.NotFound):
        client.get_schema(db, "nope")
    with pytest.raises(KeyError):
        s.table("nope")


def test_explain_flags_full_scans(client: dbforge.Client, db: str) -> None:
    client.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    client.execute(db, "CREATE INDEX t_a ON t (a)")
    scan = client.explain(db, "SELECT * FROM t WHERE b = ?", ["x"])
    assert scan.full_scans == ["t"]
    assert "SCAN" in scan.raw
    assert any(n.full_scan and n.relation == "t" for n in scan.walk())
    seek = client.explain(db, "SELECT * FROM t WHERE a = ?", [1])
    assert seek.full_scans == []
    assert not any(n.full_scan for n in seek.walk())
    assert any("t_a" in n.detail for n in seek.walk())
    with pytest.raises(dbforge.InvalidArgument):
        client.explain(db, "SELEC 1")
    with pytest.raises(dbforge.Unimplemented):
        client.explain(db, "SELECT * FROM t", analyze=True)  # SQLite has no EXPLAIN ANALYZE


def test_enums_match_the_proto() -> None:
    from dbforge.v1 import schema_pb2, transfer_pb2

    for ours, theirs, prefix in [
        (dbforge.ExportFormat, transfer_pb2.ExportFormat, "EXPORT_FORMAT_"),
        (dbforge.TableKind, schema_pb2.TableKind, "TABLE_KIND_"),
    ]:
        assert {m.name: m.value for m in ours} == {k[len(prefix) :]: v for k, v in theirs.items()}


# ---- asyncio ---------------------------------------------------------------------------------------


async def test_async_roundtrip_schema_and_plan(aclient: dbforge.AsyncClient, tmp_path: Path) -> None:
    src, dst = unique("apy"), unique("apy-to")
    await aclient.create_database(src)
    await aclient.create_database(dst)
    try:
        await aclient.execute(src, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        await aclient.batch(
            src, [("INSERT INTO people VALUES (?, ?, ?)", list(r)) for r in AWKWARD], transaction=True
        )
        export = await aclient.export_table(src, "people")
        chunks = [c async for c in export]
        assert export.rows == len(AWKWARD) and export.done
        data = b"".join(chunks)

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 11):
                yield data[i : i + 11]

        r = await aclient.import_csv(dst, "people", pieces(), create=True)
        assert r.table_created and r.rows_inserted == len(AWKWARD)
        got = (await aclient.execute(dst, "SELECT id, name, score FROM people ORDER BY id")).rows
        assert got == AWKWARD

        path = tmp_path / "a.sql"
        assert await aclient.dump_database_to(src, path) == len(AWKWARD)
        third = unique("apy-3")
        await aclient.create_database(third)
        try:
            assert (await aclient.import_sql(third, path)).statements >= 2
            assert (await aclient.execute(third, "SELECT * FROM people ORDER BY id")).rows == AWKWARD
        finally:
            await aclient.delete_database(third)
        assert (await aclient.import_csv(dst, "people", b"id,name\r\n99,x\r\n")).rows_inserted == 1
        assert await aclient.export_query_to(dst, "SELECT id FROM people WHERE id > ?", io.BytesIO(), [50]) == 1

        s = await aclient.get_schema(src, "people")
        assert s.table("people").column_names == ["id", "name", "score"]
        plan = await aclient.explain(src, "SELECT * FROM people WHERE name = ?", ["x"])
        assert plan.full_scans == ["people"]

        with pytest.raises(dbforge.NotFound):
            await aclient.export_table(src, "nope")
        with pytest.raises(FileNotFoundError):
            await aclient.import_csv(dst, "people", str(tmp_path / "absent.csv"))

        async def broken() -> AsyncIterator[bytes]:
            yield b"id\r\n1000\r\n"
            raise OSError("source failed")

        with pytest.raises(OSError, match="source failed"):
            await aclient.import_csv(dst, "people", broken())
        assert (await aclient.execute(dst, "SELECT count(*) FROM people WHERE id = 1000")).rows == [(0,)]
    finally:
        await aclient.delete_database(src)
        await aclient.delete_database(dst)


# ---- Redis: NDJSON dumps and the key-space summary ------------------------------------------------


@pytest.fixture(scope="module")
def redis_client() -> Iterator[dbforge.Client]:
    """A client of a server with the local Redis (127.0.0.1:6379) configured; skipped when Redis
    is unreachable, unless DBFORGE_REQUIRE_BACKENDS=1."""
    import os
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        if os.environ.get("DBFORGE_REQUIRE_BACKENDS") == "1":
            raise
        pytest.skip("skipping Redis transfer tests: 127.0.0.1:6379 unreachable")
    from dbforge_server import DBForgeServer

    with DBForgeServer(args=("--insecure-no-auth", "--redis-url", "redis://127.0.0.1:6379")) as s:
        with dbforge.Client(s.endpoint, timeout=60) as c:
            yield c


def test_redis_dump_import_ndjson_and_key_space(redis_client: dbforge.Client) -> None:
    c = redis_client
    src, dst = unique("pyr"), unique("pyr-to")
    c.create_database(src, backend=dbforge.Backend.REDIS)
    c.create_database(dst, backend=dbforge.Backend.REDIS)
    try:
        c.execute(src, "SET user:1:name Ada")
        c.execute(src, "SET user:2:name Alan")
        c.execute(src, "HSET team:red lead Ada size 3")
        c.execute(src, "SET session:x 1 PX 600000")
        dump = c.dump_database(src)
        records = [json.loads(line) for line in dump.text().splitlines()]
        assert dump.rows == 4
        assert sorted(r["key"] for r in records) == ["session:x", "team:red", "user:1:name", "user:2:name"]
        assert {r["key"]: r["type"] for r in records}["team:red"] == "hash"
        assert 0 < {r["key"]: r["ttl_ms"] for r in records}["session:x"] <= 600000

        ndjson = "".join(json.dumps(r) + "\n" for r in records).encode()
        assert c.import_ndjson(dst, ndjson, chunk_size=16) == 4
        assert c.execute(dst, "GET user:1:name").rows == [("Ada",)]
        assert c.execute(dst, "HGET team:red size").rows == [("3",)]
        assert 0 < c.execute(dst, "PTTL session:x").rows[0][0] <= 600000

        s = c.get_schema(dst)
        assert s.tables == [] and s.key_space is not None
        assert (s.key_space.total_keys, s.key_space.sampled_keys) == (4, 4)
        users = [p for p in s.key_space.patterns if p.pattern == "user:*:name"]
        assert [(p.type, p.count, p.with_ttl) for p in users] == [("string", 2, 0)]
        assert s.key_space.patterns[0] == users[0]  # most common first
        assert "user:*:name" in s.text

        with pytest.raises(dbforge.Unimplemented):
            c.explain(src, "GET user:1:name")
        with pytest.raises(dbforge.Unimplemented):
            c.export_table(src, "user")  # no CSV of Redis
        with pytest.raises(dbforge.Unimplemented):
            c.import_sql(dst, "SELECT 1;")
        with pytest.raises(dbforge.InvalidArgument):
            c.import_ndjson(dst, b'{"key": "bad"\n')  # atomically: nothing of it applied
    finally:
        c.delete_database(src)
        c.delete_database(dst)
