/** The client: one API over any Connect transport (gRPC over HTTP/2 in Node, grpc-web in browsers). */
import { create, type DescMessage, type DescMethodServerStreaming, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  apiKeyFromPb,
  auditEventFromPb,
  auditVerdictFromPb,
  ms,
  serverStatsFromPb,
  type ApiKey,
  type AuditEvent,
  type AuditVerdict,
  type ServerStats,
} from "./admin.js";
import {
  backupFromPb,
  durationPb,
  backupStatusPb,
  policyFromPb,
  policyPb,
  restoreModePb,
  restoredFromPb,
  type Backup,
  type BackupPolicy,
  type BackupPolicySpec,
  type BackupStatusLike,
  type RestoreModeLike,
  type Restored,
} from "./backup.js";
import { lifecyclePolicyFromPb, lifecyclePolicyPb, type LifecyclePolicy, type LifecyclePolicySpec } from "./policy.js";
import { AccessService, type Grant as PbGrant } from "./gen/dbforge/v1/access_pb.js";
import { BackupService } from "./gen/dbforge/v1/backup_pb.js";
import { DatabaseService } from "./gen/dbforge/v1/database_pb.js";
import { Backend } from "./gen/dbforge/v1/types_pb.js";
import { OperationsService } from "./gen/dbforge/v1/operations_pb.js";
import {
  QueryService,
  SessionCommitSchema,
  SessionRequestSchema,
  SessionRollbackSchema,
  type SessionRequest,
  type SessionResponse,
} from "./gen/dbforge/v1/query_pb.js";
import { SchemaService } from "./gen/dbforge/v1/schema_pb.js";
import { SemanticService, type AskStreamResponse } from "./gen/dbforge/v1/semantic_pb.js";
import { TableService } from "./gen/dbforge/v1/table_pb.js";
import {
  ImportCsvRequestSchema,
  ImportNdjsonRequestSchema,
  ImportRdfRequestSchema,
  ImportSqlRequestSchema,
  RdfFormat,
  TransferService,
  type ImportCsvRequest,
  type ImportCsvResponse,
  type ImportNdjsonRequest,
  type ImportNdjsonResponse,
  type ImportRdfRequest,
  type ImportRdfResponse,
  type ImportSqlRequest,
  type ImportSqlResponse,
} from "./gen/dbforge/v1/transfer_pb.js";
import { StatementSchema } from "./gen/dbforge/v1/types_pb.js";
import { Code, DBForgeError, Internal, errorFor, toDBForgeError } from "./errors.js";
import { streamResult, type StreamPart } from "./fastpath.js";
import { statementPreviewFromPb, type StatementPreview } from "./preview.js";
import { Rows } from "./rows.js";
import { summarizedFromPb, type Summarized } from "./summary.js";
import { planFromPb, schemaFromPb, type Plan, type Schema } from "./schema.js";
import {
  answerFromPb,
  askedFromPb,
  askStreamParts,
  materializedFromPb,
  type Answer,
  type AskOptions,
  type Asked,
  type MaterializeOptions,
  type Materialized,
} from "./semantic.js";
import {
  DEFAULT_CHUNK_SIZE,
  Export,
  RequestSource,
  formatPb,
  importCsvResultFromPb,
  sourceChunks,
  type ChunkMessage,
  type ExportOptions,
  type ImportCsvOptions,
  type ImportCsvResult,
  type ImportOptions,
  type ImportSource,
  type ImportSqlResult,
} from "./transfer.js";
import {
  columnDefPb,
  databaseEventFromPb,
  databaseFromPb,
  execResultFromPb,
  filtersPb,
  orderByPb,
  recordPb,
  statementPb,
  type ColumnDef,
  type Created,
  type Database,
  type DatabaseEvent,
  type ExecResult,
  type Forked,
  type OrderKeys,
  type Statement,
  type Where,
} from "./types.js";
import { toValues, type SqlParam } from "./values.js";

/** Settings every call carries. */
export interface CallSettings {
  /** API key, sent as `authorization: Bearer <key>`. */
  apiKey?: string | undefined;
  /** Deadline of each call in milliseconds (streams: of the whole stream). */
  timeoutMs?: number | undefined;
}

/** Options of `query`. */
export interface QueryOptions {
  /** Stop after this many rows (0: the server's limit). */
  maxRows?: number;
  /** Stop after about this many bytes of row data (0: the server's limit); `summary.truncation` says so. */
  maxBytes?: number;
  /** Run on the read-only login whatever the key's role: the engine refuses any write. */
  readOnly?: boolean;
  /**
   * Make the stream resumable: the server keeps its cursor for a while (60 s by default) when
   * the connection drops or a budget cuts it; `rows.resumeToken` and `resumeQuery` continue it,
   * the remaining rows exactly once and in order.
   */
  resumable?: boolean;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Options of `selectRows`. */
export interface SelectOptions {
  /** Columns to return; all by default. */
  columns?: readonly string[];
  /** Which rows. */
  where?: Where;
  /** Sort keys; `-name` sorts descending. */
  orderBy?: OrderKeys;
  limit?: number;
  offset?: number;
  signal?: AbortSignal;
}

/** What a new API key may do. */
export interface ApiKeySpec {
  name: string;
  admin?: boolean;
  /** Lets it create databases (it then owns them), at most `createQuota` at a time (0: no limit). */
  canCreate?: boolean;
  createQuota?: number;
  grants?: readonly PbGrant[];
  expiresAt?: Date;
}

/** Filters of `listAuditEvents`. */
export interface AuditFilter {
  keyId?: string;
  database?: string;
  outcome?: string;
  since?: Date;
  until?: Date;
  pageSize?: number;
  pageToken?: string;
}

/** Filters of `listBackups`. */
export interface BackupFilter {
  /** Only backups of this database (it may have been deleted since). */
  database?: string;
  /** Only backups carrying all of these labels. */
  labels?: Record<string, string>;
  /** Only backups in this status. */
  status?: BackupStatusLike;
  /** Backups per page (0: the server's default of 100; at most 1000). */
  pageSize?: number;
}

/**
 * A DB-Forge client. Build one with `connect()` from `@dbforge/sdk/node` (gRPC over HTTP/2, TLS)
 * or `connectWeb()` from `@dbforge/sdk/web` (grpc-web), or pass any Connect transport.
 *
 * Every method rejects with a `DBForgeError` subclass named after the status code.
 */
export class DBForgeClient {
  /** Generated clients, for anything the methods below do not cover. */
  readonly databases: Client<typeof DatabaseService>;
  readonly queries: Client<typeof QueryService>;
  readonly tables: Client<typeof TableService>;
  readonly access: Client<typeof AccessService>;
  readonly operations: Client<typeof OperationsService>;
  readonly schema: Client<typeof SchemaService>;
  readonly semantic: Client<typeof SemanticService>;
  readonly transfer: Client<typeof TransferService>;
  readonly backups: Client<typeof BackupService>;
  private readonly headers: Record<string, string>;

