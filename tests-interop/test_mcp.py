"""The MCP endpoint with the official Python MCP client (`mcp`): streamable HTTP at /mcp on the
gateway's port, and stdio through `dbforge mcp`. Real servers, no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional

import pytest

import dbforge
from dbforge import Grant, Role
from dbforge_server import ADMIN_KEY, DBForgeServer, cli_binary, unique
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

REPO = Path(__file__).resolve().parents[1]

FULL = [
    "list_databases",
    "describe_schema",
    "query",
    "execute",
    "create_database",
    "delete_database",
    "explain",
    "export_query_csv",
    "preview",
    "ask",
]
READ_ONLY = [
    "list_databases",
    "describe_schema",
    "query",
    "explain",
    "export_query_csv",
    "preview",
    "ask",
]
MINIMAL = ["list_databases", "describe_schema", "query"]

# A statement that runs until it is cancelled (or the 30 s statement timeout).
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.fixture(scope="module")
def minimal_server() -> Iterator[DBForgeServer]:
    with DBForgeServer(args=("--insecure-no-auth", "--mcp-tools", "minimal")) as s:
        yield s


@asynccontextmanager
async def http_session(endpoint: str, key: Optional[str] = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(f"{endpoint}/mcp", http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def stdio_session(
    endpoint: str, key: Optional[str] = None, tools: str = "full"
) -> AsyncIterator[ClientSession]:
    """`dbforge mcp` as an agent host starts it: a process speaking MCP on stdin/stdout, with
    the gateway's endpoint and key in the CLI's usual variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBFORGE_")}
    env["DBFORGE_ENDPOINT"] = endpoint
    env["HOME"] = env.get("HOME", "/tmp")
    if key:
        env["DBFORGE_API_KEY"] = key
    params = StdioServerParameters(command=str(cli_binary()), args=["mcp", "--tools", tools], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text(result: Any) -> str:
    return "".join(c.text for c in result.content)


async def call(session: ClientSession, tool: str, **args: Any) -> Dict[str, Any]:
    """Calls a tool that must succeed and answers JSON."""
    result = await session.call_tool(tool, args)
    assert not result.is_error, text(result)
    parsed: Dict[str, Any] = json.loads(result.content[0].text)
    return parsed


async def tool_names(session: ClientSession) -> List[str]:
    return [t.name for t in (await session.list_tools()).tools]


def audit_outcomes(endpoint: str, key: Optional[str], database: str) -> List[tuple]:
    with dbforge.Client(endpoint, api_key=key) as admin:
        events, _ = admin.list_audit_events(database=database, page_size=1000)
        return [(e.rpc, e.outcome) for e in events]


async def lifecycle(session: ClientSession) -> None:
    """create → execute → query → describe → delete, as an agent would."""
    name = unique("mcp")
    created = await call(session, "create_database", name=name)
    assert created == {"name": name, "backend": "sqlite", "created": True}
    await call(session, "execute", database=name,
               sql="CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)")
    inserted = await call(session, "execute", database=name,
                          sql="INSERT INTO pets (name, age) VALUES (?, ?), (?, ?)",
                          params=["Rex", 3, "Tom", None])
    assert inserted["rows_affected"] == 2 and inserted["last_insert_id"] == 2
    rows = await call(session, "query", database=name, sql="SELECT name, age FROM pets ORDER BY id")
    assert rows == {"columns": ["name", "age"], "rows": [["Rex", 3], ["Tom", None]],
                    "row_count": 2, "truncated": False}
    schema = text(await session.call_tool("describe_schema", {"database": name}))
    assert "CREATE TABLE pets" in schema and "name TEXT NOT NULL" in schema
    listed = await call(session, "list_databases")
    assert name in [d["name"] for d in listed["databases"]]
    resource = await session.read_resource(f"dbforge://databases/{name}/schema")
    assert "CREATE TABLE pets" in resource.contents[0].text
    assert await call(session, "delete_database", name=name) == {"deleted": True}
    listed = await call(session, "list_databases")
    assert name not in [d["name"] for d in listed["databases"]]


async def test_full_mode_lists_every_tool_with_descriptions_from_the_proto(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert list(tools) == FULL
        # From proto/dbforge/v1/database.proto, the comment on CreateDatabase.
        assert tools["create_database"].description == "Spawns a new, empty, isolated database."
        # sql is left out when resume_token continues a result.
        assert tools["query"].input_schema["required"] == ["database"]


async def test_minimal_mode_lists_list_describe_and_query_only(minimal_server: DBForgeServer) -> None:
    async with http_session(minimal_server.endpoint) as session:
        assert await tool_names(session) == MINIMAL
        refused = await _protocol_error(session.call_tool("execute", {"database": "x", "sql": "SELECT 1"}))
        assert "execute" in refused


async def _protocol_error(awaitable: Any) -> str:
    try:
        result = await awaitable
    except Exception as e:  # the client raises McpError for a JSON-RPC error
        return str(e)
    raise AssertionError(f"expected a protocol error, got {result}")


async def test_create_execute_query_describe_delete_over_http(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        await lifecycle(session)


async def test_create_execute_query_describe_delete_with_an_admin_key(auth_server: DBForgeServer) -> None:
    async with http_session(auth_server.endpoint, ADMIN_KEY) as session:
        await lifecycle(session)


@pytest.mark.parametrize("key", [None, "not-a-key-0123456789abcdef"])
def test_no_or_a_bad_key_is_refused_with_401(auth_server: DBForgeServer, key: Optional[str]) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}).encode()
    req = urllib.request.Request(f"{auth_server.endpoint}/mcp", data=body, method="POST", headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream",
        **({"authorization": f"Bearer {key}"} if key else {})})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["www-authenticate"] == "Bearer"
    error = json.loads(refused.value.read())["error"]
    assert error["message"].startswith("UNAUTHENTICATED: ")


