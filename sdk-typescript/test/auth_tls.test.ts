/** API keys, OperationsService, and TLS / mutual TLS (certificates made with openssl). */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  Code,
  DBForgeError,
  Grant,
  NotFound,
  PermissionDenied,
  Role,
  Unauthenticated,
  Unavailable,
  connect,
} from "../src/node.js";
import { makeTlsFiles, startServer, unique, type TestServer, type TlsFiles } from "./server.js";

const ADMIN_KEY = "ts-admin-key-0123456789abcdef";

function hasCode(code: Code, cls?: Function) {
  return (e: unknown) => {
    assert.ok(e instanceof DBForgeError, String(e));
    assert.equal(e.code, code, String(e));
    if (cls) assert.ok(e instanceof cls);
    return true;
  };
}

describe("API keys and operations", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer([], { env: { DBFORGE_ADMIN_KEY: ADMIN_KEY } });
  });
  after(async () => server.stop());

  for (const protocol of ["grpc", "grpc-web"] as const) {
    test(`over ${protocol}`, async () => {
      const anonymous = connect({ endpoint: server.endpoint, protocol });
      await assert.rejects(anonymous.listDatabases(), hasCode(Code.Unauthenticated, Unauthenticated));
      anonymous.close();

      const admin = connect({ endpoint: server.endpoint, protocol, apiKey: ADMIN_KEY });
      assert.equal((await admin.whoAmI()).admin, true);
      const prefix = unique("agent");
      const others = unique("admins");
      await admin.createDatabase(others);
      const { apiKey, secret } = await admin.createApiKey({
        name: "agent 42",
        canCreate: true,
        createQuota: 5,
        grants: [Grant.pattern(`${prefix}-*`, Role.OWNER), Grant.labels({ team: "x" }, Role.READ), Grant.database("reports", Role.READ)],
        expiresAt: new Date(Date.now() + 3_600_000),
      });
      assert.equal(apiKey.name, "agent 42");
      assert.equal(apiKey.createQuota, 5);
      assert.ok(secret.startsWith(`dbf_${apiKey.id}_`));
      assert.ok((await admin.listApiKeys()).some((k) => k.id === apiKey.id));

      const agent = connect({ endpoint: server.endpoint, protocol, apiKey: secret });
      assert.equal((await agent.whoAmI()).id, apiKey.id);
      await agent.createDatabase(`${prefix}-scratch`);
      await agent.execute(`${prefix}-scratch`, "CREATE TABLE t (x INTEGER)");
      await assert.rejects(agent.execute(others, "SELECT 1"), hasCode(Code.PermissionDenied, PermissionDenied));
      assert.ok(!(await agent.listDatabases()).some((d) => d.name === others));
      await assert.rejects(agent.serverStats(), hasCode(Code.PermissionDenied));
      await assert.rejects(agent.listApiKeys(), hasCode(Code.PermissionDenied));
      await assert.rejects(agent.listAuditEvents(), hasCode(Code.PermissionDenied));
      await assert.rejects(agent.verifyAuditLog(), hasCode(Code.PermissionDenied));
      assert.equal(await agent.deleteDatabase(`${prefix}-scratch`), true);

      const stats = await admin.serverStats();
      assert.ok(stats.rpcs.length > 0);
      const { events } = await admin.listAuditEvents({ keyId: apiKey.id, pageSize: 100 });
      assert.ok(events.length > 0 && events.every((e) => e.keyId === apiKey.id));
      assert.ok(events.some((e) => e.rpc.endsWith("CreateDatabase")));
      const page = await admin.listAuditEvents({ pageSize: 1 });
      assert.equal(page.events.length, 1);
      assert.ok(page.nextPageToken);
      await admin.deleteDatabase(others);
      const verdict = await admin.verifyAuditLog();
      assert.equal(verdict.ok, true);
      assert.ok(verdict.checked > 0n);

      assert.equal(await admin.revokeApiKey(apiKey.id), true);
      assert.equal(await admin.revokeApiKey(apiKey.id), false);
      assert.ok(!(await admin.listApiKeys()).some((k) => k.id === apiKey.id));
      assert.ok((await admin.listApiKeys({ includeInactive: true })).some((k) => k.id === apiKey.id));
      await assert.rejects(agent.whoAmI(), hasCode(Code.Unauthenticated));
      await assert.rejects(admin.revokeApiKey("no-such-key"), hasCode(Code.NotFound, NotFound));
      agent.close();
      admin.close();
    });
  }
});

describe("TLS", () => {
  let tls: TlsFiles;
  let server: TestServer;
  let mtls: TestServer;
  before(async () => {
    tls = makeTlsFiles();
    server = await startServer(["--insecure-no-auth", "--tls-cert", tls.serverCert, "--tls-key", tls.serverKey], { tls: true });
    mtls = await startServer(
      ["--insecure-no-auth", "--tls-cert", tls.serverCert, "--tls-key", tls.serverKey, "--tls-client-ca", tls.ca],
      { tls: true },
    );
  });
  after(async () => {
    await server.stop();
    await mtls.stop();
    rmSync(tls.dir, { recursive: true, force: true });
  });

  for (const protocol of ["grpc", "grpc-web"] as const) {
    test(`server certificate over ${protocol}`, async () => {
      assert.match(server.endpoint, /^https:/);
      const c = connect({ endpoint: server.endpoint, protocol, caFile: tls.ca, timeoutMs: 10_000 });
      const name = unique("tls");
      await c.createDatabase(name);
      assert.deepEqual((await c.execute(name, "SELECT 1 + 1")).rows, [[2]]);
      assert.equal(await c.deleteDatabase(name), true);
      c.close();
      const untrusted = connect({ endpoint: server.endpoint, protocol, timeoutMs: 5_000 });
      await assert.rejects(untrusted.listDatabases(), hasCode(Code.Unavailable, Unavailable));
      untrusted.close();
    });

    test(`mutual TLS over ${protocol}`, async () => {
      const c = connect({ endpoint: mtls.endpoint, protocol, caFile: tls.ca, certFile: tls.clientCert, keyFile: tls.clientKey, timeoutMs: 10_000 });
      const name = unique("mtls");
      await c.createDatabase(name);
      assert.deepEqual((await c.execute(name, "SELECT 'hi'")).rows, [["hi"]]);
      await c.deleteDatabase(name);
      c.close();
      const noCert = connect({ endpoint: mtls.endpoint, protocol, caFile: tls.ca, timeoutMs: 5_000 });
      await assert.rejects(noCert.listDatabases(), hasCode(Code.Unavailable));
      noCert.close();
      const stranger = connect({ endpoint: mtls.endpoint, protocol, caFile: tls.ca, certFile: tls.strangerCert, keyFile: tls.strangerKey, timeoutMs: 5_000 });
      await assert.rejects(stranger.listDatabases(), hasCode(Code.Unavailable));
      stranger.close();
    });
  }

  test("a certificate without its key is refused up front", () => {
    assert.throws(() => connect({ endpoint: mtls.endpoint, certFile: tls.clientCert }), TypeError);
  });
});
