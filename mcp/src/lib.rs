//! The MCP tools of DB-Forge, written once for both of its MCP servers: the gateway's `/mcp`
//! endpoint (streamable HTTP, `dbforge-server`, over the core) and `dbforge mcp` (stdio, the
//! CLI, over the Rust SDK). Here are the tools' names, descriptions (the proto's comments,
//! [`docs`]), input schemas and modes ([`tools`]), and the shape of a result sized for a model
//! ([`render`]); each server implements the calls over its own way to the data.
//!
//! ```
//! use dbforge_mcp::{Mode, docs::Docs, tools};
//!
//! let docs = Docs::default(); // a server passes its descriptor set to Docs::new
//! let names: Vec<_> = tools::offered(Mode::Minimal, false).map(|t| t.name).collect();
//! assert_eq!(names, ["list_databases", "describe_schema", "query"]);
//! assert_eq!(tools::spec("query").map(|t| t.tool(&docs).name), Some("query".into()));
//! ```
#![warn(missing_docs)]

pub mod args;
pub mod docs;
pub mod render;
pub mod tools;

/// Which tools a server offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every tool.
    #[default]
    Full,
    /// list_databases, describe_schema and query.
    Minimal,
    /// None.
    Off,
}

/// What a server tells the client about itself at `initialize`.
pub const INSTRUCTIONS: &str =
    "DB-Forge: isolated databases on demand. Read a database's schema before writing SQL.";

/// The schema resources: `dbforge://databases/{name}/schema`.
pub mod resources {
    const PREFIX: &str = "dbforge://databases/";
    const SUFFIX: &str = "/schema";

    /// The URI template, as `resources/templates/list` shows it.
    pub const TEMPLATE: &str = "dbforge://databases/{name}/schema";

    /// The URI of a database's schema.
    pub fn uri(database: &str) -> String {
        format!("{PREFIX}{database}{SUFFIX}")
    }

    /// The database a schema URI names.
    pub fn database(uri: &str) -> Option<&str> {
        uri.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)
    }

    /// The answer to a URI that is not a schema's.
    pub fn unknown(uri: &str) -> String {
        format!("no resource {uri:?}: resources are {TEMPLATE}")
    }
}
