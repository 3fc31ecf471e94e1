"""Agent memory on a graph database (dbforge.memory): the MCP memory server's operations against
a live gateway's BACKEND_GRAPH database, hostile names included, and the triples read back with
plain SPARQL (docs/agent-memory.md's conventions)."""

from __future__ import annotations

import dbforge
from dbforge.memory import AsyncGraphMemory, Entity, GraphMemory, KnowledgeGraph, Relation, entity_iri, literal
from dbforge_server import unique

HOSTILE = 'x" } ; DROP ALL ; # \\ \n é'


def test_literals_and_iris_escape_everything_that_would_end_them() -> None:
    assert literal('a"b\\c\nd\re\tf') == '"a\\"b\\\\c\\nd\\re\\tf"'
    assert entity_iri("Ada Lovelace/é>") == "<urn:dbforge:memory:entity:Ada%20Lovelace%2F%C3%A9%3E>"


def test_the_memory_servers_operations_on_a_graph_database(client: dbforge.Client) -> None:
    db = unique("pymem")
    client.create_database(db, backend=dbforge.Backend.GRAPH)
    try:
        mem = GraphMemory(client, db)
        created = mem.create_entities(
            [Entity("Ada", "person", ["wrote the first program", "born 1815"]), Entity("Engine", "machine")]
        )
        assert [e.name for e in created] == ["Ada", "Engine"]
        # An existing name is kept as it is.
        assert mem.create_entities([Entity("Ada", "robot"), Entity(HOSTILE, "odd", [HOSTILE])]) == [
            Entity(HOSTILE, "odd", [HOSTILE])
        ]
        mem.create_relations(
            [Relation("Ada", "Engine", "programmed"), Relation("Ada", "Nobody", "knows"), Relation(HOSTILE, "Ada", HOSTILE)]
        )
        mem.add_observations("Engine", ["never built"])
        graph = mem.read_graph()
        assert graph.entities == [
            Entity("Ada", "person", ["born 1815", "wrote the first program"]),
            Entity("Engine", "machine", ["never built"]),
            Entity(HOSTILE, "odd", [HOSTILE]),
        ]
        # The relation to a missing entity was skipped.
        assert graph.relations == [Relation("Ada", "Engine", "programmed"), Relation(HOSTILE, "Ada", HOSTILE)]

        assert [e.name for e in mem.search_nodes("PROGRAM").entities] == ["Ada"]
        assert mem.search_nodes("never").entities == [Entity("Engine", "machine", ["never built"])]
        opened = mem.open_nodes(["Ada", "Engine", "missing"])
        assert [e.name for e in opened.entities] == ["Ada", "Engine"]
        assert opened.relations == [Relation("Ada", "Engine", "programmed")]

        # The same facts through plain SPARQL, by the documented conventions.
        rows = client.execute(
            db,
            'PREFIX m: <urn:dbforge:memory:> SELECT ?who ?what WHERE { ?p ?rel ?x . ?rel m:name "programmed" . '
            "?p m:name ?who . ?x m:name ?what }",
        ).rows
        assert rows == [("Ada", "Engine")]

        mem.delete_observations("Ada", ["born 1815"])
        mem.delete_relations([Relation("Ada", "Engine", "programmed")])
        mem.delete_entities([HOSTILE])
        assert mem.read_graph() == KnowledgeGraph(
            [Entity("Ada", "person", ["wrote the first program"]), Entity("Engine", "machine", ["never built"])], []
        )
    finally:
        client.delete_database(db)


async def test_the_async_memory_does_the_same(aclient: dbforge.AsyncClient) -> None:
    db = unique("pyamem")
    await aclient.create_database(db, backend=dbforge.Backend.GRAPH)
    try:
        mem = AsyncGraphMemory(aclient, db)
        await mem.create_entities([Entity("Ada", "person"), Entity("Engine", "machine")])
        await mem.create_relations([Relation("Ada", "Engine", "programmed")])
        await mem.add_observations("Ada", ["born 1815"])
        found = await mem.search_nodes("1815")
        assert found == KnowledgeGraph([Entity("Ada", "person", ["born 1815"])], [])
        await mem.delete_entities(["Engine"])
        assert (await mem.read_graph()).relations == []
    finally:
        await aclient.delete_database(db)
