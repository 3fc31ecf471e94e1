/**
 * grpc-web from a real browser: a page bundled with esbuild uses the SDK's web transport to
 * create a database, stream a query and render the rows into a table; headless Chromium
 * (Debian's, driven by playwright-core) loads it from a static server on another port, so every
 * call is cross-origin and goes through the gateway's CORS (--cors-origin).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserContext } from "playwright-core";
import { NotFound, connect } from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const HERE = join(dirname(fileURLToPath(import.meta.url)), "browser");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN_KEY = "browser-admin-key-0123456789abcdef";

let pages: Server;
let pageOrigin: string;
let gateway: TestServer;
let browser: BrowserContext;
let profile: string;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  const bundle = await build({
    entryPoints: [join(HERE, "app.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    minify: true,
  });
  const js = bundle.outputFiles[0]!.contents;
  const html = readFileSync(join(HERE, "index.html"));
  pages = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    else if (path === "/app.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => pages.listen(0, "127.0.0.1", r));
  pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  gateway = await startServer(["--cors-origin", pageOrigin], { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
  profile = mkdtempSync(join(tmpdir(), "dbforge-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-quic",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  await new Promise((r) => pages?.close(r));
  if (profile) rmSync(profile, { recursive: true, force: true });
});

function pageUrl(origin: string, db: string, mode = "query"): string {
  const q = new URLSearchParams({ endpoint: `http://${gateway.addr}`, key: ADMIN_KEY, db, rows: "50", mode });
  return `${origin}/?${q}`;
}

test("a page creates a database, streams a query and renders the rows", async () => {
  const page = await browser.newPage();
  const consoleErrors: string[] = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  const db = unique("web");
  await page.goto(pageUrl(pageOrigin, db));
  await page.waitForFunction(() => /^(done|error)/.test(document.getElementById("status")!.textContent ?? ""), null, { timeout: 60_000 });
  const status = await page.textContent("#status");
  assert.equal(status, "done rows=10 select=item-2,item-1 notfound=NOT_FOUND NOT_FOUND");
  const auth = await page.textContent("#auth");
  assert.match(auth ?? "", /^Unauthenticated 16 missing API key/);
  const header = await page.$$eval("#rows thead th", (ths) => ths.map((th) => th.textContent));
  assert.deepEqual(header, ["id", "name", "price"]);
  const cells = await page.$$eval("#rows tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(cells.length, 10);
  assert.deepEqual(cells[0], ["5", "item-5", "7.5"]);
  assert.deepEqual(cells[9], ["50", "item-50", "75"]);
  // gRPC errors arrive as HTTP 200 with grpc-status, so a correct page logs no errors at all.
  assert.deepEqual(consoleErrors, []);
  if (process.env.DBFORGE_SCREENSHOT) await page.screenshot({ path: process.env.DBFORGE_SCREENSHOT, fullPage: true });
  await page.close();
});

test("a page exports a table, reads its schema and a plan over grpc-web; imports fail clearly", async () => {
  const page = await browser.newPage();
  const consoleErrors: string[] = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await page.goto(pageUrl(pageOrigin, unique("webx"), "transfer"));
  await page.waitForFunction(() => /^(done|error)/.test(document.getElementById("status")!.textContent ?? ""), null, { timeout: 60_000 });
  assert.equal(await page.textContent("#status"), "done transfer");
  const got = JSON.parse((await page.textContent("#transfer")) ?? "{}") as Record<string, unknown>;
  assert.deepEqual(got, {
    rows: 50,
    chunks: true,
    header: "id,name,note",
    first: '1,item-1,"a ""quoted"", ✓"',
    last: "50,item-50,",
    json: [
      { id: 1, note: 'a "quoted", ✓' },
      { id: 2, note: null },
    ],
    columns: ["id:INTEGER", "name:TEXT", "note:TEXT"],
    nullable: [false, true],
    primaryKey: ["id"],
    createText: true,
    fullScans: ["items"],
    imported: "UNIMPLEMENTED",
  });
  assert.deepEqual(consoleErrors, []);
  await page.close();
});

test("an origin the gateway does not allow is blocked by CORS", async () => {
  const page = await browser.newPage();
  const db = unique("blocked");
  // Same page server, but as http://localhost:PORT: a different origin from the allowed one.
  await page.goto(pageUrl(pageOrigin.replace("127.0.0.1", "localhost"), db));
  await page.waitForFunction(() => /^(done|error)/.test(document.getElementById("status")!.textContent ?? ""), null, { timeout: 60_000 });
  const status = (await page.textContent("#status")) ?? "";
  assert.match(status, /^error /);
  assert.doesNotMatch(status, /^done/);
  await page.close();
  // The preflight failed, so nothing was created from the refused origin.
  const node = connect({ endpoint: `http://${gateway.addr}`, apiKey: ADMIN_KEY });
  await assert.rejects(node.getDatabase(db), (e: unknown) => e instanceof NotFound);
  node.close();
});
