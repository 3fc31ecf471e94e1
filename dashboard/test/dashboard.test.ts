/**
 * The dashboard end to end: a real gateway (built from this tree, so it serves the committed
 * bundle) with an admin key, headless Chromium (Debian's, driven by playwright-core) on the
 * gateway's own port. Fixtures are made with the Node SDK; everything asserted is read from the
 * rendered page. Screenshots of every page go to $DBFORGE_SCREENSHOTS (default
 * target/dashboard-screens/); measurements are printed and written to measurements.json there.
 *
 * Backends whose server is not reachable are skipped with a one-line notice, or fail under
 * DBFORGE_REQUIRE_BACKENDS=1.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcp, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { Backend, Grant, Role, connect, type DBForgeClient } from "../../sdk-typescript/src/node.js";
import { REPO, startServer, unique, type TestServer } from "../../sdk-typescript/test/server.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN_KEY = "dashboard-admin-key-0123456789abcdef";
const SHOTS = process.env.DBFORGE_SCREENSHOTS ?? join(REPO, "target", "dashboard-screens");
const REQUIRE = process.env.DBFORGE_REQUIRE_BACKENDS === "1";

const SERVERS: { backend: Backend; name: string; flag: string; url: string }[] = [
  { backend: Backend.POSTGRES, name: "PostgreSQL", flag: "--postgres-url", url: process.env.DBFORGE_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
  { backend: Backend.MYSQL, name: "MySQL", flag: "--mysql-url", url: process.env.DBFORGE_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306" },
  { backend: Backend.REDIS, name: "Redis", flag: "--redis-url", url: process.env.DBFORGE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379" },
];

let gateway: TestServer;
let origin: string;
let browser: BrowserContext;
let profile: string;
let admin: DBForgeClient;
let readerKey: string;
let shop: string;
const available = new Set<Backend>([Backend.SQLITE]);
const measurements: Record<string, unknown> = {};

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port) || (u.protocol.startsWith("postgres") ? 5432 : u.protocol.startsWith("mysql") ? 3306 : 6379);
  return new Promise((resolve) => {
    const s = tcp({ host: u.hostname, port, timeout: 1000 });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
    s.once("timeout", () => (s.destroy(), resolve(false)));
  });
}

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  const args = ["--max-rows", "2000000"];
  for (const s of SERVERS) {
    if (await reachable(s.url)) {
      args.push(s.flag, s.url);
      available.add(s.backend);
    } else if (REQUIRE) {
      throw new Error(`${s.name} (${s.url}) unreachable and DBFORGE_REQUIRE_BACKENDS=1`);
    } else {
      console.log(`skipping ${s.name} in the dashboard test: ${s.url} unreachable`);
    }
  }
  gateway = await startServer(args, { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
  origin = `http://${gateway.addr}`;
  admin = connect({ endpoint: origin, apiKey: ADMIN_KEY });

  // Fixtures: a shop with foreign keys, a view, NULL and empty text, bytes, a check.
  shop = unique("shop");
  await admin.createDatabase(shop, { labels: { team: "web" } });
  await admin.batch(
    shop,
    [
      "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE)",
      "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL CHECK (price >= 0), photo BLOB)",
      "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), note TEXT)",
      "CREATE TABLE order_items (order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE, product_id INTEGER NOT NULL REFERENCES products(id), qty INTEGER NOT NULL, PRIMARY KEY (order_id, product_id))",
      "CREATE INDEX orders_by_customer ON orders(customer_id)",
      "CREATE VIEW big_orders AS SELECT order_id, sum(qty) AS items FROM order_items GROUP BY order_id",
      "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL)",
      "INSERT INTO products VALUES (1, 'apple', 1.5, x'cafe01'), (2, 'pear', 2.25, NULL), (3, 'plum', 0.75, NULL)",
      "INSERT INTO orders VALUES (1, 1, ''), (2, 2, NULL)",
      "INSERT INTO order_items VALUES (1, 1, 3), (1, 2, 1), (2, 3, 7)",
    ],
    { transaction: true },
  );
  const reader = await admin.createApiKey({ name: "reader", grants: [Grant.database(shop, Role.READ)] });
  readerKey = reader.secret;

  profile = mkdtempSync(join(tmpdir(), "dbforge-dashboard-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 860 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"],
  });
});

after(async () => {
  if (Object.keys(measurements).length) {
    writeFileSync(join(SHOTS ?? ".", "measurements.json"), JSON.stringify(measurements, null, 2) + "\n");
    console.log("dashboard measurements:", JSON.stringify(measurements));
  }
  await browser?.close();
  admin?.close();
  await gateway?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A page that records CSP violations, console errors, dialogs and page errors. */
