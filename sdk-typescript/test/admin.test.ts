/** The admin calls resolve to the SDK's own objects (src/admin.ts), not generated messages:
 * conversions field by field, the shapes a live server's answers arrive in, and the README's example. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { apiKeyFromPb, auditEventFromPb, auditVerdictFromPb, serverStatsFromPb } from "../src/admin.js";
import { ApiKeySchema, GrantSchema, LabelSelectorSchema } from "../src/gen/dbforge/v1/access_pb.js";
import {
  AuditEventSchema,
  GetServerStatsResponseSchema,
  VerifyAuditLogResponseSchema,
} from "../src/gen/dbforge/v1/operations_pb.js";
import { Backend } from "../src/gen/dbforge/v1/types_pb.js";
import { Grant, Role, connect } from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const ADMIN_KEY = "ts-admin-key-0123456789abcdef";
const HERE = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname);

test("an API key converts every field, with unset times undefined", () => {
  const key = apiKeyFromPb(
    create(ApiKeySchema, {
      id: "k1",
      name: "agent",
      canCreate: true,
      createQuota: 3,
      grants: [
        create(GrantSchema, { target: { case: "database", value: "reports" }, role: Role.READ }),
        create(GrantSchema, { target: { case: "pattern", value: "agent-*" }, role: Role.OWNER }),
        create(GrantSchema, { target: { case: "labels", value: create(LabelSelectorSchema, { labels: { team: "x" } }) }, role: Role.WRITE }),
      ],
      createdAt: create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 5_000_000 }),
      expiresAt: create(TimestampSchema, { seconds: 1_800_000_000n }),
    }),
  );
  assert.deepEqual(key, {
    id: "k1",
    name: "agent",
    admin: false,
    canCreate: true,
    createQuota: 3,
    grants: [
      { database: "reports", pattern: "", labels: {}, role: Role.READ },
      { database: "", pattern: "agent-*", labels: {}, role: Role.OWNER },
      { database: "", pattern: "", labels: { team: "x" }, role: Role.WRITE },
    ],
    createdAt: new Date(1_700_000_000_005),
    expiresAt: new Date(1_800_000_000_000),
    revokedAt: undefined,
  });
});

test("server stats, audit records and the verdict convert durations, 64-bit counts and optionals", () => {
  const stats = serverStatsFromPb(
    create(GetServerStatsResponseSchema, {
      uptime: create(DurationSchema, { seconds: 90n, nanos: 500_000_000 }),
      activeConnections: 1n,
      activeStreams: 2n,
      activeSessions: 3n,
      databases: 4n,
      openDatabases: 5n,
      rpcs: [{ rpc: "Execute", calls: 10n, errors: 1n, meanDuration: { nanos: 2_500_000 }, maxDuration: { seconds: 1n } }],
      errorRate: 0.1,
      node: "a1",
      nodes: [
        {
          name: "a1",
          address: "10.0.0.1:50051",
          started: { seconds: 1_700_000_000n },
          heartbeat: { seconds: 1_700_000_060n, nanos: 500_000_000 },
          freeBytes: 1_099_511_627_776n,
        },
      ],
      connectionCaps: [{ backend: Backend.POSTGRES, cap: 48, open: 5 }],
    }),
  );
  assert.deepEqual(stats, {
    uptimeMs: 90_500,
    activeConnections: 1,
    activeStreams: 2,
    activeSessions: 3,
    databases: 4,
    openDatabases: 5,
    rpcs: [{ rpc: "Execute", calls: 10, errors: 1, meanDurationMs: 2.5, maxDurationMs: 1000 }],
    errorRate: 0.1,
    node: "a1",
    nodes: [
      {
        name: "a1",
        address: "10.0.0.1:50051",
        started: new Date(1_700_000_000_000),
        heartbeat: new Date(1_700_000_060_500),
        freeBytes: 1_099_511_627_776,
      },
    ],
    connectionCaps: [{ backend: Backend.POSTGRES, cap: 48, open: 5 }],
  });
  const fields = {
    seq: 7n,
    time: { seconds: 1_700_000_000n },
    keyId: "k1",
    rpc: "/dbforge.v1.QueryService/Execute",
    database: "db",
    statement: "DELETE FROM t",
    statementHash: "ab",
    outcome: "OK",
    duration: { nanos: 1_000_000 },
    prevHash: "01",
    hash: "02",
  };
  const event = auditEventFromPb(create(AuditEventSchema, { ...fields, rowsAffected: 0n }));
  const { seq: _seq, time: _time, duration: _duration, ...same } = fields;
  assert.deepEqual(event, { ...same, seq: 7, time: new Date(1_700_000_000_000), rowsAffected: 0, durationMs: 1 });
  assert.equal(auditEventFromPb(create(AuditEventSchema, fields)).rowsAffected, undefined);
  assert.deepEqual(auditVerdictFromPb(create(VerifyAuditLogResponseSchema, { ok: true, checked: 3n })), {
    ok: true,
    checked: 3,
    firstBrokenSeq: undefined,
    problem: "",
  });
  const broken = create(VerifyAuditLogResponseSchema, { ok: false, checked: 3n, firstBrokenSeq: 2n, problem: "hash" });
  assert.equal(auditVerdictFromPb(broken).firstBrokenSeq, 2);
});

describe("admin calls against a live server", () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    server = await startServer([], { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
    dir = mkdtempSync(join(HERE, ".readme-admin-"));
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("answer with SDK objects, not messages", async () => {
    const admin = connect({ endpoint: server.endpoint, apiKey: ADMIN_KEY });
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 86_400_000);
    const { apiKey } = await admin.createApiKey({ name: unique("typed"), grants: [Grant.database("reports", Role.READ)], expiresAt });
    assert.ok(!("$typeName" in apiKey));
    assert.deepEqual(apiKey.grants, [{ database: "reports", pattern: "", labels: {}, role: Role.READ }]);
    assert.deepEqual(apiKey.expiresAt, expiresAt);
    assert.ok(apiKey.createdAt instanceof Date && apiKey.revokedAt === undefined);
    assert.equal(await admin.revokeApiKey(apiKey.id), true);
    const revoked = (await admin.listApiKeys({ includeInactive: true })).find((k) => k.id === apiKey.id);
    assert.ok(revoked?.revokedAt instanceof Date);
    const stats = await admin.serverStats();
    assert.ok(!("$typeName" in stats) && typeof stats.databases === "number" && stats.uptimeMs >= 0);
    assert.ok(stats.rpcs.every((r) => typeof r.calls === "number" && typeof r.meanDurationMs === "number"));
    // One gateway on its own catalog: it is the only node, with the address it bound.
    assert.deepEqual(
      stats.nodes.map((n) => n.name),
      [stats.node],
    );
    const [self] = stats.nodes;
    assert.ok(self?.heartbeat instanceof Date && self.address.includes(":"));
    const { events } = await admin.listAuditEvents({ pageSize: 5 });
    assert.ok(events.length > 0 && events.every((e) => typeof e.seq === "number" && e.time instanceof Date));
    const verdict = await admin.verifyAuditLog();
    assert.deepEqual([verdict.ok, verdict.firstBrokenSeq, typeof verdict.checked], [true, undefined, "number"]);
    admin.close();
  });

  test("the README's admin example runs", async () => {
    const [block] = [...readFileSync(join(HERE, "..", "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => b.includes("whoAmI()"));
    process.env.DBFORGE_ENDPOINT = server.endpoint;
    process.env.DBFORGE_API_KEY = ADMIN_KEY;
    const logs: unknown[][] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => void logs.push(a);
    try {
      const file = join(dir, "admin.ts");
      writeFileSync(file, block!);
      await import(pathToFileURL(file).href);
    } finally {
      console.log = orig;
      delete process.env.DBFORGE_ENDPOINT;
      delete process.env.DBFORGE_API_KEY;
    }
    assert.deepEqual(logs, [
      [true, undefined, true, true],
      [true, true],
    ]);
  });
});