  constructor(
    readonly transport: Transport,
    private readonly settings: CallSettings = {},
    private readonly onClose?: () => void,
    /** Whether the transport can stream requests (false for grpc-web: no transactions, no imports). */
    readonly bidiStreaming = true,
  ) {
    this.databases = createClient(DatabaseService, transport);
    this.queries = createClient(QueryService, transport);
    this.tables = createClient(TableService, transport);
    this.access = createClient(AccessService, transport);
    this.operations = createClient(OperationsService, transport);
    this.schema = createClient(SchemaService, transport);
    this.semantic = createClient(SemanticService, transport);
    this.transfer = createClient(TransferService, transport);
    this.backups = createClient(BackupService, transport);
    this.headers = settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {};
  }

  /** Closes the connection (Node); later calls reconnect. */
  close(): void {
    this.onClose?.();
  }

  /** Options of one call: the API key header, the deadline and an optional signal. */
  callOptions(signal?: AbortSignal): CallOptions {
    const o: CallOptions = { headers: this.headers };
    if (this.settings.timeoutMs !== undefined) o.timeoutMs = this.settings.timeoutMs;
    if (signal) o.signal = signal;
    return o;
  }

  private async unary<T>(call: (o: CallOptions) => Promise<T>): Promise<T> {
    try {
      return await call(this.callOptions());
    } catch (e) {
      // A parameter that does not convert is the caller's TypeError/RangeError, not a status.
      if (e instanceof TypeError || e instanceof RangeError) throw e;
      throw toDBForgeError(e);
    }
  }

  private stream<I extends DescMessage>(
    method: DescMethodServerStreaming<I, DescMessage>,
    request: MessageInitShape<I>,
    abort: AbortController,
  ): Promise<AsyncIterable<StreamPart>> {
    return streamResult(this.transport, method, request, abort.signal, this.settings.timeoutMs, this.headers);
  }

  private async export(call: (o: CallOptions) => AsyncIterable<ChunkMessage>, signal?: AbortSignal): Promise<Export> {
    const abort = linkedAbort(signal);
    return Export.start(() => call(this.callOptions(abort.signal)), abort);
  }

