/** Lifecycle policies (src/policy.ts) and size quotas: conversions, and the calls against a live
 * server (SQLite, no authentication). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { lifecyclePolicyFromPb, lifecyclePolicyPb } from "../src/policy.js";
import { create } from "@bufbuild/protobuf";
import { LifecyclePolicySchema } from "../src/gen/dbforge/v1/database_pb.js";
import { InvalidArgument, NotFound, ResourceExhausted, connect, type DBForgeClient } from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const MIN = 60_000;

test("a policy round-trips without its output fields", () => {
  const spec = { name: "ci", namePattern: "ci-*", labels: { team: "a" }, idleTtlMs: 5 * MIN, maxDatabasesPerKey: 3, maxBytes: 1n << 20n };
  const back = lifecyclePolicyFromPb(create(LifecyclePolicySchema, lifecyclePolicyPb(spec)));
  assert.deepEqual(back, {
    name: "ci",
    namePattern: "ci-*",
    labels: { team: "a" },
    idleTtlMs: 5 * MIN,
    maxAgeMs: undefined,
    maxDatabasesPerKey: 3,
    maxBytes: 1n << 20n,
    updatedAt: undefined,
    updatedBy: "",
  });
});

describe("lifecycle policies and quotas against a live server", () => {
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

  test("policies are set, listed, applied and deleted", async () => {
    const name = unique("tspol");
    const { policy, created } = await client.setLifecyclePolicy({ name, namePattern: `${name}-*`, maxAgeMs: 60 * MIN, maxBytes: 1 << 20 });
    assert.equal(created, true);
    assert.equal(policy.maxAgeMs, 60 * MIN);
    assert.equal(policy.updatedBy, "-");
    assert.ok((await client.listLifecyclePolicies()).some((p) => p.name === name));
    const db = `${name}-1`;
    await client.createDatabase(db);
    const got = await client.getDatabase(db);
    assert.equal(got.maxBytes, 1n << 20n);
    assert.equal(got.quotaSource, `policy=${name}`);
    const shown = await client.updateDatabase(db, { maxBytes: 4096 * 40 });
    assert.equal(shown.ownMaxBytes, BigInt(4096 * 40));
    assert.equal(shown.quotaSource, "database");
    await client.execute(db, "CREATE TABLE t (v BLOB)");
    await assert.rejects(async () => {
      for (let i = 0; i < 60; i++) await client.execute(db, "INSERT INTO t VALUES (randomblob(8000))");
    }, ResourceExhausted);
    await assert.rejects(client.setLifecyclePolicy({ name: `${name}-x`, namePattern: "x-*" }), InvalidArgument);
    assert.equal(await client.deleteLifecyclePolicy(name), true);
    assert.equal(await client.deleteLifecyclePolicy(name, { allowMissing: true }), false);
    await assert.rejects(client.deleteLifecyclePolicy(name), NotFound);
    await client.deleteDatabase(db);
  });

  test("a fork takes its own TTLs", async () => {
    const src = unique("tssrc");
    await client.createDatabase(src);
    const fork = unique("tsfork");
    const f = await client.forkDatabase(src, fork, { ttlMs: 60 * MIN, idleTtlMs: 10 * MIN });
    assert.equal(f.database.idleTtlMs, 10 * MIN);
    assert.ok(f.database.expireAt);
    await client.deleteDatabase(fork);
    await client.deleteDatabase(src);
  });
});
