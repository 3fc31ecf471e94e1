"""The README's quick start and agent example run against a live server, so they cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

import dbforge
from dbforge_server import DBForgeServer

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> List[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_quick_start(server: DBForgeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DBFORGE_ENDPOINT", server.endpoint)
    monkeypatch.delenv("DBFORGE_API_KEY", raising=False)
    exec(compile(blocks()[0], "README quick start", "exec"), {})
    out = capsys.readouterr().out
    assert "inserted id 1" in out and "['id', 'body']" in out and "1 hello" in out
    with dbforge.Client(server.endpoint) as c:
        c.delete_database("notes")


def test_agent_example(client: dbforge.Client) -> None:
    scope: Dict[str, Any] = {}
    exec(compile(blocks()[1], "README agent example", "exec"), scope)
    assert scope["task"](client, 4242) == ["rust"]
    with pytest.raises(dbforge.NotFound):
        client.get_database("task-4242")  # dropped afterwards


def test_transfer_example(
    server: DBForgeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBFORGE_ENDPOINT", server.endpoint)
    monkeypatch.delenv("DBFORGE_API_KEY", raising=False)
    [block] = [b for b in blocks() if "export_table_to" in b]
    exec(compile(block, "README export/import example", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 [4]"
    assert out[1] == "2"
    assert json.loads(out[2]) == {"sku": "B2"}
    assert out[3] == "['sku', 'name', 'price']"
    assert any("CREATE TABLE" in line and "products" in line for line in out[4:])  # schema.text
    assert "['products']" in out
    assert out[-1] == "[(2,)]"
    with dbforge.Client(server.endpoint) as c:
        with pytest.raises(dbforge.NotFound):
            c.get_database("shop")