async function newPage(): Promise<Page & { problems: string[] }> {
  const page = (await browser.newPage()) as Page & { problems: string[] };
  page.problems = [];
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window as unknown as { __csp: string[] }).__csp ??= [];
      (window as unknown as { __csp: string[] }).__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}:${e.columnNumber} ${e.sample} on ${(e.target as Element | null)?.outerHTML?.slice(0, 160) ?? "?"}`);
    });
  });
  page.on("console", (m) => m.type() === "error" && page.problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on("dialog", (d) => {
    page.problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  return page;
}

async function noProblems(page: Page & { problems: string[] }): Promise<void> {
  const csp = await page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
  assert.deepEqual(csp, [], "CSP violations");
  // A refused call (the read-only key's INSERT) is not a console error: gRPC errors arrive as HTTP 200.
  assert.deepEqual(page.problems, []);
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.goto(`${origin}/`);
  await page.fill("#apikey", key);
  await page.click("button[type=submit]");
  await page.waitForSelector("header.top");
}

/** Whether the editor (in its shadow root) has focus. */
const editorFocused = `document.activeElement?.shadowRoot?.activeElement?.classList.contains("cm-content") ?? false`;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Replaces the editor's text as a user would (select all, type). */
async function typeSql(page: Page, sql: string): Promise<void> {
  await page.click(".cm-content");
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(sql);
  // Close the completion list typing may have opened (it would cover the page in screenshots).
  await page.keyboard.press("Escape");
}

/** Runs the editor's statement and waits for this run's end (not the previous run's status). */
async function run(page: Page): Promise<string> {
  const status = await page.$("[data-testid=run-status]");
  const before = Number((await status?.getAttribute("data-run")) ?? 0);
  await page.click("button:has-text('Run')");
  await page.waitForFunction(
    (n) => {
      const el = document.querySelector("[data-testid=run-status]");
      return el !== null && Number(el.getAttribute("data-run")) > n && el.getAttribute("data-running") === "no";
    },
    before,
    { timeout: 120_000 },
  );
  return (await page.textContent("[data-testid=run-status]")) ?? "";
}

async function cells(page: Page): Promise<{ text: string; kind: string; align: string }[][]> {
  return page.$$eval("[data-testid=result] .rbody .rrow", (rows) =>
    rows
      .sort((a, b) => Number((a as HTMLElement).dataset.index) - Number((b as HTMLElement).dataset.index))
      .map((r) =>
        [...r.children].map((c) => ({
          text: c.textContent ?? "",
          kind: [...c.classList].filter((k) => k !== "cell").join(" "),
          align: getComputedStyle(c).textAlign,
        })),
      ),
  );
}

test("first load stays within 300 KB of gzipped JavaScript and sign-in keeps the key out of the URL and localStorage", async () => {
  const page = await newPage();
  const js: { url: string; bytes: number }[] = [];
  page.on("response", async (r) => {
    if (r.url().endsWith(".js")) {
      const len = Number((await r.allHeaders())["content-length"] ?? 0);
      js.push({ url: r.url(), bytes: len });
      assert.equal((await r.allHeaders())["content-encoding"], "gzip");
    }
  });
  await page.goto(`${origin}/`);
  await page.waitForSelector("#apikey");
  const firstKb = js.reduce((n, r) => n + r.bytes, 0) / 1024;
  measurements.firstLoadGzipKB = Number(firstKb.toFixed(1));
  assert.ok(js.length >= 1 && firstKb <= 300, `first load ${firstKb} KB: ${JSON.stringify(js)}`);
  await shot(page, "01-signin");

  // A wrong key is refused and not stored.
  await page.fill("#apikey", "dbf_nope_wrong");
  await page.click("button[type=submit]");
  await page.waitForSelector(".signin .error");
  assert.match((await page.textContent(".signin .error")) ?? "", /unauthenticated|key/i);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  const t0 = Date.now();
  await page.fill("#apikey", ADMIN_KEY);
  await page.click("button[type=submit]");
  await page.waitForSelector(`[data-testid=databases] tr[data-db="${shop}"]`);
  measurements.databasesPageMs = Date.now() - t0;
  assert.ok(Date.now() - t0 < 1000, `databases page took ${Date.now() - t0} ms`);
  assert.equal(page.url(), `${origin}/databases`);
  assert.ok(!page.url().includes(ADMIN_KEY));
  assert.equal(await page.evaluate(() => sessionStorage.getItem("dbforge.apiKey")), ADMIN_KEY);
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage).includes("dashboard-admin-key")), false);
  const row = await page.$$eval(`tr[data-db="${shop}"] > *`, (cs) => cs.map((c) => c.textContent));
  assert.equal(row[1], "SQLite");
  assert.equal(row[2], "ready");
  assert.equal(row[6], "—"); // no TTL, no idle TTL
  assert.equal(row[7], "team=web");

  // The filter narrows by label.
  await page.fill("#db-filter", "team=nomatch");
  await page.waitForSelector(`tr[data-db="${shop}"]`, { state: "detached" });
  await page.fill("#db-filter", "team=web");
  await page.waitForSelector(`tr[data-db="${shop}"]`);
  await page.fill("#db-filter", "");
  await shot(page, "02-databases");

  // A reload keeps the session (sessionStorage); sign out forgets the key.
  await page.reload();
  await page.waitForSelector("[data-testid=who]");
  await page.click("button:has-text('Sign out')");
  await page.waitForSelector("#apikey");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("dbforge.apiKey")), null);
  await noProblems(page);
  await page.close();
});

test("spawns a database on each backend the machine runs, and prunes one after a confirmation naming it", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  const names: string[] = [];
  for (const b of [Backend.SQLITE, Backend.POSTGRES, Backend.MYSQL, Backend.REDIS]) {
    if (!available.has(b)) continue;
    const name = unique(`ui${b}`);
    names.push(name);
    await page.fill("#spawn-name", name);
    await page.selectOption("#spawn-backend", String(b));
    await page.fill("#spawn-labels", "made=ui, kind=test");
    await page.click("button:has-text('Spawn')");
    await page.waitForSelector(`tr[data-db="${name}"]`, { timeout: 30_000 });
    const status = await page.textContent(`tr[data-db="${name}"] .status`);
    assert.equal(status, "ready");
    const d = await admin.getDatabase(name);
    assert.equal(d.backend, b);
    assert.deepEqual(d.labels, { made: "ui", kind: "test" });
  }
  await shot(page, "03-databases-spawned");
  const victim = names[0]!;
  await page.click(`button[aria-label="Prune ${victim}"]`);
  await page.waitForSelector("dialog[open]");
  assert.equal(await page.textContent("dialog h2"), `Prune ${victim}?`);
  await shot(page, "04-prune-dialog");
  await page.click("dialog button:has-text('Cancel')");
  assert.ok(await admin.getDatabase(victim));
  await page.click(`button[aria-label="Prune ${victim}"]`);
  await page.click(`dialog button:has-text('Prune ${victim}')`);
  await page.waitForSelector(`tr[data-db="${victim}"]`, { state: "detached" });
  await assert.rejects(admin.getDatabase(victim));
  for (const n of names.slice(1)) await admin.deleteDatabase(n);
  await noProblems(page);
  await page.close();
});

test("the console runs a query and renders NULL apart from empty text, numbers right-aligned, bytes as hex; history, explain and export work", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "SELECT p.id, p.name, p.price, p.photo, o.note FROM products p LEFT JOIN orders o ON o.id = p.id ORDER BY p.id");
  const status = await run(page);
  assert.match(status, /^3 rows · \d+ ms · server [\d.]+ ms$/);
  const got = await cells(page);
  assert.deepEqual(
    got.map((r) => r.map((c) => c.text)),
    [
      ["1", "apple", "1.5", "\\xcafe01", ""],
      ["2", "pear", "2.25", "NULL", "NULL"],
      ["3", "plum", "0.75", "NULL", "NULL"],
    ],
  );
  assert.equal(got[0]![0]!.kind, "number");
  assert.equal(got[0]![0]!.align, "right");
  assert.equal(got[0]![3]!.kind, "bytes");
  assert.equal(got[0]![4]!.kind, "text"); // empty text is text
  assert.equal(got[1]![4]!.kind, "null"); // NULL is not
  // A long value expands below the table.
  await page.click("[data-testid=result] .rbody .rrow[data-index='0'] .cell >> nth=1");
  assert.equal(await page.textContent(".cell-detail pre"), "apple");
  await shot(page, "05-console-result");

  // A statement without rows reports the rows it changed.
  await typeSql(page, "UPDATE customers SET name = name");
  assert.match(await run(page), /^2 rows affected · \d+ ms · server [\d.]+ ms$/);

  // Typed parameters.
  await typeSql(page, "SELECT name FROM products WHERE price > ? AND name <> ? ORDER BY name");
  await page.fill("#params", '[1, "pear"]');
  await run(page);
  assert.deepEqual((await cells(page)).map((r) => r[0]!.text), ["apple"]);
  await page.fill("#params", "");

  // History, per database, in localStorage.
  const hist = await page.$$eval(".history li button", (bs) => bs.map((b) => b.textContent));
  assert.equal(hist[0], "SELECT name FROM products WHERE price > ? AND name <> ? ORDER BY name");
  assert.equal(hist.length, 3);
  // Kept per key and database, never with the key itself.
  const stored = await page.evaluate(() => Object.keys(localStorage));
  assert.ok(stored.includes(`dbforge.history.env-admin/${shop}`), JSON.stringify(stored));

  // EXPLAIN: the normalized plan with the full scan highlighted.
  await typeSql(page, "SELECT * FROM products WHERE name = 'pear'");
  await page.click("button:has-text('Explain')");
  await page.waitForSelector("[data-testid=plan]");
  assert.match((await page.textContent("[data-testid=plan] p")) ?? "", /Full scans: products/);
  assert.ok(await page.$("[data-testid=plan] li.fullscan .badge"));
  await shot(page, "06-console-explain");

  // Export through the export RPCs: CSV and JSON downloads.
  await typeSql(page, "SELECT id, name, photo IS NULL AS no_photo FROM products ORDER BY id");
  const [csv] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export CSV')")]);
  assert.equal(csv.suggestedFilename(), `${shop}.csv`);
  assert.equal(readFileSync((await csv.path())!, "utf8"), "id,name,no_photo\r\n1,apple,0\r\n2,pear,1\r\n3,plum,1\r\n");
  const [json] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export JSON')")]);
  assert.deepEqual(JSON.parse(readFileSync((await json.path())!, "utf8")), [
    { id: 1, name: "apple", no_photo: 0 },
    { id: 2, name: "pear", no_photo: 1 },
    { id: 3, name: "plum", no_photo: 1 },
  ]);
  await page.waitForSelector("p.note:has-text('Exported 3 rows as JSON')");

  // Completion offers the schema's tables.
  await typeSql(page, "SELECT * FROM ord");
  await page.keyboard.press("Control+Space");
  await page.waitForSelector(".cm-tooltip-autocomplete");
  const options = await page.$$eval(".cm-tooltip-autocomplete li", (ls) => ls.map((l) => l.textContent));
  assert.ok(options.some((o) => o?.startsWith("orders")), JSON.stringify(options));
  assert.ok(options.some((o) => o?.startsWith("order_items")), JSON.stringify(options));
  await shot(page, "07-console-completion");
  await page.keyboard.press("Escape");
  await noProblems(page);
  await page.close();
});

test("queries on PostgreSQL and MySQL, and Redis commands with the key browser", async (t) => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  for (const [b, sql] of [
    [Backend.POSTGRES, "SELECT 42 AS answer, 'x'::text AS word, NULL::int AS nothing, ''::text AS empty"],
    [Backend.MYSQL, "SELECT 42 AS answer, 'x' AS word, NULL AS nothing, '' AS empty"],
  ] as const) {
    if (!available.has(b)) {
      t.diagnostic(`skipped backend ${b}: not reachable`);
      continue;
    }
    const db = unique(`q${b}`);
    await admin.createDatabase(db, { backend: b });
    await page.goto(`${origin}/db/${encodeURIComponent(db)}/console`);
    await page.waitForSelector(".cm-content");
    await typeSql(page, sql);
    await page.keyboard.press("Control+Enter");
    await page.waitForSelector("[data-testid=run-status][data-running=no]", { state: "attached" });
    const got = await cells(page);
    assert.deepEqual(
      got[0]!.map((c) => [c.text, c.kind]),
      [
        ["42", "number"],
        ["x", "text"],
        ["NULL", "null"],
        ["", "text"],
      ],
    );
    // EXPLAIN ANALYZE (PostgreSQL and MySQL): actual row counts in the plan.
    await admin.execute(db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    await admin.execute(db, "INSERT INTO t VALUES (1, 10), (2, 20)");
    await typeSql(page, "SELECT * FROM t WHERE v > 5");
    await page.check("text=analyze");
    await page.click("button:has-text('Explain')");
    await page.waitForSelector("[data-testid=plan]");
    assert.match((await page.textContent("[data-testid=plan] p")) ?? "", /Full scans: t\b/);
    assert.match((await page.textContent("[data-testid=plan] .plan-tree")) ?? "", /\d+ actual/);
    await shot(page, `08-console-${b === Backend.POSTGRES ? "postgres" : "mysql"}`);
    await admin.deleteDatabase(db);
  }
  if (available.has(Backend.REDIS)) {
    const db = unique("kv");
    await admin.createDatabase(db, { backend: Backend.REDIS });
    await admin.execute(db, "HSET user:1 name Ada lang en");
    await page.goto(`${origin}/db/${encodeURIComponent(db)}/console`);
    await page.waitForSelector("#redis-command");
    assert.equal(await page.$(".cm-content"), null, "no SQL editor on Redis");
    await page.fill("#redis-command", 'SET greeting "hello world"');
    await page.press("#redis-command", "Enter");
    await page.waitForSelector("[data-testid=run-status][data-running=no]", { state: "attached" });
    await page.fill("#redis-command", "GET greeting");
    await page.press("#redis-command", "Enter");
    await page.waitForFunction(() => document.querySelector("[data-testid=result] .rbody .cell")?.textContent === "hello world");
    await page.click("#keys-title ~ form button");
    await page.waitForSelector("[data-testid=keys] button:has-text('greeting')");
    await page.click("[data-testid=keys] button:has-text('user:1')");
    await page.waitForFunction(() => (document.getElementById("redis-command") as HTMLInputElement).value === 'HGETALL "user:1"');
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=result] .rbody .rrow").length === 2);
    const got = await cells(page);
    assert.deepEqual(got.map((r) => r.map((c) => c.text)).sort(), [["lang", "en"], ["name", "Ada"]]);
    // Exports run the command on the gateway (ExportQuery, read-only): CSV and JSON of its reply.
    const [csv] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export CSV')")]);
    const lines = readFileSync((await csv.path())!, "utf8").split("\r\n");
    assert.equal(lines[0], "field,value");
    assert.deepEqual(lines.slice(1).filter(Boolean).sort(), ["lang,en", "name,Ada"]);
    await page.fill("#redis-command", "GET greeting");
    const [json] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export JSON')")]);
    assert.deepEqual(JSON.parse(readFileSync((await json.path())!, "utf8")), [{ value: "hello world" }]);
    // A write is refused (exports read) and changes nothing.
    await page.fill("#redis-command", "SET greeting changed");
    await page.click("button:has-text('Export JSON')");
    await page.waitForSelector("p.note:has-text('an export takes one read statement')");
    assert.deepEqual((await admin.execute(db, "GET greeting")).rows, [["hello world"]]);
    // No dry run on Redis (it has no transaction to roll back).
    assert.equal(await page.$("button:has-text('Preview')"), null);
    await page.fill("#redis-command", "HGETALL user:1");
    await page.press("#redis-command", "Enter");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=result] .rbody .rrow").length === 2);
    await shot(page, "09-console-redis");
    // Its schema page shows the key patterns GetSchema samples.
    await page.click("nav[aria-label=Database] a:has-text('Schema')");
    await page.waitForSelector("[data-testid=key-patterns] tbody tr");
    const patterns = await page.$$eval("[data-testid=key-patterns] tbody tr", (rs) => rs.map((r) => [r.children[0]!.textContent, r.children[1]!.textContent]));
    assert.ok(patterns.some(([p, t]) => p === "user:*" && t === "hash"), JSON.stringify(patterns));
    assert.ok(patterns.some(([p, t]) => p === "greeting" && t === "string"), JSON.stringify(patterns));
    await shot(page, "09b-schema-redis");
    await admin.deleteDatabase(db);
  } else {
    t.diagnostic("skipped Redis: not reachable");
  }
  await noProblems(page);
  await page.close();
});

test("a long query is cancelled from the page and stops on the server", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c");
  // The databases page's event stream, left by the navigation, ends on the server first.
  for (let i = 0; i < 50 && (await admin.serverStats()).activeStreams > 0; i++) await page.waitForTimeout(100);
  assert.equal((await admin.serverStats()).activeStreams, 0);
  await page.click("button:has-text('Run')");
  await page.waitForSelector("[data-testid=run-status][data-running=yes]");
  await page.waitForTimeout(500);
  assert.equal((await admin.serverStats()).activeStreams, 1);
  const t0 = Date.now();
  await page.click("button:has-text('Cancel')");
  await page.waitForSelector("[data-testid=run-status][data-running=no]", { state: "attached" });
  assert.match((await page.textContent("[data-testid=run-status]")) ?? "", /^Cancelled after 0 rows$/);
  assert.equal(await page.$("[data-testid=run-error]"), null);
  // The server stopped the statement (its stream is gone) well before the 30 s statement timeout.
  for (let i = 0; (await admin.serverStats()).activeStreams !== 0; i++) {
    assert.ok(i < 50, "the stream is still running on the server");
    await new Promise((r) => setTimeout(r, 100));
  }
  measurements.cancelMs = Date.now() - t0;
  await shot(page, "10-console-cancelled");
  await noProblems(page);
  await page.close();
});

test("1,000,000 rows stream in progressively and the virtualized table scrolls to the end", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT x AS n, 'row ' || x AS label, x * 0.5 AS half FROM c");
  const t0 = Date.now();
  await page.click("button:has-text('Run')");
  // First rows are on screen while the query still runs.
  await page.waitForSelector("[data-testid=result] .rbody .rrow[data-index='0']");
  const firstMs = Date.now() - t0;
  const stillRunning = await page.getAttribute("[data-testid=run-status]", "data-running");
  assert.equal(stillRunning, "yes", "the first rows appeared only after the stream ended");
  await page.waitForSelector("[data-testid=run-status][data-running=no]", { state: "attached", timeout: 180_000 });
  const totalMs = Date.now() - t0;
  assert.match((await page.textContent("[data-testid=run-status]")) ?? "", /^1,000,000 rows · /);
  // DOM stays small: only the rows in view (plus overscan) exist.
  const domRows = await page.$$eval("[data-testid=result] .rbody .rrow", (r) => r.length);
  assert.ok(domRows < 100, `${domRows} rows in the DOM`);

  // Scroll to the end in steps over ~3 s, measuring frame times with requestAnimationFrame.
  const frames = await page.evaluate(async () => {
    const el = document.querySelector("[data-testid=result]") as HTMLElement;
    const deltas: number[] = [];
    const end = el.scrollHeight - el.clientHeight;
    const steps = 180;
    let last = performance.now();
    for (let i = 1; i <= steps; i++) {
      el.scrollTop = (end * i) / steps;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      deltas.push(now - last);
      last = now;
    }
    // A few frames at the end, so the last rows render.
    for (let i = 0; i < 5; i++) await new Promise((r) => requestAnimationFrame(r));
    deltas.sort((a, b) => a - b);
    return {
      frames: deltas.length,
      p50: deltas[Math.floor(0.5 * deltas.length)]!,
      p95: deltas[Math.floor(0.95 * deltas.length)]!,
      max: deltas[deltas.length - 1]!,
    };
  });
  await page.waitForSelector("[data-testid=result] .rrow[data-index='999999']");
  const last = await page.$$eval("[data-testid=result] .rrow[data-index='999999'] > div", (cs) => cs.map((c) => c.textContent));
  assert.deepEqual(last, ["1000000", "row 1000000", "500000"]);
  measurements.millionRows = {
    firstRowsMs: firstMs,
    allRowsMs: totalMs,
    scrollFrames: frames.frames,
    frameP50Ms: Number(frames.p50.toFixed(1)),
    frameP95Ms: Number(frames.p95.toFixed(1)),
    frameMaxMs: Number(frames.max.toFixed(1)),
  };
  assert.ok(frames.p95 < 100, `p95 frame ${frames.p95} ms`);
  await shot(page, "11-console-million-rows");
  await noProblems(page);
  await page.close();
});

test("a result becomes a chart whose data is the result's, in each type, exported as PNG and as an SVG holding its labels and bars", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "SELECT name, price FROM products ORDER BY id");
  await run(page);
  await page.click("button:has-text('Chart')");
  await page.waitForSelector(".chart canvas");
  const chartData = () =>
    page.evaluate(() => {
      const c = (window as unknown as { __dbforgeChart?: { config: { type: string }; data: { labels?: unknown[]; datasets: { label?: string; data: unknown[] }[] } } }).__dbforgeChart;
      return c ? { type: c.config.type, labels: c.data.labels ?? null, label: c.data.datasets[0]!.label, data: c.data.datasets[0]!.data } : null;
    });
  // Defaults from the column types: the text column labels, the number column gives values.
  assert.deepEqual(await chartData(), { type: "bar", labels: ["apple", "pear", "plum"], label: "price", data: [1.5, 2.25, 0.75] });
  // The canvas has been drawn on (not blank).
  const inked = await page.$eval(".chart canvas", (c) => {
    const ctx = (c as HTMLCanvasElement).getContext("2d")!;
    const px = ctx.getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
    return n;
  });
  assert.ok(inked > 1000, `${inked} pixels drawn`);
  await shot(page, "12-chart-bar");
  for (const kind of ["line", "pie"]) {
    await page.selectOption("#chart-kind", kind);
    await page.waitForFunction((k) => (window as unknown as { __dbforgeChart?: { config: { type: string } } }).__dbforgeChart?.config.type === k, kind);
    assert.deepEqual((await chartData())!.data, [1.5, 2.25, 0.75]);
  }
  await shot(page, "13-chart-pie");
  await page.selectOption("#chart-kind", "scatter");
  await page.selectOption("#chart-label", "1");
  await page.selectOption("#chart-value", "1");
  await page.waitForFunction(() => (window as unknown as { __dbforgeChart?: { config: { type: string } } }).__dbforgeChart?.config.type === "scatter");
  assert.deepEqual((await chartData())!.data, [
    { x: 1.5, y: 1.5 },
    { x: 2.25, y: 2.25 },
    { x: 0.75, y: 0.75 },
  ]);
  const [png] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export PNG')")]);
  const bytes = readFileSync((await png.path())!);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

  // SVG: the same chart drawn as vector marks and text. Back to the bar chart of price by name.
  await page.selectOption("#chart-kind", "bar");
  await page.selectOption("#chart-label", "0");
  await page.selectOption("#chart-value", "1");
  await page.waitForFunction(() => (window as unknown as { __dbforgeChart?: { config: { type: string } } }).__dbforgeChart?.config.type === "bar");
  const [svgFile] = await Promise.all([page.waitForEvent("download"), page.click("button:has-text('Export SVG')")]);
  assert.equal(svgFile.suggestedFilename(), "chart.svg");
  const svg = readFileSync((await svgFile.path())!, "utf8");
  const doc = await page.evaluate((text) => {
    const d = new DOMParser().parseFromString(text, "image/svg+xml");
    const err = d.querySelector("parsererror");
    const texts = [...d.querySelectorAll("text")].map((t) => t.textContent ?? "");
    // Filled paths in the dataset's colour (the Colors plugin's first, blue): the legend's
    // swatch (drawn first), then the bars.
    const bars = [...d.querySelectorAll("path")]
      .filter((p) => p.getAttribute("fill") === "rgb(54,162,235)")
      .map((p) => {
        const nums = (p.getAttribute("d") ?? "").match(/-?\d+(\.\d+)?/g)!.map(Number);
        const ys = nums.filter((_, i) => i % 2 === 1);
        return Math.max(...ys) - Math.min(...ys);
      });
    const unstyled = [...d.querySelectorAll("text")].filter((t) => !t.getAttribute("font-size") || !t.getAttribute("font-family")).length;
    return { root: d.documentElement.nodeName, err: err?.textContent ?? "", texts, bars, unstyled };
  }, svg);
  assert.equal(doc.root, "svg");
  assert.equal(doc.err, "");
  // Every text keeps its font (svgcanvas parses it through the CSSOM, which the CSP allows).
  assert.equal(doc.unstyled, 0);
  for (const label of ["apple", "pear", "plum", "price"]) assert.ok(doc.texts.includes(label), `${label} in ${JSON.stringify(doc.texts)}`);
  // The swatch (as high as the legend's 12 px font), then three bars whose heights are in the
  // ratio of the prices 1.5 : 2.25 : 0.75.
  assert.equal(doc.bars.length, 4, JSON.stringify(doc.bars));
  assert.ok(Math.abs(doc.bars[0]! - 12) < 1, JSON.stringify(doc.bars));
  const [a, b, c] = doc.bars.slice(1) as [number, number, number];
  assert.ok(Math.abs(b / a - 1.5) < 0.05 && Math.abs(c / a - 0.5) < 0.05, `bar heights ${doc.bars}`);
  writeFileSync(join(SHOTS, "13b-chart.svg"), svg);
  await noProblems(page);
  await page.close();
});

test("the schema browser shows tables, views, keys, indexes, checks and a laid-out foreign-key diagram", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/schema`);
  await page.waitForSelector("[data-testid=fk-diagram]");
  const edges = await page.$$eval("[data-testid=fk-diagram] path.edge", (ps) => ps.map((p) => `${p.getAttribute("data-from")}->${p.getAttribute("data-to")}`).sort());
  assert.deepEqual(edges, ["order_items->orders", "order_items->products", "orders->customers"]);
  // Boxes do not overlap: the layout library placed them.
  const boxes = await page.$$eval("[data-testid=fk-diagram] g.node rect", (rs) => rs.map((r) => r.getBoundingClientRect().toJSON() as DOMRect));
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i]!;
      const b = boxes[j]!;
      assert.ok(a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top, `boxes ${i} and ${j} overlap`);
    }
  const cards = await page.$$eval("article.table-card", (as) => as.map((a) => a.getAttribute("data-table")));
  assert.deepEqual(cards.sort(), ["big_orders", "customers", "order_items", "orders", "products"]);
  const products = (await page.textContent("article[data-table=products]")) ?? "";
  assert.match(products, /~3 rows/);
  assert.match(products, /Checks: .*price >= 0/);
  assert.match((await page.textContent("article[data-table=orders]")) ?? "", /orders_by_customer \(customer_id\)/);
  assert.match((await page.textContent("article[data-table=order_items]")) ?? "", /FK → orders/);
  assert.match((await page.textContent("article[data-table=big_orders] h2")) ?? "", /^view big_orders/);
  await shot(page, "14-schema");
  await noProblems(page);
  await page.close();
});

