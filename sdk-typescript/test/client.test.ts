/**
 * The client against a live server over both Node transports: gRPC over HTTP/2 and grpc-web
 * over HTTP/1.1. Every method, values, streaming, errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AlreadyExists,
  Backend,
  CalendarDate,
  Code,
  ColumnType,
  DBForgeError,
  DatabaseEventType,
  DatabaseStatus,
  Decimal,
  DeadlineExceeded,
  FailedPrecondition,
  Filter,
  InvalidArgument,
  NotFound,
  OutOfRange,
  PermissionDenied,
  ResourceExhausted,
  TimeOfDay,
  Truncation,
  Unavailable,
  SDK_WORDS,
  Unimplemented,
  ValueKind,
  connect,
  errorFor,
  float,
  json,
  optionsFromEnv,
  rawJson,
  sdkWords,
  uuid,
  type DBForgeClient,
} from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const STREAM =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x, 'row-' || x, x * 0.5 FROM c";

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

async function rejectsWith<E extends DBForgeError>(
  p: Promise<unknown>,
  cls: new (...a: never[]) => E,
  code: Code,
  check?: (e: E) => void,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.ok(e instanceof DBForgeError);
    assert.equal(e.code, code);
    check?.(e);
    return true;
  });
}

for (const protocol of ["grpc", "grpc-web"] as const) {
  describe(`over ${protocol}`, () => {
    let client: DBForgeClient;
    let db: string;
    before(async () => {
      client = connect({ endpoint: server.endpoint, protocol, timeoutMs: 60_000 });
      db = unique(protocol === "grpc" ? "tsg" : "tsw");
      await client.createDatabase(db);
    });
    after(async () => {
      await client.deleteDatabase(db, { allowMissing: true });
      client.close();
    });

    test("preview: samples before and after, errors per statement, nothing committed", async () => {
      const t = unique("pv").replace(/-/g, "_");
      await client.execute(db, `CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT UNIQUE)`);
      await client.execute(db, `INSERT INTO ${t} (v) VALUES ('a'), ('b')`);
      const [update, insert, dup] = await client.preview(
        db,
        [
          [`UPDATE ${t} SET v = v || ? WHERE id = ?`, ["!", 2]],
          `INSERT INTO ${t} (v) VALUES ('c')`,
          `INSERT INTO ${t} (v) VALUES ('a')`,
        ],
        { sampleRows: 3 },
      );
      assert.equal(update!.kind, "UPDATE");
      assert.equal(update!.rowsAffected, 1);
      assert.deepEqual([update!.before, update!.after], [[[2, "b"]], [[2, "b!"]]]);
      assert.ok(update!.plan);
      assert.deepEqual(insert!.after, [[3, "c"]]);
      assert.ok(dup!.error instanceof FailedPrecondition);
      assert.equal(dup!.error.reason, "UNIQUE_VIOLATION");
      assert.deepEqual((await client.execute(db, `SELECT id, v FROM ${t} ORDER BY id`)).rows, [[1, "a"], [2, "b"]]);
      await rejectsWith(client.preview(db, ["SELECT 1"], { sampleRows: 1000 }), InvalidArgument, Code.InvalidArgument);
    });

    test("summarize: column summaries instead of rows", async () => {
      const sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100) SELECT x, x % 3 AS m FROM n";
      const got = await client.summarize(db, sql);
      assert.equal(got.summary.rowCount, 100);
      const [x, m] = got.summaries;
      assert.deepEqual([x!.count, x!.distinct, x!.min, x!.max, x!.distinctExact], [100, 100, 1, 100, true]);
      assert.deepEqual(m!.topValues[0], [1, 34]);
      assert.equal((await client.summarize(db, sql, [], { maxRows: 10 })).summary.truncation, Truncation.ROW_LIMIT);
    });

    test("resumable query: pages by summary token, and resumes mid-batch", async () => {
      const sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 250) SELECT x FROM n";
      let rows = await client.query(db, sql, [], { maxRows: 100, resumable: true });
      const got: unknown[] = [];
      for (;;) {
        for await (const r of rows) got.push(r[0]);
        const token = rows.summary?.resumeToken;
        if (!token) break;
        assert.equal(rows.summary?.truncation, Truncation.ROW_LIMIT);
        assert.equal(rows.resumeToken, token);
        rows = await client.resumeQuery(token, { maxRows: 100 });
      }
      assert.deepEqual(got, Array.from({ length: 250 }, (_, i) => BigInt(i + 1)).map((x) => (typeof got[0] === "bigint" ? x : Number(x))));
      assert.equal(rows.resumeToken, undefined);
      // Stopping part way through a batch: the token resumes at the first row not read.
      const partial = await client.query(db, sql, [], { resumable: true });
      const first: unknown[] = [];
      for await (const r of partial) {
        first.push(r[0]);
        if (first.length === 7) break;
      }
      const token = partial.resumeToken;
      assert.ok(token);
      const rest: unknown[] = [];
      for await (const r of await client.resumeQuery(token)) rest.push(r[0]);
      assert.equal(first.length + rest.length, 250);
      assert.equal(Number(rest[0]), 8);
      await rejectsWith(client.resumeQuery("AAAAAAAAAAAAAAAAAAAAAA.0"), NotFound, Code.NotFound);
    });

    test("control plane: create, get, list with paging, delete", async () => {
      const label = unique("run");
      const names = [unique("ctl"), unique("ctl"), unique("ctl")].sort();
      for (const n of names) {
        const c = await client.createDatabase(n, { labels: { run: label } });
        assert.equal(c.created, true);
        assert.equal(c.database.name, n);
        assert.equal(c.database.backend, Backend.SQLITE);
        assert.equal(c.database.status, DatabaseStatus.READY);
        assert.deepEqual(c.database.labels, { run: label });
        assert.equal(c.database.capabilities.placeholder, "?");
        assert.ok(c.database.createdAt instanceof Date);
        assert.ok(Math.abs(c.database.createdAt.getTime() - Date.now()) < 300_000);
      }
      assert.equal((await client.getDatabase(names[1]!)).name, names[1]);
      const listed = await client.listDatabases({ labels: { run: label }, pageSize: 1 });
      assert.deepEqual(listed.map((d) => d.name), names);
      const page = await client.listDatabasesPage({ labels: { run: label }, pageSize: 2 });
      assert.equal(page.databases.length, 2);
      assert.ok(page.nextPageToken);
      const page2 = await client.listDatabasesPage({ labels: { run: label }, pageSize: 2, pageToken: page.nextPageToken });
      assert.deepEqual(page2.databases.map((d) => d.name), [names[2]]);
      assert.equal(page2.nextPageToken, undefined);
      assert.deepEqual(await client.listDatabases({ labels: { run: label }, backend: Backend.REDIS }), []);
      assert.equal((await client.createDatabase(names[0]!, { ifNotExists: true })).created, false);
      await rejectsWith(client.createDatabase(names[0]!), AlreadyExists, Code.AlreadyExists, (e) =>
        assert.match(e.rawMessage, new RegExp(names[0]!)),
      );
      for (const n of names) assert.equal(await client.deleteDatabase(n), true);
      await rejectsWith(client.getDatabase(names[0]!), NotFound, Code.NotFound, (e) => assert.equal(e.reason, "NOT_FOUND"));
      await rejectsWith(client.deleteDatabase(names[0]!), NotFound, Code.NotFound);
      assert.equal(await client.deleteDatabase(names[0]!, { allowMissing: true }), false);
      await rejectsWith(client.createDatabase("Bad Name!"), InvalidArgument, Code.InvalidArgument);
      await rejectsWith(client.createDatabase(unique("pg"), { backend: Backend.POSTGRES }), FailedPrecondition, Code.FailedPrecondition);
    });

    test("forkDatabase: an independent copy owned by the caller", async () => {
      const src = unique("fks");
      const dst = unique("fkd");
      await client.createDatabase(src);
      await client.execute(src, "CREATE TABLE t (x INTEGER)");
      await client.execute(src, "INSERT INTO t VALUES (1)");
      const f = await client.forkDatabase(src, dst, { labels: { kind: "fork" } });
      assert.equal(f.database.name, dst);
      assert.deepEqual(f.database.labels, { kind: "fork" });
      assert.equal(f.method, "sqlite-backup-api");
      assert.ok(f.durationMs >= 0);
      await client.execute(src, "INSERT INTO t VALUES (2)");
      const count = async (d: string) => (await client.execute(d, "SELECT count(*) FROM t")).rows;
      assert.deepEqual(await count(dst), [[1]]);
      assert.deepEqual(await count(src), [[2]]);
      await rejectsWith(client.forkDatabase(src, dst), AlreadyExists, Code.AlreadyExists);
      await rejectsWith(client.forkDatabase(unique("nope"), unique("fkx")), NotFound, Code.NotFound);
      for (const d of [src, dst]) await client.deleteDatabase(d);
    });

    test("TTLs at creation and updateDatabase", async () => {
      const name = unique("ttl");
      const before = Date.now();
      let db = (await client.createDatabase(name, { ttlMs: 3_600_000, idleTtlMs: 1_800_000, backupBeforePrune: true })).database;
      assert.ok(db.expireAt && Math.abs(db.expireAt.getTime() - (before + 3_600_000)) < 60_000);
      assert.equal(db.idleTtlMs, 1_800_000);
      assert.equal(db.backupBeforePrune, true);
      const at = new Date("2100-01-01T00:00:00Z");
      db = await client.updateDatabase(name, { expireAt: at, labels: { team: "a" }, backupBeforePrune: false });
      assert.equal(db.expireAt?.getTime(), at.getTime());
      assert.deepEqual(db.labels, { team: "a" });
      assert.equal(db.backupBeforePrune, false);
      assert.equal(db.idleTtlMs, 1_800_000, "what is not given keeps its value");
      db = await client.updateDatabase(name, { clearTtl: true, clearIdleTtl: true });
      assert.equal(db.expireAt, undefined);
      assert.equal(db.idleTtlMs, undefined);
      await rejectsWith(client.updateDatabase(name, { expireAt: new Date("2000-01-01T00:00:00Z") }), InvalidArgument, Code.InvalidArgument);
      await rejectsWith(client.updateDatabase(unique("nope"), { clearTtl: true }), NotFound, Code.NotFound);
      await client.deleteDatabase(name);
    });

    test("watchDatabases: replay from a sequence, then live", async () => {
      const tag = unique("tag");
      const name = unique("watched");
      await client.createDatabase(name, { labels: { watch: tag } });
      const events = client.watchDatabases({ since: 0, labels: { watch: tag } });
      const created = (await events.next()).value!;
      assert.equal(created.type, DatabaseEventType.CREATED);
      assert.equal(created.database, name);
      assert.deepEqual(created.labels, { watch: tag });
      await client.deleteDatabase(name);
      const deleted = (await events.next()).value!;
      assert.equal(deleted.type, DatabaseEventType.DELETED);
      assert.equal(deleted.sequence, created.sequence + 1);
      await events.return(undefined);
      await rejectsWith(client.watchDatabases({ since: deleted.sequence + 10_000 }).next(), OutOfRange, Code.OutOfRange);
    });

    test("execute and values both ways", async () => {
      await client.execute(db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
      const ins = await client.execute(db, "INSERT INTO people (name, age) VALUES (?, ?), (?, ?)", ["Ada", 36, "Alan", 41]);
      assert.equal(ins.rowsAffected, 2);
      assert.equal(ins.lastInsertId, 2);
      const sel = await client.execute(db, "SELECT id, name, age FROM people WHERE age > ? ORDER BY id", [30]);
      assert.deepEqual(sel.columns.map((c) => c.name), ["id", "name", "age"]);
      assert.deepEqual(sel.columns.map((c) => c.kind), [ValueKind.INT, ValueKind.TEXT, ValueKind.INT]);
      assert.deepEqual(sel.rows, [[1, "Ada", 36], [2, "Alan", 41]]);

      await client.execute(db, "CREATE TABLE v (i INTEGER, big INTEGER, f REAL, f1 REAL, s TEXT, b BLOB, o BOOLEAN, d DECIMAL TEXT, j JSON, ts TIMESTAMP, dd DATE, u UUID, tm TIME, n TEXT)");
      const values = [
        -5,
        -(2n ** 63n),
        3.25,
        float(1),
        "héllo ✓",
        new Uint8Array([0, 1, 254, 255]),
        true,
        new Decimal("-12345678901234567890.000000000012"),
        { a: [1, 2, { b: null }], c: "d" },
        new Date("2024-02-29T23:59:58.123Z"),
        new CalendarDate(1999, 12, 31),
        uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2"),
        new TimeOfDay(13, 14, 15, 500_000_000),
        null,
      ];
      await client.execute(db, `INSERT INTO v VALUES (${values.map(() => "?").join(", ")})`, values);
      const rows = await client.query(db, "SELECT * FROM v");
      assert.deepEqual(rows.columns.map((c) => c.kind), [
        ValueKind.INT, ValueKind.INT, ValueKind.FLOAT, ValueKind.FLOAT, ValueKind.TEXT, ValueKind.BYTES, ValueKind.BOOL,
        ValueKind.DECIMAL, ValueKind.JSON, ValueKind.TIMESTAMP, ValueKind.DATE, ValueKind.UUID, ValueKind.TIME, ValueKind.TEXT,
      ]);
      const [row] = await rows.toArray();
      assert.ok(row);
      assert.equal(row[0], -5);
      assert.equal(row[1], -(2n ** 63n)); // beyond 2^53: a bigint
      assert.equal(typeof row[1], "bigint");
      assert.equal(row[2], 3.25);
      assert.equal(row[3], 1);
      assert.equal(row[4], "héllo ✓");
      assert.deepEqual(row[5], new Uint8Array([0, 1, 254, 255]));
      assert.equal(row[6], true);
      assert.ok(row[7] instanceof Decimal);
      assert.equal(String(row[7]), "-12345678901234567890.000000000012");
      assert.deepEqual(row[8], { a: [1, 2, { b: null }], c: "d" });
      assert.ok(row[9] instanceof Date);
      assert.equal((row[9] as Date).toISOString(), "2024-02-29T23:59:58.123Z");
      assert.deepEqual(row[10], new CalendarDate(1999, 12, 31));
      assert.equal(String(row[10]), "1999-12-31");
      assert.equal(row[11], "7d444840-9dc0-11d1-b245-5ffdce74fad2");
      assert.equal(String(row[12]), "13:14:15.5");
      assert.equal(row[13], null);

      const p = await client.execute(db, "SELECT ?, ?, ?, ?, ?", [null, rawJson('{"x":1}'), [1, 2], json("s"), 2n ** 60n]);
      assert.deepEqual(p.rows, [[null, '{"x":1}', "[1,2]", '"s"', 2n ** 60n]]);
      await assert.rejects(client.execute(db, "SELECT ?", [2n ** 64n]), RangeError);
      await assert.rejects(client.execute(db, "SELECT ?", [Symbol("x") as never]), TypeError);
    });

    test("query streams rows, objects and a summary", async () => {
      await client.execute(db, "CREATE TABLE s (id INTEGER PRIMARY KEY, name TEXT)");
      await client.batch(db, Array.from({ length: 10 }, (_, i) => ["INSERT INTO s (name) VALUES (?)", [`n${i}`]] as const));
      const rows = await client.query(db, "SELECT id, name FROM s WHERE id <= ? ORDER BY id", [3]);
      assert.deepEqual(rows.columnNames, ["id", "name"]);
      assert.equal(rows.summary === undefined, true); // known only at the end
      const objects = [];
      for await (const o of rows.objects()) objects.push(o);
      assert.deepEqual(objects, [{ id: 1, name: "n0" }, { id: 2, name: "n1" }, { id: 3, name: "n2" }]);
      assert.equal(rows.summary?.rowCount, 3);
      assert.equal(rows.summary?.truncation, Truncation.UNSPECIFIED);

      const limited = await client.query(db, "SELECT id FROM s ORDER BY id", [], { maxRows: 4 });
      assert.deepEqual(await limited.toArray(), [[1], [2], [3], [4]]);
      assert.equal(limited.summary?.truncation, Truncation.ROW_LIMIT);

      const early = await client.query(db, "SELECT id FROM s ORDER BY id");
      for await (const r of early) {
        assert.deepEqual(r, [1]);
        break; // leaving the loop cancels the call
      }

      await rejectsWith(client.query(unique("missing"), "SELECT 1"), NotFound, Code.NotFound);
      await rejectsWith(client.query(db, "SELEC 1"), InvalidArgument, Code.InvalidArgument, (e) => {
        assert.equal(e.reason, "SQL_ERROR");
        assert.match(e.rawMessage, /syntax error/);
        assert.match(e.metadata.native_code ?? "", /^SQLITE/);
      });
    });

    test("a 100,000-row streamed query", async () => {
      const n = 100_000;
      const rows = await client.query(db, STREAM, [n]);
      let count = 0;
      let sum = 0;
      let batches = 0;
      for await (const batch of rows.batches()) {
        batches++;
        for (const [x, text, half] of batch) {
          count++;
          sum += x as number;
          if (text !== `row-${x}` || half !== (x as number) * 0.5) assert.fail(`bad row ${x}`);
        }
      }
      assert.equal(count, n);
      assert.equal(sum, (n * (n + 1)) / 2);
      assert.ok(batches > 1);
      assert.equal(rows.summary?.rowCount, n);
    });

    test("batch: all or nothing with statement_index", async () => {
      await client.execute(db, "CREATE TABLE bt (id INTEGER PRIMARY KEY, v TEXT UNIQUE)");
      const results = await client.batch(
        db,
        [{ sql: "INSERT INTO bt (v) VALUES (?)", params: ["a"] }, "INSERT INTO bt (v) VALUES ('b')", ["UPDATE bt SET v = v || ?", ["!"]]],
        { transaction: true },
      );
      assert.deepEqual(results.map((r) => r.rowsAffected), [1, 1, 2]);
      assert.equal(results[0]!.lastInsertId, 1);
      const failing = [["INSERT INTO bt (v) VALUES (?)", ["c"]], ["INSERT INTO bt (v) VALUES (?)", ["a!"]]] as const;
      await rejectsWith(client.batch(db, failing, { transaction: true }), FailedPrecondition, Code.FailedPrecondition, (e) => {
        assert.equal(e.reason, "UNIQUE_VIOLATION");
        assert.equal(e.metadata.statement_index, "1");
      });
      assert.deepEqual((await client.execute(db, "SELECT count(*) FROM bt")).rows, [[2]]);
      await rejectsWith(client.batch(db, failing), FailedPrecondition, Code.FailedPrecondition);
      assert.deepEqual((await client.execute(db, "SELECT count(*) FROM bt")).rows, [[3]]);
    });

    if (protocol === "grpc") {
      test("transactions: commit, rollback on throw, errors keep it open", async () => {
        await client.execute(db, "CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER)");
        await client.execute(db, "INSERT INTO acct VALUES (1, 100), (2, 0)");
        const r = await client.withTransaction(db, async (tx) => {
          await tx.execute("UPDATE acct SET balance = balance - ? WHERE id = ?", [30, 1]);
          const moved = await tx.execute("UPDATE acct SET balance = balance + ? WHERE id = ? RETURNING balance", [30, 2]);
          assert.deepEqual((await tx.execute("SELECT balance FROM acct WHERE id = 1")).rows, [[70]]);
          return moved.rows;
        });
        assert.deepEqual(r, [[30]]);
        assert.deepEqual((await client.execute(db, "SELECT balance FROM acct ORDER BY id")).rows, [[70], [30]]);

        await assert.rejects(
          client.withTransaction(db, async (tx) => {
            await tx.execute("UPDATE acct SET balance = 0");
            throw new Error("boom");
          }),
          /boom/,
        );
        assert.deepEqual((await client.execute(db, "SELECT balance FROM acct ORDER BY id")).rows, [[70], [30]]);

        const tx = await client.transaction(db);
        await rejectsWith(tx.execute("INSERT INTO acct VALUES (1, 5)"), FailedPrecondition, Code.FailedPrecondition, (e) =>
          assert.equal(e.reason, "UNIQUE_VIOLATION"),
        );
        assert.equal(tx.active, true);
        await tx.execute("INSERT INTO acct VALUES (3, 5)");
        await tx.rollback();
        assert.equal(tx.active, false);
        assert.deepEqual((await client.execute(db, "SELECT count(*) FROM acct")).rows, [[2]]);

        const tx2 = await client.transaction(db);
        await tx2.execute("INSERT INTO acct VALUES (3, 5)");
        await tx2.commit();
        assert.deepEqual((await client.execute(db, "SELECT count(*) FROM acct")).rows, [[3]]);
        await rejectsWith(tx2.execute("SELECT 1"), DBForgeError as never, Code.Internal);
        await rejectsWith(client.transaction(unique("missing")), NotFound, Code.NotFound);
      });
    } else {
      test("transactions are refused over grpc-web (no request streaming)", async () => {
        await rejectsWith(client.transaction(db), Unimplemented, Code.Unimplemented);
      });
    }

    test("table helpers", async () => {
      const cols = [
        { name: "id", type: ColumnType.INTEGER, primaryKey: true },
        { name: "title", type: ColumnType.TEXT, notNull: true },
        { name: "done", type: ColumnType.BOOL, default: false },
        { name: "score", type: ColumnType.FLOAT },
        { name: "price", type: ColumnType.DECIMAL },
        { name: "due", type: ColumnType.DATE },
      ];
      assert.equal(await client.createTable(db, "tasks", cols), true);
      assert.equal(await client.createTable(db, "tasks", cols, { ifNotExists: true }), false);
      await rejectsWith(client.createTable(db, "tasks", cols), AlreadyExists, Code.AlreadyExists);
      const n = await client.insertRows(db, "tasks", [
        { title: "write docs", score: 0.5, price: new Decimal("10.10") },
        { title: "ship", done: true, score: 0.9, due: new CalendarDate(2025, 1, 31) },
        { title: "celebrate", score: null },
      ]);
      assert.equal(n, 3);
      await rejectsWith(client.insertRows(db, "tasks", [{ title: "ok" }, { title: null }]), FailedPrecondition, Code.FailedPrecondition, (e) =>
        assert.equal(e.reason, "NOT_NULL_VIOLATION"),
      );
      const all = await (await client.selectRows(db, "tasks", { orderBy: "id" })).toArray();
      assert.equal(all.length, 3);
      assert.deepEqual(all[0]!.slice(0, 4), [1, "write docs", false, 0.5]);
      assert.equal(String(all[0]![4]), "10.10");
      assert.equal(all[1]![2], true);

      const titles = async (opts: Parameters<DBForgeClient["selectRows"]>[2]) =>
        (await (await client.selectRows(db, "tasks", { columns: ["title"], ...opts })).toArray()).map((r) => r[0]);
      assert.deepEqual(await titles({ where: { done: false }, orderBy: "id" }), ["write docs", "celebrate"]);
      assert.deepEqual(await titles({ where: [Filter.gt("score", 0.6)] }), ["ship"]);
      assert.deepEqual(await titles({ where: { score: null } }), ["celebrate"]);
      assert.deepEqual(await titles({ where: Filter.isNotNull("due") }), ["ship"]);
      assert.deepEqual(await titles({ where: { id: [1, 3] }, orderBy: "-id" }), ["celebrate", "write docs"]);
      assert.deepEqual(await titles({ where: [Filter.like("title", "s%")], orderBy: ["-title"] }), ["ship"]);
      assert.deepEqual(await titles({ where: [Filter.isIn("id", [])] }), []);
      assert.deepEqual(await titles({ where: [Filter.ge("id", 2), Filter.le("id", 3), Filter.ne("id", 3)] }), ["ship"]);
      assert.deepEqual(await titles({ where: [Filter.lt("id", 2), Filter.eq("title", "write docs")] }), ["write docs"]);
      assert.deepEqual(await titles({ where: Filter.isNull("due"), orderBy: "id", limit: 1, offset: 1 }), ["celebrate"]);

      assert.equal(await client.updateRows(db, "tasks", { done: true }, { where: { id: [1, 3] } }), 2);
      await rejectsWith(client.updateRows(db, "tasks", { done: false }), InvalidArgument, Code.InvalidArgument);
      assert.equal(await client.updateRows(db, "tasks", { score: 1 }, { all: true }), 3);
      assert.equal(await client.deleteRows(db, "tasks", { where: [Filter.eq("title", "ship")] }), 1);
      await rejectsWith(client.deleteRows(db, "tasks"), InvalidArgument, Code.InvalidArgument);
      assert.equal(await client.deleteRows(db, "tasks", { all: true }), 2);
      assert.deepEqual(await (await client.selectRows(db, "tasks")).toArray(), []);
    });

    test("error classes carry code, reason and message", async () => {
      await rejectsWith(client.execute(db, "ATTACH DATABASE '/tmp/x.db' AS x"), PermissionDenied, Code.PermissionDenied, (e) =>
        assert.equal(e.reason, "FORBIDDEN"),
      );
      await rejectsWith(client.execute(db, "BEGIN"), InvalidArgument, Code.InvalidArgument, (e) =>
        assert.match(e.message, /^INVALID_ARGUMENT: /),
      );
      await rejectsWith(
        client.execute(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c"),
        ResourceExhausted,
        Code.ResourceExhausted,
      );
    });

    test("a server refusal names the SDK's methods, not the gateway's RPCs", async () => {
      await rejectsWith(client.execute(db, "BEGIN"), InvalidArgument, Code.InvalidArgument, (e) => {
        assert.ok(e.rawMessage.endsWith(": use batch(..., { transaction: true }) or client.transaction(database)"), e.rawMessage);
        assert.ok(e.message.startsWith("INVALID_ARGUMENT: ") && e.message.endsWith(e.rawMessage), e.message);
        assert.doesNotMatch(e.message, /ExecuteBatch|Session/);
        // The server's own words stay available.
        assert.ok(e.grpcMessage.endsWith(": use ExecuteBatch with `transaction` or a Session"), e.grpcMessage);
      });
    });

    // Over grpc-web the gateway closes the HTTP/1.1 connection without reading such a body, so
    // the client sees EPIPE (UNAVAILABLE) instead of the status: a server-side gap, not tested here.
    test("a parameter over the message limit is RESOURCE_EXHAUSTED with a reason", { skip: protocol === "grpc-web" }, async () => {
      // 5 MB against the server's default --max-message-size of 4 MiB: gRPC itself refuses the
      // request before DB-Forge sees it, and the SDK reports it as the server's own limits are.
      // A client of its own: the refused bodies must not hold up the shared connection's calls.
      const own = connect({ endpoint: server.endpoint, protocol, timeoutMs: 60_000 });
      await own.execute(db, "CREATE TABLE big (b BLOB)");
      for (const value of [new Uint8Array(5_000_000), "y".repeat(5_000_000)]) {
        await rejectsWith(own.execute(db, "INSERT INTO big VALUES (?)", [value]), ResourceExhausted, Code.ResourceExhausted, (e) => {
          assert.equal(e.reason, "LIMIT_EXCEEDED");
          assert.equal(e.metadata.limit, "max_message_size");
          assert.equal(e.metadata.limit_bytes, String(4 << 20));
          assert.ok(Number(e.metadata.message_bytes) > 5_000_000, e.rawMessage);
          assert.ok(e.rawMessage.startsWith(`the request is ${e.metadata.message_bytes} bytes, `), e.rawMessage);
          assert.match(e.rawMessage, /server's limit of 4194304 bytes \(--max-message-size/);
          assert.match(e.rawMessage, /importCsv/); // what to do instead
        });
      }
      own.close();
      assert.deepEqual((await client.execute(db, "SELECT count(*) FROM big")).rows, [[0]]);
    });

    test("deadline and unreachable server", async () => {
      const slow = connect({ endpoint: server.endpoint, protocol, timeoutMs: 50 });
      await rejectsWith(
        (async () => {
          for await (const _ of await slow.query(db, STREAM, [100_000_000])) {
            // the deadline ends the stream
          }
        })(),
        DeadlineExceeded,
        Code.DeadlineExceeded,
      );
      slow.close();
      const dead = connect({ endpoint: "http://127.0.0.1:9", protocol, timeoutMs: 2000 });
      await rejectsWith(dead.listDatabases(), Unavailable, Code.Unavailable);
      dead.close();
    });
  });
}

test("every gateway phrase is said in the SDK's words", () => {
  const rpcs =
    /ExecuteBatch|QueryService|\bQuery\b|\bExecute\b|\bSession\b|`transaction`|\b(?:CreateTable|InsertRows|SelectRows|UpdateRows|DeleteRows|ExportTable|ExportQuery|DumpDatabase|ImportCsv|ImportSql|ImportNdjson|GetSchema|Explain)\b/;
  assert.ok(SDK_WORDS.length >= 25);
  for (const [server, sdk] of SDK_WORDS) {
    assert.match(server, rpcs); // each phrase names an RPC...
    assert.doesNotMatch(sdk, rpcs); // ...and its replacement none
    const said = sdkWords(`something failed; ${server} (more)`);
    assert.equal(said, `something failed; ${sdk} (more)`);
    assert.doesNotMatch(said, rpcs);
    const e = errorFor(Code.InvalidArgument, server);
    assert.ok(e instanceof InvalidArgument);
    assert.equal(e.rawMessage, sdk);
    assert.equal(e.message, `INVALID_ARGUMENT: ${sdk}`);
    assert.equal(e.grpcMessage, server);
  }
  const cases: [string, string][] = [
    [
      "transaction control (BEGIN …) is not accepted here: use ExecuteBatch with `transaction` or a Session",
      "transaction control (BEGIN …) is not accepted here: use batch(..., { transaction: true }) or client.transaction(database)",
    ],
    [
      "Session is not supported by the redis backend; group statements atomically with ExecuteBatch and `transaction` instead",
      "client.transaction() is not supported by the redis backend; group statements atomically with batch(..., { transaction: true }) instead",
    ],
    ["InsertRows takes at most 10000 rows per call, got 10001", "insertRows() takes at most 10000 rows per call, got 10001"],
    ["Explain with analyze is not supported by the sqlite backend", "explain(..., { analyze: true }) is not supported by the sqlite backend"],
    [
      "SelectRows is not supported by the redis backend; use QueryService.Execute with the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for records)",
      "selectRows() is not supported by the redis backend; use execute() with the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for records)",
    ],
  ];
  for (const [server, sdk] of cases) assert.equal(sdkWords(server), sdk);
  // A message without those phrases is left as it is.
  assert.equal(sdkWords("no such table: Query"), "no such table: Query");
});

test("options from the environment", () => {
  const saved = { ...process.env };
  try {
    process.env.DBFORGE_ENDPOINT = "http://example.invalid:1";
    process.env.DBFORGE_API_KEY = "k-from-env";
    assert.deepEqual(optionsFromEnv({ timeoutMs: 5 }), { endpoint: "http://example.invalid:1", apiKey: "k-from-env", timeoutMs: 5 });
    delete process.env.DBFORGE_ENDPOINT;
    delete process.env.DBFORGE_API_KEY;
    assert.deepEqual(optionsFromEnv(), { endpoint: "http://127.0.0.1:50051" });
  } finally {
    process.env = saved;
  }
});