  /** A client-streaming import: header, then the source in chunks; the caller's source error wins over the cancelled call it causes. */
  private async import<Req, Res>(
    rpc: string,
    call: (requests: AsyncIterable<Req>, o: CallOptions) => Promise<Res>,
    header: Req,
    wrap: (chunk: Uint8Array) => Req,
    source: ImportSource,
    opts: ImportOptions,
  ): Promise<Res> {
    if (!this.bidiStreaming) {
      throw errorFor(
        Code.Unimplemented,
        `${rpc} streams the file to the server, which grpc-web cannot (no client streaming, so not in browsers): ` +
          "import from Node over gRPC (connect()), or insert rows with insertRows / batch",
      );
    }
    const requests = new RequestSource<Req>();
    const chunks = sourceChunks(source, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
    // While the file is being sent, aborting ends the request stream with a rejected message
    // (see RequestSource); only once it is all sent does the caller's signal cancel the call.
    const callAbort = new AbortController();
    const onAbort = () => {
      if (requests.sent) callAbort.abort(opts.signal?.reason);
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let result: Res;
    try {
      result = await call(requests.iterate(header, chunks, wrap, opts.signal), this.callOptions(callAbort.signal));
    } catch (e) {
      if (requests.failed) throw requests.error;
      throw toDBForgeError(e);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
    // The server cannot accept a file with a repeated header; if it did, say so rather than succeed.
    if (requests.failed) throw requests.error;
    return result;
  }

  // ---- control plane ----------------------------------------------------------------------

  /**
   * Spawns a database (SQLite unless `backend` says otherwise). AlreadyExists when the name is taken, unless `ifNotExists`.
   *
   * `ttlMs` (from now) or `expireAt`, and `idleTtlMs` (without a data-plane call), make the gateway prune the
   * database by itself; with `backupBeforePrune` it backs the database up first and keeps it if that fails.
   */
  async createDatabase(
    name: string,
    opts: {
      backend?: Backend;
      ifNotExists?: boolean;
      labels?: Record<string, string>;
      ttlMs?: number;
      expireAt?: Date;
      idleTtlMs?: number;
      backupBeforePrune?: boolean;
    } = {},
  ): Promise<Created> {
    if (opts.ttlMs !== undefined && opts.expireAt !== undefined) throw new RangeError("give ttlMs or expireAt, not both");
    const r = await this.unary((o) =>
      this.databases.createDatabase(
        {
          name,
          backend: opts.backend ?? Backend.UNSPECIFIED,
          ifNotExists: opts.ifNotExists ?? false,
          labels: opts.labels ?? {},
          ttl:
            opts.expireAt !== undefined
              ? { case: "expireAt", value: timestampFromDate(opts.expireAt) }
              : opts.ttlMs !== undefined
                ? { case: "expireAfter", value: durationPb(opts.ttlMs) }
                : { case: undefined },
          idleTtl: opts.idleTtlMs !== undefined ? durationPb(opts.idleTtlMs) : undefined,
          backupBeforePrune: opts.backupBeforePrune ?? false,
        },
        o,
      ),
    );
    if (!r.database) throw new Internal("the response carries no database");
    return { database: databaseFromPb(r.database), created: r.created };
  }

  /**
   * Changes a database's labels (replaced as a whole) and lifecycle settings; what is not given keeps its value.
   * Needs the owner role. InvalidArgument for a TTL not in the future; NotFound; PermissionDenied.
   */
  async updateDatabase(
    name: string,
    opts: {
      labels?: Record<string, string>;
      ttlMs?: number;
      expireAt?: Date;
      clearTtl?: boolean;
      idleTtlMs?: number;
      clearIdleTtl?: boolean;
      backupBeforePrune?: boolean;
      /** The database's own size quota in bytes (positive). */
      maxBytes?: number | bigint;
      /** Remove the database's own size quota (a policy's still applies). */
      clearMaxBytes?: boolean;
    },
  ): Promise<Database> {
    if (opts.maxBytes !== undefined && opts.clearMaxBytes) throw new RangeError("give maxBytes or clearMaxBytes, not both");
    const ttls = [opts.ttlMs !== undefined, opts.expireAt !== undefined, opts.clearTtl === true].filter(Boolean).length;
    if (ttls > 1) throw new RangeError("give one of ttlMs, expireAt and clearTtl");
    if (opts.idleTtlMs !== undefined && opts.clearIdleTtl) throw new RangeError("give idleTtlMs or clearIdleTtl, not both");
    const r = await this.unary((o) =>
      this.databases.updateDatabase(
        {
          name,
          labels: opts.labels !== undefined ? { values: opts.labels } : undefined,
          ttl:
            opts.expireAt !== undefined
              ? { case: "expireAt", value: timestampFromDate(opts.expireAt) }
              : opts.ttlMs !== undefined
                ? { case: "expireAfter", value: durationPb(opts.ttlMs) }
                : opts.clearTtl
                  ? { case: "clearTtl", value: true }
                  : { case: undefined },
          idle:
            opts.idleTtlMs !== undefined
              ? { case: "idleTtl", value: durationPb(opts.idleTtlMs) }
              : opts.clearIdleTtl
                ? { case: "clearIdleTtl", value: true }
                : { case: undefined },
          backupBeforePrune: opts.backupBeforePrune,
          quota:
            opts.maxBytes !== undefined
              ? { case: "maxBytes", value: BigInt(opts.maxBytes) }
              : opts.clearMaxBytes
                ? { case: "clearMaxBytes", value: true }
                : { case: undefined },
        },
        o,
      ),
    );
    if (!r.database) throw new Internal("the response carries no database");
    return databaseFromPb(r.database);
  }

  /**
   * Lifecycle events (created, deleted, forked, expired, pruned_idle, backed_up, restored, updated) of the databases this key
   * can see, as they happen, until `signal` aborts or the caller stops iterating. With `since` (the last `sequence`
   * seen), every later event first, each once and in order; OutOfRange when the gateway no longer keeps them.
   * No deadline applies: a watch lasts as long as the caller wants it.
   */
  async *watchDatabases(
    opts: { labels?: Record<string, string>; backend?: Backend; since?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<DatabaseEvent> {
    // Stopping the iteration (break, return) ends the call too, so no stream is left open.
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const o: CallOptions = { headers: this.headers, signal: abort.signal };
    const req = {
      labels: opts.labels ?? {},
      backend: opts.backend ?? Backend.UNSPECIFIED,
      since: opts.since !== undefined ? BigInt(opts.since) : undefined,
    };
    try {
      for await (const r of this.databases.watchDatabases(req, o)) {
        if (r.event) yield databaseEventFromPb(r.event);
      }
    } catch (e) {
      if (abort.signal.aborted && !opts.signal?.aborted) return;
      throw toDBForgeError(e);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      abort.abort();
    }
  }

  /** Looks a database up. NotFound when it does not exist. */
  async getDatabase(name: string): Promise<Database> {
    const r = await this.unary((o) => this.databases.getDatabase({ name }, o));
    if (!r.database) throw new Internal("the response carries no database");
    return databaseFromPb(r.database);
  }

  /** Every database that matches, in name order, following pages for you. */
  async listDatabases(filter: { backend?: Backend; labels?: Record<string, string>; pageSize?: number } = {}): Promise<Database[]> {
    const all: Database[] = [];
    for await (const d of this.iterDatabases(filter)) all.push(d);
    return all;
  }

  /** Like `listDatabases`, fetching each page when the previous one is used up. */
  async *iterDatabases(filter: { backend?: Backend; labels?: Record<string, string>; pageSize?: number } = {}): AsyncGenerator<Database> {
    let token: string | undefined = "";
    while (token !== undefined) {
      const page: { databases: Database[]; nextPageToken: string | undefined } = await this.listDatabasesPage({ ...filter, pageToken: token });
      yield* page.databases;
      token = page.nextPageToken;
    }
  }

  /** One page of databases and the token of the next page (undefined on the last). */
  async listDatabasesPage(
    opts: { backend?: Backend; labels?: Record<string, string>; pageSize?: number; pageToken?: string } = {},
  ): Promise<{ databases: Database[]; nextPageToken: string | undefined }> {
    const r = await this.unary((o) =>
      this.databases.listDatabases(
        {
          pageSize: opts.pageSize ?? 0,
          pageToken: opts.pageToken ?? "",
          backend: opts.backend ?? Backend.UNSPECIFIED,
          labels: opts.labels ?? {},
        },
        o,
      ),
    );
    return { databases: r.databases.map(databaseFromPb), nextPageToken: r.nextPageToken || undefined };
  }

  /** Prunes a database and all its data. NotFound when it does not exist, unless `allowMissing`; returns whether it deleted one. */
  async deleteDatabase(name: string, opts: { allowMissing?: boolean } = {}): Promise<boolean> {
    const r = await this.unary((o) => this.databases.deleteDatabase({ name, allowMissing: opts.allowMissing ?? false }, o));
    return r.deleted;
  }

  /**
   * Forks `source` into the new database `name`: a copy of its data as it is now (or as the
   * backup `fromBackup` holds it), independent from then on and owned by this key.
   *
   * `ttlMs` / `expireAt`, `idleTtlMs` and `backupBeforePrune` are the fork's own, as in
   * `createDatabase` (the source's are not copied).
   *
   * Needs the read role on `source` (the owner role with `fromBackup`) and the right to create
   * `name`. AlreadyExists when `name` is taken; NotFound; PermissionDenied; FailedPrecondition
   * for a backup of another database; Unavailable while the source is being restored;
   * ResourceExhausted past a lifecycle policy's per-key limit.
   */
  async forkDatabase(
    source: string,
    name: string,
    opts: {
      labels?: Record<string, string>;
      fromBackup?: string;
      ttlMs?: number;
      expireAt?: Date;
      idleTtlMs?: number;
      backupBeforePrune?: boolean;
    } = {},
  ): Promise<Forked> {
    if (opts.ttlMs !== undefined && opts.expireAt !== undefined) throw new RangeError("give ttlMs or expireAt, not both");
    const r = await this.unary((o) =>
      this.databases.forkDatabase(
        {
          source,
          name,
          labels: opts.labels ?? {},
          fromBackup: opts.fromBackup ?? "",
          ttl:
            opts.expireAt !== undefined
              ? { case: "expireAt", value: timestampFromDate(opts.expireAt) }
              : opts.ttlMs !== undefined
                ? { case: "expireAfter", value: durationPb(opts.ttlMs) }
                : { case: undefined },
          idleTtl: opts.idleTtlMs !== undefined ? durationPb(opts.idleTtlMs) : undefined,
          backupBeforePrune: opts.backupBeforePrune ?? false,
        },
        o,
      ),
    );
    if (!r.database) throw new Internal("the response carries no database");
    return { database: databaseFromPb(r.database), method: r.method, durationMs: ms(r.duration) };
  }

  /**
   * Creates or replaces (by name) a lifecycle policy; resolves it as stored and whether it is
   * new. Needs an admin key (PermissionDenied otherwise); InvalidArgument for a policy without
   * selector or rules, or a duration that is not positive.
   */
  async setLifecyclePolicy(policy: LifecyclePolicySpec): Promise<{ policy: LifecyclePolicy; created: boolean }> {
    const req = { policy: lifecyclePolicyPb(policy) };
    const r = await this.unary((o) => this.databases.setLifecyclePolicy(req, o));
    if (!r.policy) throw new Internal("the response carries no policy");
    return { policy: lifecyclePolicyFromPb(r.policy), created: r.created };
  }

  /** The lifecycle policies by name: all for an admin key; for others those selecting a database the key can see. */
  async listLifecyclePolicies(): Promise<LifecyclePolicy[]> {
    const r = await this.unary((o) => this.databases.listLifecyclePolicies({}, o));
    return r.policies.map(lifecyclePolicyFromPb);
  }

  /** Deletes a lifecycle policy (admin key). NotFound when it does not exist, unless `allowMissing`; resolves whether it deleted one. */
  async deleteLifecyclePolicy(name: string, opts: { allowMissing?: boolean } = {}): Promise<boolean> {
    const r = await this.unary((o) => this.databases.deleteLifecyclePolicy({ name, allowMissing: opts.allowMissing ?? false }, o));
    return r.deleted;
  }

  // ---- SQL --------------------------------------------------------------------------------

  /** Runs one statement and returns its whole result (at most the server's row limit; use `query` for more). */
  async execute(database: string, sql: string, params: readonly SqlParam[] = []): Promise<ExecResult> {
    const r = await this.unary((o) => this.queries.execute({ database, sql, params: toValues(params) }, o));
    return execResultFromPb(r.result);
  }

  /** Runs one statement and streams its rows. The columns are known when this resolves. */
  async query(database: string, sql: string, params: readonly SqlParam[] = [], opts: QueryOptions = {}): Promise<Rows> {
    const abort = linkedAbort(opts.signal);
    const req = {
      database,
      sql,
      params: toValues(params),
      maxRows: BigInt(opts.maxRows ?? 0),
      maxBytes: BigInt(opts.maxBytes ?? 0),
      readOnly: opts.readOnly ?? false,
      resumable: opts.resumable ?? false,
    };
    return Rows.start(this.stream(QueryService.method.query, req, abort), abort);
  }

  /**
   * Continues a resumable stream at `token` (`rows.resumeToken`, or a summary's after a budget
   * cut), within new budgets. `NotFound` once it failed, expired or is another key's;
   * `FailedPrecondition` when the token's rows are older than the server keeps for replay.
   */
  async resumeQuery(token: string, opts: Pick<QueryOptions, "maxRows" | "maxBytes" | "signal"> = {}): Promise<Rows> {
    const abort = linkedAbort(opts.signal);
    const req = { resumeToken: token, maxRows: BigInt(opts.maxRows ?? 0), maxBytes: BigInt(opts.maxBytes ?? 0) };
    return Rows.start(this.stream(QueryService.method.query, req, abort), abort);
  }

  /**
   * Runs one statement and resolves to a summary of each result column instead of its rows:
   * count, NULLs, distinct values, min, max and the most frequent values, computed by the
   * gateway in one pass over the rows (at most `maxRows`; 0: the server's limit). With
   * `readOnly` it runs on the read-only login whatever the key's role.
   */
  async summarize(
    database: string,
    sql: string,
    params: readonly SqlParam[] = [],
    opts: { maxRows?: number; readOnly?: boolean } = {},
  ): Promise<Summarized> {
    const req = { database, sql, params: toValues(params), maxRows: BigInt(opts.maxRows ?? 0), summarize: true, readOnly: opts.readOnly ?? false };
    const messages = await this.unary(async (o) => {
      const out = [];
      for await (const m of this.queries.query(req, o)) out.push(m);
      return out;
    });
    return summarizedFromPb(messages);
  }

  /** Runs statements in order; with `transaction`, all or nothing. */
  async batch(database: string, statements: readonly Statement[], opts: { transaction?: boolean } = {}): Promise<ExecResult[]> {
    const r = await this.unary((o) =>
      this.queries.executeBatch({ database, statements: statements.map(statementPb), transaction: opts.transaction ?? false }, o),
    );
    return r.results.map(execResultFromPb);
  }

  /**
   * A dry run: runs the statements in one transaction that is always rolled back and resolves
   * to what each would do (rows affected, samples of up to `sampleRows` rows before and after,
   * default 5, at most 100; the plan; the engine's error). Nothing is committed. MySQL refuses
   * DDL (it commits implicitly) and Redis refuses previews, both with FailedPrecondition,
   * before anything runs.
   */
  async preview(database: string, statements: readonly Statement[], opts: { sampleRows?: number } = {}): Promise<StatementPreview[]> {
    const r = await this.unary((o) =>
      this.queries.preview({ database, statements: statements.map(statementPb), sampleRows: opts.sampleRows ?? 0 }, o),
    );
    return r.statements.map(statementPreviewFromPb);
  }

  /**
   * Begins an interactive transaction (`QueryService.Session`). Needs a transport that streams
   * requests (gRPC over HTTP/2); over grpc-web it rejects with Unimplemented — use
   * `batch(db, statements, { transaction: true })` there.
   */
  async transaction(database: string): Promise<Transaction> {
    if (!this.bidiStreaming) {
      throw errorFor(12, "interactive transactions need a transport that streams requests (gRPC over HTTP/2); grpc-web cannot — use batch(..., { transaction: true })");
    }
    return Transaction.begin(this, database);
  }

  /** Runs `fn` in a transaction: commits when it resolves, rolls back when it throws. */
  async withTransaction<T>(database: string, fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const tx = await this.transaction(database);
    let result: T;
    try {
      result = await fn(tx);
    } catch (e) {
      await tx.rollback().catch(() => undefined); // the stream closes either way; keep the original error
      throw e;
    }
    if (tx.active) await tx.commit();
    return result;
  }

  // ---- tables -----------------------------------------------------------------------------

  /** Creates a table; with `ifNotExists`, resolves false when it was already there. */
  async createTable(database: string, table: string, columns: readonly ColumnDef[], opts: { ifNotExists?: boolean } = {}): Promise<boolean> {
    const r = await this.unary((o) =>
      this.tables.createTable({ database, table, columns: columns.map(columnDefPb), ifNotExists: opts.ifNotExists ?? false }, o),
    );
    return r.created;
  }

  /** Inserts rows (column → value objects) in one transaction; resolves how many. */
  async insertRows(database: string, table: string, rows: readonly { readonly [column: string]: SqlParam }[]): Promise<number> {
    const r = await this.unary((o) =>
      this.tables.insertRows({ database, table, rows: rows.map((row) => ({ values: recordPb(row) })) }, o),
    );
    return Number(r.rowsInserted);
  }

  /** Streams the rows matching `where`. */
  async selectRows(database: string, table: string, opts: SelectOptions = {}): Promise<Rows> {
    const abort = linkedAbort(opts.signal);
    const req = {
      database,
      table,
      columns: [...(opts.columns ?? [])],
      filters: filtersPb(opts.where),
      orderBy: orderByPb(opts.orderBy),
      limit: BigInt(opts.limit ?? 0),
      offset: BigInt(opts.offset ?? 0),
    };
    return Rows.start(this.stream(TableService.method.selectRows, req, abort), abort);
  }

  /** Sets columns on the rows matching `where` (required unless `all`); resolves how many changed. */
  async updateRows(
    database: string,
    table: string,
    set: { readonly [column: string]: SqlParam },
    opts: { where?: Where; all?: boolean } = {},
  ): Promise<number> {
    const r = await this.unary((o) =>
      this.tables.updateRows({ database, table, set: recordPb(set), filters: filtersPb(opts.where), all: opts.all ?? false }, o),
    );
    return Number(r.rowsAffected);
  }

  /** Deletes the rows matching `where` (required unless `all`); resolves how many. */
  async deleteRows(database: string, table: string, opts: { where?: Where; all?: boolean } = {}): Promise<number> {
    const r = await this.unary((o) =>
      this.tables.deleteRows({ database, table, filters: filtersPb(opts.where), all: opts.all ?? false }, o),
    );
    return Number(r.rowsAffected);
  }

  // ---- schema and plans -------------------------------------------------------------------

  /**
   * Describes the whole database, or one table or view: columns, keys, indexes, constraints,
   * row estimates, and `text` (compact CREATE statements for a prompt). On Redis, `keySpace`
   * summarizes a sample of keys. NotFound for an unknown table.
   */
  async getSchema(database: string, table?: string): Promise<Schema> {
    return schemaFromPb(await this.unary((o) => this.schema.getSchema({ database, table: table ?? "" }, o)));
  }

  /**
   * The statement's query plan: `raw` as the backend writes it, `nodes` normalized, `fullScans`
   * the tables it reads in full. With `analyze` (PostgreSQL, MariaDB) the statement runs inside
   * a transaction that is rolled back; Unimplemented on SQLite.
   */
  async explain(database: string, sql: string, params: readonly SqlParam[] = [], opts: { analyze?: boolean } = {}): Promise<Plan> {
    const r = await this.unary((o) =>
      this.schema.explain({ database, statement: { sql, params: toValues(params) }, analyze: opts.analyze ?? false }, o),
    );
    return planFromPb(r);
  }

  /**
   * Asks a question about the database's data in natural language. The gateway's model writes
   * one SQL query grounded in the schema (join paths, comments, sample values), the engine's
   * EXPLAIN checks it (up to two repair rounds), and with `run` it runs on the read-only login:
   * `rows` (at most `maxRows`, 100 by default) within `timeoutMs`. `answer.status` is "GAVE_UP"
   * with a `message` when no valid query came; `answer.cached` when the same question about the
   * same schema was answered before. FailedPrecondition when the gateway has no model
   * (`--llm-url`); Unimplemented on Redis.
   */
  async ask(database: string, question: string, opts: AskOptions = {}): Promise<Asked> {
    const r = await this.unary((o) =>
      this.semantic.ask(
        { database, question, run: opts.run ?? false, maxRows: BigInt(opts.maxRows ?? 0), timeoutMs: BigInt(opts.timeoutMs ?? 0) },
        o,
      ),
    );
    return askedFromPb(r);
  }

  /**
   * Like `ask`, with the rows streamed as `query` streams them: the answer, and `rows` when
   * `run` was asked and the question was answered (undefined otherwise). `maxRows` 0 means the
   * server's stream limit.
   */
  async askStream(
    database: string,
    question: string,
    opts: AskOptions & { signal?: AbortSignal } = {},
  ): Promise<{ answer: Answer; rows: Rows | undefined }> {
    const abort = linkedAbort(opts.signal);
    const req = { database, question, run: opts.run ?? false, maxRows: BigInt(opts.maxRows ?? 0), timeoutMs: BigInt(opts.timeoutMs ?? 0) };
    let it: AsyncIterator<AskStreamResponse>;
    let first: IteratorResult<AskStreamResponse>;
    try {
      it = this.semantic.askStream(req, this.callOptions(abort.signal))[Symbol.asyncIterator]();
      first = await it.next();
    } catch (e) {
      abort.abort();
      throw toDBForgeError(e);
    }
    if (first.done || first.value.kind.case !== "answer") {
      abort.abort();
      throw new Internal("the AskStream response did not start with the answer");
    }
    const answer = answerFromPb(first.value.kind.value);
    if (!(opts.run && answer.status === "ANSWERED")) return { answer, rows: undefined };
    return { answer, rows: await Rows.start(Promise.resolve(askStreamParts(it)), abort) };
  }

  /**
   * Maps the SQL database `source` into the graph database `graphDatabase` by the W3C Direct
   * Mapping: each row a subject `<B table/key=value>` of class `<B table>`, each non-NULL column
   * a typed literal on `<B table#column>`, each foreign key a link `<B table#ref-column>` to the
   * referenced row, B being `baseIri` (`urn:dbforge:<source>/` by default). Into the named
   * `graph` if given; `replace` clears that graph first. All or nothing, in one transaction.
   * Needs read access to the source and write access to the graph database; Unimplemented when
   * the source is not SQL, InvalidArgument when the target is not a graph database.
   */
  async materializeGraph(source: string, graphDatabase: string, opts: MaterializeOptions = {}): Promise<Materialized> {
    const r = await this.unary((o) =>
      this.semantic.materializeGraph(
        {
          sourceDatabase: source,
          graphDatabase,
          baseIri: opts.baseIri ?? "",
          graph: opts.graph ?? "",
          replace: opts.replace ?? false,
        },
        o,
      ),
    );
    return materializedFromPb(r);
  }

  // ---- export and import ------------------------------------------------------------------

  /**
   * Streams a table (or view) as a CSV (default), JSON or NDJSON file: `for await` the chunks,
   * or `await exp.text()`. CSV has a header row and CRLF line ends; `delimiter` and `nullText`
   * apply to CSV only. Works over every transport, browsers included.
   */
  async exportTable(database: string, table: string, opts: ExportOptions = {}): Promise<Export> {
    const req = {
      database,
      table,
      format: formatPb(opts.format),
      csv: { delimiter: opts.delimiter ?? "", nullText: opts.nullText ?? "" },
    };
    return this.export((o) => this.transfer.exportTable(req, o), opts.signal);
  }

  /** Streams the rows of one read statement as a file; see `exportTable`. */
  async exportQuery(database: string, sql: string, params: readonly SqlParam[] = [], opts: ExportOptions = {}): Promise<Export> {
    const req = {
      database,
      statement: { sql, params: toValues(params) },
      format: formatPb(opts.format),
      csv: { delimiter: opts.delimiter ?? "", nullText: opts.nullText ?? "" },
    };
    return this.export((o) => this.transfer.exportQuery(req, o), opts.signal);
  }

  /**
   * Streams a dump of the whole database: an SQL script in the backend's dialect (schema, then
   * the data as INSERTs; `schemaOnly` leaves the data out) that `importSql` replays into a fresh
   * database of the same backend, or NDJSON key records on Redis (`importNdjson`).
   */
  async dumpDatabase(database: string, opts: { schemaOnly?: boolean; signal?: AbortSignal } = {}): Promise<Export> {
    const req = { database, schemaOnly: opts.schemaOnly ?? false };
    return this.export((o) => this.transfer.dumpDatabase(req, o), opts.signal);
  }

  /** Streams a graph database's quads as an RDF file in `format` (N-Triples and Turtle hold the default graph only). */
  async dumpRdf(database: string, format: RdfFormat, opts: { signal?: AbortSignal } = {}): Promise<Export> {
    const req = { database, schemaOnly: false, rdfFormat: format };
    return this.export((o) => this.transfer.dumpDatabase(req, o), opts.signal);
  }

  /**
   * Imports a CSV file into a table. `source` is bytes, the file's text, or chunks from an
   * (async) iterable such as `fs.createReadStream(path)`. By default all rows go in one
   * transaction and a bad row rejects with InvalidArgument naming its line (nothing inserted);
   * with `skipBadRows` bad rows are reported in `rejected` and the others inserted. Needs gRPC
   * over HTTP/2: over grpc-web it rejects with Unimplemented.
   */
  async importCsv(database: string, table: string, source: ImportSource, opts: ImportCsvOptions = {}): Promise<ImportCsvResult> {
    const createTable =
      opts.create === undefined || opts.create === false
        ? undefined
        : { columnTypes: opts.create === true ? {} : { ...opts.create }, sampleRows: opts.sampleRows ?? 0 };
    const header = create(ImportCsvRequestSchema, {
      message: {
        case: "header",
        value: {
          database,
          table,
          csv: { delimiter: opts.delimiter ?? "", nullText: opts.nullText ?? "", noHeader: opts.noHeader ?? false },
          create: createTable,
          skipBadRows: opts.skipBadRows ?? false,
        },
      },
    });
    const r = await this.import<ImportCsvRequest, ImportCsvResponse>(
      "importCsv",
      (reqs, o) => this.transfer.importCsv(reqs, o),
      header,
      (chunk) => create(ImportCsvRequestSchema, { message: { case: "chunk", value: chunk } }),
      source,
      opts,
    );
    return importCsvResultFromPb(r);
  }

  /**
   * Runs a multi-statement SQL script, such as a `dumpDatabase` output (a string is the SQL
   * itself). PostgreSQL and SQLite apply it entirely or not at all; MySQL keeps the DDL that ran
   * before a failing statement. The error names the statement's number and line. Needs gRPC
   * over HTTP/2.
   */
  async importSql(database: string, script: ImportSource, opts: ImportOptions = {}): Promise<ImportSqlResult> {
    const r = await this.import<ImportSqlRequest, ImportSqlResponse>(
      "importSql",
      (reqs, o) => this.transfer.importSql(reqs, o),
      create(ImportSqlRequestSchema, { message: { case: "header", value: { database } } }),
      (chunk) => create(ImportSqlRequestSchema, { message: { case: "chunk", value: chunk } }),
      script,
      opts,
    );
    return { statements: Number(r.statements), rowsAffected: Number(r.rowsAffected) };
  }

  /** Imports NDJSON key records (a Redis `dumpDatabase` output) atomically, replacing keys of the same name; resolves how many. Needs gRPC over HTTP/2. */
  async importNdjson(database: string, source: ImportSource, opts: ImportOptions = {}): Promise<number> {
    const r = await this.import<ImportNdjsonRequest, ImportNdjsonResponse>(
      "importNdjson",
      (reqs, o) => this.transfer.importNdjson(reqs, o),
      create(ImportNdjsonRequestSchema, { message: { case: "header", value: { database } } }),
      (chunk) => create(ImportNdjsonRequestSchema, { message: { case: "chunk", value: chunk } }),
      source,
      opts,
    );
    return Number(r.records);
  }

  /**
   * Loads an RDF file in `format` into a graph database atomically; resolves the quads read.
   * `graph` (N-Triples and Turtle) names the graph the triples go into. Needs gRPC over HTTP/2.
   */
  async importRdf(
    database: string,
    source: ImportSource,
    format: RdfFormat,
    opts: ImportOptions & { baseIri?: string; graph?: string } = {},
  ): Promise<number> {
    const value = { database, format, baseIri: opts.baseIri ?? "", graph: opts.graph ?? "" };
    const r = await this.import<ImportRdfRequest, ImportRdfResponse>(
      "importRdf",
      (reqs, o) => this.transfer.importRdf(reqs, o),
      create(ImportRdfRequestSchema, { message: { case: "header", value } }),
      (chunk) => create(ImportRdfRequestSchema, { message: { case: "chunk", value: chunk } }),
      source,
      opts,
    );
    return Number(r.quads);
  }

  // ---- access -----------------------------------------------------------------------------

  /** Creates an API key (admin keys only): its description and its secret, shown only this once. */
  async createApiKey(spec: ApiKeySpec): Promise<{ apiKey: ApiKey; secret: string }> {
    const r = await this.unary((o) =>
      this.access.createApiKey(
        {
          name: spec.name,
          admin: spec.admin ?? false,
          canCreate: spec.canCreate ?? false,
          createQuota: spec.createQuota ?? 0,
          grants: [...(spec.grants ?? [])],
          expiresAt: spec.expiresAt ? timestampFromDate(spec.expiresAt) : undefined,
        },
        o,
      ),
    );
    if (!r.apiKey) throw new Internal("the response carries no key");
    return { apiKey: apiKeyFromPb(r.apiKey), secret: r.secret };
  }

  /** Lists API keys, never their secrets (admin keys only); with `includeInactive`, also the revoked and expired ones. */
  async listApiKeys(opts: { includeInactive?: boolean } = {}): Promise<ApiKey[]> {
    const r = await this.unary((o) => this.access.listApiKeys({ includeInactive: opts.includeInactive ?? false }, o));
    return r.apiKeys.map(apiKeyFromPb);
  }

  /** Revokes a key at once (admin keys only); false when it already was. */
  async revokeApiKey(id: string): Promise<boolean> {
    return (await this.unary((o) => this.access.revokeApiKey({ id }, o))).revoked;
  }

  /** Describes the key this client uses. */
  async whoAmI(): Promise<ApiKey> {
    const r = await this.unary((o) => this.access.whoAmI({}, o));
    if (!r.apiKey) throw new Internal("the response carries no key");
    return apiKeyFromPb(r.apiKey);
  }

  // ---- operations (admin keys) --------------------------------------------------------------

  /** Operational figures: connections, streams, sessions, per-RPC calls and errors. */
  async serverStats(): Promise<ServerStats> {
    return serverStatsFromPb(await this.unary((o) => this.operations.getServerStats({}, o)));
  }

  /** One page of audit records, oldest first, and the token of the next page. */
  async listAuditEvents(filter: AuditFilter = {}): Promise<{ events: AuditEvent[]; nextPageToken: string | undefined }> {
    const r = await this.unary((o) =>
      this.operations.listAuditEvents(
        {
          keyId: filter.keyId ?? "",
          database: filter.database ?? "",
          outcome: filter.outcome ?? "",
          since: filter.since ? timestampFromDate(filter.since) : undefined,
          until: filter.until ? timestampFromDate(filter.until) : undefined,
          pageSize: filter.pageSize ?? 0,
          pageToken: filter.pageToken ?? "",
        },
        o,
      ),
    );
    return { events: r.events.map(auditEventFromPb), nextPageToken: r.nextPageToken || undefined };
  }

  /** Walks the audit log's hash chain and reports the first broken record. */
  async verifyAuditLog(): Promise<AuditVerdict> {
    return auditVerdictFromPb(await this.unary((o) => this.operations.verifyAuditLog({}, o)));
  }

  // ---- backups ----------------------------------------------------------------------------

  /**
   * Backs `database` up now, to the server's `target` (empty: its default target), and resolves
   * when the backup is stored. PermissionDenied without the owner role; NotFound for an unknown
   * database or target; Unavailable when the target or the database's server cannot be reached
   * (the backup is then listed as FAILED); Aborted while another backup of it runs. The
   * client's `timeoutMs` applies, as to every call.
   */
  async createBackup(database: string, opts: { target?: string; labels?: Record<string, string> } = {}): Promise<Backup> {
    const r = await this.unary((o) => this.backups.createBackup({ database, target: opts.target ?? "", labels: opts.labels ?? {} }, o));
    if (!r.backup) throw new Internal("the response carries no backup");
    return backupFromPb(r.backup);
  }

  /** Looks a backup up. NotFound when it does not exist or is of a database the key cannot see. */
  async getBackup(id: string): Promise<Backup> {
    const r = await this.unary((o) => this.backups.getBackup({ id }, o));
    if (!r.backup) throw new Internal("the response carries no backup");
    return backupFromPb(r.backup);
  }

  /** Every backup that matches, newest first, following pages for you. */
  async listBackups(filter: BackupFilter = {}): Promise<Backup[]> {
    const all: Backup[] = [];
    for await (const b of this.iterBackups(filter)) all.push(b);
    return all;
  }

  /** Like `listBackups`, fetching each page when the previous one is used up. */
  async *iterBackups(filter: BackupFilter = {}): AsyncGenerator<Backup> {
    let token: string | undefined = "";
    while (token !== undefined) {
      const page: { backups: Backup[]; nextPageToken: string | undefined } = await this.listBackupsPage({ ...filter, pageToken: token });
      yield* page.backups;
      token = page.nextPageToken;
    }
  }

  /** One page of backups and the token of the next page (undefined on the last). */
  async listBackupsPage(
    filter: BackupFilter & { pageToken?: string } = {},
  ): Promise<{ backups: Backup[]; nextPageToken: string | undefined }> {
    const req = {
      database: filter.database ?? "",
      labels: filter.labels ?? {},
      status: backupStatusPb(filter.status),
      pageSize: filter.pageSize ?? 0,
      pageToken: filter.pageToken ?? "",
    };
    const r = await this.unary((o) => this.backups.listBackups(req, o));
    return { backups: r.backups.map(backupFromPb), nextPageToken: r.nextPageToken || undefined };
  }

  /**
   * Deletes a backup: its stored object, its manifest and its record. NotFound when it does not
   * exist, unless `allowMissing`; FailedPrecondition while it is running. Resolves whether it
   * deleted one.
   */
  async deleteBackup(id: string, opts: { allowMissing?: boolean } = {}): Promise<boolean> {
    const r = await this.unary((o) => this.backups.deleteBackup({ id, allowMissing: opts.allowMissing ?? false }, o));
    return r.deleted;
  }

  /**
   * Restores a completed backup. `"replace"` (`RestoreMode.REPLACE`) rebuilds the database it
   * came from, after a safety backup of it (`safetyBackup`); calls on that database fail with
   * Unavailable until the restored copy is swapped in. `"new"` (`RestoreMode.NEW`) restores into
   * a new database `newName` with `labels`, leaving the original alone.
   *
   * DataLoss when the stored backup does not match its checksum or manifest (nothing changed);
   * FailedPrecondition for a backup that is not COMPLETED or a restore onto another backend;
   * AlreadyExists when `newName` is taken; NotFound for an unknown backup; PermissionDenied.
   */
  async restoreBackup(
    id: string,
    mode: RestoreModeLike,
    opts: { newName?: string; labels?: Record<string, string> } = {},
  ): Promise<Restored> {
    const req = { backupId: id, mode: restoreModePb(mode), newName: opts.newName ?? "", labels: opts.labels ?? {} };
    return restoredFromPb(await this.unary((o) => this.backups.restoreBackup(req, o)));
  }

  /**
   * Creates or replaces (by name) a backup policy; resolves it as stored (with its next run) and
   * whether it is new. RangeError unless exactly one selector and one schedule are set;
   * InvalidArgument for a bad schedule, selector or retention.
   */
  async setBackupPolicy(policy: BackupPolicySpec): Promise<{ policy: BackupPolicy; created: boolean }> {
    const req = { policy: policyPb(policy) };
    const r = await this.unary((o) => this.backups.setBackupPolicy(req, o));
    if (!r.policy) throw new Internal("the response carries no policy");
    return { policy: policyFromPb(r.policy), created: r.created };
  }

  /** The backup policies the key can see, by name. */
  async listBackupPolicies(): Promise<BackupPolicy[]> {
    const r = await this.unary((o) => this.backups.listBackupPolicies({}, o));
    return r.policies.map(policyFromPb);
  }

  /** Deletes a backup policy (its backups stay). NotFound when it does not exist, unless `allowMissing`; resolves whether it deleted one. */
  async deleteBackupPolicy(name: string, opts: { allowMissing?: boolean } = {}): Promise<boolean> {
    const r = await this.unary((o) => this.backups.deleteBackupPolicy({ name, allowMissing: opts.allowMissing ?? false }, o));
    return r.deleted;
  }
}

function linkedAbort(signal: AbortSignal | undefined): AbortController {
  const abort = new AbortController();
  if (signal) {
    if (signal.aborted) abort.abort(signal.reason);
    else signal.addEventListener("abort", () => abort.abort(signal.reason), { once: true });
  }
  return abort;
}

/** A queue of requests that the bidi call reads as an async iterable. */
class RequestQueue implements AsyncIterable<SessionRequest> {
  private items: SessionRequest[] = [];
  private waiting: ((r: SessionRequest | undefined) => void) | undefined;
  private closed = false;

  push(req: SessionRequest): void {
    if (this.closed) return;
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w(req);
    else this.items.push(req);
  }

  close(): void {
    this.closed = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.(undefined);
  }

  private take(): Promise<SessionRequest | undefined> {
    const item = this.items.shift();
    if (item || this.closed) return Promise.resolve(item);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  // An async generator, so the transport gets the return()/throw() it relies on.
  async *[Symbol.asyncIterator](): AsyncGenerator<SessionRequest> {
    for (let r = await this.take(); r; r = await this.take()) yield r;
  }
}

/**
 * An interactive transaction on a connection the server pins to it. Statements see each
 * other's effects; nothing is visible to others until `commit()`. A transaction that is
 * neither committed nor rolled back is rolled back when its stream closes (`close()`).
 */
export class Transaction {
  /** False once committed, rolled back, or ended by the engine. */
  active = false;
  private closed = false;

  private constructor(
    private readonly requests: RequestQueue,
    private readonly responses: AsyncIterator<SessionResponse>,
  ) {}

  static async begin(client: DBForgeClient, database: string): Promise<Transaction> {
    const requests = new RequestQueue();
    requests.push(create(SessionRequestSchema, { kind: { case: "begin", value: { database } } }));
    const responses = client.queries.session(requests, client.callOptions())[Symbol.asyncIterator]();
    const tx = new Transaction(requests, responses);
    tx.active = true;
    try {
      await tx.expect("begun");
    } catch (e) {
      tx.close();
      throw e;
    }
    return tx;
  }

  private async next(): Promise<SessionResponse> {
    let r: IteratorResult<SessionResponse>;
    try {
      r = await this.responses.next();
    } catch (e) {
      this.active = false;
      throw toDBForgeError(e);
    }
    if (r.done) {
      this.active = false;
      throw new Internal("the session ended unexpectedly");
    }
    const k = r.value.kind;
    if (k.case === "error") {
      if (!k.value.transactionActive) this.active = false;
      throw errorFor(k.value.code, k.value.message, k.value.reason || undefined, { ...k.value.metadata });
    }
    return r.value;
  }

  private async expect(kind: SessionResponse["kind"]["case"]): Promise<SessionResponse> {
    const r = await this.next();
    if (r.kind.case !== kind) throw new Internal(`unexpected session response ${r.kind.case}, wanted ${kind}`);
    return r;
  }

  private async call(req: SessionRequest["kind"], kind: SessionResponse["kind"]["case"]): Promise<SessionResponse> {
    if (!this.active) throw new Internal("the transaction has ended");
    this.requests.push(create(SessionRequestSchema, { kind: req }));
    return this.expect(kind);
  }

  /** Runs a statement inside the transaction. A failing statement rejects and leaves the transaction open unless the engine ended it. */
  async execute(sql: string, params: readonly SqlParam[] = []): Promise<ExecResult> {
    const r = await this.call(
      { case: "statement", value: create(StatementSchema, { sql, params: toValues(params) }) },
      "result",
    );
    return execResultFromPb(r.kind.case === "result" ? r.kind.value : undefined);
  }

  /** Commits and ends the transaction. */
  async commit(): Promise<void> {
    try {
      await this.call({ case: "commit", value: create(SessionCommitSchema) }, "committed");
    } finally {
      this.close();
    }
  }

  /** Rolls back and ends the transaction. */
  async rollback(): Promise<void> {
    try {
      if (this.active) await this.call({ case: "rollback", value: create(SessionRollbackSchema) }, "rolledBack");
    } finally {
      this.close();
    }
  }

  /** Ends the stream; an open transaction is rolled back by the server. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.active = false;
    this.requests.close();
    // Read the stream to its end (the server closes it once the requests end), so the call
    // settles and releases its deadline timer.
    void (async () => {
      try {
        while (!(await this.responses.next()).done);
      } catch {
        // ended with an error: nothing left to release
      }
    })();
  }
}

export { DBForgeError };
