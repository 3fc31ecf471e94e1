/**
 * Exports, imports, dumps, schema and plans (TransferService, SchemaService) against a live
 * server. Exports, schema and explain run over both Node transports (gRPC and grpc-web);
 * imports need gRPC (client streaming), and over grpc-web they must fail fast and clearly.
 */
import assert from "node:assert/strict";
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { connect as tcpConnect } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  AlreadyExists,
  Backend,
  Cancelled,
  Code,
  ColumnType,
  DBForgeError,
  ExportFormat,
  InvalidArgument,
  NotFound,
  TableKind,
  Unimplemented,
  ValueKind,
  collectBytes,
  collectText,
  connect,
  walkPlan,
  type DBForgeClient,
  type SqlValue,
} from "../src/node.js";
import { ExportFormat as PbExportFormat } from "../src/gen/dbforge/v1/transfer_pb.js";
import { startServer, unique, type TestServer } from "./server.js";

// NULL next to the empty string, unicode, quotes, delimiters and line breaks inside fields.
const AWKWARD: SqlValue[][] = [
  [1, "plain", 1.5],
  [2, null, null],
  [3, "", 0],
  [4, 'say "hi", then leave', -2.25],
  [5, "line one\nline two", 3],
  [6, "crlf\r\ninside", 4],
  [7, "héllo ✓ 日本語 🚀", 5.5],
  [8, "  padded  ", 6],
  [9, 'only"quote', 7],
  [10, "semi;colon,comma", 8],
];
const PEOPLE = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)";
const BAD_CSV = 'id,name\r\n1,"two\r\nlines"\r\n2,c\r\nx,d\r\n3\r\n4,e\r\n';
const SCRIPT = `
-- a comment; with a semicolon
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, n INTEGER DEFAULT 0);
CREATE TABLE log (note_id INTEGER, what TEXT);
CREATE TRIGGER note_added AFTER INSERT ON notes BEGIN
  INSERT INTO log VALUES (NEW.id, 'added; really');
END;
INSERT INTO notes (body) VALUES ('a; b'), ('it''s');
/* block comment; */ UPDATE notes SET n = n + 1;
`;

let server: TestServer;
let grpc: DBForgeClient;
let dir: string;
before(async () => {
  server = await startServer();
  grpc = connect({ endpoint: server.endpoint, timeoutMs: 60_000 });
  dir = mkdtempSync(join(tmpdir(), "dbforge-ts-transfer-"));
});
after(async () => {
  grpc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh SQLite database for the body, pruned afterwards. */
async function withDb<T>(fn: (db: string) => Promise<T>): Promise<T> {
  const db = unique("tsx");
  await grpc.createDatabase(db);
  try {
    return await fn(db);
  } finally {
    await grpc.deleteDatabase(db, { allowMissing: true });
  }
}

async function people(db: string): Promise<void> {
  await grpc.execute(db, PEOPLE);
  await grpc.batch(db, AWKWARD.map((r) => ["INSERT INTO people (id, name, score) VALUES (?, ?, ?)", r] as const), { transaction: true });
}

async function rows(db: string, table: string): Promise<SqlValue[][]> {
  return (await grpc.execute(db, `SELECT * FROM "${table}" ORDER BY 1`)).rows;
}

async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => DBForgeError, check?: (e: DBForgeError) => void): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    check?.(e);
    return true;
  });
}

