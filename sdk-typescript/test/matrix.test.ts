/** docs/sdk-matrix.md: every RPC of every service has a TypeScript method, and it exists. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { AccessService } from "../src/gen/dbforge/v1/access_pb.js";
import { BackupService } from "../src/gen/dbforge/v1/backup_pb.js";
import { DatabaseService } from "../src/gen/dbforge/v1/database_pb.js";
import { OperationsService } from "../src/gen/dbforge/v1/operations_pb.js";
import { QueryService } from "../src/gen/dbforge/v1/query_pb.js";
import { SchemaService } from "../src/gen/dbforge/v1/schema_pb.js";
import { SemanticService } from "../src/gen/dbforge/v1/semantic_pb.js";
import { TableService } from "../src/gen/dbforge/v1/table_pb.js";
import { TransferService } from "../src/gen/dbforge/v1/transfer_pb.js";
import { DBForgeClient } from "../src/index.js";
import { REPO } from "./server.js";

test("every RPC is reachable from a DBForgeClient method", () => {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(join(REPO, "docs", "sdk-matrix.md"), "utf8").split("\n")) {
    const cells = line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
    if (cells.length === 5 && cells[0]!.endsWith("Service") && cells[0] !== "Service") {
      rows.set(`${cells[0]}.${cells[1]}`, [...cells[4]!.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]!));
    }
  }
  const rpcs = [AccessService, BackupService, DatabaseService, OperationsService, QueryService, SchemaService, SemanticService, TableService, TransferService].flatMap((s) =>
    s.methods.map((m) => `${s.name}.${m.name}`),
  );
  assert.deepEqual([...rows.keys()].sort(), rpcs.sort());
  for (const [rpc, methods] of rows) {
    assert.ok(methods.length > 0, `${rpc} has no TypeScript method`);
    for (const m of methods) {
      assert.equal(typeof (DBForgeClient.prototype as unknown as Record<string, unknown>)[m], "function", `${m} (${rpc})`);
    }
  }
});
