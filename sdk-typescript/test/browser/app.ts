/**
 * The page of the browser test: the SDK's grpc-web transport (connect-web, fetch) against the
 * gateway on another origin. Query parameters: endpoint, key, db, rows, and mode ("transfer":
 * export a table, read its schema and explain a query instead of the query flow).
 */
import { Code, DBForgeError, Filter, Unauthenticated, connectWeb } from "../../src/web.js";

const params = new URLSearchParams(location.search);
const endpoint = params.get("endpoint")!;
const apiKey = params.get("key") ?? undefined;
const db = params.get("db")!;
const n = Number(params.get("rows") ?? "50");
const status = document.getElementById("status")!;

async function main(): Promise<void> {
  // Without the key the gateway says UNAUTHENTICATED, and the code reaches the page (CORS
  // exposes grpc-status and grpc-message).
  try {
    await connectWeb({ endpoint }).listDatabases();
    document.getElementById("auth")!.textContent = "no error";
  } catch (e) {
    const err = e as DBForgeError;
    document.getElementById("auth")!.textContent =
      `${err instanceof Unauthenticated ? "Unauthenticated" : "other"} ${err.code === Code.Unauthenticated ? 16 : err.code} ${err.rawMessage}`;
  }

  const client = connectWeb({ endpoint, apiKey, timeoutMs: 30_000 });
  await client.createDatabase(db, { labels: { from: "browser" } });
  await client.execute(db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)");
  await client.batch(
    db,
    Array.from({ length: n }, (_, i) => ["INSERT INTO items (name, price) VALUES (?, ?)", [`item-${i + 1}`, (i + 1) * 1.5]] as const),
    { transaction: true },
  );
  // A streamed query, rendered row by row as it arrives.
  const rows = await client.query(db, "SELECT id, name, price FROM items WHERE id % ? = 0 ORDER BY id", [5]);
  const head = document.querySelector("#rows thead")!;
  head.innerHTML = "<tr>" + rows.columnNames.map((c) => `<th>${c}</th>`).join("") + "</tr>";
  const body = document.querySelector("#rows tbody")!;
  for await (const row of rows) {
    const tr = document.createElement("tr");
    for (const cell of row) {
      const td = document.createElement("td");
      td.textContent = String(cell);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const selected = await (await client.selectRows(db, "items", { where: [Filter.le("id", 2)], orderBy: "-id" })).toArray();
  let notFound = "";
  try {
    await client.getDatabase(`${db}-missing`);
  } catch (e) {
    notFound = `${(e as DBForgeError).codeName} ${(e as DBForgeError).reason}`;
  }
  await client.deleteDatabase(db);
  status.textContent = `done rows=${rows.summary?.rowCount} select=${selected.map((r) => r[1]).join(",")} notfound=${notFound}`;
}

/** Exports, schema and plans work over grpc-web; imports fail clearly before sending anything. */
async function transfer(): Promise<void> {
  const client = connectWeb({ endpoint, apiKey, timeoutMs: 30_000 });
  await client.createDatabase(db);
  await client.execute(db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT)");
  await client.batch(
    db,
    Array.from({ length: n }, (_, i) => ["INSERT INTO items (name, note) VALUES (?, ?)", [`item-${i + 1}`, i % 2 ? null : 'a "quoted", ✓']] as const),
    { transaction: true },
  );
  const exp = await client.exportTable(db, "items");
  let chunks = 0;
  let csv = "";
  const decoder = new TextDecoder();
  for await (const chunk of exp) {
    chunks++;
    csv += decoder.decode(chunk, { stream: true });
  }
  const lines = csv.split("\r\n");
  const json = JSON.parse(await (await client.exportQuery(db, "SELECT id, note FROM items WHERE id <= 2", [], { format: "json" })).text()) as unknown;
  const schema = await client.getSchema(db, "items");
  const items = schema.table("items");
  const plan = await client.explain(db, "SELECT * FROM items WHERE name = ?", ["x"]);
  let imported = "";
  try {
    await client.importCsv(db, "items", "name\r\nnew\r\n");
    imported = "no error";
  } catch (e) {
    imported = (e as DBForgeError).codeName;
  }
  await client.deleteDatabase(db);
  document.getElementById("transfer")!.textContent = JSON.stringify({
    rows: exp.rows,
    chunks: chunks > 0,
    header: lines[0],
    first: lines[1],
    last: lines[n],
    json,
    columns: items?.columns.map((c) => `${c.name}:${c.declaredType}`),
    nullable: items?.columns.slice(1).map((c) => c.nullable),
    primaryKey: items?.primaryKey,
    createText: schema.text.includes("CREATE TABLE"),
    fullScans: plan.fullScans,
    imported,
  });
  status.textContent = "done transfer";
}

(params.get("mode") === "transfer" ? transfer() : main()).catch((e: unknown) => {
  status.textContent = `error ${e instanceof DBForgeError ? e.codeName : ""} ${String(e)}`;
});