test("admin pages: keys created with grants (secret shown once) and revoked, audit log with filters and the chain check, server figures", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.click("nav a:has-text('Admin')");
  await page.waitForSelector("[data-testid=keys-table]");
  const name = unique("agent");
  await page.fill("#key-name", name);
  await page.fill("#key-target", "agent-42-*, scratch");
  await page.selectOption("#key-role", "write");
  await page.check("text=may spawn");
  await page.click("button:has-text('Create key')");
  await page.waitForSelector("[data-testid=secret]");
  const secret = (await page.textContent("[data-testid=secret] code")) ?? "";
  assert.match(secret, /^dbf_/);
  const who = await connect({ endpoint: origin, apiKey: secret }).whoAmI();
  assert.equal(who.name, name);
  assert.deepEqual(
    who.grants.map((g) => [g.pattern || g.database, g.role]),
    [
      ["agent-42-*", Role.WRITE],
      ["scratch", Role.WRITE],
    ],
  );
  assert.match((await page.textContent(`tr[data-key="${name}"]`)) ?? "", /may spawn, write on agent-42-\*, write on scratch/);
  await shot(page, "15-admin-keys-secret");
  await page.click("button:has-text('Done, hide it')");
  assert.equal(await page.$("[data-testid=secret]"), null);
  assert.ok(!(await page.content()).includes(secret), "the secret is gone from the page");
  await page.click(`button[aria-label="Revoke ${name}"]`);
  await page.waitForSelector(`tr[data-key="${name}"]`, { state: "detached" });
  await assert.rejects(connect({ endpoint: origin, apiKey: secret }).whoAmI());

  await page.click("nav[aria-label=Admin] a:has-text('Audit log')");
  await page.waitForSelector("[data-testid=audit-table] tbody tr");
  await page.fill("#audit-db", shop);
  // From a time before the run: every record of the database still shows.
  await page.fill("#audit-since", "2000-01-01T00:00:00");
  await page.fill("#audit-outcome", "OK");
  await page.click("button:has-text('Filter')");
  await page.waitForFunction(
    (db) => {
      const rows = [...document.querySelectorAll("[data-testid=audit-table] tbody tr")];
      return rows.length > 0 && rows.every((r) => r.children[4]!.textContent === db && r.children[6]!.textContent === "OK");
    },
    shop,
  );
  await page.click("button:has-text('Check the chain')");
  await page.waitForSelector("[data-testid=verdict]");
  assert.match((await page.textContent("[data-testid=verdict]")) ?? "", /^Chain intact: \d+ records checked\.$/);
  await shot(page, "16-admin-audit");

  await page.click("nav[aria-label=Admin] a:has-text('Server')");
  await page.waitForSelector("[data-testid=stats]");
  // Health comes from the gateway's grpc.health.v1 entries, one per backend.
  await page.waitForFunction(() => document.querySelector("[data-backend=sqlite] td")?.textContent === "serving");
  const health = Object.fromEntries(
    await page.$$eval("[data-testid=backend-health] tbody tr", (rs) => rs.map((r) => [r.getAttribute("data-backend"), r.children[1]!.textContent])),
  );
  assert.deepEqual(health, {
    sqlite: "serving",
    postgres: available.has(Backend.POSTGRES) ? "serving" : "not configured",
    mysql: available.has(Backend.MYSQL) ? "serving" : "not configured",
    redis: available.has(Backend.REDIS) ? "serving" : "not configured",
    // scripts/test-sdks builds the gateway with the graph feature (memory.test.ts relies on it too).
    graph: "serving",
  });
  await shot(page, "17-admin-server");
  await noProblems(page);
  await page.close();
});

