"""Agent memory on a graph database: the entities, relations and observations that MCP memory
servers keep, stored as RDF in a `BACKEND_GRAPH` database by the conventions of
docs/agent-memory.md (the same as TypeScript's `src/memory.ts`), so other agents and plain
SPARQL read the same facts.

```python
import dbforge
from dbforge.memory import Entity, GraphMemory, Relation

with dbforge.Client() as client:
    client.create_database("memory", backend=dbforge.Backend.GRAPH)
    mem = GraphMemory(client, "memory")
    mem.create_entities([Entity("Ada", "person", ["wrote the first program"])])
    mem.create_entities([Entity("Analytical Engine", "machine")])
    mem.create_relations([Relation("Ada", "Analytical Engine", "programmed")])
    graph = mem.search_nodes("program")   # entities whose name, type or observations match
```

Every text goes into the SPARQL as an escaped literal or a percent-encoded IRI, never as
SPARQL text, so a name such as `x" } ; DROP ALL ; #` is stored as it is. `AsyncGraphMemory`
has the same methods for `AsyncClient`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Tuple
from urllib.parse import quote

if TYPE_CHECKING:
    from dbforge.aio import AsyncClient
    from dbforge.client import Client

#: The vocabulary's namespace (docs/agent-memory.md).
NS = "urn:dbforge:memory:"


@dataclass(frozen=True)
class Entity:
    """A node: a unique `name`, an `entity_type`, and observations (facts as sentences)."""

    name: str
    entity_type: str
    observations: Tuple[str, ...] = ()

    def __init__(self, name: str, entity_type: str, observations: Iterable[str] = ()) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entity_type", entity_type)
        object.__setattr__(self, "observations", tuple(observations))


@dataclass(frozen=True)
class Relation:
    """A directed edge `source` → `target` named by `relation_type` (active voice: "works_at")."""

    source: str
    target: str
    relation_type: str


@dataclass(frozen=True)
class KnowledgeGraph:
    """Entities (sorted by name) and the relations among them (sorted)."""

    entities: List[Entity] = field(default_factory=list)
    relations: List[Relation] = field(default_factory=list)


def literal(text: str) -> str:
    """A SPARQL string literal holding `text` exactly (the escapes of SPARQL's ECHAR)."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def entity_iri(name: str) -> str:
    """The IRI of the entity named `name`: every byte outside RFC 3986's unreserved set is
    percent-encoded, so any name makes a valid IRI and distinct names distinct IRIs."""
    return f"<{NS}entity:{quote(name, safe='')}>"


def relation_iri(relation_type: str) -> str:
    """The predicate IRI of a relation type, encoded as `entity_iri` encodes names."""
    return f"<{NS}relation:{quote(relation_type, safe='')}>"


_PREFIX = f"PREFIX m: <{NS}>\n"


def _create_entities(entities: Sequence[Entity]) -> str:
    # One update: each entity is written only where no entity of its name exists yet.
    parts = []
    for e in entities:
        s = entity_iri(e.name)
        triples = [f"{s} a m:Entity", f"{s} m:name {literal(e.name)}", f"{s} m:entityType {literal(e.entity_type)}"]
        triples += [f"{s} m:observation {literal(o)}" for o in e.observations]
        parts.append(
            f"INSERT {{ {' . '.join(triples)} }} WHERE {{ FILTER NOT EXISTS {{ {s} a m:Entity }} }}"
        )
    return _PREFIX + " ;\n".join(parts)


def _create_relations(relations: Sequence[Relation]) -> str:
    # A relation joins two existing entities; its type is named on the predicate, so that it can
    # be read back as text.
    parts = []
    for r in relations:
        src, dst, p = entity_iri(r.source), entity_iri(r.target), relation_iri(r.relation_type)
        parts.append(
            f"INSERT {{ {src} {p} {dst} . {p} a m:RelationType ; m:name {literal(r.relation_type)} }} "
            f"WHERE {{ {src} a m:Entity . {dst} a m:Entity }}"
        )
    return _PREFIX + " ;\n".join(parts)


def _add_observations(entity: str, contents: Sequence[str]) -> str:
    s = entity_iri(entity)
    triples = " . ".join(f"{s} m:observation {literal(o)}" for o in contents)
    return _PREFIX + f"INSERT {{ {triples} }} WHERE {{ {s} a m:Entity }}"


def _delete_entities(names: Sequence[str]) -> str:
    # The entity's own triples, then every relation into or out of it.
    parts = []
    for n in names:
        s = entity_iri(n)
        parts.append(f"DELETE WHERE {{ {s} ?p ?o }}")
        parts.append(f"DELETE {{ ?x ?p {s} }} WHERE {{ ?x ?p {s} }}")
    return _PREFIX + " ;\n".join(parts)


def _delete_observations(entity: str, observations: Sequence[str]) -> str:
    s = entity_iri(entity)
    triples = " . ".join(f"{s} m:observation {literal(o)}" for o in observations)
    return _PREFIX + f"DELETE DATA {{ {triples} }}"


def _delete_relations(relations: Sequence[Relation]) -> str:
    triples = " . ".join(
        f"{entity_iri(r.source)} {relation_iri(r.relation_type)} {entity_iri(r.target)}"
        for r in relations
    )
    return _PREFIX + f"DELETE DATA {{ {triples} }}"


def _entities_query(where: str) -> str:
    # One row per observation (or one with an unbound observation); `where` binds ?e.
    return _PREFIX + (
        "SELECT ?name ?type ?obs WHERE { "
        f"{where} ?e a m:Entity ; m:name ?name ; m:entityType ?type . "
        "OPTIONAL { ?e m:observation ?obs } } ORDER BY ?name ?obs"
    )


def _relations_query(where: str) -> str:
    # `where` restricts ?s and ?t, the two ends.
    return _PREFIX + (
        "SELECT ?source ?target ?type WHERE { "
        "?s ?p ?t . ?p a m:RelationType ; m:name ?type . "
        f"?s m:name ?source . ?t m:name ?target . {where} }} ORDER BY ?source ?type ?target"
    )


def _search_filter(query: str) -> str:
    q = literal(query.lower())
    return (
        "{ SELECT DISTINCT ?e WHERE { ?e a m:Entity . "
        "{ ?e m:name ?text } UNION { ?e m:entityType ?text } UNION { ?e m:observation ?text } "
        f"FILTER(CONTAINS(LCASE(?text), {q})) }} }} "
    )


def _names_filter(names: Sequence[str]) -> str:
    return "VALUES ?e { " + " ".join(entity_iri(n) for n in names) + " } "


def _ends_within(names: Sequence[str]) -> str:
    iris = " ".join(entity_iri(n) for n in names)
    return f"VALUES ?s {{ {iris} }} VALUES ?t {{ {iris} }}"


def _entities(rows: Sequence[Tuple[Any, ...]]) -> List[Entity]:
    found: Dict[str, Tuple[str, List[str]]] = {}
    for name, etype, obs in rows:
        _, observations = found.setdefault(name, (etype, []))
        if obs is not None:
            observations.append(obs)
    return [Entity(n, t, o) for n, (t, o) in sorted(found.items())]


def _relations(rows: Sequence[Tuple[Any, ...]]) -> List[Relation]:
    return [Relation(s, t, r) for s, t, r in rows]


class GraphMemory:
    """The memory kept in graph database `database`, through a `Client`."""

    def __init__(self, client: Client, database: str) -> None:
        self._client = client
        self._db = database

    def _update(self, sparql: str) -> None:
        self._client.execute(self._db, sparql)

    def _rows(self, sparql: str) -> List[Tuple[Any, ...]]:
        return list(self._client.execute(self._db, sparql).rows)

    def create_entities(self, entities: Sequence[Entity]) -> List[Entity]:
        """Adds the entities whose names are new; returns those (an existing name is kept as it
        is)."""
        if not entities:
            return []
        before = {e.name for e in self.open_nodes([e.name for e in entities]).entities}
        self._update(_create_entities(entities))
        return [e for e in entities if e.name not in before]

    def create_relations(self, relations: Sequence[Relation]) -> None:
        """Adds relations between existing entities (one whose end does not exist is skipped)."""
        if relations:
            self._update(_create_relations(relations))

    def add_observations(self, entity: str, contents: Sequence[str]) -> None:
        """Adds observations to an existing entity (none when it does not exist)."""
        if contents:
            self._update(_add_observations(entity, contents))

    def delete_entities(self, names: Sequence[str]) -> None:
        """Removes entities and every relation into or out of them."""
        if names:
            self._update(_delete_entities(names))

    def delete_observations(self, entity: str, observations: Sequence[str]) -> None:
        """Removes these observations of an entity."""
        if observations:
            self._update(_delete_observations(entity, observations))

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        """Removes these relations."""
        if relations:
            self._update(_delete_relations(relations))

    def read_graph(self) -> KnowledgeGraph:
        """Every entity and relation."""
        return KnowledgeGraph(
            _entities(self._rows(_entities_query(""))), _relations(self._rows(_relations_query("")))
        )

    def search_nodes(self, query: str) -> KnowledgeGraph:
        """Entities whose name, type or an observation contains `query` (any case), with the
        relations among them."""
        entities = _entities(self._rows(_entities_query(_search_filter(query))))
        return self._with_relations(entities)

    def open_nodes(self, names: Sequence[str]) -> KnowledgeGraph:
        """The named entities that exist, with the relations among them."""
        if not names:
            return KnowledgeGraph()
        return self._with_relations(_entities(self._rows(_entities_query(_names_filter(names)))))

    def _with_relations(self, entities: List[Entity]) -> KnowledgeGraph:
        if not entities:
            return KnowledgeGraph()
        rows = self._rows(_relations_query(_ends_within([e.name for e in entities])))
        return KnowledgeGraph(entities, _relations(rows))


class AsyncGraphMemory:
    """`GraphMemory` for `AsyncClient`: the same methods, awaited."""

    def __init__(self, client: AsyncClient, database: str) -> None:
        self._client = client
        self._db = database

    async def _update(self, sparql: str) -> None:
        await self._client.execute(self._db, sparql)

    async def _rows(self, sparql: str) -> List[Tuple[Any, ...]]:
        return list((await self._client.execute(self._db, sparql)).rows)

    async def create_entities(self, entities: Sequence[Entity]) -> List[Entity]:
        """As `GraphMemory.create_entities`."""
        if not entities:
            return []
        before = {e.name for e in (await self.open_nodes([e.name for e in entities])).entities}
        await self._update(_create_entities(entities))
        return [e for e in entities if e.name not in before]

    async def create_relations(self, relations: Sequence[Relation]) -> None:
        """As `GraphMemory.create_relations`."""
        if relations:
            await self._update(_create_relations(relations))

    async def add_observations(self, entity: str, contents: Sequence[str]) -> None:
        """As `GraphMemory.add_observations`."""
        if contents:
            await self._update(_add_observations(entity, contents))

    async def delete_entities(self, names: Sequence[str]) -> None:
        """As `GraphMemory.delete_entities`."""
        if names:
            await self._update(_delete_entities(names))

    async def delete_observations(self, entity: str, observations: Sequence[str]) -> None:
        """As `GraphMemory.delete_observations`."""
        if observations:
            await self._update(_delete_observations(entity, observations))

    async def delete_relations(self, relations: Sequence[Relation]) -> None:
        """As `GraphMemory.delete_relations`."""
        if relations:
            await self._update(_delete_relations(relations))

    async def read_graph(self) -> KnowledgeGraph:
        """As `GraphMemory.read_graph`."""
        entities = _entities(await self._rows(_entities_query("")))
        return KnowledgeGraph(entities, _relations(await self._rows(_relations_query(""))))

    async def search_nodes(self, query: str) -> KnowledgeGraph:
        """As `GraphMemory.search_nodes`."""
        entities = _entities(await self._rows(_entities_query(_search_filter(query))))
        return await self._with_relations(entities)

    async def open_nodes(self, names: Sequence[str]) -> KnowledgeGraph:
        """As `GraphMemory.open_nodes`."""
        if not names:
            return KnowledgeGraph()
        entities = _entities(await self._rows(_entities_query(_names_filter(names))))
        return await self._with_relations(entities)

    async def _with_relations(self, entities: List[Entity]) -> KnowledgeGraph:
        if not entities:
            return KnowledgeGraph()
        rows = await self._rows(_relations_query(_ends_within([e.name for e in entities])))
        return KnowledgeGraph(entities, _relations(rows))
