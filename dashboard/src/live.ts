/**
 * Keeping the databases list current: the list once, then the gateway's lifecycle event stream
 * (`DatabaseService.WatchDatabases` over grpc-web) applied to it. A dropped stream reconnects
 * with `since` (the last sequence seen), so the events missed meanwhile are replayed, each once;
 * when those are gone (OUT_OF_RANGE) or no event was seen yet, the list is read again. After
 * three quick failures in a row the list falls back to polling every 3 s and tries the stream
 * again every 30 s.
 */
import { DatabaseEventType, NotFound, OutOfRange, type Database, type DatabaseEvent, type DBForgeClient } from "@dbforge/sdk/web";
import { errorText } from "./format";

/** How the list keeps up, for the page to say. */
export type LiveMode = "connecting" | "live" | "reconnecting" | "polling";

export const POLL_MS = 3000;
/** Quick failures in a row before polling. */
export const FAILURES_BEFORE_POLLING = 3;
/** A stream that lasted this long was healthy: its end does not count as a failure in a row. */
const HEALTHY_MS = 10_000;
/** While polling, the stream is tried again this often. */
const RETRY_STREAM_MS = 30_000;
/** A stream still open this long after the call is taken as up (the first event may be far off). */
const UP_AFTER_MS = 1000;

const GONE = new Set<DatabaseEventType>([DatabaseEventType.DELETED, DatabaseEventType.EXPIRED, DatabaseEventType.PRUNED_IDLE]);

export interface LiveHandlers {
  /** The list as it is now (by name). */
  list(dbs: Database[]): void;
  /** How it keeps up, with the last stream error when there is one. */
  mode(mode: LiveMode, detail: string): void;
  /** A failed list call ("" once one succeeds again). */
  error(text: string): void;
}

export interface LiveList {
  /** Reads the list again now (after this tab spawned or pruned). */
  refresh(): Promise<void>;
  /** Stops the stream and any polling. */
  stop(): void;
}

export function keepListed(client: DBForgeClient, on: LiveHandlers): LiveList {
  const abort = new AbortController();
  let dbs = new Map<string, Database>();
  let since: number | undefined;
  // Names changed by events while a list call is out: the event is newer than what it returns.
  const listing = new Set<Set<string>>();
  let wake: (() => void) | undefined;

  const emit = () => on.list([...dbs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const list = async () => {
    const touched = new Set<string>();
    listing.add(touched);
    try {
      const next = new Map((await client.listDatabases()).map((d) => [d.name, d] as const));
      if (abort.signal.aborted) return;
      for (const name of touched) {
        const mine = dbs.get(name);
        if (mine) next.set(name, mine);
        else next.delete(name);
      }
      dbs = next;
      emit();
      on.error("");
    } catch (e) {
      if (!abort.signal.aborted) on.error(errorText(e));
    } finally {
      listing.delete(touched);
    }
  };

  const apply = async (ev: DatabaseEvent) => {
    for (const t of listing) t.add(ev.database);
    if (GONE.has(ev.type)) {
      dbs.delete(ev.database);
    } else {
      // Created, forked, restored, backed up: the event names the database; its record (size,
      // status, lifecycle) comes from GetDatabase.
      try {
        dbs.set(ev.database, await client.getDatabase(ev.database));
      } catch (e) {
        if (e instanceof NotFound) dbs.delete(ev.database);
        else throw e;
      }
    }
    since = ev.sequence;
    emit();
  };

  const watchOnce = async (): Promise<{ lasted: number; error: string }> => {
    const started = Date.now();
    const fresh = since === undefined;
    const up = setTimeout(() => {
      on.mode("live", "");
      // What happened between the list and the stream's start is in neither: read the list once
      // more (events arriving meanwhile win over it, see `listing`).
      if (fresh && since === undefined) void list();
    }, UP_AFTER_MS);
    try {
      for await (const ev of client.watchDatabases({ since, signal: abort.signal })) {
        clearTimeout(up);
        on.mode("live", "");
        await apply(ev);
      }
      return { lasted: Date.now() - started, error: "the gateway ended the stream" };
    } catch (e) {
      // The events after `since` are gone: only a fresh list is complete.
      if (e instanceof OutOfRange) since = undefined;
      return { lasted: Date.now() - started, error: errorText(e) };
    } finally {
      clearTimeout(up);
    }
  };

  const poll = async (detail: string) => {
    on.mode("polling", detail);
    const until = Date.now() + RETRY_STREAM_MS;
    while (!abort.signal.aborted && Date.now() < until) {
      // A hidden tab does not poll; it catches up when shown again (see onVisible).
      if (!document.hidden) await list();
      await sleep(POLL_MS);
    }
    // The stream starts again without `since`: the list just read is current.
    since = undefined;
  };

  void (async () => {
    let failures = 0;
    let fellBack = false;
    while (!abort.signal.aborted) {
      // Without a resume point the events before the stream are not replayed: read the list.
      if (since === undefined) await list();
      if (abort.signal.aborted) return;
      const { lasted, error } = await watchOnce();
      if (abort.signal.aborted) return;
      if (lasted >= HEALTHY_MS) {
        failures = 0;
        fellBack = false;
      } else {
        failures++;
      }
      if (failures >= FAILURES_BEFORE_POLLING || (fellBack && failures > 0)) {
        fellBack = true;
        failures = 0;
        await poll(error);
        continue;
      }
      on.mode("reconnecting", error);
      await sleep(Math.min(250 * 2 ** failures, 5000));
    }
  })();

  const onVisible = () => {
    if (!document.hidden) wake?.();
  };
  document.addEventListener("visibilitychange", onVisible);
  on.mode("connecting", "");
  return {
    refresh: list,
    stop: () => {
      abort.abort();
      wake?.();
      document.removeEventListener("visibilitychange", onVisible);
    },
  };
}
