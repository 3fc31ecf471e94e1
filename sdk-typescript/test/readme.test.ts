/** The README's quick start and agent example run against a live server (through the package's own exports). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { NotFound, connect } from "../src/node.js";
import { startServer, type TestServer } from "./server.js";

const HERE = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname);
const blocks = [...readFileSync(join(HERE, "..", "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

let server: TestServer;
let dir: string;
before(async () => {
  server = await startServer();
  // Inside the package, so "@dbforge/sdk/node" resolves through package.json "exports" (dist/).
  dir = mkdtempSync(join(HERE, ".readme-"));
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function load(name: string, code: string): Promise<Record<string, unknown>> {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, code);
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

test("quick start", async () => {
  process.env.DBFORGE_ENDPOINT = server.endpoint;
  delete process.env.DBFORGE_API_KEY;
  const logs: unknown[][] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void logs.push(a);
  try {
    await load("quickstart", blocks[0]!);
  } finally {
    console.log = orig;
    delete process.env.DBFORGE_ENDPOINT;
  }
  assert.deepEqual(logs[0], ["inserted id", 1]);
  assert.deepEqual(logs[1], [["id", "body"]]);
  assert.deepEqual(logs[2], [1, "hello"]);
  const c = connect({ endpoint: server.endpoint });
  await c.deleteDatabase("notes");
  c.close();
});

test("agent example", async () => {
  const mod = await load("agent", blocks[1]!.replace("async function task", "export async function task"));
  const client = connect({ endpoint: server.endpoint });
  const task = mod.task as (c: typeof client, id: number) => Promise<string[]>;
  assert.deepEqual(await task(client, 4242), ["rust"]);
  await assert.rejects(client.getDatabase("task-4242"), NotFound);
  client.close();
});

test("export, import, schema and explain example", async () => {
  process.env.DBFORGE_ENDPOINT = server.endpoint;
  delete process.env.DBFORGE_API_KEY;
  const logs: unknown[][] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void logs.push(a);
  try {
    await load("transfer", blocks.find((b) => b.includes("exportTable"))!);
  } finally {
    console.log = orig;
    delete process.env.DBFORGE_ENDPOINT;
  }
  assert.deepEqual(logs[0], [2, [4]]);
  assert.deepEqual(logs[1], [2]);
  assert.deepEqual(JSON.parse(logs[2]![0] as string), { sku: "B2" });
  assert.deepEqual(logs[3], [["sku", "name", "price"]]);
  assert.match(logs[4]![0] as string, /CREATE TABLE[^]*products/);
  assert.deepEqual(logs[5], [["products"]]);
  assert.deepEqual(logs[6], [[[2]]]);
  const c = connect({ endpoint: server.endpoint });
  await assert.rejects(c.getDatabase("shop"), NotFound);
  c.close();
});
