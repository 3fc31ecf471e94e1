//! The engines DB-Forge spawns databases on, named in the core's own vocabulary: the catalog,
//! the script splitter and the limits speak of engines without depending on the backend trait
//! (which depends on the core, not the other way round).

use std::fmt;

/// The engines DB-Forge can spawn databases on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    Mysql,
    /// Redis.
    Redis,
    /// Embedded Oxigraph: RDF graphs queried with SPARQL.
    Graph,
}

impl BackendKind {
    /// Every kind, in a stable order.
    pub const ALL: [BackendKind; 5] = [
        Self::Sqlite,
        Self::Postgres,
        Self::Mysql,
        Self::Redis,
        Self::Graph,
    ];

    /// The lowercase name used in the catalog, logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Redis => "redis",
            Self::Graph => "graph",
        }
    }

    /// Parses the catalog name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