test("a read-only key sees no admin pages, no spawn or prune, and its writes are refused", async () => {
  const page = await newPage();
  await signIn(page, readerKey);
  await page.waitForSelector(`tr[data-db="${shop}"]`);
  assert.equal(await page.$("nav a:has-text('Admin')"), null);
  assert.equal(await page.$("#spawn-name"), null);
  assert.equal(await page.$("button:has-text('Prune')"), null);
  // Only what the key may see is listed.
  assert.equal((await page.$$("[data-testid=databases] tbody tr")).length, 1);
  await shot(page, "18-reader-databases");
  await page.goto(`${origin}/admin/keys`);
  await page.waitForSelector("main .error");
  assert.match((await page.textContent("main .error")) ?? "", /need an admin key/);
  assert.equal(await page.$("[data-testid=keys-table]"), null);
  await shot(page, "19-reader-admin-refused");
  // The admin's statement history on this database is not the reader's.
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  assert.deepEqual(await page.$$eval(".history li", (l) => l.length), 0);
  await typeSql(page, "DELETE FROM orders");
  await run(page);
  assert.match((await page.textContent("[data-testid=run-error]")) ?? "", /permission/i);
  assert.equal((await admin.query(shop, "SELECT count(*) FROM orders").then((r) => r.toArray()))[0]![0], 2);
  await shot(page, "20-reader-write-refused");

  // Revoked while signed in: the next call is refused and the tab signs out, saying why.
  await page.goto(`${origin}/databases`);
  await page.waitForSelector(`tr[data-db="${shop}"]`);
  const id = (await connect({ endpoint: origin, apiKey: readerKey }).whoAmI()).id;
  assert.equal(await admin.revokeApiKey(id), true);
  await page.waitForSelector(".signin .error", { timeout: 10_000 });
  assert.match((await page.textContent(".signin .error")) ?? "", /no longer accepts this key/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("dbforge.apiKey")), null);
  await page.close();
});