test("CSV export → import round trip keeps NULLs, unicode, quotes and line breaks", () =>
  withDb(async (src) =>
    withDb(async (dst) => {
      await people(src);
      const exp = await grpc.exportTable(src, "people");
      const data = await exp.bytes();
      assert.equal(exp.rows, AWKWARD.length);
      assert.equal(exp.done, true);
      const text = new TextDecoder().decode(data);
      assert.ok(text.startsWith("id,name,score\r\n"));
      assert.ok(text.includes('4,"say ""hi"", then leave",-2.25\r\n'));
      assert.ok(text.includes("\r\n2,,\r\n"));
      assert.ok(text.includes('\r\n3,"",'));

      await grpc.execute(dst, PEOPLE);
      // Tiny chunks split quoted fields, CRLFs and multi-byte characters across messages.
      const r = await grpc.importCsv(dst, "people", data, { chunkSize: 7 });
      assert.deepEqual(r, { rowsRead: 10, rowsInserted: 10, rowsRejected: 0, rejected: [], tableCreated: false });
      assert.deepEqual(await rows(dst, "people"), AWKWARD);

      // The other sources: the text, a file stream, a sync iterable; and a pipeline to a file.
      const path = join(dir, "people.csv");
      await pipeline(Readable.from(await grpc.exportTable(src, "people")), createWriteStream(path));
      assert.deepEqual(new Uint8Array(readFileSync(path)), data);
      const sources = [text, createReadStream(path, { highWaterMark: 5 }), [data.subarray(0, 50), data.subarray(50)]];
      for (const [i, source] of sources.entries()) {
        await grpc.execute(dst, PEOPLE.replace("people", `copy${i}`));
        assert.equal((await grpc.importCsv(dst, `copy${i}`, source)).rowsInserted, AWKWARD.length);
        assert.deepEqual(await rows(dst, `copy${i}`), AWKWARD);
      }
      assert.equal(await collectText(await grpc.exportTable(dst, "copy1")), text);
    }),
  ));

test("CSV options: delimiter, nullText, no header", () =>
  withDb(async (db) => {
    await people(db);
    const text = await (await grpc.exportQuery(db, "SELECT id, name FROM people WHERE id <= ? ORDER BY id", [3], { delimiter: ";", nullText: "NULL" })).text();
    const lines = text.split("\r\n");
    assert.deepEqual(lines.slice(0, 3), ["id;name", "1;plain", "2;NULL"]);
    assert.ok(['3;""', "3;"].includes(lines[3]!));
    await grpc.execute(db, "CREATE TABLE t (id INTEGER, name TEXT)");
    assert.equal((await grpc.importCsv(db, "t", text, { delimiter: ";", nullText: "NULL" })).rowsInserted, 3);
    const r = await grpc.importCsv(db, "t", "4,four\r\n5,five\r\n", { noHeader: true });
    assert.equal(r.rowsInserted, 2);
    assert.deepEqual(await rows(db, "t"), [[1, "plain"], [2, null], [3, ""], [4, "four"], [5, "five"]]);
  }));

test("importCsv creates tables, and skipBadRows reports file lines", () =>
  withDb(async (db) => {
    const csv = "id,price,code\r\n1,1.5,007\r\n2,2,010\r\n";
    const made = await grpc.importCsv(db, "items", csv, { create: { code: ColumnType.TEXT } });
    assert.equal(made.tableCreated, true);
    const items = (await grpc.getSchema(db, "items")).table("items")!;
    assert.deepEqual(items.columns.map((c) => c.kind), [ValueKind.INT, ValueKind.FLOAT, ValueKind.TEXT]);
    assert.deepEqual(await rows(db, "items"), [[1, 1.5, "007"], [2, 2, "010"]]);
    await rejectsWith(grpc.importCsv(db, "items", csv, { create: true }), AlreadyExists);

    const types = { id: ColumnType.INTEGER, name: ColumnType.TEXT };
    await rejectsWith(grpc.importCsv(db, "strict", BAD_CSV, { create: types }), InvalidArgument, (e) => assert.match(e.rawMessage, /line 5/));
    const r = await grpc.importCsv(db, "lenient", BAD_CSV, { create: types, skipBadRows: true });
    assert.deepEqual([r.rowsRead, r.rowsInserted, r.rowsRejected, r.tableCreated], [5, 3, 2, true]);
    assert.deepEqual(r.rejected.map((x) => x.line), [5, 6]);
    assert.ok(r.rejected.every((x) => x.reason.length > 0));
    assert.deepEqual(await rows(db, "lenient"), [[1, "two\r\nlines"], [2, "c"], [4, "e"]]);
  }));

