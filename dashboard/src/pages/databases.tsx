/**
 * Databases: the list, kept current by the lifecycle event stream (see live.ts; polling only
 * when the stream keeps failing), a filter over name, backend and labels, spawn (with TTL and
 * idle TTL) and prune (with a dialog naming the database).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { Backend, type Database } from "@dbforge/sdk/web";
import { backendName, bytesText, durationText, errorText, parseDuration, statusName, timeText } from "../format";
import { keepListed, type LiveList, type LiveMode } from "../live";
import { href } from "../router";
import { mayCreate, type Session } from "../session";

const MODE_TEXT: Record<LiveMode, string> = {
  connecting: "Connecting to live updates…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Live updates unavailable: polling every 3 s",
};

export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const t = part.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i <= 0) throw new Error(`label "${t}" is not key=value`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

export function matches(d: Database, filter: string): boolean {
  const f = filter.trim().toLowerCase();
  if (!f) return true;
  return f.split(/\s+/).every(
    (w) =>
      d.name.toLowerCase().includes(w) ||
      backendName(d.backend).toLowerCase().includes(w) ||
      Object.entries(d.labels).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(w)),
  );
}

export function DatabasesPage({ session }: { session: Session }) {
  const { client, me } = session;
  const [dbs, setDbs] = useState<Database[] | null>(null);
  const [error, setError] = useState("");
  const [filter, setFilter] = useState("");
  const [pruning, setPruning] = useState<string | null>(null);
  const [mode, setMode] = useState<{ mode: LiveMode; detail: string }>({ mode: "connecting", detail: "" });
  const live = useRef<LiveList | null>(null);

  useEffect(() => {
    const l = keepListed(client, {
      list: setDbs,
      mode: (m, detail) => setMode({ mode: m, detail }),
      error: setError,
    });
    live.current = l;
    return () => l.stop();
  }, [client]);
  const refresh = () => void live.current?.refresh();

  const shown = (dbs ?? []).filter((d) => matches(d, filter));
  return (
    <section aria-labelledby="dbs-title">
      <h1 id="dbs-title">Databases</h1>
      {mayCreate(me) && <SpawnForm session={session} onSpawned={refresh} />}
      <div class="toolbar">
        <label for="db-filter">Filter</label>
        <input
          id="db-filter"
          type="search"
          placeholder="name, backend or label=value"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
        <span role="status" class="muted">
          {dbs === null ? "Loading…" : `${shown.length} of ${dbs.length}`}
        </span>
        <span
          class={`live live-${mode.mode}`}
          data-testid="live-status"
          data-mode={mode.mode}
          title={mode.detail ? `Last stream error: ${mode.detail}` : undefined}
        >
          {MODE_TEXT[mode.mode]}
        </span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="scroll-x">
        <table class="grid" data-testid="databases">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Backend</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col">Created</th>
              <th scope="col">Last access</th>
              <th scope="col">Lifecycle</th>
              <th scope="col">Labels</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((d) => (
              <tr key={d.name} data-db={d.name}>
                <th scope="row">
                  <a href={href({ page: "console", db: d.name })}>{d.name}</a>
                </th>
                <td>{backendName(d.backend)}</td>
                <td>
                  <span class={`status status-${statusName(d.status)}`}>{statusName(d.status)}</span>
                </td>
                <td class="num">{bytesText(d.sizeBytes)}</td>
                <td>{timeText(d.createdAt)}</td>
                <td>{timeText(d.lastAccessedAt)}</td>
                <td data-testid="lifecycle">{lifecycleText(d)}</td>
                <td>
                  {Object.entries(d.labels).map(([k, v]) => (
                    <span class="label" key={k}>
                      {k}={v}
                    </span>
                  ))}
                </td>
                <td class="actions">
                  <a href={href({ page: "schema", db: d.name })}>Schema</a>
                  {(me.admin || me.canCreate) && (
                    <button type="button" class="danger" onClick={() => setPruning(d.name)} aria-label={`Prune ${d.name}`}>
                      Prune
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {pruning !== null && (
        <PruneDialog
          session={session}
          name={pruning}
          onClose={(pruned) => {
            setPruning(null);
            if (pruned) refresh();
          }}
        />
      )}
    </section>
  );
}

function SpawnForm({ session, onSpawned }: { session: Session; onSpawned: () => void }) {
  const [name, setName] = useState("");
  const [backend, setBackend] = useState<Backend>(Backend.SQLITE);
  const [labels, setLabels] = useState("");
  const [ttl, setTtl] = useState("");
  const [idleTtl, setIdleTtl] = useState("");
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setMsg(null);
    try {
      const ttlMs = fieldDuration("TTL", ttl);
      const idleTtlMs = fieldDuration("Idle TTL", idleTtl);
      const r = await session.client.createDatabase(name.trim(), { backend, labels: parseLabels(labels), ttlMs, idleTtlMs });
      setMsg({ ok: true, text: `Spawned ${r.database.name} (${backendName(r.database.backend)})` });
      setName("");
      setTtl("");
      setIdleTtl("");
      onSpawned();
    } catch (err) {
      setMsg({ ok: false, text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="spawn" onSubmit={submit} aria-label="Spawn a database">
      <div class="field">
        <label for="spawn-name">Name</label>
        <input id="spawn-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </div>
      <div class="field">
        <label for="spawn-backend">Backend</label>
        <select id="spawn-backend" value={backend} onChange={(e) => setBackend(Number((e.target as HTMLSelectElement).value) as Backend)}>
          <option value={Backend.SQLITE}>SQLite</option>
          <option value={Backend.POSTGRES}>PostgreSQL</option>
          <option value={Backend.MYSQL}>MySQL / MariaDB</option>
          <option value={Backend.REDIS}>Redis</option>
          <option value={Backend.GRAPH}>Graph (SPARQL)</option>
        </select>
      </div>
      <div class="field">
        <label for="spawn-labels">Labels</label>
        <input
          id="spawn-labels"
          placeholder="team=web, env=dev"
          value={labels}
          onInput={(e) => setLabels((e.target as HTMLInputElement).value)}
        />
      </div>
      <div class="field">
        <label for="spawn-ttl">TTL</label>
        <input
          id="spawn-ttl"
          class="short"
          placeholder="none, or 2h"
          aria-describedby="spawn-ttl-help"
          value={ttl}
          onInput={(e) => setTtl((e.target as HTMLInputElement).value)}
        />
      </div>
      <div class="field">
        <label for="spawn-idle">Idle TTL</label>
        <input
          id="spawn-idle"
          class="short"
          placeholder="none, or 30m"
          aria-describedby="spawn-ttl-help"
          value={idleTtl}
          onInput={(e) => setIdleTtl((e.target as HTMLInputElement).value)}
        />
      </div>
      <p id="spawn-ttl-help" class="muted help">
        TTL: pruned this long after spawning. Idle TTL: pruned after this long without queries. Units s, m, h, d.
      </p>
      <button type="submit" disabled={busy}>
        {busy ? "Spawning…" : "Spawn"}
      </button>
      {msg && (
        <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>
          {msg.text}
        </p>
      )}
    </form>
  );
}

function fieldDuration(field: string, text: string): number | undefined {
  try {
    return parseDuration(text);
  } catch (e) {
    throw new Error(`${field}: ${errorText(e)}`);
  }
}

/** When the gateway prunes it: its TTL's end and its idle TTL. */
function lifecycleText(d: Database): string {
  const parts: string[] = [];
  if (d.expireAt) parts.push(`expires ${timeText(d.expireAt)}`);
  if (d.idleTtlMs !== undefined) parts.push(`idle ${durationText(d.idleTtlMs)}`);
  return parts.join(", ") || "—";
}

function PruneDialog({ session, name, onClose }: { session: Session; name: string; onClose: (pruned: boolean) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const prune = async () => {
    setBusy(true);
    try {
      await session.client.deleteDatabase(name);
      ref.current?.close();
      onClose(true);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="prune-title" onCancel={() => onClose(false)}>
      <h2 id="prune-title">Prune {name}?</h2>
      <p>
        This deletes the database <strong>{name}</strong> and all its data. It cannot be undone (backups stay).
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={() => onClose(false)} autoFocus>
          Cancel
        </button>
        <button type="button" class="danger" disabled={busy} onClick={prune}>
          Prune {name}
        </button>
      </div>
    </dialog>
  );
}
