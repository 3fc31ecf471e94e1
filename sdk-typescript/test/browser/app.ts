/**
 * The page of the browser test: the SDK's grpc-web transport (connect-web, fetch) against the
 * gateway on another origin. Query parameters: endpoint, key, db, rows.
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

main().catch((e: unknown) => {
  status.textContent = `error ${e instanceof DBForgeError ? e.codeName : ""} ${String(e)}`;
});
