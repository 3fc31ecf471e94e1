"""SemanticService.MaterializeGraph from Python: a SQLite database mapped into a graph database
by the W3C Direct Mapping, its foreign keys followed as a SPARQL path, a refresh with `replace`,
and the errors, sync and async."""

from __future__ import annotations

import pytest

import dbforge
from dbforge_server import unique

SCHEMA = [
    "CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT NOT NULL, dept_id INTEGER REFERENCES dept (id))",
    "INSERT INTO dept VALUES (1, 'R&D')",
    "INSERT INTO emp VALUES (1, 'Ada', 1), (2, 'Bob', NULL)",
]


def test_a_sql_database_becomes_a_graph_whose_paths_are_its_joins(client: dbforge.Client) -> None:
    src, kb = unique("pymat-src"), unique("pymat-kb")
    client.create_database(src)
    client.create_database(kb, backend=dbforge.Backend.GRAPH)
    try:
        for stmt in SCHEMA:
            client.execute(src, stmt)
        done = client.materialize_graph(src, kb, base_iri="http://example.com/hr/")
        assert done.base_iri == "http://example.com/hr/"
        # dept: type, id, name; Ada: type, id, name, dept_id, the link; Bob: type, id, name.
        assert [(t.table, t.rows, t.triples) for t in done.tables] == [("dept", 1, 3), ("emp", 2, 8)]
        assert done.triples == 11
        b = "http://example.com/hr/"
        rows = list(
            client.query(
                kb,
                f"SELECT ?name ?dept WHERE {{ ?e <{b}emp#name> ?name ; <{b}emp#ref-dept_id> / <{b}dept#name> ?dept }}",
            )
        )
        assert rows == [("Ada", "R&D")]

        client.execute(src, "DELETE FROM emp WHERE id = 2")
        again = client.materialize_graph(src, kb, base_iri=b, replace=True)
        assert again.triples == 8
        assert list(client.query(kb, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")) == [(8,)]

        with pytest.raises(dbforge.InvalidArgument):
            client.materialize_graph(src, src)
        with pytest.raises(dbforge.Unimplemented):
            client.materialize_graph(kb, kb)
    finally:
        client.delete_database(src)
        client.delete_database(kb)


async def test_the_async_client_materializes_too(aclient: dbforge.AsyncClient) -> None:
    src, kb = unique("pyamat-src"), unique("pyamat-kb")
    await aclient.create_database(src)
    await aclient.create_database(kb, backend=dbforge.Backend.GRAPH)
    try:
        for stmt in SCHEMA:
            await aclient.execute(src, stmt)
        done = await aclient.materialize_graph(src, kb, graph="http://example.com/g")
        assert done.base_iri == f"urn:dbforge:{src}/"
        assert done.triples == 11
        rows = await aclient.query(kb, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <http://example.com/g> { ?s ?p ?o } }")
        assert await rows.fetchall() == [(11,)]
    finally:
        await aclient.delete_database(src)
        await aclient.delete_database(kb)
