/**
 * What the admin calls answer: API keys, server figures and audit records, as the SDK's own
 * plain objects rather than the generated messages.
 *
 * Field names are the proto's (camelCase, as protobuf-es writes them), so code written against
 * the messages keeps reading the same properties; the values are JavaScript's own, as in the rest
 * of the SDK (`Database.sizeBytes`, `Summary.elapsedMs`): `Date` for timestamps, milliseconds
 * (`…Ms`, fractional) for durations, `number` for 64-bit counts, `undefined` for a time or
 * number that is not set, and a plain record for label selectors.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { Role, type ApiKey as PbApiKey, type Grant as PbGrant } from "./gen/dbforge/v1/access_pb.js";
import type { Backend } from "./gen/dbforge/v1/types_pb.js";
import type {
  AuditEvent as PbAuditEvent,
  GetServerStatsResponse,
  RpcStats as PbRpcStats,
  VerifyAuditLogResponse,
} from "./gen/dbforge/v1/operations_pb.js";

/**
 * A grant as an API key carries it: `role` on one target, which is exactly one of `database` (a
 * name), `pattern` (`*` stands for any characters) or `labels` (all of them); the other two are
 * empty.
 */
export interface KeyGrant {
  database: string;
  pattern: string;
  labels: Record<string, string>;
  role: Role;
}

/** An API key, never its secret. */
export interface ApiKey {
  /** The key's id (the secret reads `dbf_<id>_…`). */
  id: string;
  /** The name it was created with. */
  name: string;
  /** Whether it may do everything, including the admin calls. */
  admin: boolean;
  /** Whether it may create databases (it owns those it creates). */
  canCreate: boolean;
  /** How many databases it may own at once; 0: no limit. */
  createQuota: number;
  /** Roles on other databases. */
  grants: KeyGrant[];
  /** When it was created. */
  createdAt: Date;
  /** When it stops working; undefined: never. */
  expiresAt: Date | undefined;
  /** When it was revoked; undefined: it was not. */
  revokedAt: Date | undefined;
}

/** Calls of one RPC since the server started. */
export interface RpcStats {
  /** The RPC, e.g. "Execute". */
  rpc: string;
  /** How many calls. */
  calls: number;
  /** How many of them ended with an error. */
  errors: number;
  /** Their mean duration, in milliseconds. */
  meanDurationMs: number;
  /** Their longest duration, in milliseconds. */
  maxDurationMs: number;
}

/** The answer of `serverStats`: the gateway's operational figures now. */
export interface ServerStats {
  /** Time since the server started, in milliseconds. */
  uptimeMs: number;
  /** Open client connections (HTTP/2 and HTTP/1.1). */
  activeConnections: number;
  /** Streamed results being sent now. */
  activeStreams: number;
  /** Open interactive sessions (transactions). */
  activeSessions: number;
  /** Spawned databases. */
  databases: number;
  /** Databases with open connections. */
  openDatabases: number;
  /** Calls, errors and durations per RPC. */
  rpcs: RpcStats[];
  /** Errors over calls, all RPCs together (0 when there were no calls). */
  errorRate: number;
  /** This gateway's node name. */
  node: string;
  /** The gateways sharing this gateway's catalog with a recent heartbeat (itself included). */
  nodes: Node[];
  /** Per server engine, this gateway's share of the server's connection cap. */
  connectionCaps: ConnectionCap[];
}

/** A gateway sharing the catalog, as its last heartbeat recorded it. */
export interface Node {
  /** Its node name. */
  name: string;
  /** The address it listens on for gRPC. */
  address: string;
  /** When its process started. */
  started: Date;
  /** Its last heartbeat. */
  heartbeat: Date;
  /** Free bytes on its data directory's filesystem (new SQLite databases go to the most). */
  freeBytes: number;
}

/** This gateway's share of one engine server's connection cap: 1/N with N live gateways. */
export interface ConnectionCap {
  /** The engine. */
  backend: Backend;
  /** Data-plane connections this gateway may open now. */
  cap: number;
  /** Data-plane connections open now. */
  open: number;
}

