//! The tool catalogue: names, descriptions and input schemas, written once here for both modes
//! and both servers. Descriptions are the proto's comments where they fit ([`Doc::Proto`], read
//! by [`super::docs`]); where a tool differs from its RPC (query is read-only and sized for a
//! model) the difference is written here, beside the comment it extends.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value as Json, json};

use super::{Mode, docs::Docs};

/// Rows a query returns by default: enough to see the shape of a result, small enough for a
/// model's context (about 100 × a short row ≈ a few thousand tokens).
pub const DEFAULT_MAX_ROWS: u64 = 100;
/// Bytes of rendered rows a query returns by default (32 KiB ≈ 8,000 tokens).
pub const DEFAULT_MAX_BYTES: u64 = 32 << 10;

/// Where a description comes from.
#[derive(Debug, Clone, Copy)]
pub enum Doc {
    /// The first paragraph of the proto comment on `Message.field` or `Service.Method`.
    Proto(&'static str),
    /// That paragraph followed by what the tool adds.
    ProtoAnd(&'static str, &'static str),
    /// Written here: the proto has nothing that fits.
    Own(&'static str),
}

impl Doc {
    /// The description text.
    pub fn text(self, docs: &Docs) -> String {
        match self {
            Doc::Proto(name) => docs.first_paragraph(name),
            Doc::ProtoAnd(name, more) => format!("{} {more}", docs.first_paragraph(name)),
            Doc::Own(text) => text.to_owned(),
        }
    }
}

/// The JSON type of an argument.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string.
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A non-negative integer.
    Count,
    /// A boolean.
    Flag,
    /// Statement parameters: an array of JSON scalars.
    Params,
}

/// One argument of a tool.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    /// Name.
    pub name: &'static str,
    /// JSON type.
    pub kind: Kind,
    /// Whether a call must give it.
    pub required: bool,
    /// Description.
    pub doc: Doc,
}

/// One tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// Name.
    pub name: &'static str,
    /// The RPC it does: its name in audit records and metrics.
    pub rpc: &'static str,
    /// Description.
    pub doc: Doc,
    /// Arguments.
    pub args: &'static [Arg],
    /// Offered in `--mcp-tools minimal`.
    pub minimal: bool,
    /// Changes data: offered only to keys that may write.
    pub writes: bool,
    /// Deletes data (an annotation for clients that confirm such calls).
    pub destructive: bool,
}

const fn arg(name: &'static str, kind: Kind, required: bool, doc: Doc) -> Arg {
    Arg {
        name,
        kind,
        required,
        doc,
    }
}

const SQL: Arg = arg("sql", Kind::Text, true, Doc::Proto("Statement.sql"));
const PARAMS: Arg = arg(
    "params",
    Kind::Params,
    false,
    Doc::Proto("Statement.params"),
);
const MAX_ROWS: Arg = arg(
    "max_rows",
    Kind::Count,
    false,
    Doc::Own("Rows to return at most; default 100."),
);
const MAX_BYTES: Arg = arg(
    "max_bytes",
    Kind::Count,
    false,
    Doc::Own("Bytes of result to return at most; default 32768."),
);
const SUMMARIZE: Arg = arg(
    "summarize",
    Kind::Flag,
    false,
    Doc::Own(
        "Return a summary of each column (count, nulls, distinct, min, max, top values) of the \
         whole result instead of its rows; max_rows, when given, bounds the rows read.",
    ),
);

