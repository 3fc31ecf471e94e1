/** SemanticService.MaterializeGraph from TypeScript: a SQLite database mapped into a graph
 * database by the W3C Direct Mapping, its foreign key followed as a SPARQL path, a refresh with
 * `replace`, and the errors. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Backend, InvalidArgument, Unimplemented, connect, type DBForgeClient } from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

let server: TestServer;
let client: DBForgeClient;
before(async () => {
  server = await startServer();
  client = connect({ endpoint: server.endpoint, timeoutMs: 60_000 });
});
after(async () => {
  client.close();
  await server.stop();
});

test("a SQL database becomes a graph whose paths are its joins, refreshed with replace", async () => {
  const src = unique("tsmat-src");
  const kb = unique("tsmat-kb");
  await client.createDatabase(src);
  await client.createDatabase(kb, { backend: Backend.GRAPH });
  try {
    for (const stmt of [
      "CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
      "CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT NOT NULL, dept_id INTEGER REFERENCES dept (id))",
      "INSERT INTO dept VALUES (1, 'R&D')",
      "INSERT INTO emp VALUES (1, 'Ada', 1), (2, 'Bob', NULL)",
    ]) {
      await client.execute(src, stmt);
    }
    const b = "http://example.com/hr/";
    const done = await client.materializeGraph(src, kb, { baseIri: b, graph: "http://example.com/g" });
    assert.equal(done.baseIri, b);
    assert.deepEqual(
      done.tables.map((t) => [t.table, t.rows, t.triples]),
      [
        ["dept", 1, 3],
        ["emp", 2, 8],
      ],
    );
    assert.equal(done.triples, 11);
    const path = await client.execute(
      kb,
      `SELECT ?name ?dept WHERE { GRAPH <http://example.com/g> { ?e <${b}emp#name> ?name ; <${b}emp#ref-dept_id> / <${b}dept#name> ?dept } }`,
    );
    assert.deepEqual(path.rows, [["Ada", "R&D"]]);

    await client.execute(src, "DELETE FROM emp WHERE id = 2");
    const again = await client.materializeGraph(src, kb, { baseIri: b, graph: "http://example.com/g", replace: true });
    assert.equal(again.triples, 8);
    const n = await client.execute(kb, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }");
    assert.deepEqual(n.rows, [[8]]);

    await assert.rejects(client.materializeGraph(src, src), InvalidArgument);
    await assert.rejects(client.materializeGraph(kb, kb), Unimplemented);
  } finally {
    await client.deleteDatabase(src);
    await client.deleteDatabase(kb);
  }
});
