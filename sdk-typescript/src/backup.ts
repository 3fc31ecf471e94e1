/**
 * Backups, restores and backup policies (BackupService), as the SDK's own plain objects rather
 * than the generated messages (the same shapes as Rust's `dbforge::Backup`, … and Python's
 * `dbforge.backup`).
 *
 * Field names are the proto's (camelCase); a `oneof` is flattened into its members
 * (`BackupPolicy.database` / `pattern` / `labels`, `everyMs` / `cron`), of which exactly one is
 * set. Values are JavaScript's own, as in `admin.ts`: `Date` for timestamps, milliseconds (`…Ms`)
 * for durations, `number` for sizes and counts, `undefined` for a time or duration not set.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import {
  BackupStatus,
  RestoreMode,
  type Backup as PbBackup,
  type BackupManifest as PbBackupManifest,
  type BackupPolicy as PbBackupPolicy,
  type RestoreBackupResponse,
} from "./gen/dbforge/v1/backup_pb.js";
import { Backend } from "./gen/dbforge/v1/types_pb.js";
import { date, ms, optionalDate } from "./admin.js";
import { Internal } from "./errors.js";
import { databaseFromPb, type Database } from "./types.js";

export { BackupStatus, RestoreMode };

/** The row (or key) count of one table in a backup. */
export interface TableRowCount {
  table: string;
  /** Rows it held at backup time. */
  rows: number;
}

/** What a backup holds, as its manifest says. */
export interface BackupManifest {
  /** Version of the backup format. */
  formatVersion: number;
  /** The engine's name. */
  engine: string;
  /** The version the engine's server reported, e.g. "15.4" or "10.11.6-MariaDB". */
  engineVersion: string;
  /** The gateway version that wrote it. */
  gatewayVersion: string;
  /** Tables at backup time. */
  tables: number;
  /** Views at backup time. */
  views: number;
  /** Rows per table (SQL engines), in table order. */
  rowCounts: TableRowCount[];
  /** Rows in all tables, or keys for key-value engines. */
  totalRows: number;
  /** Bytes of the backup before compression. */
  rawBytes: number;
}

/** One backup. */
export interface Backup {
  /** Its id, e.g. "bk-0192ab34cd56-7f3a09c1". */
  id: string;
  /** The database it is a backup of. */
  database: string;
  /** That database's engine. */
  backend: Backend;
  /** When it started. */
  createdAt: Date;
  /** Bytes stored (compressed): final once COMPLETED, growing while RUNNING. */
  sizeBytes: number;
  /** Lowercase hex SHA-256 of the stored bytes. */
  sha256: string;
  /** What the stored object holds, e.g. "dbforge-backup/1 sqlite-file zstd". */
  format: string;
  /** The server-side target it went to. */
  target: string;
  /** Where the stored object is, as a URL under the target. */
  location: string;
  /** Where it stands. */
  status: BackupStatus;
  /** How long it took (so far, while RUNNING), in milliseconds. */
  durationMs: number;
  /** Its labels; scheduled backups carry `dbforge.policy=<policy name>`. */
  labels: Record<string, string>;
  /** Why it failed (empty unless FAILED). */
  error: string;
  /** The manifest, once COMPLETED. */
  manifest: BackupManifest | undefined;
}

/** The answer of `restoreBackup`. */
export interface Restored {
  /** The restored database. */
  database: Database;
  /** For REPLACE, the backup taken of the database just before it was replaced (restore it to undo the restore); undefined for NEW. */
  safetyBackup: Backup | undefined;
  /** Rows (or keys) restored. */
  rows: number;
  /** How long the restore took, in milliseconds. */
  durationMs: number;
}

/**
 * A backup policy as `setBackupPolicy` takes it: exactly one of `database`, `pattern` (`*`
 * stands for any characters) and `labels` (all of them) says which databases (patterns and
 * labels need an admin key), exactly one of `everyMs` (at least a minute, counted from the last
 * run) and `cron` (UTC, e.g. "0 3 * * *") says when, and at least one of `keepLast` and
 * `keepWithinMs` says how many to keep. A `BackupPolicy` the server answered is one too.
 */
export interface BackupPolicySpec {
  /** 1 to 63 characters `a-z 0-9 _ -`, starting with a letter; a policy of the same name is replaced. */
  name: string;
  database?: string;
  pattern?: string;
  labels?: Record<string, string>;
  everyMs?: number | undefined;
  cron?: string;
  /** Keep the newest N completed backups of each database; 0: no count rule. */
  keepLast?: number;
  /** Keep the completed backups younger than this; undefined: no age rule. */
  keepWithinMs?: number | undefined;
  /** The server-side target; empty is the default target. */
  target?: string;
}

/** A backup policy as the server stores it (the fields of `BackupPolicySpec`, each set, and what the server adds). */
export interface BackupPolicy {
  name: string;
  /** The one database it backs up, or empty. */
  database: string;
  /** The name pattern of the databases it backs up, or empty. */
  pattern: string;
  /** The labels of the databases it backs up, or empty. */
  labels: Record<string, string>;
  /** At this interval, in milliseconds; undefined when `cron` is set. */
  everyMs: number | undefined;
  /** A cron expression in UTC, or empty when `everyMs` is set. */
  cron: string;
  /** Keep the newest N completed backups of each database; 0: no count rule. */
  keepLast: number;
  /** Keep the completed backups younger than this, in milliseconds; undefined: no age rule. */
  keepWithinMs: number | undefined;
  /** The server-side target; empty is the default target. */
  target: string;
  /** When it was created or last replaced. */
  updatedAt: Date | undefined;
  /** When it last ran. */
  lastRunAt: Date | undefined;
  /** When it runs next. */
  nextRunAt: Date | undefined;
  /** The error of the last run, when it failed. */
  lastError: string;
}