test("markup in cells, table names and labels is shown as text and runs nothing", async () => {
  const db = unique("xss");
  const payload = `<img src=x onerror="window.__xss=1;alert(1)">`;
  await admin.createDatabase(db, { labels: { note: "<b>bold</b>" } });
  await admin.batch(db, [
    `CREATE TABLE "<script>" (id INTEGER PRIMARY KEY, "<i>col</i>" TEXT, owner INTEGER REFERENCES "<script>"(id))`,
    [`INSERT INTO "<script>" (id, "<i>col</i>") VALUES (1, ?)`, [payload]],
  ]);
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.waitForSelector(`tr[data-db="${db}"]`);
  assert.equal(await page.textContent(`tr[data-db="${db}"] .label`), "note=<b>bold</b>");
  await page.goto(`${origin}/db/${encodeURIComponent(db)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, `SELECT * FROM "<script>"`);
  await run(page);
  const got = await cells(page);
  assert.equal(got[0]![1]!.text, payload);
  const header = await page.$$eval("[data-testid=result] [role=columnheader]", (hs) => hs.map((h) => h.textContent));
  assert.deepEqual(header, ["id", "<i>col</i>", "owner"]);
  await page.click("[data-testid=result] .rbody .rrow[data-index='0'] .cell >> nth=1");
  await page.goto(`${origin}/db/${encodeURIComponent(db)}/schema`);
  await page.waitForSelector("article.table-card");
  assert.match((await page.textContent("article.table-card h2")) ?? "", /<script>/);
  await page.waitForTimeout(300);
  const injected = await page.evaluate(() => ({
    xss: (window as unknown as { __xss?: number }).__xss ?? null,
    imgs: document.querySelectorAll("main img").length,
    scripts: [...document.querySelectorAll("script")].filter((s) => !s.src).length,
    italics: document.querySelectorAll("main i, main b").length,
  }));
  assert.deepEqual(injected, { xss: null, imgs: 0, scripts: 0, italics: 0 });
  await shot(page, "21-xss-schema");
  await noProblems(page);
  await page.close();
  await admin.deleteDatabase(db);
});

test("keyboard only: sign in, open a database, run a query, reach its result; focus is visible", async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  await page.waitForSelector("#apikey");
  // The key field has focus on load.
  assert.equal(await page.evaluate(() => document.activeElement?.id), "apikey");
  await page.keyboard.insertText(ADMIN_KEY);
  await page.keyboard.press("Enter");
  await page.waitForSelector(`tr[data-db="${shop}"]`);
  // Tab until the database's link has focus, checking each focused element shows a focus ring.
  let found = false;
  for (let i = 0; i < 40 && !found; i++) {
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el) return null;
      const cs = getComputedStyle(el);
      return { text: el.textContent, tag: el.tagName, outline: cs.outlineStyle, width: cs.outlineWidth };
    });
    assert.ok(f && f.outline !== "none" && f.width !== "0px", `no visible focus on ${JSON.stringify(f)}`);
    found = f.tag === "A" && f.text === shop;
  }
  assert.ok(found, "the database link was not reachable with Tab");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".cm-content");
  for (let i = 0; i < 20; i++) {
    if (await page.evaluate(editorFocused)) break;
    await page.keyboard.press("Tab");
  }
  assert.ok(await page.evaluate(editorFocused), "the editor was not reachable with Tab");
  // Select all and delete first: replacing a selection straight away with Input.insertText makes
  // Chromium's editing code write a style attribute into the editor, which the CSP blocks (and
  // CodeMirror redraws anyway); typed keys do not.
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText("SELECT count(*) AS n FROM customers");
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(() => document.querySelector("[data-testid=result] .rbody .cell")?.textContent === "2");
  // Tab leaves the editor (no focus trap) and reaches the result, which scrolls with the keyboard.
  for (let i = 0; i < 20; i++) {
    if (await page.evaluate(() => document.activeElement?.getAttribute("data-testid") === "result")) break;
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "result");
  // No completion list is left open behind the focus.
  assert.equal(await page.$(".cm-tooltip-autocomplete"), null);
  await noProblems(page);
  // (Checked before the screenshot: Playwright's own caret hiding shows up as a style-src-attr
  // report while the focus is in the result table.)
  await shot(page, "22-keyboard-result-focused");
  await page.close();
});

test("phone width and dark mode: no sideways page scroll, every page renders", async () => {
  const page = await newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "dark" });
  await signIn(page, ADMIN_KEY);
  await page.waitForSelector(`tr[data-db="${shop}"]`);
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const widest = () =>
    page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5)
        .map((e) => `${e.tagName}.${[...e.classList].join(".")}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`),
    );
  assert.ok((await overflow()) <= 0, `page is ${await overflow()} px too wide: ${await widest()}`);
  await shot(page, "23-phone-dark-databases");
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "SELECT * FROM products");
  await run(page);
  assert.ok((await overflow()) <= 0, `console is ${await overflow()} px too wide: ${await widest()}`);
  await shot(page, "24-phone-dark-console");
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/schema`);
  await page.waitForSelector("[data-testid=fk-diagram]");
  assert.ok((await overflow()) <= 0, `schema is ${await overflow()} px too wide: ${await widest()}`);
  // Key badges stay on one line each in the narrow cards ("FK → orders" does not break).
  const badges = await page.$$eval("article.table-card .badge", (bs) =>
    bs.map((b) => ({ text: b.textContent, height: b.getBoundingClientRect().height, font: parseFloat(getComputedStyle(b).fontSize) })),
  );
  assert.ok(badges.some((b) => b.text === "FK → orders"), JSON.stringify(badges));
  // One line is about 1.2 font sizes high; two would pass 2.
  for (const b of badges) assert.ok(b.height > 0 && b.height < b.font * 2, `badge wraps: ${JSON.stringify(b)}`);
  await shot(page, "25-phone-dark-schema");
  await page.goto(`${origin}/admin/stats`);
  await page.waitForSelector("[data-testid=stats]");
  await shot(page, "26-phone-dark-admin");
  await noProblems(page);
  await page.close();
});

