/**
 * Agent memory on a graph database: the entities, relations and observations that MCP memory
 * servers keep, stored as RDF in a `BACKEND_GRAPH` database by the conventions of
 * docs/agent-memory.md (the same as Python's `dbforge.memory`), so other agents and plain
 * SPARQL read the same facts.
 *
 * ```ts
 * const mem = new GraphMemory(client, "memory");
 * await mem.createEntities([{ name: "Ada", entityType: "person", observations: ["wrote the first program"] }]);
 * await mem.createEntities([{ name: "Analytical Engine", entityType: "machine" }]);
 * await mem.createRelations([{ from: "Ada", to: "Analytical Engine", relationType: "programmed" }]);
 * const found = await mem.searchNodes("program");
 * ```
 *
 * Every text goes into the SPARQL as an escaped literal or a percent-encoded IRI, never as SPARQL
 * text, so a name such as `x" } ; DROP ALL ; #` is stored as it is.
 */
import type { ExecResult } from "./types.js";

/** The vocabulary's namespace (docs/agent-memory.md). */
export const MEMORY_NS = "urn:dbforge:memory:";

/** A node: a unique name, a type, and observations (facts as sentences). */
export interface Entity {
  name: string;
  entityType: string;
  observations?: readonly string[];
}

/** A directed edge `from` → `to` named by `relationType` (active voice: "works_at"). */
export interface Relation {
  from: string;
  to: string;
  relationType: string;
}

/** Entities (sorted by name, with their observations) and the relations among them (sorted). */
export interface KnowledgeGraph {
  entities: Required<Entity>[];
  relations: Relation[];
}

/** What GraphMemory needs of a client: `DBForgeClient` has it. */
export interface SparqlRunner {
  execute(database: string, sparql: string): Promise<ExecResult>;
}

/** A SPARQL string literal holding `text` exactly (the escapes of SPARQL's ECHAR). */
export function sparqlLiteral(text: string): string {
  const escaped = text
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t");
  return `"${escaped}"`;
}

