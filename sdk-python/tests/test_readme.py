"""The README's quick start and agent example run against a live server, so they cannot drift."""

from __future__ import annotations

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