test("import errors: the server's, and the source's own", () =>
  withDb(async (db) => {
    await rejectsWith(grpc.importCsv(db, "missing", "a\r\n1\r\n"), NotFound);
    // NDJSON key records are for Redis: the SQLite backend says so.
    await rejectsWith(grpc.importNdjson(db, '{"key":"a","type":"string","ttl_ms":0,"value":"x"}\n'), Unimplemented, (e) =>
      assert.equal(e.reason, "UNSUPPORTED"),
    );
    await grpc.execute(db, "CREATE TABLE t (a INTEGER)");
    await rejectsWith(grpc.importCsv(db, "t", "a,nope\r\n1,2\r\n"), InvalidArgument, (e) => assert.match(e.rawMessage, /nope/));
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new TextEncoder().encode("a\r\n1\r\n");
      throw new Error("disk gone");
    }
    await assert.rejects(grpc.importCsv(db, "t", broken()), /disk gone/);
    // Aborting while the file is still being sent cancels the import: nothing is applied.
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield new TextEncoder().encode("a\r\n2\r\n");
      await new Promise(() => undefined); // the rest never comes
    }
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    await rejectsWith(grpc.importCsv(db, "t", stalled(), { signal: abort.signal }), Cancelled, (e) => assert.equal(e.code, Code.Canceled));
    await assert.rejects(grpc.importCsv(db, "t", ["a\r\n"] as unknown as Uint8Array[]), TypeError);
    assert.deepEqual(await rows(db, "t"), []);
    await assert.rejects(grpc.exportTable(db, "t", { format: "xml" as "csv" }), RangeError);
  }));

test("importSql runs a script; dumpDatabase → importSql gives the same database", () =>
  withDb(async (src) =>
    withDb(async (dst) => {
      assert.deepEqual(await grpc.importSql(src, SCRIPT, { chunkSize: 5 }), { statements: 5, rowsAffected: 4 });
      assert.deepEqual(await rows(src, "notes"), [[1, "a; b", 1], [2, "it's", 1]]);
      assert.deepEqual(await rows(src, "log"), [[1, "added; really"], [2, "added; really"]]);
      await rejectsWith(grpc.importSql(src, "CREATE TABLE more (x INTEGER);\nINSERT INTO nowhere VALUES (2);\n"), DBForgeError);
      await rejectsWith(grpc.getSchema(src, "more"), NotFound); // the failed script applied nothing

      await people(src);
      await grpc.execute(src, "CREATE VIEW good AS SELECT id, name FROM people WHERE score > 2");
      const dump = await grpc.dumpDatabase(src);
      const script = await dump.text();
      assert.equal(dump.rows, AWKWARD.length + 4);
      assert.match(script, /CREATE TABLE/);
      await grpc.importSql(dst, script);
      for (const t of ["people", "notes", "log", "good"]) assert.deepEqual(await rows(dst, t), await rows(src, t), t);
      const schemaOnly = await grpc.dumpDatabase(src, { schemaOnly: true });
      assert.doesNotMatch(await schemaOnly.text(), /^INSERT/m); // the trigger's INSERT is indented
      assert.equal(schemaOnly.rows, 0);
    }),
  ));

