/**
 * Admin (admin keys only; the server refuses the calls to other keys as well): API keys (create
 * with grants, the secret shown once, revoke), the audit log with filters and the chain check,
 * and server figures with per-backend health (the gateway's grpc.health.v1 entries) and the
 * number of databases on each.
 */
import { useEffect, useState } from "preact/hooks";
import { DatabaseStatus, Grant, Role, type ApiKey, type KeyGrant, type AuditEvent, type AuditVerdict, type Database, type ServerStats } from "@dbforge/sdk/web";
import { backendName, errorText, timeText } from "../format";
import { BACKENDS, backendHealth, type BackendHealth } from "../health";
import { href } from "../router";
import { parseLabels } from "./databases";
import type { Session } from "../session";

export function AdminPage({ session, tab }: { session: Session; tab: "keys" | "audit" | "stats" }) {
  return (
    <section aria-labelledby="admin-title">
      <div class="page-head">
        <h1 id="admin-title">Admin</h1>
        <nav aria-label="Admin" class="tabs">
          <a href={href({ page: "admin", tab: "keys" })} aria-current={tab === "keys" ? "page" : undefined}>
            API keys
          </a>
          <a href={href({ page: "admin", tab: "audit" })} aria-current={tab === "audit" ? "page" : undefined}>
            Audit log
          </a>
          <a href={href({ page: "admin", tab: "stats" })} aria-current={tab === "stats" ? "page" : undefined}>
            Server
          </a>
        </nav>
      </div>
      {tab === "keys" ? <Keys session={session} /> : tab === "audit" ? <Audit session={session} /> : <Stats session={session} />}
    </section>
  );
}

