/** The SDK's own shapes: databases, columns, results, table definitions, filters and grants. */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { GrantSchema, LabelSelectorSchema, Role, type Grant as PbGrant } from "./gen/dbforge/v1/access_pb.js";
import {
  DatabaseEventType,
  DatabaseStatus,
  type Capabilities as PbCapabilities,
  type Database as PbDatabase,
  type DatabaseEvent as PbDatabaseEvent,
} from "./gen/dbforge/v1/database_pb.js";
import {
  ColumnDefinitionSchema,
  ColumnType,
  FilterOperator,
  FilterSchema,
  OrderBySchema,
  type ColumnDefinition,
  type Filter as PbFilter,
  type OrderBy,
} from "./gen/dbforge/v1/table_pb.js";
import {
  Backend,
  StatementSchema,
  Truncation,
  ValueKind,
  type Column as PbColumn,
  type ResultSummary,
  type Row as PbRow,
  type Statement as PbStatement,
  type StatementResult,
} from "./gen/dbforge/v1/types_pb.js";
import { fromValue, int64, toValue, toValues, type SqlParam, type SqlValue } from "./values.js";

export { Backend, ColumnType, DatabaseEventType, DatabaseStatus, Role, Truncation, ValueKind };

/** One lifecycle event of `watchDatabases`. */
export interface DatabaseEvent {
  /** Position in the gateway's event log, one more than the event before; pass the last one seen as `since` to resume. */
  sequence: number;
  /** What happened. */
  type: DatabaseEventType;
  database: string;
  backend: Backend;
  time: Date;
  /** "ttl", "idle_ttl", "source=<name>", "backup=<id>", … or empty. */
  cause: string;
  /** The key whose call caused it; "gateway" for the gateway's own doing. */
  keyId: string;
  /** The database's labels then. */
  labels: Record<string, string>;
}

export function databaseEventFromPb(e: PbDatabaseEvent): DatabaseEvent {
  return {
    sequence: Number(e.sequence),
    type: e.type,
    database: e.database,
    backend: e.backend,
    time: e.time ? timestampDate(e.time) : new Date(0),
    cause: e.cause,
    keyId: e.keyId,
    labels: { ...e.labels },
  };
}

/** What a database's backend supports. */
export type Capabilities = Omit<PbCapabilities, "$typeName" | "$unknown">;

/** A spawned database. */
export interface Database {
  name: string;
  backend: Backend;
  status: DatabaseStatus;
  createdAt: Date;
  lastAccessedAt: Date;
  sizeBytes: number;
  labels: Record<string, string>;
  capabilities: Capabilities;
  /** When the gateway prunes it (its TTL); undefined: no TTL. */
  expireAt?: Date;
  /** The gateway prunes it after this many milliseconds without a data-plane call; undefined: no idle TTL. */
  idleTtlMs?: number;
  /** Whether a TTL or idle prune is preceded by a backup (and skipped when that fails). */
  backupBeforePrune: boolean;
  /** Its size quota in bytes (the smaller of its own and its policies'); 0: none. */
  maxBytes: bigint;
  /** Where `maxBytes` comes from: `database` or `policy=<name>`; empty without one. */
  quotaSource: string;
  /** Whether it is over its quota (writes fail with ResourceExhausted). */
  overQuota: boolean;
  /** Its own size quota in bytes (updateDatabase `maxBytes`); 0: none. */
  ownMaxBytes: bigint;
  /**
   * The gateway whose disk holds it (SQLite databases; empty for the server engines). Calls
   * through another gateway sharing the catalog are forwarded there.
   */
  node: string;
}

const EPOCH = new Date(0);

export function databaseFromPb(d: PbDatabase): Database {
  const c = d.capabilities;
  return {
    name: d.name,
    backend: d.backend,
    status: d.status,
    createdAt: d.createdAt ? timestampDate(d.createdAt) : EPOCH,
    lastAccessedAt: d.lastAccessedAt ? timestampDate(d.lastAccessedAt) : EPOCH,
    sizeBytes: Number(d.sizeBytes),
    labels: { ...d.labels },
    capabilities: {
      sql: c?.sql ?? false,
      transactions: c?.transactions ?? false,
      sessions: c?.sessions ?? false,
      typedParams: c?.typedParams ?? false,
      tableService: c?.tableService ?? false,
      keyValue: c?.keyValue ?? false,
      lastInsertId: c?.lastInsertId ?? false,
      returning: c?.returning ?? false,
      placeholder: c?.placeholder ?? "",
      readOnlyGrants: c?.readOnlyGrants ?? false,
      transactionalDdl: c?.transactionalDdl ?? false,
      sparql: c?.sparql ?? false,
    },
    expireAt: d.expireAt ? timestampDate(d.expireAt) : undefined,
    idleTtlMs: d.idleTtl ? durationMs(d.idleTtl) : undefined,
    backupBeforePrune: d.backupBeforePrune,
    maxBytes: d.maxBytes,
    quotaSource: d.quotaSource,
    overQuota: d.overQuota,
    ownMaxBytes: d.ownMaxBytes,
    node: d.node,
  };
}