@pytest.mark.parametrize("key", [None, "not-a-key-0123456789abcdef"])
async def test_the_python_client_is_refused_without_a_valid_key(
    auth_server: DBForgeServer, key: Optional[str]
) -> None:
    with pytest.raises(BaseException) as failed:
        async with http_session(auth_server.endpoint, key):
            pass
    # The client raises the JSON-RPC error of the 401 answer (inside anyio's task groups).
    assert "UNAUTHENTICATED: " in repr(failed.value)


async def test_a_read_key_is_not_offered_execute_and_is_refused_it(auth_server: DBForgeServer) -> None:
    name = unique("mcpro")
    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        admin.create_database(name)
        admin.execute(name, "CREATE TABLE t (a INTEGER)")
        admin.execute(name, "INSERT INTO t VALUES (1)")
        _, read_key = admin.create_api_key(unique("reader"), grants=[Grant.database(name, Role.READ)])
    async with http_session(auth_server.endpoint, read_key) as session:
        assert await tool_names(session) == READ_ONLY
        assert (await call(session, "query", database=name, sql="SELECT a FROM t"))["rows"] == [[1]]
        refused = await session.call_tool("execute", {"database": name, "sql": "DELETE FROM t"})
        assert refused.is_error and text(refused).startswith("PERMISSION_DENIED: ")
        # Outside its grants: the same answer as gRPC gives.
        other = await session.call_tool("query", {"database": unique("nope"), "sql": "SELECT 1"})
        assert other.is_error and text(other).startswith("PERMISSION_DENIED: ")
    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        outcomes = audit_outcomes(auth_server.endpoint, ADMIN_KEY, name)
        assert ("Execute", "PERMISSION_DENIED") in outcomes and ("Query", "OK") in outcomes
        admin.delete_database(name)


