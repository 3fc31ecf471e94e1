/** Agent memory on a graph database (src/memory.ts): the MCP memory server's operations against a
 * live gateway's BACKEND_GRAPH database, a hostile name included, and the IRIs Python makes. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GraphMemory, entityIri, sparqlLiteral } from "../src/memory.js";
import { Backend, connect, type DBForgeClient } from "../src/node.js";
import { startServer, unique, type TestServer } from "./server.js";

const HOSTILE = 'x" } ; DROP ALL ; # \\ \n é';

test("literals and IRIs escape everything that would end them, as Python's do", () => {
  assert.equal(sparqlLiteral('a"b\\c\nd\re\tf'), '"a\\"b\\\\c\\nd\\re\\tf"');
  // The same IRI as sdk-python's test (quote(name, safe="")).
  assert.equal(entityIri("Ada Lovelace/é>"), "<urn:dbforge:memory:entity:Ada%20Lovelace%2F%C3%A9%3E>");
  assert.equal(entityIri("it's (x)*!"), "<urn:dbforge:memory:entity:it%27s%20%28x%29%2A%21>");
});

describe("agent memory against a live server", () => {
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

  test("entities, relations and observations round-trip, and search finds them", async () => {
    const db = unique("tsmem");
    await client.createDatabase(db, { backend: Backend.GRAPH });
    try {
      const mem = new GraphMemory(client, db);
      const created = await mem.createEntities([
        { name: "Ada", entityType: "person", observations: ["wrote the first program"] },
        { name: HOSTILE, entityType: "odd", observations: [HOSTILE] },
      ]);
      assert.equal(created.length, 2);
      assert.deepEqual(await mem.createEntities([{ name: "Ada", entityType: "robot" }]), []);
      await mem.createEntities([{ name: "Engine", entityType: "machine" }]);
      await mem.createRelations([
        { from: "Ada", to: "Engine", relationType: "programmed" },
        { from: "Ada", to: "Nobody", relationType: "knows" },
      ]);
      await mem.addObservations("Engine", ["never built"]);
      const graph = await mem.readGraph();
      assert.deepEqual(graph.entities, [
        { name: "Ada", entityType: "person", observations: ["wrote the first program"] },
        { name: "Engine", entityType: "machine", observations: ["never built"] },
        { name: HOSTILE, entityType: "odd", observations: [HOSTILE] },
      ]);
      assert.deepEqual(graph.relations, [{ from: "Ada", to: "Engine", relationType: "programmed" }]);
      assert.deepEqual(
        (await mem.searchNodes("PROGRAM")).entities.map((e) => e.name),
        ["Ada"],
      );
      await mem.deleteRelations([{ from: "Ada", to: "Engine", relationType: "programmed" }]);
      await mem.deleteObservations("Engine", ["never built"]);
      await mem.deleteEntities([HOSTILE]);
      assert.deepEqual(await mem.openNodes(["Ada", "Engine"]), {
        entities: [
          { name: "Ada", entityType: "person", observations: ["wrote the first program"] },
          { name: "Engine", entityType: "machine", observations: [] },
        ],
        relations: [],
      });
    } finally {
      await client.deleteDatabase(db);
    }
  });
});