/** The answer of `createDatabase`: the database, and false when `ifNotExists` found it. */
export interface Created {
  database: Database;
  created: boolean;
}

/** The answer of `forkDatabase`. */
export interface Forked {
  /** The new database. */
  database: Database;
  /** How the data was copied: "sqlite-backup-api" (SQLite), "template" (PostgreSQL), "dump-replay" (MySQL, or PostgreSQL with the source in use), "key-records" (Redis) or "backup" (from a backup). */
  method: string;
  /** How long the fork took, in milliseconds. */
  durationMs: number;
}

/** Metadata of a result column. */
export interface Column {
  name: string;
  /** The declared type as the backend reports it; empty for expressions. */
  declaredType: string;
  /** The Value kind the column yields. */
  kind: ValueKind;
}

export function columnsFromPb(cols: readonly PbColumn[]): Column[] {
  return cols.map((c) => ({ name: c.name, declaredType: c.declaredType, kind: c.kind }));
}

/** One result row: the cells in column order. */
export type Row = SqlValue[];

export function rowsFromPb(rows: readonly PbRow[]): Row[] {
  const out: Row[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const values = rows[i]!.values;
    const row: Row = new Array(values.length);
    for (let j = 0; j < values.length; j++) row[j] = fromValue(values[j]!);
    out[i] = row;
  }
  return out;
}

/** Rows as column name → value objects. */
export function rowObjects(columns: readonly Column[], rows: readonly Row[]): Record<string, SqlValue>[] {
  return rows.map((r) => {
    const o: Record<string, SqlValue> = {};
    columns.forEach((c, i) => (o[c.name] = r[i] ?? null));
    return o;
  });
}

/** The whole result of one statement. */
export interface ExecResult {
  /** Rows inserted, updated or deleted. */
  rowsAffected: number;
  /** The id of the last inserted row, when the statement inserted one. */
  lastInsertId: number | bigint | undefined;
  /** Result columns (empty for statements that return no rows). */
  columns: Column[];
  /** Result rows. */
  rows: Row[];
}

export function execResultFromPb(r: StatementResult | undefined): ExecResult {
  return {
    rowsAffected: Number(r?.rowsAffected ?? 0n),
    lastInsertId: r?.lastInsertId === undefined ? undefined : int64(r.lastInsertId),
    columns: columnsFromPb(r?.columns ?? []),
    rows: rowsFromPb(r?.rows ?? []),
  };
}

/** The end of a streamed result. */
export interface Summary {
  rowCount: number;
  rowsAffected: number;
  /** Server-side time from the start of execution to the last row, in milliseconds. */
  elapsedMs: number;
  truncation: Truncation;
  /** On a resumable stream a budget cut while rows remain: continues it (`resumeQuery`). */
  resumeToken?: string;
}

export function summaryFromPb(s: ResultSummary): Summary {
  const summary: Summary = {
    rowCount: Number(s.rowCount),
    rowsAffected: Number(s.rowsAffected),
    elapsedMs: s.elapsed ? durationMs(s.elapsed) : 0,
    truncation: s.truncation,
  };
  if (s.resumeToken) summary.resumeToken = s.resumeToken;
  return summary;
}

/** One statement of a batch: a `{sql, params}` object, bare SQL, or an `[sql, params]` pair. */
export type Statement = { sql: string; params?: readonly SqlParam[] } | string | readonly [string, readonly SqlParam[]];

export function statementPb(s: Statement): PbStatement {
  if (typeof s === "string") return create(StatementSchema, { sql: s });
  if (Array.isArray(s)) {
    const [sql, params] = s as readonly [string, readonly SqlParam[]];
    return create(StatementSchema, { sql, params: toValues(params) });
  }
  const o = s as { sql: string; params?: readonly SqlParam[] };
  return create(StatementSchema, { sql: o.sql, params: toValues(o.params) });
}