function Keys({ session }: { session: Session }) {
  const { client } = session;
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState("");
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [name, setName] = useState("");
  const [admin, setAdmin] = useState(false);
  const [canCreate, setCanCreate] = useState(false);
  const [target, setTarget] = useState("");
  const [grantKind, setGrantKind] = useState<GrantKind>("names");
  const [role, setRole] = useState<"read" | "write" | "owner">("read");
  const [quota, setQuota] = useState("");
  const [expires, setExpires] = useState("");
  const [inactive, setInactive] = useState(false);

  const load = () =>
    client.listApiKeys({ includeInactive: inactive }).then(
      (k) => (setKeys(k), setError("")),
      (e: unknown) => setError(errorText(e)),
    );
  useEffect(() => {
    void load();
  }, [inactive]);

  const create = async (e: Event) => {
    e.preventDefault();
    setError("");
    try {
      const r0 = role === "owner" ? Role.OWNER : role === "write" ? Role.WRITE : Role.READ;
      const grants = grantsOf(grantKind, target, r0);
      // datetime-local is the browser's local time; the gateway gets the instant.
      const expiresAt = expires ? new Date(expires) : undefined;
      if (expiresAt && Number.isNaN(expiresAt.getTime())) throw new Error(`expiry "${expires}" is not a date and time`);
      const createQuota = quota.trim() ? Number(quota) : 0;
      if (!Number.isInteger(createQuota) || createQuota < 0) throw new Error("the spawn quota must be a whole number, 0 for no limit");
      const r = await client.createApiKey({ name: name.trim(), admin, canCreate, createQuota, grants, expiresAt });
      setSecret({ name: r.apiKey.name, secret: r.secret });
      setName("");
      setTarget("");
      setExpires("");
      setQuota("");
      void load();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const revoke = async (k: ApiKey) => {
    try {
      await client.revokeApiKey(k.id);
      void load();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div>
      <form class="spawn" onSubmit={create} aria-label="Create an API key">
        <div class="field">
          <label for="key-name">Name</label>
          <input id="key-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="key-grant-kind">Grant on</label>
          <select id="key-grant-kind" value={grantKind} onChange={(e) => setGrantKind((e.target as HTMLSelectElement).value as GrantKind)}>
            <option value="names">databases by name or pattern</option>
            <option value="labels">databases with labels</option>
          </select>
        </div>
        <div class="field">
          <label for="key-target">{grantKind === "labels" ? "Labels (all must match)" : "Names or patterns (comma-separated, * for any)"}</label>
          <input
            id="key-target"
            placeholder={grantKind === "labels" ? "team=web, env=dev" : "agent-42-*"}
            value={target}
            onInput={(e) => setTarget((e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="key-role">Role</label>
          <select id="key-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as "read" | "write" | "owner")}>
            <option value="read">read</option>
            <option value="write">write</option>
            <option value="owner">owner</option>
          </select>
        </div>
        <div class="field">
          <label for="key-expires">Expires (empty: never)</label>
          <input id="key-expires" type="datetime-local" step={1} value={expires} onInput={(e) => setExpires((e.target as HTMLInputElement).value)} />
        </div>
        <label class="check">
          <input type="checkbox" checked={canCreate} onChange={(e) => setCanCreate((e.target as HTMLInputElement).checked)} /> may spawn
        </label>
        {canCreate && (
          <div class="field">
            <label for="key-quota">Spawn quota (0: no limit)</label>
            <input id="key-quota" class="short" inputMode="numeric" value={quota} onInput={(e) => setQuota((e.target as HTMLInputElement).value)} />
          </div>
        )}
        <label class="check">
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin((e.target as HTMLInputElement).checked)} /> admin
        </label>
        <button type="submit">Create key</button>
      </form>
      {secret && (
        <div class="secret" role="alert" data-testid="secret">
          <p>
            The secret of <strong>{secret.name}</strong>, shown this once (only its hash is stored):
          </p>
          <code class="code">{secret.secret}</code>
          <div class="buttons">
            <button type="button" onClick={() => void navigator.clipboard?.writeText(secret.secret)}>
              Copy
            </button>
            <button type="button" onClick={() => setSecret(null)}>
              Done, hide it
            </button>
          </div>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <label class="check">
        <input type="checkbox" checked={inactive} onChange={(e) => setInactive((e.target as HTMLInputElement).checked)} /> show revoked and
        expired keys
      </label>
      <div class="scroll-x">
        <table class="grid" data-testid="keys-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Rights</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Revoked</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(keys ?? []).map((k) => (
              <tr key={k.id} data-key={k.name}>
                <th scope="row">{k.name}</th>
                <td class="code">{k.id}</td>
                <td>
                  {[
                    k.admin ? "admin" : "",
                    k.canCreate ? `may spawn${k.createQuota ? ` (≤${k.createQuota})` : ""}` : "",
                    ...k.grants.map((g) => `${roleName(g.role)} on ${grantTarget(g)}`),
                  ]
                    .filter(Boolean)
                    .join(", ")}
                </td>
                <td>{timeText(k.createdAt)}</td>
                <td>{timeText(k.expiresAt)}</td>
                <td>{timeText(k.revokedAt)}</td>
                <td>
                  {!k.revokedAt && k.id !== session.me.id && (
                    <button type="button" class="danger" onClick={() => revoke(k)} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

type GrantKind = "names" | "labels";

/** The grants the form describes: one per name or pattern, or one over all the labels given. */
function grantsOf(kind: GrantKind, text: string, role: Role) {
  if (kind === "labels") {
    const labels = parseLabels(text);
    if (!Object.keys(labels).length) throw new Error("give at least one label key=value for a label grant");
    return [Grant.labels(labels, role)];
  }
  return text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => (t.includes("*") ? Grant.pattern(t, role) : Grant.database(t, role)));
}

function grantTarget(g: KeyGrant): string {
  if (g.database) return g.database;
  if (g.pattern) return g.pattern;
  const labels = Object.entries(g.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  return labels.length ? `labels ${labels.join(", ")}` : "?";
}

function roleName(r: Role): string {
  return r === Role.OWNER ? "owner" : r === Role.WRITE ? "write" : r === Role.READ ? "read" : "?";
}

function Audit({ session }: { session: Session }) {
  const { client } = session;
  const [keyId, setKeyId] = useState("");
  const [database, setDatabase] = useState("");
  const [outcome, setOutcome] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [verdict, setVerdict] = useState<AuditVerdict | null>(null);
  const [error, setError] = useState("");
  const load = async (page?: string) => {
    setError("");
    try {
      // datetime-local inputs are in the browser's time zone; Date reads them so.
      const r = await client.listAuditEvents({
        keyId: keyId.trim(),
        database: database.trim(),
        outcome: outcome.trim(),
        ...(since ? { since: new Date(since) } : {}),
        ...(until ? { until: new Date(until) } : {}),
        pageSize: 200,
        pageToken: page ?? "",
      });
      setEvents((old) => (page && old ? [...old, ...r.events] : r.events));
      setNext(r.nextPageToken);
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    void load();
  }, []);
  const verify = async () => {
    try {
      setVerdict(await client.verifyAuditLog());
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div>
      <form
        class="spawn"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <div class="field">
          <label for="audit-key">Key id</label>
          <input id="audit-key" value={keyId} onInput={(e) => setKeyId((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="audit-db">Database</label>
          <input id="audit-db" value={database} onInput={(e) => setDatabase((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="audit-outcome">Outcome</label>
          <input id="audit-outcome" placeholder="OK, PERMISSION_DENIED…" value={outcome} onInput={(e) => setOutcome((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="audit-since">From</label>
          <input id="audit-since" type="datetime-local" step="1" value={since} onInput={(e) => setSince((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="audit-until">Until</label>
          <input id="audit-until" type="datetime-local" step="1" value={until} onInput={(e) => setUntil((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit">Filter</button>
        <button type="button" onClick={verify}>
          Check the chain
        </button>
      </form>
      {verdict && (
        <p class={verdict.ok ? "ok" : "error"} role="status" data-testid="verdict">
          {verdict.ok
            ? `Chain intact: ${verdict.checked} records checked.`
            : `Chain broken at record ${verdict.firstBrokenSeq}: ${verdict.problem} (${verdict.checked} checked).`}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="scroll-x">
        <table class="grid" data-testid="audit-table">
          <thead>
            <tr>
              <th scope="col" class="num">
                Seq
              </th>
              <th scope="col">Time</th>
              <th scope="col">Key</th>
              <th scope="col">RPC</th>
              <th scope="col">Database</th>
              <th scope="col">Statement</th>
              <th scope="col">Outcome</th>
              <th scope="col" class="num">
                ms
              </th>
            </tr>
          </thead>
          <tbody>
            {(events ?? []).map((e) => (
              <tr key={e.seq}>
                <td class="num">{e.seq}</td>
                <td>{timeText(e.time)}</td>
                <td class="code">{e.keyId}</td>
                <td>{e.rpc}</td>
                <td>{e.database}</td>
                <td class="code clip" title={e.statement}>
                  {e.statement}
                </td>
                <td class={e.outcome === "OK" ? "" : "warn"}>{e.outcome}</td>
                <td class="num">{e.durationMs.toFixed(1)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {next && (
        <button type="button" onClick={() => load(next)}>
          More
        </button>
      )}
    </div>
  );
}

function Stats({ session }: { session: Session }) {
  const { client } = session;
  const [stats, setStats] = useState<ServerStats | null>(null);
  const [dbs, setDbs] = useState<Database[]>([]);
  const [health, setHealth] = useState<Record<string, BackendHealth>>({});
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const [s, d, h] = await Promise.all([client.serverStats(), client.listDatabases(), backendHealth(client)]);
        if (!live) return;
        setStats(s);
        setDbs(d);
        setHealth(h);
        setError("");
      } catch (e) {
        if (live) setError(errorText(e));
      }
      if (live) timer = setTimeout(load, 5000);
    };
    void load();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, []);
  return (
    <div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {stats && (
        <dl class="figures" data-testid="stats">
          <div>
            <dt>Uptime</dt>
            <dd>{(stats.uptimeMs / 1000).toFixed(0)} s</dd>
          </div>
          <div>
            <dt>Connections</dt>
            <dd>{stats.activeConnections}</dd>
          </div>
          <div>
            <dt>Streams</dt>
            <dd>{stats.activeStreams}</dd>
          </div>
          <div>
            <dt>Sessions</dt>
            <dd>{stats.activeSessions}</dd>
          </div>
          <div>
            <dt>Databases</dt>
            <dd>{stats.databases}</dd>
          </div>
          <div>
            <dt>Open databases</dt>
            <dd>{stats.openDatabases}</dd>
          </div>
          <div>
            <dt>Error rate</dt>
            <dd>{(stats.errorRate * 100).toFixed(2)} %</dd>
          </div>
        </dl>
      )}
      <h2>Backends</h2>
      <table class="grid" data-testid="backend-health">
        <thead>
          <tr>
            <th scope="col">Backend</th>
            <th scope="col">Health</th>
            <th scope="col" class="num">
              Databases
            </th>
            <th scope="col" class="num">
              Unavailable
            </th>
          </tr>
        </thead>
        <tbody>
          {BACKENDS.map(([b, name]) => {
            const mine = dbs.filter((d) => d.backend === b);
            const down = mine.filter((d) => d.status === DatabaseStatus.UNAVAILABLE).length;
            const h = health[name] ?? "…";
            return (
              <tr key={b} data-backend={name}>
                <th scope="row">{backendName(b)}</th>
                <td class={h === "serving" ? "ok" : h === "not configured" ? "muted" : "warn"}>{h}</td>
                <td class="num">{mine.length}</td>
                <td class={down ? "warn" : ""}>{down}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {stats && (
        <>
          <h2>Calls per RPC</h2>
          <div class="scroll-x">
            <table class="grid">
              <thead>
                <tr>
                  <th scope="col">RPC</th>
                  <th scope="col" class="num">
                    Calls
                  </th>
                  <th scope="col" class="num">
                    Errors
                  </th>
                  <th scope="col" class="num">
                    Mean ms
                  </th>
                  <th scope="col" class="num">
                    Max ms
                  </th>
                </tr>
              </thead>
              <tbody>
                {stats.rpcs.map((r) => (
                  <tr key={r.rpc}>
                    <th scope="row">{r.rpc}</th>
                    <td class="num">{r.calls}</td>
                    <td class="num">{r.errors}</td>
                    <td class="num">{r.meanDurationMs.toFixed(2)}</td>
                    <td class="num">{r.maxDurationMs.toFixed(2)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </div>
  );
}