/** Counts the page's calls of each RPC (grpc-web requests are POSTs to /<service>/<method>). */
function countCalls(page: Page): Record<string, number> {
  const calls: Record<string, number> = {};
  page.on("request", (r) => {
    const m = /\/dbforge\.v1\.\w+\/(\w+)$/.exec(r.url());
    if (m) calls[m[1]!] = (calls[m[1]!] ?? 0) + 1;
  });
  return calls;
}

/**
 * A TCP relay to the gateway whose connections the test can cut, as a network drop would (the
 * browser's own offline switch leaves open streams alone).
 */
async function relay(): Promise<{ origin: string; cut: () => void; close: () => Promise<void> }> {
  const [host, port] = gateway.addr.split(":") as [string, string];
  const open = new Set<Socket>();
  const server = createServer((c) => {
    const u = tcp({ host, port: Number(port) });
    for (const s of [c, u]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => undefined);
    }
    c.pipe(u).pipe(c);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${addr.port}`,
    cut: () => {
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test("the databases page follows other clients' creates and deletes through WatchDatabases, resumes with since after a drop, and polls only when the stream keeps failing", async () => {
  const net = await relay();
  const page = await newPage();
  try {
    const calls = countCalls(page);
    await page.goto(`${net.origin}/`);
    await page.fill("#apikey", ADMIN_KEY);
    await page.click("button[type=submit]");
    await page.waitForSelector(`tr[data-db="${shop}"]`);
    await page.waitForSelector("[data-testid=live-status][data-mode=live]");
    // The list once more when the stream is up (closing the gap between list and stream); then none.
    await page.waitForTimeout(500);
    const lists = calls.ListDatabases ?? 0;
    assert.equal(calls.WatchDatabases, 1);

    // Another client (the Node SDK) creates and deletes: the page follows without a reload or a list call.
    const other = unique("live");
    const t0 = Date.now();
    await admin.createDatabase(other, { labels: { from: "sdk" } });
    await page.waitForSelector(`tr[data-db="${other}"]`, { timeout: 5000 });
    measurements.liveCreateMs = Date.now() - t0;
    assert.equal(await page.textContent(`tr[data-db="${other}"] .label`), "from=sdk");
    await admin.deleteDatabase(other);
    await page.waitForSelector(`tr[data-db="${other}"]`, { state: "detached", timeout: 5000 });
    assert.equal(calls.ListDatabases ?? 0, lists, "updates came from the stream, not from listing");
    await shot(page, "27-databases-live");

    // A dropped stream: what happens meanwhile is replayed from `since` on reconnect, without a list.
    net.cut();
    const missed = unique("missed");
    await admin.createDatabase(missed);
    await page.waitForSelector(`tr[data-db="${missed}"]`, { timeout: 10_000 });
    await page.waitForSelector("[data-testid=live-status][data-mode=live]");
    assert.equal(calls.WatchDatabases, 2, JSON.stringify(calls));
    assert.equal(calls.ListDatabases ?? 0, lists, "the missed event came from the replay, not from listing");
    await admin.deleteDatabase(missed);
    await page.waitForSelector(`tr[data-db="${missed}"]`, { state: "detached", timeout: 5000 });

    // A stream that keeps failing: after three tries the page polls, and still follows.
    await page.route("**/dbforge.v1.DatabaseService/WatchDatabases", (r) => r.abort());
    net.cut();
    await page.waitForSelector("[data-testid=live-status][data-mode=polling]", { timeout: 15_000 });
    assert.match((await page.textContent("[data-testid=live-status]")) ?? "", /polling every 3 s/);
    const polled = unique("polled");
    await admin.createDatabase(polled);
    await page.waitForSelector(`tr[data-db="${polled}"]`, { timeout: 8000 });
    assert.ok((calls.ListDatabases ?? 0) > lists, "polling lists");
    await shot(page, "28-databases-polling");
    await admin.deleteDatabase(polled);
    await page.unroute("**/dbforge.v1.DatabaseService/WatchDatabases");
    // Aborted requests are reported as console errors ("Failed to load resource"): expected here.
    page.problems = page.problems.filter((p) => !/Failed to load resource|ERR_FAILED|ERR_EMPTY_RESPONSE|ERR_CONNECTION/.test(p));
    await noProblems(page);
  } finally {
    await page.close();
    await net.close();
  }
});

test("spawning with a TTL and an idle TTL sets both on the database, and a bad duration is refused with its field named", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.waitForSelector("[data-testid=live-status][data-mode=live]");
  const name = unique("ttl");
  await page.fill("#spawn-name", name);
  await page.fill("#spawn-ttl", "5 parsecs");
  await page.click("button:has-text('Spawn')");
  await page.waitForSelector(".spawn p.error");
  assert.match((await page.textContent(".spawn p.error")) ?? "", /^TTL: "5 parsecs" is not a duration/);
  await assert.rejects(admin.getDatabase(name));
  const before = Date.now();
  await page.fill("#spawn-ttl", "2h");
  await page.fill("#spawn-idle", "1h30m");
  await page.click("button:has-text('Spawn')");
  await page.waitForSelector(`tr[data-db="${name}"]`, { timeout: 10_000 });
  const d = await admin.getDatabase(name);
  assert.equal(d.idleTtlMs, 90 * 60_000);
  const expires = d.expireAt!.getTime() - before;
  assert.ok(expires > 2 * 3_600_000 - 60_000 && expires <= 2 * 3_600_000 + 60_000, `expires in ${expires} ms`);
  assert.match((await page.textContent(`tr[data-db="${name}"] [data-testid=lifecycle]`)) ?? "", /^expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ, idle 1h 30m$/);
  await shot(page, "29-databases-ttl");
  await admin.deleteDatabase(name);
  await noProblems(page);
  await page.close();
});

test("preview shows per statement the rows affected, samples before and after and errors, and changes nothing; the plan and the result are separate views", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(page, "SELECT id, name FROM customers ORDER BY id");
  await run(page);
  // EXPLAIN replaces the result on screen (not stacked above it); a switch brings either back.
  await page.click("button:has-text('Explain')");
  await page.waitForSelector("[data-testid=plan]");
  assert.equal(await page.$("[data-testid=result-output]"), null);
  assert.match((await page.textContent("#plan-title")) ?? "", /^Plan SELECT id, name FROM customers ORDER BY id$/);
  await page.click("[data-testid=output-switch] button:has-text('Result')");
  await page.waitForSelector("[data-testid=result-output]");
  assert.equal(await page.$("[data-testid=plan]"), null);
  assert.deepEqual((await cells(page)).map((r) => r[1]!.text), ["Ada", "Grace"]);

  await typeSql(
    page,
    [
      "UPDATE products SET price = price * 2 WHERE id <= 2;",
      "DELETE FROM order_items WHERE qty > 5;",
      "INSERT INTO customers (id, name) VALUES (9, 'Zed');",
      "SELECT nope FROM nowhere;",
      "SELECT count(*) AS n FROM customers",
    ].join("\n"),
  );
  await page.click("button:has-text('Preview')");
  await page.waitForSelector("[data-testid=preview]");
  const stmts = await page.$$eval("[data-testid=preview-statement]", (ls) =>
    ls.map((l) => ({
      kind: l.getAttribute("data-kind"),
      affected: l.querySelector("[data-testid=preview-affected]")?.textContent ?? null,
      error: l.querySelector("[data-testid=preview-error]")?.textContent ?? null,
      before: [...l.querySelectorAll("[data-testid=preview-before] tbody tr")].map((r) => [...r.children].map((c) => c.textContent)),
      after: [...l.querySelectorAll("[data-testid=preview-after] tbody tr")].map((r) => [...r.children].map((c) => c.textContent)),
    })),
  );
  assert.equal(stmts.length, 5);
  assert.deepEqual(stmts[0]!.kind, "UPDATE");
  assert.equal(stmts[0]!.affected, "2 rows affected");
  const price = (rows: (string | null)[][]) => rows.map((r) => r[2]);
  assert.deepEqual(price(stmts[0]!.before), ["1.5", "2.25"]);
  assert.deepEqual(price(stmts[0]!.after), ["3", "4.5"]);
  assert.equal(stmts[1]!.kind, "DELETE");
  assert.equal(stmts[1]!.affected, "1 row affected");
  assert.deepEqual(stmts[1]!.before, [["2", "3", "7"]]);
  assert.equal(stmts[2]!.kind, "INSERT");
  assert.equal(stmts[2]!.affected, "1 row affected");
  assert.match(stmts[3]!.error ?? "", /no such table: nowhere/);
  // The last statement sees the transaction with the insert: 3 customers inside the dry run.
  assert.deepEqual(stmts[4]!.after, [["3"]]);
  await shot(page, "30-console-preview");
  // Nothing was changed.
  assert.deepEqual((await admin.execute(shop, "SELECT price FROM products WHERE id <= 2 ORDER BY id")).rows, [[1.5], [2.25]]);
  assert.deepEqual((await admin.execute(shop, "SELECT count(*) FROM customers")).rows, [[2]]);
  assert.deepEqual((await admin.execute(shop, "SELECT count(*) FROM order_items")).rows, [[3]]);
  // All three outputs are at hand.
  assert.deepEqual(await page.$$eval("[data-testid=output-switch] button", (bs) => bs.map((b) => [b.textContent, b.getAttribute("aria-pressed")])), [
    ["Result", "false"],
    ["Plan", "false"],
    ["Preview", "true"],
  ]);
  // The chart belongs to the result: asking for it brings the result back into view.
  await page.click("button:has-text('Chart')");
  await page.waitForSelector("[data-testid=result-output] .chart canvas");
  assert.equal(await page.$("[data-testid=preview]"), null);
  await noProblems(page);
  await page.close();
});

test("keyboard only: arrows move through the result's cells, Enter opens a long value whole, Escape closes it and returns to the cell", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${origin}/db/${encodeURIComponent(shop)}/console`);
  await page.waitForSelector(".cm-content");
  await typeSql(
    page,
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500) SELECT i, 'row ' || i || ' ' || replace(hex(zeroblob(600)), '00', 'ab') AS long FROM c",
  );
  await run(page);
  await page.focus("[data-testid=result]");
  const active = () =>
    page.evaluate(() => {
      const grid = document.querySelector("[data-testid=result]")!;
      const id = grid.getAttribute("aria-activedescendant");
      const el = id ? document.getElementById(id) : null;
      const cs = el ? getComputedStyle(el) : null;
      return el
        ? { row: Number(el.closest(".rrow")!.getAttribute("data-index")), col: Number(el.getAttribute("aria-colindex")), outline: cs!.outlineStyle, width: cs!.outlineWidth, focused: document.activeElement === grid }
        : null;
    });
  assert.deepEqual(await active(), { row: 0, col: 1, outline: "solid", width: "3px", focused: true });
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowDown");
  assert.deepEqual(await active(), { row: 1, col: 2, outline: "solid", width: "3px", focused: true });
  await shot(page, "31-result-active-cell");
  // The cell shows the start of its value; Enter opens all of it, focused in the panel.
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=cell-detail]");
  const opened = await page.evaluate(() => ({
    focused: document.activeElement?.tagName,
    text: document.activeElement?.textContent ?? "",
    head: document.querySelector("[data-testid=cell-detail] .muted")?.textContent,
  }));
  assert.equal(opened.focused, "PRE");
  assert.equal(opened.text, "row 2 " + "ab".repeat(600));
  assert.match(opened.head ?? "", /^Row 2, column long/);
  await shot(page, "32-result-cell-opened");
  await page.keyboard.press("Escape");
  await page.waitForSelector("[data-testid=cell-detail]", { state: "detached" });
  assert.deepEqual(await active(), { row: 1, col: 2, outline: "solid", width: "3px", focused: true });
  // Ctrl+End: the last cell, scrolled into view in the virtualized table; Space opens it too.
  await page.keyboard.press("Control+End");
  await page.waitForFunction(() => document.querySelector(".cell.active")?.closest(".rrow")?.getAttribute("data-index") === "499");
  await page.keyboard.press(" ");
  await page.waitForSelector("[data-testid=cell-detail]");
  assert.match((await page.textContent("[data-testid=cell-detail] pre")) ?? "", /^row 500 (ab){600}$/);
  await page.keyboard.press("Escape");
  await page.waitForSelector("[data-testid=cell-detail]", { state: "detached" });
  await noProblems(page);
  await page.close();
});