/** A column of `createTable`. A `default` key (even `null`) sets a DEFAULT. */
export interface ColumnDef {
  name: string;
  type: ColumnType;
  primaryKey?: boolean;
  notNull?: boolean;
  unique?: boolean;
  default?: SqlParam;
}

export function columnDefPb(c: ColumnDef): ColumnDefinition {
  return create(ColumnDefinitionSchema, {
    name: c.name,
    type: c.type,
    primaryKey: c.primaryKey ?? false,
    notNull: c.notNull ?? false,
    unique: c.unique ?? false,
    defaultValue: "default" in c ? toValue(c.default) : undefined,
  });
}

/** A condition on a column; the filters of a call are combined with AND. */
export class Filter {
  private constructor(readonly pb: PbFilter) {}
  private static cmp(column: string, op: FilterOperator, v: SqlParam): Filter {
    return new Filter(create(FilterSchema, { column, op, value: toValue(v) }));
  }
  /** `column = value` */
  static eq(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.EQ, v);
  }
  /** `column <> value` */
  static ne(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.NE, v);
  }
  /** `column < value` */
  static lt(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.LT, v);
  }
  /** `column <= value` */
  static le(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.LE, v);
  }
  /** `column > value` */
  static gt(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.GT, v);
  }
  /** `column >= value` */
  static ge(column: string, v: SqlParam): Filter {
    return Filter.cmp(column, FilterOperator.GE, v);
  }
  /** `column LIKE pattern` (`%` and `_` wildcards) */
  static like(column: string, pattern: string): Filter {
    return Filter.cmp(column, FilterOperator.LIKE, pattern);
  }
  /** `column IN (values)`; an empty list matches nothing. */
  static isIn(column: string, values: readonly SqlParam[]): Filter {
    return new Filter(create(FilterSchema, { column, op: FilterOperator.IN, values: toValues(values) }));
  }
  /** `column IS NULL` */
  static isNull(column: string): Filter {
    return new Filter(create(FilterSchema, { column, op: FilterOperator.IS_NULL }));
  }
  /** `column IS NOT NULL` */
  static isNotNull(column: string): Filter {
    return new Filter(create(FilterSchema, { column, op: FilterOperator.IS_NOT_NULL }));
  }
}

/**
 * Which rows: `Filter`s, or an object of column → value where a value means `=`, `null` means
 * `IS NULL` and an array means `IN`.
 */
export type Where = Filter | readonly Filter[] | { readonly [column: string]: SqlParam };

export function filtersPb(where: Where | undefined): PbFilter[] {
  if (where === undefined) return [];
  if (where instanceof Filter) return [where.pb];
  if (Array.isArray(where)) return (where as readonly Filter[]).map((f) => f.pb);
  return Object.entries(where).map(([column, v]) => {
    if (v === null || v === undefined) return Filter.isNull(column).pb;
    if (Array.isArray(v)) return Filter.isIn(column, v as SqlParam[]).pb;
    return Filter.eq(column, v as SqlParam).pb;
  });
}

/** Sort keys, most significant first; a leading `-` sorts descending. */
export type OrderKeys = string | readonly string[];

export function orderByPb(order: OrderKeys | undefined): OrderBy[] {
  if (order === undefined) return [];
  const keys = typeof order === "string" ? [order] : order;
  return keys.map((k) =>
    k.startsWith("-")
      ? create(OrderBySchema, { column: k.slice(1), descending: true })
      : create(OrderBySchema, { column: k }),
  );
}

export function recordPb(row: { readonly [column: string]: SqlParam }) {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, toValue(v)]));
}

/** A role on some databases, for `createApiKey`. */
export const Grant = {
  /** `role` on the database named `name`. */
  database(name: string, role: Role): PbGrant {
    return create(GrantSchema, { target: { case: "database", value: name }, role });
  },
  /** `role` on databases whose name matches `pattern` (`*` stands for any characters). */
  pattern(pattern: string, role: Role): PbGrant {
    return create(GrantSchema, { target: { case: "pattern", value: pattern }, role });
  },
  /** `role` on databases carrying all of these labels. */
  labels(labels: Record<string, string>, role: Role): PbGrant {
    return create(GrantSchema, { target: { case: "labels", value: create(LabelSelectorSchema, { labels }) }, role });
  },
};
export type { PbGrant as GrantMessage };
