/**
 * Lifecycle policies (DatabaseService.SetLifecyclePolicy and friends) as plain objects, the same
 * shape as Rust's `dbforge::LifecyclePolicy` and Python's `dbforge.LifecyclePolicy`. A policy
 * applies to every database its selector matches (`namePattern`, `labels`, or both), existing
 * and future; a database's own TTLs and the policies combine so that the stricter wins.
 * Setting and deleting need an admin key.
 */
import type { LifecyclePolicy as PbLifecyclePolicy } from "./gen/dbforge/v1/database_pb.js";
import { ms, optionalDate } from "./admin.js";
import { durationPb } from "./backup.js";

/** What `setLifecyclePolicy` takes. Durations are in milliseconds. */
export interface LifecyclePolicySpec {
  /** 1 to 63 characters `a-z 0-9 _ -`, starting with a letter; a policy of the same name is replaced. */
  name: string;
  /** Database names it selects, `*` standing for any characters; empty or undefined: any name. */
  namePattern?: string;
  /** Labels a selected database carries (all of them). Set `namePattern`, `labels` or both. */
  labels?: Record<string, string>;
  /** Prune a selected database after this long without a data-plane call. */
  idleTtlMs?: number | undefined;
  /** Prune a selected database this long after its creation. */
  maxAgeMs?: number | undefined;
  /** At most this many selected databases per (non-admin) key; 0: no limit. */
  maxDatabasesPerKey?: number;
  /** A size quota in bytes for every selected database; undefined or 0: none. */
  maxBytes?: number | bigint;
}

/** A lifecycle policy as the server stores it. */
export interface LifecyclePolicy {
  name: string;
  /** The name pattern it selects, or empty. */
  namePattern: string;
  /** The labels it selects, or empty. */
  labels: Record<string, string>;
  /** Idle prune after this many milliseconds; undefined: no idle rule. */
  idleTtlMs: number | undefined;
  /** Prune at this age in milliseconds; undefined: no age rule. */
  maxAgeMs: number | undefined;
  /** At most this many selected databases per key; 0: no limit. */
  maxDatabasesPerKey: number;
  /** A size quota in bytes for every selected database; 0: none. */
  maxBytes: bigint;
  /** When it was last set. */
  updatedAt: Date | undefined;
  /** The key that last set it (`-` without authentication). */
  updatedBy: string;
}

/** The SDK's shape of a stored policy. */
export function lifecyclePolicyFromPb(p: PbLifecyclePolicy): LifecyclePolicy {
  return {
    name: p.name,
    namePattern: p.namePattern,
    labels: { ...p.labels },
    idleTtlMs: p.idleTtl ? ms(p.idleTtl) : undefined,
    maxAgeMs: p.maxAge ? ms(p.maxAge) : undefined,
    maxDatabasesPerKey: p.maxDatabasesPerKey,
    maxBytes: p.maxBytes,
    updatedAt: optionalDate(p.updatedAt),
    updatedBy: p.updatedBy,
  };
}

/** The policy as SetLifecyclePolicy takes it (without what the server sets). */
export function lifecyclePolicyPb(p: LifecyclePolicySpec) {
  return {
    name: p.name,
    namePattern: p.namePattern ?? "",
    labels: p.labels ?? {},
    idleTtl: p.idleTtlMs === undefined ? undefined : durationPb(p.idleTtlMs),
    maxAge: p.maxAgeMs === undefined ? undefined : durationPb(p.maxAgeMs),
    maxDatabasesPerKey: p.maxDatabasesPerKey ?? 0,
    maxBytes: BigInt(p.maxBytes ?? 0),
  };
}
