/**
 * Databases: the list (polled every 3 s; the lifecycle event stream does not exist yet),
 * a filter over name, backend and labels, spawn and prune (with a dialog naming the database).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { Backend, type Database } from "@dbforge/sdk/web";
import { backendName, bytesText, errorText, statusName, timeText } from "../format";
import { href } from "../router";
import { mayCreate, type Session } from "../session";

const POLL_MS = 3000;

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
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let loading = false;
    const load = async () => {
      // A hidden tab does not poll; it refreshes when shown again (visibilitychange below).
      if (document.hidden || loading) return;
      clearTimeout(timer);
      loading = true;
      try {
        const list = await client.listDatabases();
        if (!live) return;
        setDbs(list);
        setError("");
      } catch (e) {
        if (live) setError(errorText(e));
      }
      loading = false;
      if (live) timer = setTimeout(load, POLL_MS);
    };
    void load();
    const onVisible = () => void load();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      live = false;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [client, tick]);

  const shown = (dbs ?? []).filter((d) => matches(d, filter));
  return (
    <section aria-labelledby="dbs-title">
      <h1 id="dbs-title">Databases</h1>
      {mayCreate(me) && <SpawnForm session={session} onSpawned={() => setTick((t) => t + 1)} />}
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
            if (pruned) setTick((t) => t + 1);
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
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setMsg(null);
    try {
      const r = await session.client.createDatabase(name.trim(), { backend, labels: parseLabels(labels) });
      setMsg({ ok: true, text: `Spawned ${r.database.name} (${backendName(r.database.backend)})` });
      setName("");
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