for (const protocol of ["grpc", "grpc-web"] as const) {
  describe(`over ${protocol}`, () => {
    let client: DBForgeClient;
    let db: string;
    before(async () => {
      client = connect({ endpoint: server.endpoint, protocol, timeoutMs: 60_000 });
      db = unique(protocol === "grpc" ? "tsxg" : "tsxw");
      await client.createDatabase(db);
      await client.execute(db, "CREATE TABLE teams (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)");
      await client.execute(
        db,
        "CREATE TABLE players (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams (id) ON DELETE CASCADE, name TEXT NOT NULL DEFAULT 'anon', age INTEGER CHECK (age >= 0))",
      );
      await client.execute(db, "CREATE INDEX players_team ON players (team_id)");
      await client.execute(db, "CREATE VIEW rookies AS SELECT name FROM players WHERE age < 20");
      await client.execute(db, "INSERT INTO teams (name) VALUES ('red'), ('blue')");
    });
    after(async () => {
      await client.deleteDatabase(db, { allowMissing: true });
      client.close();
    });

    test("getSchema describes tables, views and constraints", async () => {
      const s = await client.getSchema(db);
      assert.deepEqual(s.tables.map((t) => t.name).sort(), ["players", "rookies", "teams"]);
      const players = s.table("players")!;
      assert.equal(players.kind, TableKind.TABLE);
      assert.deepEqual(players.columns.map((c) => c.name), ["id", "team_id", "name", "age"]);
      assert.deepEqual(players.primaryKey, ["id"]);
      const name = players.columns.find((c) => c.name === "name")!;
      assert.deepEqual([name.declaredType, name.kind, name.nullable, name.defaultExpression], ["TEXT", ValueKind.TEXT, false, "'anon'"]);
      assert.equal(players.columns.find((c) => c.name === "age")!.defaultExpression, undefined);
      assert.deepEqual(
        players.foreignKeys.map((f) => [f.columns, f.referencedTable, f.referencedColumns, f.onDelete]),
        [[["team_id"], "teams", ["id"], "CASCADE"]],
      );
      assert.ok(players.indexes.some((i) => i.name === "players_team" && !i.unique));
      assert.ok(players.checks.some((c) => c.expression.includes("age >= 0")));
      assert.equal(s.table("teams")!.rowEstimate, 2);
      assert.equal(s.table("rookies")!.kind, TableKind.VIEW);
      assert.equal(s.keySpace, undefined);
      assert.match(s.text, /CREATE TABLE/);
      const one = await client.getSchema(db, "teams");
      assert.deepEqual(one.tables.map((t) => t.name), ["teams"]);
      await rejectsWith(client.getSchema(db, "nope"), NotFound);
    });

    test("explain flags a full scan, not an index search", async () => {
      const scan = await client.explain(db, "SELECT * FROM players WHERE name = ?", ["x"]);
      assert.deepEqual(scan.fullScans, ["players"]);
      assert.ok([...walkPlan(scan.nodes)].some((n) => n.fullScan && n.relation === "players"));
      const seek = await client.explain(db, "SELECT * FROM players WHERE team_id = ?", [1]);
      assert.deepEqual(seek.fullScans, []);
      assert.ok([...walkPlan(seek.nodes)].some((n) => n.detail.includes("players_team")));
      await rejectsWith(client.explain(db, "SELECT 1", [], { analyze: true }), Unimplemented);
    });

    test("exports stream in every format", async () => {
      const csv = await (await client.exportTable(db, "teams")).text();
      assert.equal(csv, "id,name\r\n1,red\r\n2,blue\r\n");
      const json = JSON.parse(await (await client.exportTable(db, "teams", { format: "json" })).text()) as unknown;
      assert.deepEqual(json, [{ id: 1, name: "red" }, { id: 2, name: "blue" }]);
      const nd = await client.exportQuery(db, "SELECT name FROM teams ORDER BY id DESC", [], { format: ExportFormat.NDJSON });
      assert.deepEqual((await nd.text()).trim().split("\n").map((l) => JSON.parse(l) as unknown), [{ name: "blue" }, { name: "red" }]);
      assert.equal(nd.rows, 2);
      // 100k rows arrive in many chunks, counted.
      const big = await client.exportQuery(
        db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c",
        [100_000],
        { format: "ndjson" },
      );
      let chunks = 0;
      let newlines = 0;
      for await (const c of big) {
        chunks++;
        for (const b of c) if (b === 10) newlines++;
      }
      assert.ok(chunks > 10, `${chunks} chunks`);
      assert.equal(newlines, 100_000);
      assert.equal(big.rows, 100_000);
      // Leaving the loop early cancels an endless export.
      const endless = await client.exportQuery(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c");
      for await (const c of endless) {
        assert.equal(new TextDecoder().decode(c.subarray(0, 6)), "x\r\n1\r\n");
        break;
      }
      assert.ok((await collectBytes(await client.dumpDatabase(db))).length > 0);
      await rejectsWith(client.exportTable(db, "nope"), NotFound);
      await rejectsWith(client.exportQuery(db, "SELEC 1"), InvalidArgument, (e) => assert.equal(e.reason, "SQL_ERROR"));
    });

    if (protocol === "grpc-web") {
      test("imports fail fast: grpc-web cannot stream requests", async () => {
        for (const call of [
          client.importCsv(db, "teams", "id,name\r\n3,green\r\n"),
          client.importSql(db, "INSERT INTO teams (name) VALUES ('green');"),
          client.importNdjson(db, "{}\n"),
        ]) {
          await rejectsWith(call, Unimplemented, (e) => {
            assert.equal(e.code, Code.Unimplemented);
            assert.match(e.rawMessage, /grpc-web cannot \(no client streaming/);
          });
        }
        assert.deepEqual((await client.execute(db, "SELECT count(*) FROM teams")).rows, [[2]]);
      });
    }
  });
}

test("ExportFormat and TableKind are the proto's enums", () => {
  assert.equal(ExportFormat, PbExportFormat);
  assert.deepEqual([TableKind.TABLE, TableKind.VIEW], [1, 2]);
});

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: "127.0.0.1", port, timeout: 1000 });
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => resolve(false));
    sock.once("timeout", () => (sock.destroy(), resolve(false)));
  });
}