/// Every tool, in the order `tools/list` shows them.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_databases",
        rpc: "ListDatabases",
        doc: Doc::Proto("DatabaseService.ListDatabases"),
        args: &[arg(
            "page_token",
            Kind::Text,
            false,
            Doc::Proto("ListDatabasesRequest.page_token"),
        )],
        minimal: true,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "describe_schema",
        rpc: "GetSchema",
        doc: Doc::Own(
            "Describes the database's tables and views (columns, keys, indexes, row estimates) \
             as CREATE statements, or, on Redis, its key patterns.",
        ),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("GetSchemaRequest.database"),
            ),
            arg(
                "table",
                Kind::Text,
                false,
                Doc::Proto("GetSchemaRequest.table"),
            ),
        ],
        minimal: true,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "query",
        rpc: "Query",
        doc: Doc::Own(
            "Runs one read-only SQL statement (the engine refuses writes) and returns its rows as \
             JSON. A result cut by max_rows or max_bytes says so: truncated is true, row_count \
             is the rows sent, and resume_token fetches the next page.",
        ),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("QueryRequest.database"),
            ),
            arg(
                "sql",
                Kind::Text,
                false,
                Doc::Own("One SQL statement; not with resume_token."),
            ),
            PARAMS,
            MAX_ROWS,
            MAX_BYTES,
            SUMMARIZE,
            arg(
                "resume_token",
                Kind::Text,
                false,
                Doc::Own(
                    "A truncated result's resume_token: returns the next page of the same \
                     result (same snapshot; kept 60 s).",
                ),
            ),
        ],
        minimal: true,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "execute",
        rpc: "Execute",
        doc: Doc::Proto("QueryService.Execute"),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("ExecuteRequest.database"),
            ),
            SQL,
            PARAMS,
            MAX_ROWS,
            MAX_BYTES,
        ],
        minimal: false,
        writes: true,
        destructive: true,
    },
    ToolSpec {
        name: "create_database",
        rpc: "CreateDatabase",
        doc: Doc::Proto("DatabaseService.CreateDatabase"),
        args: &[
            arg(
                "name",
                Kind::Text,
                true,
                Doc::ProtoAnd(
                    "CreateDatabaseRequest.name",
                    "1 to 63 characters of a-z, 0-9, _ and -, starting with a letter.",
                ),
            ),
            arg(
                "backend",
                Kind::OneOf(&["sqlite", "postgres", "mysql", "redis"]),
                false,
                Doc::Own("The engine; sqlite when not given."),
            ),
            arg(
                "if_not_exists",
                Kind::Flag,
                false,
                Doc::Proto("CreateDatabaseRequest.if_not_exists"),
            ),
            arg(
                "ttl",
                Kind::Count,
                false,
                Doc::Own("Seconds after which the database is deleted; none when not given."),
            ),
            arg(
                "idle_ttl",
                Kind::Count,
                false,
                Doc::Own("Seconds without use after which it is deleted; none when not given."),
            ),
        ],
        minimal: false,
        writes: true,
        destructive: false,
    },
    ToolSpec {
        name: "delete_database",
        rpc: "DeleteDatabase",
        doc: Doc::Proto("DatabaseService.DeleteDatabase"),
        args: &[
            arg(
                "name",
                Kind::Text,
                true,
                Doc::Proto("DeleteDatabaseRequest.name"),
            ),
            arg(
                "allow_missing",
                Kind::Flag,
                false,
                Doc::Proto("DeleteDatabaseRequest.allow_missing"),
            ),
        ],
        minimal: false,
        writes: true,
        destructive: true,
    },
    ToolSpec {
        name: "explain",
        rpc: "Explain",
        doc: Doc::Proto("SchemaService.Explain"),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("ExplainRequest.database"),
            ),
            SQL,
            PARAMS,
            arg(
                "analyze",
                Kind::Flag,
                false,
                Doc::Proto("ExplainRequest.analyze"),
            ),
        ],
        minimal: false,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "export_query_csv",
        rpc: "ExportQuery",
        doc: Doc::ProtoAnd(
            "TransferService.ExportQuery",
            "Here the format is CSV (RFC 4180, with a header row), cut at max_bytes (then \
             truncated is true).",
        ),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("ExportQueryRequest.database"),
            ),
            SQL,
            PARAMS,
            MAX_BYTES,
        ],
        minimal: false,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "preview",
        rpc: "Preview",
        doc: Doc::Own(
            "A dry run: runs one statement in a transaction that is always rolled back and \
             returns the rows it affects, samples of them before and after, its plan and any \
             error. Nothing is committed. MySQL refuses DDL here, Redis refuses previews.",
        ),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("PreviewRequest.database"),
            ),
            SQL,
            PARAMS,
            arg(
                "sample_rows",
                Kind::Count,
                false,
                Doc::Proto("PreviewRequest.sample_rows"),
            ),
        ],
        minimal: false,
        writes: false,
        destructive: false,
    },
    ToolSpec {
        name: "ask",
        rpc: "Ask",
        doc: Doc::Own(
            "Answers a question about a database's data in natural language with one SQL query \
             grounded in its schema, checked by the engine's EXPLAIN, and with run its rows \
             (read-only). The gateway's model writes the SQL, or, when the gateway has none, \
             yours through MCP sampling. Returns sql, rationale, status (answered or gave_up with \
             message), full_scans and, with run, columns and rows.",
        ),
        args: &[
            arg(
                "database",
                Kind::Text,
                true,
                Doc::Proto("AskRequest.database"),
            ),
            arg(
                "question",
                Kind::Text,
                true,
                Doc::Proto("AskRequest.question"),
            ),
            arg("run", Kind::Flag, false, Doc::Proto("AskRequest.run")),
            MAX_ROWS,
        ],
        minimal: false,
        writes: false,
        destructive: false,
    },
];

