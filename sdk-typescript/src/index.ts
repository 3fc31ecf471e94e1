/**
 * TypeScript client for DB-Forge: spawn isolated databases on demand and use them over gRPC.
 *
 * Transport-neutral exports; pick a transport with `@dbforge/sdk/node` (`connect`) or
 * `@dbforge/sdk/web` (`connectWeb`), or hand any Connect transport to `new DBForgeClient(...)`.
 * The generated messages and service descriptors are under `@dbforge/sdk/gen/dbforge/v1/*_pb`.
 */
export { DBForgeClient, Transaction } from "./client.js";
export type { ApiKeySpec, AuditFilter, BackupFilter, CallSettings, QueryOptions, SelectOptions } from "./client.js";
export { BackupStatus, RestoreMode } from "./backup.js";
export type {
  Backup,
  BackupManifest,
  BackupPolicy,
  BackupPolicySpec,
  BackupStatusLike,
  Restored,
  RestoreModeLike,
  TableRowCount,
} from "./backup.js";
export * from "./errors.js";
export { DEFAULT_ENDPOINT, type ConnectOptions } from "./options.js";
export { GraphMemory, MEMORY_NS, entityIri, relationIri, sparqlLiteral } from "./memory.js";
export type { Entity, KnowledgeGraph, Relation, SparqlRunner } from "./memory.js";
export type { LifecyclePolicy, LifecyclePolicySpec } from "./policy.js";
export type { StatementPreview } from "./preview.js";
export { Rows } from "./rows.js";
export type { Answer, AskOptions, Asked, MaterializeOptions, Materialized, MaterializedTable } from "./semantic.js";
export type { ColumnSummary, Summarized } from "./summary.js";
export { TableKind, walkPlan } from "./schema.js";
export type {
  ColumnSchema,
  ForeignKeySchema,
  IndexSchema,
  KeyPattern,
  KeySpaceSummary,
  Plan,
  PlanNode,
  Schema,
  TableSchema,
} from "./schema.js";
export { DEFAULT_CHUNK_SIZE, Export, ExportFormat, RdfFormat, collectBytes, collectText } from "./transfer.js";
export type {
  ExportFormatLike,
  ExportOptions,
  ImportCsvOptions,
  ImportCsvResult,
  ImportOptions,
  ImportSource,
  ImportSqlResult,
  RejectedRow,
} from "./transfer.js";
export {
  Backend,
  ColumnType,
  DatabaseEventType,
  DatabaseStatus,
  Filter,
  Grant,
  Role,
  Truncation,
  ValueKind,
} from "./types.js";
export type {
  Capabilities,
  Column,
  DatabaseEvent,
  ColumnDef,
  Created,
  Forked,
  Database,
  ExecResult,
  GrantMessage,
  OrderKeys,
  Row,
  Statement,
  Summary,
  Where,
} from "./types.js";
export {
  CalendarDate,
  Decimal,
  Tagged,
  TimeOfDay,
  float,
  fromValue,
  json,
  rawJson,
  sqlArray,
  toValue,
  toValues,
  uuid,
  type JsonDocument,
  type SqlParam,
  type SqlValue,
} from "./values.js";
export type {
  ApiKey,
  AuditEvent,
  AuditVerdict,
  ConnectionCap,
  KeyGrant,
  Node,
  RpcStats,
  ServerStats,
} from "./admin.js";