test("an API key made with a label grant, a role and an expiry works on the labelled databases only, reads only, and stops at its expiry", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  const unlabelled = unique("nolabel");
  await admin.createDatabase(unlabelled);
  await page.goto(`${origin}/admin/keys`);
  await page.waitForSelector("[data-testid=keys-table]");
  const name = unique("labelled");
  await page.fill("#key-name", name);
  await page.selectOption("#key-grant-kind", "labels");
  await page.fill("#key-target", "team=web");
  await page.selectOption("#key-role", "read");
  // Expires 6 s from now (the field is the browser's local time, to the second).
  const expiry = new Date(Date.now() + 6000);
  // (Node and the browser run on this machine, in the same time zone.)
  const p2 = (n: number) => String(n).padStart(2, "0");
  const local = `${expiry.getFullYear()}-${p2(expiry.getMonth() + 1)}-${p2(expiry.getDate())}T${p2(expiry.getHours())}:${p2(expiry.getMinutes())}:${p2(expiry.getSeconds())}`;
  await page.fill("#key-expires", local);
  await page.click("button:has-text('Create key')");
  await page.waitForSelector("[data-testid=secret]");
  const secret = (await page.textContent("[data-testid=secret] code")) ?? "";
  assert.match((await page.textContent(`tr[data-key="${name}"]`)) ?? "", /read on labels team=web/);
  await shot(page, "33-admin-key-labels-expiry");
  const key = connect({ endpoint: origin, apiKey: secret });
  try {
    const me = await key.whoAmI();
    assert.deepEqual(me.grants.map((g) => [g.labels, g.role]), [[{ team: "web" }, Role.READ]]);
    assert.ok(Math.abs(me.expiresAt!.getTime() - Math.floor(expiry.getTime() / 1000) * 1000) < 1000, `${me.expiresAt?.toISOString()} vs ${expiry.toISOString()}`);
    // Reads the database labelled team=web; sees no other; writes are refused.
    assert.deepEqual((await key.execute(shop, "SELECT count(*) AS n FROM customers")).rows, [[2]]);
    const visible = (await key.listDatabases()).map((d) => d.name);
    assert.ok(visible.includes(shop) && !visible.includes(unlabelled), JSON.stringify(visible));
    await assert.rejects(key.execute(unlabelled, "SELECT 1"), (e: Error) => /NOT_FOUND|PERMISSION_DENIED/.test(e.message));
    await assert.rejects(key.execute(shop, "DELETE FROM customers"), (e: Error) => /PERMISSION_DENIED|read-only|readonly/i.test(e.message));
    assert.deepEqual((await admin.execute(shop, "SELECT count(*) FROM customers")).rows, [[2]]);
    // After its expiry the gateway refuses it.
    await new Promise((r) => setTimeout(r, Math.max(0, expiry.getTime() + 1500 - Date.now())));
    await assert.rejects(key.whoAmI(), (e: Error) => /UNAUTHENTICATED/.test(e.message));
  } finally {
    key.close();
  }
  await admin.deleteDatabase(unlabelled);
  await noProblems(page);
  await page.close();
});
