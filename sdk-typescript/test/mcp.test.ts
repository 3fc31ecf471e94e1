/** The gateway's MCP endpoint (/mcp, streamable HTTP) with the official TypeScript MCP client
 * (@modelcontextprotocol/sdk), and the token cost of its tool lists, counted with cl100k_base
 * (js-tiktoken, which bundles the encoding: tiktoken for Python downloads it at first use). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { getEncoding } from "js-tiktoken";
import { Grant, Role, connect } from "../src/node.js";
import { cliBinary, startServer, unique, type TestServer } from "./server.js";

const ADMIN_KEY = "ts-mcp-admin-key-0123456789abcdef";
/** The budget for the whole tools/list answer in minimal mode. */
const MINIMAL_BUDGET = 1500;
const ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

async function mcp(server: TestServer, key?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${server.endpoint}/mcp`), {
    requestInit: key ? { headers: { Authorization: `Bearer ${key}` } } : {},
  });
  const client = new Client({ name: "dbforge-ts-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/** `dbforge mcp` as a host starts it, with the gateway's endpoint and key in the CLI's variables. */
async function stdio(server: TestServer, key?: string, tools = "full"): Promise<Client> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DBFORGE_ENDPOINT: server.endpoint };
  if (key) env.DBFORGE_API_KEY = key;
  const transport = new StdioClientTransport({ command: cliBinary(), args: ["mcp", "--tools", tools], env });
  const client = new Client({ name: "dbforge-ts-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

type ToolResult = { content: Array<{ type: string; text?: string }>; isError?: boolean };

function textOf(r: ToolResult): string {
  return r.content.map((c) => c.text ?? "").join("");
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<any> {
  const r = (await client.callTool({ name, arguments: args })) as ToolResult;
  assert.ok(!r.isError, textOf(r));
  return JSON.parse(r.content[0]!.text!);
}

function tokens(value: unknown): number {
  return getEncoding("cl100k_base").encode(JSON.stringify(value)).length;
}

describe("MCP over streamable HTTP", () => {
  let open: TestServer;
  let minimal: TestServer;
  let keyed: TestServer;

  before(async () => {
    open = await startServer(["--insecure-no-auth"]);
    minimal = await startServer(["--insecure-no-auth", "--mcp-tools", "minimal"]);
    keyed = await startServer([], { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
  });
  after(async () => {
    await Promise.all([open.stop(), minimal.stop(), keyed.stop()]);
  });

  test("minimal mode lists three tools within the token budget, full mode all of them", async () => {
    const small = await mcp(minimal);
    const full = await mcp(open);
    try {
      const minimalList = await small.listTools();
      const fullList = await full.listTools();
      assert.deepEqual(minimalList.tools.map((t) => t.name), ["list_databases", "describe_schema", "query"]);
      assert.equal(fullList.tools.length, 10);
      const counts = { minimal: tokens(minimalList), full: tokens(fullList) };
      console.log(`tools/list tokens (cl100k_base): minimal ${counts.minimal}, full ${counts.full}`);
      assert.ok(counts.minimal <= MINIMAL_BUDGET, `minimal tools/list costs ${counts.minimal} tokens`);
    } finally {
      await small.close();
      await full.close();
    }
  });

  test("create, execute, query, describe and delete", async () => {
    const client = await mcp(keyed, ADMIN_KEY);
    try {
      const name = unique("tsmcp");
      assert.deepEqual(await call(client, "create_database", { name }), { name, backend: "sqlite", created: true });
      await call(client, "execute", { database: name, sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)" });
      const ins = await call(client, "execute", { database: name, sql: "INSERT INTO t (v) VALUES (?), (?)", params: ["a", "b"] });
      assert.equal(ins.rows_affected, 2);
      const rows = await call(client, "query", { database: name, sql: "SELECT id, v FROM t ORDER BY id" });
      assert.deepEqual(rows, { columns: ["id", "v"], rows: [[1, "a"], [2, "b"]], row_count: 2, truncated: false });
      const schema = (await client.callTool({ name: "describe_schema", arguments: { database: name } })) as ToolResult;
      assert.match(textOf(schema), /CREATE TABLE t/);
      assert.deepEqual(await call(client, "delete_database", { name }), { deleted: true });
    } finally {
      await client.close();
    }
  });

  test("no key and a bad key are refused", async () => {
    await assert.rejects(mcp(keyed), /401|Unauthorized|UNAUTHENTICATED/);
    await assert.rejects(mcp(keyed, "not-a-key-0123456789abcdef"), /401|Unauthorized|UNAUTHENTICATED/);
  });

  test("a read key is not offered execute, and is refused it", async () => {
    const admin = connect({ endpoint: keyed.endpoint, apiKey: ADMIN_KEY });
    const name = unique("tsro");
    await admin.createDatabase(name);
    await admin.execute(name, "CREATE TABLE t (a INTEGER)");
    const { secret } = await admin.createApiKey({ name: unique("reader"), grants: [Grant.database(name, Role.READ)] });
    const client = await mcp(keyed, secret);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(!names.includes("execute") && names.includes("query"), names.join(","));
      const refused = (await client.callTool({ name: "execute", arguments: { database: name, sql: "DELETE FROM t" } })) as ToolResult;
      assert.ok(refused.isError);
      assert.match(textOf(refused), /^PERMISSION_DENIED: /);
    } finally {
      await client.close();
      await admin.deleteDatabase(name);
    }
  });

  test("a result cut by max_rows says so", async () => {
    const client = await mcp(open);
    try {
      const name = unique("tscut");
      await call(client, "create_database", { name });
      const r = await call(client, "query", {
        database: name,
        sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT x FROM c",
        max_rows: 10,
      });
      assert.equal(r.row_count, 10);
      assert.equal(r.truncated, true);
      assert.equal(r.truncated_by, "max_rows");
      await call(client, "delete_database", { name });
    } finally {
      await client.close();
    }
  });

  test("aborting a running query cancels it on the gateway", async () => {
    const client = await mcp(open);
    const name = unique("tscancel");
    try {
      await call(client, "create_database", { name });
      const abort = new AbortController();
      const running = client.callTool({ name: "query", arguments: { database: name, sql: ENDLESS } }, undefined, {
        signal: abort.signal,
      });
      setTimeout(() => abort.abort("enough"), 500);
      await assert.rejects(running);
      const admin = connect({ endpoint: open.endpoint });
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { events } = await admin.listAuditEvents({ database: name });
        if (events.some((e) => e.rpc === "Query" && e.outcome === "CANCELLED")) break;
        assert.ok(Date.now() < deadline, JSON.stringify(events.map((e) => [e.rpc, e.outcome])));
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual((await call(client, "query", { database: name, sql: "SELECT 1 AS one" })).rows, [[1]]);
      await call(client, "delete_database", { name });
    } finally {
      await client.close();
    }
  });
});

describe("MCP over stdio (dbforge mcp)", () => {
  let keyed: TestServer;

  before(async () => {
    keyed = await startServer([], { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
  });
  after(async () => {
    await keyed.stop();
  });

  test("lists the tools /mcp lists, with the same descriptions, in both modes", async () => {
    const local = await stdio(keyed, ADMIN_KEY);
    const remote = await mcp(keyed, ADMIN_KEY);
    const small = await stdio(keyed, ADMIN_KEY, "minimal");
    try {
      const [a, b] = [(await local.listTools()).tools, (await remote.listTools()).tools];
      assert.deepEqual(a.map((t) => [t.name, t.description, t.inputSchema]), b.map((t) => [t.name, t.description, t.inputSchema]));
      assert.deepEqual((await small.listTools()).tools.map((t) => t.name), ["list_databases", "describe_schema", "query"]);
    } finally {
      await Promise.all([local.close(), remote.close(), small.close()]);
    }
  });

  test("create, execute, query, describe and delete", async () => {
    const client = await stdio(keyed, ADMIN_KEY);
    try {
      const name = unique("tsstdio");
      await call(client, "create_database", { name });
      await call(client, "execute", { database: name, sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)" });
      await call(client, "execute", { database: name, sql: "INSERT INTO t (v) VALUES (?)", params: ["a"] });
      const rows = await call(client, "query", { database: name, sql: "SELECT id, v FROM t" });
      assert.deepEqual(rows, { columns: ["id", "v"], rows: [[1, "a"]], row_count: 1, truncated: false });
      const schema = (await client.callTool({ name: "describe_schema", arguments: { database: name } })) as ToolResult;
      assert.match(textOf(schema), /CREATE TABLE t/);
      assert.deepEqual(await call(client, "delete_database", { name }), { deleted: true });
    } finally {
      await client.close();
    }
  });
});
