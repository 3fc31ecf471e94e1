"""`ask` and `ask_stream` against a real gateway whose model is a scripted OpenAI-compatible
server on loopback (the same contract as server/tests/it/llm_fixture.rs)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import pytest

import dbforge
from dbforge_server import DBForgeServer, unique

SCRIPT: Dict[str, List[str]] = {
    "How many categories are there?": [
        json.dumps({"sql": "SELECT COUNT(*) AS n FROM categories", "rationale": "Counts rows."})
    ],
    "List the category names.": [
        "```json\n"
        + json.dumps({"sql": "SELECT name FROM categories ORDER BY name", "rationale": "All."})
        + "\n```"
    ],
}


class _Model(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][1]["content"]
        replies = SCRIPT.get(question, [])
        text = replies[0] if replies else ""
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})
        self.send_response(200 if replies else 500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture(scope="module")
def ask_server(model_url: str) -> Iterator[DBForgeServer]:
    args = ("--insecure-no-auth", "--llm-url", model_url, "--llm-model", "fixture")
    with DBForgeServer(args=args) as s:
        yield s


def shop(client: dbforge.Client) -> str:
    name: str = unique("ask")
    client.create_database(name)
    client.execute(name, "CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT)")
    client.execute(name, "INSERT INTO categories VALUES (1, 'Books'), (2, 'Garden')")
    return name


def test_ask_answers_and_runs_read_only(ask_server: DBForgeServer) -> None:
    with dbforge.Client(ask_server.endpoint) as client:
        db = shop(client)
        asked = client.ask(db, "How many categories are there?", run=True)
        assert asked.answer.answered and asked.answer.valid
        assert asked.answer.sql == "SELECT COUNT(*) AS n FROM categories"
        assert asked.answer.rationale == "Counts rows."
        assert [c.name for c in asked.columns] == ["n"]
        assert asked.rows == [(2,)]
        assert asked.summary is not None and asked.summary.row_count == 1
        again = client.ask(db, "How many categories are there?")
        assert again.answer.cached and again.rows == []


def test_ask_stream_streams_rows(ask_server: DBForgeServer) -> None:
    with dbforge.Client(ask_server.endpoint) as client:
        db = shop(client)
        answer, rows = client.ask_stream(
            db, "List the category names.", run=True, timeout=dt.timedelta(seconds=5)
        )
        assert answer.status == "ANSWERED"
        assert rows is not None and rows.fetchall() == [("Books",), ("Garden",)]


async def test_async_ask(ask_server: DBForgeServer) -> None:
    async with dbforge.AsyncClient(ask_server.endpoint) as client:
        db = unique("ask")
        await client.create_database(db)
        await client.execute(db, "CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT)")
        asked = await client.ask(db, "How many categories are there?", run=True)
        assert asked.rows == [(0,)]
        answer, rows = await client.ask_stream(db, "List the category names.", run=True)
        assert answer.answered and rows is not None and await rows.fetchall() == []


def test_ask_without_a_model_says_how_to_configure_one(client: dbforge.Client, db: str) -> None:
    with pytest.raises(dbforge.FailedPrecondition, match="--llm-url"):
        client.ask(db, "How many rows?")