export type RestoreModeLike = RestoreMode | "replace" | "new";
export type BackupStatusLike = BackupStatus | "running" | "completed" | "failed";

export function restoreModePb(mode: RestoreModeLike): RestoreMode {
  if (typeof mode === "number") return mode;
  if (mode === "replace") return RestoreMode.REPLACE;
  if (mode === "new") return RestoreMode.NEW;
  throw new RangeError(`unknown restore mode ${JSON.stringify(mode)}: use "replace" or "new"`);
}

export function backupStatusPb(status: BackupStatusLike | undefined): BackupStatus {
  if (status === undefined) return BackupStatus.UNSPECIFIED;
  if (typeof status === "number") return status;
  switch (status) {
    case "running":
      return BackupStatus.RUNNING;
    case "completed":
      return BackupStatus.COMPLETED;
    case "failed":
      return BackupStatus.FAILED;
  }
  throw new RangeError(`unknown backup status ${JSON.stringify(status)}: use "running", "completed" or "failed"`);
}

/** Milliseconds as a protobuf Duration, to the nanosecond (protobuf-es' `durationFromMs` keeps fractional nanos). */
export function durationPb(millis: number): Duration {
  if (!Number.isFinite(millis) || millis < 0) throw new RangeError(`a duration must be a non-negative number of milliseconds, not ${millis}`);
  let seconds = Math.floor(millis / 1000);
  let nanos = Math.round((millis - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return create(DurationSchema, { seconds: BigInt(seconds), nanos });
}

export function backupFromPb(b: PbBackup): Backup {
  return {
    id: b.id,
    database: b.database,
    backend: b.backend in Backend ? b.backend : Backend.UNSPECIFIED,
    createdAt: date(b.createdAt),
    sizeBytes: Number(b.sizeBytes),
    sha256: b.sha256,
    format: b.format,
    target: b.target,
    location: b.location,
    status: b.status in BackupStatus ? b.status : BackupStatus.UNSPECIFIED,
    durationMs: ms(b.duration),
    labels: { ...b.labels },
    error: b.error,
    manifest: b.manifest ? manifestFromPb(b.manifest) : undefined,
  };
}

function manifestFromPb(m: PbBackupManifest): BackupManifest {
  return {
    formatVersion: m.formatVersion,
    engine: m.engine,
    engineVersion: m.engineVersion,
    gatewayVersion: m.gatewayVersion,
    tables: m.tables,
    views: m.views,
    rowCounts: m.rowCounts.map((r) => ({ table: r.table, rows: Number(r.rows) })),
    totalRows: Number(m.totalRows),
    rawBytes: Number(m.rawBytes),
  };
}

export function restoredFromPb(r: RestoreBackupResponse): Restored {
  if (!r.database) throw new Internal("the response carries no database");
  return {
    database: databaseFromPb(r.database),
    safetyBackup: r.safetyBackup ? backupFromPb(r.safetyBackup) : undefined,
    rows: Number(r.rows),
    durationMs: ms(r.duration),
  };
}

export function policyFromPb(p: PbBackupPolicy): BackupPolicy {
  const s = p.selector?.selector;
  return {
    name: p.name,
    database: s?.case === "database" ? s.value : "",
    pattern: s?.case === "pattern" ? s.value : "",
    labels: s?.case === "labels" ? { ...s.value.labels } : {},
    everyMs: p.schedule.case === "every" ? ms(p.schedule.value) : undefined,
    cron: p.schedule.case === "cron" ? p.schedule.value : "",
    keepLast: p.keepLast,
    keepWithinMs: p.keepWithin ? ms(p.keepWithin) : undefined,
    target: p.target,
    updatedAt: optionalDate(p.updatedAt),
    lastRunAt: optionalDate(p.lastRunAt),
    nextRunAt: optionalDate(p.nextRunAt),
    lastError: p.lastError,
  };
}

/** The policy as SetBackupPolicy takes it (without what the server sets); RangeError unless exactly one selector and one schedule are set. */
export function policyPb(p: BackupPolicySpec) {
  const labels = p.labels ?? {};
  const selectors = [p.database, p.pattern].filter((s) => s).length + (Object.keys(labels).length > 0 ? 1 : 0);
  if (selectors !== 1) throw new RangeError(`policy ${JSON.stringify(p.name)}: set exactly one of database, pattern and labels`);
  if ((p.everyMs === undefined) === !p.cron) throw new RangeError(`policy ${JSON.stringify(p.name)}: set exactly one of everyMs and cron`);
  return {
    name: p.name,
    selector: {
      selector: p.database
        ? { case: "database" as const, value: p.database }
        : p.pattern
          ? { case: "pattern" as const, value: p.pattern }
          : { case: "labels" as const, value: { labels } },
    },
    schedule:
      p.everyMs !== undefined ? { case: "every" as const, value: durationPb(p.everyMs) } : { case: "cron" as const, value: p.cron ?? "" },
    keepLast: p.keepLast ?? 0,
    keepWithin: p.keepWithinMs === undefined ? undefined : durationPb(p.keepWithinMs),
    target: p.target ?? "",
  };
}