test("Redis: dumpDatabase → importNdjson, and the key-space summary", async (t) => {
  if (!(await reachable(6379))) {
    if (process.env.DBFORGE_REQUIRE_BACKENDS === "1") throw new Error("Redis 127.0.0.1:6379 unreachable");
    t.skip("skipping Redis transfer test: 127.0.0.1:6379 unreachable");
    return;
  }
  const redis = await startServer(["--insecure-no-auth", "--redis-url", "redis://127.0.0.1:6379"]);
  const c = connect({ endpoint: redis.endpoint, timeoutMs: 60_000 });
  const [src, dst] = [unique("tsr"), unique("tsr")];
  try {
    await c.createDatabase(src, { backend: Backend.REDIS });
    await c.createDatabase(dst, { backend: Backend.REDIS });
    await c.execute(src, "SET user:1:name Ada");
    await c.execute(src, "SET user:2:name Alan");
    await c.execute(src, "SET session:x 1 PX 600000");
    const dump = await c.dumpDatabase(src);
    const text = await dump.text();
    assert.equal(dump.rows, 3);
    const keys = text.trim().split("\n").map((l) => (JSON.parse(l) as { key: string }).key).sort();
    assert.deepEqual(keys, ["session:x", "user:1:name", "user:2:name"]);
    assert.equal(await c.importNdjson(dst, text, { chunkSize: 16 }), 3);
    assert.deepEqual((await c.execute(dst, "GET user:2:name")).rows, [["Alan"]]);
    const s = await c.getSchema(dst);
    assert.deepEqual(s.tables, []);
    assert.equal(s.keySpace?.totalKeys, 3);
    // Numeric ids become `*`; a lone word stays as it is.
    assert.deepEqual(
      s.keySpace?.patterns.map((p) => [p.pattern, p.type, p.count]),
      [["user:*:name", "string", 2], ["session:x", "string", 1]],
    );
    assert.equal(s.keySpace?.patterns[1]?.withTtl, 1);
    await rejectsWith(c.importNdjson(dst, '{"key": "bad"\n'), InvalidArgument);
  } finally {
    await c.deleteDatabase(src, { allowMissing: true });
    await c.deleteDatabase(dst, { allowMissing: true });
    c.close();
    await redis.stop();
  }
});