/** One audited call, a link of the audit log's hash chain. */
export interface AuditEvent {
  /** Its position in the chain. */
  seq: number;
  /** When it happened. */
  time: Date;
  /** The calling key's id ("-" without authentication). */
  keyId: string;
  /** The RPC. */
  rpc: string;
  /** The database, when the call named one (else empty). */
  database: string;
  /** The statement or operation text, cut at 256 characters; parameters are never recorded. */
  statement: string;
  /** SHA-256 (hex) of the full statement text. */
  statementHash: string;
  /** Rows changed; undefined when not known. */
  rowsAffected: number | undefined;
  /** The outcome's gRPC code name ("OK", "PERMISSION_DENIED", …). */
  outcome: string;
  /** How long the call took, in milliseconds. */
  durationMs: number;
  /** The hash of the record before (hex). */
  prevHash: string;
  /** This record's hash (hex). */
  hash: string;
}

/** The answer of `verifyAuditLog`. */
export interface AuditVerdict {
  /** Whether the whole hash chain holds. */
  ok: boolean;
  /** How many records were checked. */
  checked: number;
  /** The `seq` of the first record that was edited or whose predecessors were deleted; undefined when `ok`. */
  firstBrokenSeq: number | undefined;
  /** What is wrong with that record (empty when `ok`). */
  problem: string;
}

const EPOCH = new Date(0);
/** A protobuf time as a `Date`; unset is the epoch. (Shared with `backup.ts`.) */
export const date = (t: Timestamp | undefined): Date => (t ? timestampDate(t) : EPOCH);
/** A protobuf time as a `Date`, or undefined when unset. */
export const optionalDate = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);
/**
 * A protobuf duration in milliseconds; unset is 0. Fractional, not protobuf-es' `durationMs`
 * (whole milliseconds): most calls take less than one.
 */
export const ms = (d: Duration | undefined): number => (d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0);

export function keyGrantFromPb(g: PbGrant): KeyGrant {
  const t = g.target;
  return {
    database: t.case === "database" ? t.value : "",
    pattern: t.case === "pattern" ? t.value : "",
    labels: t.case === "labels" ? { ...t.value.labels } : {},
    role: g.role in Role ? g.role : Role.UNSPECIFIED,
  };
}

export function apiKeyFromPb(k: PbApiKey): ApiKey {
  return {
    id: k.id,
    name: k.name,
    admin: k.admin,
    canCreate: k.canCreate,
    createQuota: k.createQuota,
    grants: k.grants.map(keyGrantFromPb),
    createdAt: date(k.createdAt),
    expiresAt: optionalDate(k.expiresAt),
    revokedAt: optionalDate(k.revokedAt),
  };
}

export function rpcStatsFromPb(r: PbRpcStats): RpcStats {
  return {
    rpc: r.rpc,
    calls: Number(r.calls),
    errors: Number(r.errors),
    meanDurationMs: ms(r.meanDuration),
    maxDurationMs: ms(r.maxDuration),
  };
}

export function serverStatsFromPb(s: GetServerStatsResponse): ServerStats {
  return {
    uptimeMs: ms(s.uptime),
    activeConnections: Number(s.activeConnections),
    activeStreams: Number(s.activeStreams),
    activeSessions: Number(s.activeSessions),
    databases: Number(s.databases),
    openDatabases: Number(s.openDatabases),
    rpcs: s.rpcs.map(rpcStatsFromPb),
    errorRate: s.errorRate,
    node: s.node,
    nodes: s.nodes.map((n) => ({
      name: n.name,
      address: n.address,
      started: date(n.started),
      heartbeat: date(n.heartbeat),
      freeBytes: Number(n.freeBytes),
    })),
    connectionCaps: s.connectionCaps.map((c) => ({ backend: c.backend, cap: c.cap, open: c.open })),
  };
}

export function auditEventFromPb(e: PbAuditEvent): AuditEvent {
  return {
    seq: Number(e.seq),
    time: date(e.time),
    keyId: e.keyId,
    rpc: e.rpc,
    database: e.database,
    statement: e.statement,
    statementHash: e.statementHash,
    rowsAffected: e.rowsAffected === undefined ? undefined : Number(e.rowsAffected),
    outcome: e.outcome,
    durationMs: ms(e.duration),
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

export function auditVerdictFromPb(v: VerifyAuditLogResponse): AuditVerdict {
  return {
    ok: v.ok,
    checked: Number(v.checked),
    firstBrokenSeq: v.ok ? undefined : Number(v.firstBrokenSeq),
    problem: v.problem,
  };
}