/// The tools offered in `mode` to a caller that may (or may not) write somewhere.
pub fn offered(mode: Mode, may_write: bool) -> impl Iterator<Item = &'static ToolSpec> {
    TOOLS.iter().filter(move |t| {
        (mode == Mode::Full || t.minimal) && (may_write || !t.writes) && mode != Mode::Off
    })
}

/// The proto comments the catalogue names that `docs` lacks (a server's test asserts none).
pub fn missing_docs(docs: &Docs) -> Vec<String> {
    let mut missing = Vec::new();
    for t in TOOLS {
        for d in std::iter::once(t.doc).chain(t.args.iter().map(|a| a.doc)) {
            if let Doc::Proto(name) | Doc::ProtoAnd(name, _) = d
                && docs.first_paragraph(name).is_empty()
            {
                missing.push(format!("{}: {name}", t.name));
            }
        }
    }
    missing
}

/// The spec of a tool by name.
pub fn spec(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

impl ToolSpec {
    /// The MCP tool definition, described from `docs`.
    pub fn tool(&self, docs: &Docs) -> Tool {
        let mut properties = serde_json::Map::new();
        for a in self.args {
            let mut p = match a.kind {
                Kind::Text => json!({"type": "string"}),
                Kind::OneOf(values) => json!({"type": "string", "enum": values}),
                Kind::Count => json!({"type": "integer", "minimum": 0}),
                Kind::Flag => json!({"type": "boolean"}),
                Kind::Params => json!({
                    "type": "array",
                    "items": {"type": ["string", "number", "boolean", "null"]},
                }),
            };
            p["description"] = Json::String(a.doc.text(docs));
            properties.insert(a.name.to_owned(), p);
        }
        let required: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name)
            .collect();
        let mut schema = JsonObject::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Json::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        let annotations = if self.writes {
            ToolAnnotations::new()
                .read_only(false)
                .destructive(self.destructive)
        } else {
            ToolAnnotations::new().read_only(true)
        };
        Tool::new(self.name, self.doc.text(docs), Arc::new(schema)).with_annotations(annotations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_mode_offers_list_describe_and_query() {
        let names: Vec<_> = offered(Mode::Minimal, true).map(|t| t.name).collect();
        assert_eq!(names, ["list_databases", "describe_schema", "query"]);
    }

    #[test]
    fn writing_tools_are_offered_only_to_keys_that_may_write() {
        let read: Vec<_> = offered(Mode::Full, false).map(|t| t.name).collect();
        assert_eq!(
            read,
            [
                "list_databases",
                "describe_schema",
                "query",
                "explain",
                "export_query_csv",
                "preview",
                "ask"
            ]
        );
        assert_eq!(offered(Mode::Full, true).count(), TOOLS.len());
        assert_eq!(offered(Mode::Off, true).count(), 0);
    }

    #[test]
    fn the_query_description_promises_what_the_defaults_are() {
        let docs = Docs::default();
        assert!(
            MAX_ROWS
                .doc
                .text(&docs)
                .contains(&DEFAULT_MAX_ROWS.to_string())
        );
        assert!(
            MAX_BYTES
                .doc
                .text(&docs)
                .contains(&DEFAULT_MAX_BYTES.to_string())
        );
    }

    #[test]
    fn without_comments_every_proto_description_is_reported_missing() {
        assert!(!missing_docs(&Docs::default()).is_empty());
    }
}