// Percent-encodes every UTF-8 byte outside RFC 3986's unreserved set, as Python's
// `quote(name, safe="")` does, so both SDKs name an entity by the same IRI.
function pct(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The IRI of the entity named `name`. */
export function entityIri(name: string): string {
  return `<${MEMORY_NS}entity:${pct(name)}>`;
}

/** The predicate IRI of a relation type. */
export function relationIri(relationType: string): string {
  return `<${MEMORY_NS}relation:${pct(relationType)}>`;
}

const PREFIX = `PREFIX m: <${MEMORY_NS}>\n`;

function entitiesQuery(where: string): string {
  // One row per observation (or one with an unbound observation); `where` binds ?e.
  return (
    PREFIX +
    `SELECT ?name ?type ?obs WHERE { ${where} ?e a m:Entity ; m:name ?name ; m:entityType ?type . ` +
    "OPTIONAL { ?e m:observation ?obs } } ORDER BY ?name ?obs"
  );
}

function relationsQuery(where: string): string {
  return (
    PREFIX +
    "SELECT ?source ?target ?type WHERE { ?s ?p ?t . ?p a m:RelationType ; m:name ?type . " +
    `?s m:name ?source . ?t m:name ?target . ${where} } ORDER BY ?source ?type ?target`
  );
}

function namesFilter(names: readonly string[]): string {
  return `VALUES ?e { ${names.map(entityIri).join(" ")} } `;
}

function endsWithin(names: readonly string[]): string {
  const iris = names.map(entityIri).join(" ");
  return `VALUES ?s { ${iris} } VALUES ?t { ${iris} }`;
}

function searchFilter(query: string): string {
  return (
    "{ SELECT DISTINCT ?e WHERE { ?e a m:Entity . " +
    "{ ?e m:name ?text } UNION { ?e m:entityType ?text } UNION { ?e m:observation ?text } " +
    `FILTER(CONTAINS(LCASE(?text), ${sparqlLiteral(query.toLowerCase())})) } } `
  );
}

function toEntities(rows: readonly (readonly unknown[])[]): Required<Entity>[] {
  const found = new Map<string, Required<Entity> & { observations: string[] }>();
  for (const [name, entityType, obs] of rows) {
    const key = String(name);
    let e = found.get(key);
    if (!e) {
      e = { name: key, entityType: String(entityType), observations: [] };
      found.set(key, e);
    }
    if (obs !== null && obs !== undefined) e.observations.push(String(obs));
  }
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function toRelations(rows: readonly (readonly unknown[])[]): Relation[] {
  return rows.map(([from, to, relationType]) => ({
    from: String(from),
    to: String(to),
    relationType: String(relationType),
  }));
}

/** The memory kept in graph database `database`. */
export class GraphMemory {
  constructor(
    private readonly client: SparqlRunner,
    private readonly database: string,
  ) {}

  private async update(sparql: string): Promise<void> {
    await this.client.execute(this.database, sparql);
  }

  private async rows(sparql: string): Promise<(readonly unknown[])[]> {
    return (await this.client.execute(this.database, sparql)).rows as (readonly unknown[])[];
  }

  /** Adds the entities whose names are new; returns those (an existing name is kept as it is). */
  async createEntities(entities: readonly Entity[]): Promise<Entity[]> {
    if (entities.length === 0) return [];
    const before = new Set((await this.openNodes(entities.map((e) => e.name))).entities.map((e) => e.name));
    // Each entity is written only where no entity of its name exists yet.
    const parts = entities.map((e) => {
      const s = entityIri(e.name);
      const triples = [
        `${s} a m:Entity`,
        `${s} m:name ${sparqlLiteral(e.name)}`,
        `${s} m:entityType ${sparqlLiteral(e.entityType)}`,
        ...(e.observations ?? []).map((o) => `${s} m:observation ${sparqlLiteral(o)}`),
      ];
      return `INSERT { ${triples.join(" . ")} } WHERE { FILTER NOT EXISTS { ${s} a m:Entity } }`;
    });
    await this.update(PREFIX + parts.join(" ;\n"));
    return entities.filter((e) => !before.has(e.name));
  }

  /** Adds relations between existing entities (one whose end does not exist is skipped). */
  async createRelations(relations: readonly Relation[]): Promise<void> {
    if (relations.length === 0) return;
    const parts = relations.map((r) => {
      const [s, t, p] = [entityIri(r.from), entityIri(r.to), relationIri(r.relationType)];
      return (
        `INSERT { ${s} ${p} ${t} . ${p} a m:RelationType ; m:name ${sparqlLiteral(r.relationType)} } ` +
        `WHERE { ${s} a m:Entity . ${t} a m:Entity }`
      );
    });
    await this.update(PREFIX + parts.join(" ;\n"));
  }

  /** Adds observations to an existing entity (none when it does not exist). */
  async addObservations(entity: string, contents: readonly string[]): Promise<void> {
    if (contents.length === 0) return;
    const s = entityIri(entity);
    const triples = contents.map((o) => `${s} m:observation ${sparqlLiteral(o)}`).join(" . ");
    await this.update(PREFIX + `INSERT { ${triples} } WHERE { ${s} a m:Entity }`);
  }

  /** Removes entities and every relation into or out of them. */
  async deleteEntities(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const parts = names.flatMap((n) => {
      const s = entityIri(n);
      return [`DELETE WHERE { ${s} ?p ?o }`, `DELETE { ?x ?p ${s} } WHERE { ?x ?p ${s} }`];
    });
    await this.update(PREFIX + parts.join(" ;\n"));
  }

  /** Removes these observations of an entity. */
  async deleteObservations(entity: string, observations: readonly string[]): Promise<void> {
    if (observations.length === 0) return;
    const s = entityIri(entity);
    const triples = observations.map((o) => `${s} m:observation ${sparqlLiteral(o)}`).join(" . ");
    await this.update(PREFIX + `DELETE DATA { ${triples} }`);
  }

  /** Removes these relations. */
  async deleteRelations(relations: readonly Relation[]): Promise<void> {
    if (relations.length === 0) return;
    const triples = relations
      .map((r) => `${entityIri(r.from)} ${relationIri(r.relationType)} ${entityIri(r.to)}`)
      .join(" . ");
    await this.update(PREFIX + `DELETE DATA { ${triples} }`);
  }

  /** Every entity and relation. */
  async readGraph(): Promise<KnowledgeGraph> {
    return {
      entities: toEntities(await this.rows(entitiesQuery(""))),
      relations: toRelations(await this.rows(relationsQuery(""))),
    };
  }

  /** Entities whose name, type or an observation contains `query` (any case), with the relations among them. */
  async searchNodes(query: string): Promise<KnowledgeGraph> {
    return this.withRelations(toEntities(await this.rows(entitiesQuery(searchFilter(query)))));
  }

  /** The named entities that exist, with the relations among them. */
  async openNodes(names: readonly string[]): Promise<KnowledgeGraph> {
    if (names.length === 0) return { entities: [], relations: [] };
    return this.withRelations(toEntities(await this.rows(entitiesQuery(namesFilter(names)))));
  }

  private async withRelations(entities: Required<Entity>[]): Promise<KnowledgeGraph> {
    if (entities.length === 0) return { entities: [], relations: [] };
    const rows = await this.rows(relationsQuery(endsWithin(entities.map((e) => e.name))));
    return { entities, relations: toRelations(rows) };
  }
}