async def test_query_is_read_only_even_for_an_owner(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        name = unique("mcpw")
        await call(session, "create_database", name=name)
        await call(session, "execute", database=name, sql="CREATE TABLE t (a INTEGER)")
        refused = await session.call_tool("query", {"database": name, "sql": "INSERT INTO t VALUES (1)"})
        assert refused.is_error and "PERMISSION_DENIED" in text(refused)
        assert "execute" in text(refused)
        assert (await call(session, "query", database=name, sql="SELECT count(*) FROM t"))["rows"] == [[0]]
        await call(session, "delete_database", name=name)


async def test_a_cut_result_says_so(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        name = unique("mcpcut")
        await call(session, "create_database", name=name)
        many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c"
        default = await call(session, "query", database=name, sql=many)
        assert default["row_count"] == 100 and default["truncated"] is True
        assert default["truncated_by"] == "max_rows" and len(default["rows"]) == 100
        by_rows = await call(session, "query", database=name, sql=many, max_rows=5)
        assert by_rows["rows"] == [[1], [2], [3], [4], [5]] and by_rows["truncated_by"] == "max_rows"
        by_bytes = await call(session, "query", database=name, sql=many, max_rows=1000, max_bytes=100)
        assert by_bytes["truncated"] is True and by_bytes["truncated_by"] == "max_bytes"
        assert 0 < by_bytes["row_count"] < 1000 and "note" in by_bytes
        whole = await call(session, "query", database=name, sql=many, max_rows=1000)
        assert whole["row_count"] == 1000 and whole["truncated"] is False
        csv = await session.call_tool("export_query_csv", {"database": name, "sql": many, "max_bytes": 50})
        assert csv.content[0].text.startswith("x\r\n1\r\n") and csv.content[0].text.endswith("\r\n") and json.loads(csv.content[1].text)["truncated"]
        await call(session, "delete_database", name=name)


async def paging(session: ClientSession) -> None:
    """A cut result's resume_token fetches the next page of the same result, by rows or by
    bytes, until the end; a bad token is refused with a reason."""
    name = unique("mcppage")
    await call(session, "create_database", name=name, ttl=3600, idle_ttl=600)
    many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 250) SELECT x FROM c"
    got: List[int] = []
    page = await call(session, "query", database=name, sql=many)
    pages = 1
    while True:
        got += [r[0] for r in page["rows"]]
        if not page["truncated"]:
            assert "resume_token" not in page
            break
        page = await call(session, "query", database=name, resume_token=page["resume_token"], max_bytes=200)
        pages += 1
    assert got == list(range(1, 251)) and pages > 3
    bad = await session.call_tool("query", {"database": name, "resume_token": "nope"})
    assert bad.is_error and "resume_token" in text(bad)
    await call(session, "delete_database", name=name)


async def test_a_cut_result_resumes_page_by_page_over_http(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        await paging(session)


async def test_a_cut_result_resumes_page_by_page_over_stdio(server: DBForgeServer) -> None:
    async with stdio_session(server.endpoint) as session:
        await paging(session)


async def test_cancelling_a_running_query_stops_it(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        name = unique("mcpcancel")
        await call(session, "create_database", name=name)
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            # Abandoning the call sends notifications/cancelled.
            await asyncio.wait_for(session.call_tool("query", {"database": name, "sql": ENDLESS}), 1.0)
        # The session still works, and the gateway recorded the call as cancelled long before
        # the statement timeout (30 s) would have ended it.
        assert (await call(session, "query", database=name, sql="SELECT 1"))["rows"] == [[1]]
        deadline = time.monotonic() + 10
        while ("Query", "CANCELLED") not in audit_outcomes(server.endpoint, None, name):
            assert time.monotonic() < deadline, audit_outcomes(server.endpoint, None, name)
            await asyncio.sleep(0.1)
        assert time.monotonic() - started < 15
        await call(session, "delete_database", name=name)


# ---- stdio: `dbforge mcp` -------------------------------------------------------------------


async def test_stdio_lists_the_same_tools_in_both_modes(server: DBForgeServer) -> None:
    async with stdio_session(server.endpoint) as session, http_session(server.endpoint) as http:
        stdio_tools = (await session.list_tools()).tools
        http_tools = (await http.list_tools()).tools
        assert [t.name for t in stdio_tools] == FULL
        # The same catalogue: descriptions and schemas are identical on both transports.
        assert [(t.description, t.input_schema) for t in stdio_tools] == [
            (t.description, t.input_schema) for t in http_tools
        ]
    async with stdio_session(server.endpoint, tools="minimal") as session:
        assert await tool_names(session) == MINIMAL


async def test_create_execute_query_describe_delete_over_stdio(auth_server: DBForgeServer) -> None:
    async with stdio_session(auth_server.endpoint, ADMIN_KEY) as session:
        await lifecycle(session)


async def test_stdio_without_a_valid_key_fails(auth_server: DBForgeServer) -> None:
    with pytest.raises(BaseException) as failed:
        async with stdio_session(auth_server.endpoint, "not-a-key-0123456789abcdef") as session:
            await session.list_tools()
    assert failed.value is not None


async def test_stdio_read_key_is_not_offered_execute_and_is_refused_it(auth_server: DBForgeServer) -> None:
    name = unique("mcpsro")
    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        admin.create_database(name)
        admin.execute(name, "CREATE TABLE t (a INTEGER)")
        _, read_key = admin.create_api_key(unique("reader"), grants=[Grant.database(name, Role.READ)])
    async with stdio_session(auth_server.endpoint, read_key) as session:
        assert await tool_names(session) == READ_ONLY
        refused = await session.call_tool("execute", {"database": name, "sql": "DELETE FROM t"})
        assert refused.is_error and text(refused).startswith("PERMISSION_DENIED: ")
        written = await session.call_tool("query", {"database": name, "sql": "INSERT INTO t VALUES (1)"})
        assert written.is_error and "execute" in text(written)
    with dbforge.Client(auth_server.endpoint, api_key=ADMIN_KEY) as admin:
        admin.delete_database(name)


async def preview_and_summarize(session: ClientSession) -> None:
    """A dry run shows what a DELETE would remove and removes nothing; a summary describes the
    result's columns instead of sending its rows."""
    name = unique("mcppv")
    await call(session, "create_database", name=name)
    await call(session, "execute", database=name, sql="CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    await call(session, "execute", database=name, sql="INSERT INTO t (v) VALUES ('a'), ('b'), ('b'), (NULL)")
    dry = await call(session, "preview", database=name, sql="DELETE FROM t WHERE v = ?", params=["b"])
    assert dry["committed"] is False
    [stmt] = dry["statements"]
    assert (stmt["kind"], stmt["rows_affected"], stmt["before"]) == ("DELETE", 2, [[2, "b"], [3, "b"]])
    kept = await call(session, "query", database=name, sql="SELECT count(*) AS n FROM t")
    assert kept["rows"] == [[4]]
    summary = await call(session, "query", database=name, sql="SELECT id, v FROM t", summarize=True)
    assert summary["rows_read"] == 4 and summary["truncated"] is False
    id_, v = summary["summaries"]
    assert (id_["count"], id_["distinct"], id_["min"], id_["max"]) == (4, 4, 1, 4)
    assert (v["nulls"], v["distinct"], v["top_values"][0]) == (1, 2, ["b", 2])
    # Summaries are read-only too: the engine refuses a write.
    refused = await session.call_tool("query", {"database": name, "sql": "DELETE FROM t RETURNING id", "summarize": True})
    assert refused.is_error, text(refused)
    await call(session, "delete_database", name=name)


async def test_preview_and_summarize_over_http(server: DBForgeServer) -> None:
    async with http_session(server.endpoint) as session:
        await preview_and_summarize(session)


async def test_preview_and_summarize_over_stdio(server: DBForgeServer) -> None:
    async with stdio_session(server.endpoint) as session:
        await preview_and_summarize(session)


async def test_stdio_cut_result_says_so(server: DBForgeServer) -> None:
    async with stdio_session(server.endpoint) as session:
        name = unique("mcpscut")
        await call(session, "create_database", name=name)
        many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c"
        r = await call(session, "query", database=name, sql=many, max_rows=5)
        assert r["rows"] == [[1], [2], [3], [4], [5]] and r["truncated_by"] == "max_rows"
        r = await call(session, "query", database=name, sql=many, max_rows=1000, max_bytes=100)
        assert r["truncated"] is True and r["truncated_by"] == "max_bytes"
        await call(session, "delete_database", name=name)


async def test_stdio_cancelling_a_running_query_cancels_it_on_the_gateway(server: DBForgeServer) -> None:
    async with stdio_session(server.endpoint) as session:
        name = unique("mcpscancel")
        await call(session, "create_database", name=name)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.call_tool("query", {"database": name, "sql": ENDLESS}), 1.0)
        assert (await call(session, "query", database=name, sql="SELECT 1"))["rows"] == [[1]]
        # The stdio server's query runs as a read-only Query on the gateway.
        deadline = time.monotonic() + 10
        while ("Query", "CANCELLED") not in audit_outcomes(server.endpoint, None, name):
            assert time.monotonic() < deadline, audit_outcomes(server.endpoint, None, name)
            await asyncio.sleep(0.1)
        await call(session, "delete_database", name=name)


async def test_ask_uses_the_agents_own_model_through_sampling(server: DBForgeServer) -> None:
    """A gateway without --llm-url asks the connected agent's model (MCP sampling) when the
    client offers it; the grounding goes as the system prompt."""
    seen: List[types.CreateMessageRequestParams] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen.append(params)
        answer = {"sql": "SELECT name FROM pets ORDER BY name", "rationale": "Every pet by name."}
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=json.dumps(answer)),
            model="agent-model",
            stop_reason="endTurn",
        )

    name = unique("mcp-ask")
    with dbforge.Client(server.endpoint) as client:
        client.create_database(name)
        client.execute(name, "CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        client.execute(name, "INSERT INTO pets (name) VALUES ('Tom'), ('Rex')")
    async with create_mcp_http_client() as http:
        async with streamable_http_client(f"{server.endpoint}/mcp", http_client=http) as (read, write, *_):
            async with ClientSession(read, write, sampling_callback=sampling) as session:
                await session.initialize()
                out = await call(session, "ask", database=name, question="Which pets are there?", run=True)
    assert out["status"] == "answered" and out["valid"], out
    assert out["sql"] == "SELECT name FROM pets ORDER BY name"
    assert out["columns"] == ["name"] and out["rows"] == [["Rex"], ["Tom"]], out
    assert len(seen) == 1
    assert seen[0].system_prompt is not None and "CREATE TABLE pets" in seen[0].system_prompt
    assert seen[0].messages[0].content.text == "Which pets are there?"  # type: ignore[union-attr]

    # Without sampling and without a gateway model there is nobody to ask.
    async with http_session(server.endpoint) as session:
        result = await session.call_tool("ask", {"database": name, "question": "Which pets?"})
        assert result.is_error and "FAILED_PRECONDITION" in text(result) and "--llm-url" in text(result)
