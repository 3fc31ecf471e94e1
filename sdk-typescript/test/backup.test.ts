/** Backups, restores and policies (src/backup.ts): conversions field by field, and the whole cycle
 * against a live server (SQLite, the server's default `local` target). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { backupFromPb, durationPb, policyFromPb, policyPb, restoreModePb } from "../src/backup.js";
import {
  BackupManifestSchema,
  BackupPolicySchema,
  BackupSchema,
  BackupStatus as PbBackupStatus,
} from "../src/gen/dbforge/v1/backup_pb.js";
import {
  AlreadyExists,
  Backend,
  BackupStatus,
  InvalidArgument,
  NotFound,
  RestoreMode,
  connect,
  type BackupPolicySpec,
  type DBForgeClient,
} from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const HERE = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOTES = "SELECT id, body FROM notes ORDER BY id";

test("a backup converts times, durations, 64-bit sizes, enums and its manifest", () => {
  const b = backupFromPb(
    create(BackupSchema, {
      id: "bk-1",
      database: "app",
      backend: Backend.SQLITE,
      createdAt: create(TimestampSchema, { seconds: 1_700_000_000n }),
      sizeBytes: 10n,
      status: PbBackupStatus.COMPLETED,
      duration: create(DurationSchema, { seconds: 1n, nanos: 500_000_000 }),
      labels: { k: "v" },
      manifest: create(BackupManifestSchema, { formatVersion: 1, rowCounts: [{ table: "t", rows: 3n }], totalRows: 3n }),
    }),
  );
  assert.ok(!("$typeName" in b));
  assert.deepEqual([b.backend, b.status, b.sizeBytes, b.durationMs], [Backend.SQLITE, BackupStatus.COMPLETED, 10, 1500]);
  assert.deepEqual(b.createdAt, new Date(1_700_000_000_000));
  assert.deepEqual(b.manifest?.rowCounts, [{ table: "t", rows: 3 }]);
  assert.equal(backupFromPb(create(BackupSchema, { status: 9 as PbBackupStatus })).status, BackupStatus.UNSPECIFIED);
  assert.equal(backupFromPb(create(BackupSchema, {})).manifest, undefined);
});

test("a policy round-trips without the fields the server sets", () => {
  const spec: BackupPolicySpec = { name: "nightly", labels: { tier: "prod" }, cron: "0 3 * * *", keepWithinMs: 30 * DAY, target: "archive" };
  const wire = create(BackupPolicySchema, policyPb(spec));
  assert.equal(wire.selector?.selector.case, "labels");
  assert.equal(wire.schedule.case, "cron");
  assert.equal(wire.keepWithin?.seconds, BigInt(30 * 86400));
  assert.equal(wire.nextRunAt, undefined);
  const back = policyFromPb(wire);
  assert.deepEqual(back, {
    name: "nightly",
    database: "",
    pattern: "",
    labels: { tier: "prod" },
    everyMs: undefined,
    cron: "0 3 * * *",
    keepLast: 0,
    keepWithinMs: 30 * DAY,
    target: "archive",
    updatedAt: undefined,
    lastRunAt: undefined,
    nextRunAt: undefined,
    lastError: "",
  });
  // What the server answered can be sent again.
  assert.deepEqual(create(BackupPolicySchema, policyPb(back)), wire);
  const every = create(BackupPolicySchema, policyPb({ name: "app", database: "app", everyMs: 90 * 60_000, keepLast: 3 }));
  assert.deepEqual([every.schedule.case, every.keepWithin], ["every", undefined]);
  assert.equal(policyFromPb(every).everyMs, 90 * 60_000);
});

test("a policy needs exactly one selector and one schedule; modes are taken by name", () => {
  assert.throws(() => policyPb({ name: "x", everyMs: HOUR, keepLast: 1 }), /database, pattern and labels/);
  assert.throws(() => policyPb({ name: "x", database: "a", pattern: "a*", everyMs: HOUR }), /database, pattern and labels/);
  assert.throws(() => policyPb({ name: "x", database: "a", everyMs: HOUR, cron: "0 3 * * *" }), /everyMs and cron/);
  assert.throws(() => policyPb({ name: "x", database: "a" }), /everyMs and cron/);
  assert.deepEqual(durationPb(1.5), create(DurationSchema, { seconds: 0n, nanos: 1_500_000 }));
  assert.deepEqual([restoreModePb("replace"), restoreModePb("new"), restoreModePb(RestoreMode.NEW)], [1, 2, 2]);
  assert.throws(() => restoreModePb("overwrite" as "new"), RangeError);
});

describe("backups against a live server", () => {
  let server: TestServer;
  let client: DBForgeClient;
  before(async () => {
    server = await startServer();
    client = connect({ endpoint: server.endpoint, timeoutMs: 60_000 });
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  async function notesDb(name: string): Promise<string> {
    await client.createDatabase(name);
    await client.execute(name, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
    await client.execute(name, "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    return name;
  }

  test("a backup restores a deleted row in place, after a safety backup", async () => {
    const db = await notesDb(unique("bk"));
    const backup = await client.createBackup(db, { labels: { why: "test" } });
    assert.deepEqual([backup.database, backup.backend, backup.status], [db, Backend.SQLITE, BackupStatus.COMPLETED]);
    assert.ok(backup.sizeBytes > 0 && backup.sha256.length === 64 && backup.createdAt instanceof Date);
    assert.deepEqual(backup.labels, { why: "test" });
    assert.equal(backup.manifest?.totalRows, 3);
    assert.deepEqual(backup.manifest?.rowCounts, [{ table: "notes", rows: 3 }]);

    assert.deepEqual(await client.getBackup(backup.id), backup);
    assert.deepEqual((await client.listBackups({ database: db })).map((b) => b.id), [backup.id]);
    assert.deepEqual((await client.listBackups({ database: db, labels: { why: "test" } })).map((b) => b.id), [backup.id]);
    assert.deepEqual(await client.listBackups({ database: db, status: "failed" }), []);
    const page = await client.listBackupsPage({ database: db, pageSize: 1 });
    assert.deepEqual([page.backups.length, page.nextPageToken], [1, undefined]);

    await client.execute(db, "DELETE FROM notes WHERE id = 2");
    const restored = await client.restoreBackup(backup.id, "replace");
    assert.equal(restored.database.name, db);
    assert.deepEqual((await client.execute(db, NOTES)).rows, [[1, "one"], [2, "two"], [3, "three"]], "the deleted row is back");
    const safety = restored.safetyBackup;
    assert.ok(safety && safety.database === db && safety.status === BackupStatus.COMPLETED);
    assert.equal(safety.manifest?.totalRows, 2);
    assert.deepEqual((await client.listBackups({ database: db })).map((b) => b.id), [safety.id, backup.id], "newest first");

    assert.equal(await client.deleteBackup(backup.id), true);
    await assert.rejects(client.getBackup(backup.id), NotFound);
    assert.equal(await client.deleteBackup(backup.id, { allowMissing: true }), false);
    for (const b of await client.listBackups({ database: db })) await client.deleteBackup(b.id, { allowMissing: true });
    await client.deleteDatabase(db);
  });

  test("a backup restores into a new database, leaving the original alone", async () => {
    const db = await notesDb(unique("bk"));
    const copy = unique("bk-copy");
    const backup = await client.createBackup(db);
    await client.execute(db, "DELETE FROM notes");
    const restored = await client.restoreBackup(backup.id, RestoreMode.NEW, { newName: copy, labels: { from: backup.id } });
    assert.deepEqual([restored.database.name, restored.database.labels], [copy, { from: backup.id }]);
    assert.deepEqual([restored.safetyBackup, restored.rows, typeof restored.durationMs], [undefined, 3, "number"]);
    assert.deepEqual((await client.execute(copy, NOTES)).rows, [[1, "one"], [2, "two"], [3, "three"]]);
    assert.deepEqual((await client.execute(db, NOTES)).rows, [], "the original is untouched");
    await assert.rejects(client.restoreBackup(backup.id, "new", { newName: copy }), AlreadyExists);
    for (const b of await client.listBackups({ database: db })) await client.deleteBackup(b.id, { allowMissing: true });
    await client.deleteDatabase(copy);
    await client.deleteDatabase(db);
  });

  test("policies are set, listed, replaced and deleted", async () => {
    const db = unique("bk-policy");
    await client.createDatabase(db);
    const name = unique("p");
    const nightly = unique("n");
    const spec: BackupPolicySpec = { name, database: db, everyMs: 6 * HOUR, keepLast: 5, keepWithinMs: 7 * DAY };
    const { policy, created } = await client.setBackupPolicy(spec);
    assert.equal(created, true);
    assert.deepEqual(
      [policy.name, policy.database, policy.everyMs, policy.keepLast, policy.keepWithinMs],
      [name, db, 6 * HOUR, 5, 7 * DAY],
    );
    assert.ok(policy.updatedAt instanceof Date && policy.nextRunAt instanceof Date);

    await client.setBackupPolicy({ name: nightly, pattern: `${db.slice(0, 6)}*`, cron: "0 3 * * *", keepLast: 7 });
    assert.equal((await client.setBackupPolicy({ ...policy, keepLast: 9 })).created, false, "the same name replaces");
    const mine = (await client.listBackupPolicies()).filter((p) => p.name === name || p.name === nightly);
    assert.deepEqual(mine.map((p) => p.name), [name, nightly].sort(), "by name");
    assert.equal(mine.find((p) => p.name === name)?.keepLast, 9);
    assert.deepEqual(
      [mine.find((p) => p.name === nightly)?.cron, mine.find((p) => p.name === nightly)?.everyMs],
      ["0 3 * * *", undefined],
    );

    assert.equal(await client.deleteBackupPolicy(nightly), true);
    await assert.rejects(client.deleteBackupPolicy(nightly), NotFound);
    assert.equal(await client.deleteBackupPolicy(nightly, { allowMissing: true }), false);
    await assert.rejects(client.setBackupPolicy({ name: unique("r"), database: db, everyMs: HOUR }), InvalidArgument);
    await client.deleteBackupPolicy(name);
    await client.deleteDatabase(db);
  });

  test("unknown backups and databases are NotFound", async () => {
    await assert.rejects(client.restoreBackup("bk-000000000000-00000000", "replace"), NotFound);
    await assert.rejects(client.createBackup(unique("missing")), NotFound);
  });

  test("the README's backup example runs", async () => {
    const [block] = [...readFileSync(join(HERE, "..", "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => b.includes("restoreBackup("));
    // Inside the package, so "@dbforge/sdk/node" resolves through package.json "exports" (dist/).
    const dir = mkdtempSync(join(HERE, ".readme-backup-"));
    process.env.DBFORGE_ENDPOINT = server.endpoint;
    delete process.env.DBFORGE_API_KEY;
    const logs: unknown[][] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => void logs.push(a);
    try {
      const file = join(dir, "backup.ts");
      writeFileSync(file, block!);
      await import(pathToFileURL(file).href);
    } finally {
      console.log = orig;
      delete process.env.DBFORGE_ENDPOINT;
      rmSync(dir, { recursive: true, force: true });
      for (const b of await client.listBackups({ database: "ledger" })) await client.deleteBackup(b.id, { allowMissing: true });
      await client.deleteDatabase("ledger", { allowMissing: true });
      await client.deleteDatabase("ledger-copy", { allowMissing: true });
      await client.deleteBackupPolicy("ledger-6h", { allowMissing: true });
    }
    assert.deepEqual(logs, [[BackupStatus.COMPLETED, 3], [3, [[3]]], [true], [true, true]]);
  });
});
