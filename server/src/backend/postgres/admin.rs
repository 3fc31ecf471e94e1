//! Provisioning on PostgreSQL: a database and a login role per spawned database, created, dropped
//! and swept through the administrative pool.

use std::collections::BTreeSet;

use sqlx::Row as _;
use tokio::time::Instant;
use tracing::warn;

use super::{
    PostgresBackend, PostgresDialect,
    conn::{PgConn, PgEngine},
};
use crate::{
    backend::sql::{
        Locator,
        pool::{ADMIN_TIMEOUT, Pooled},
        text::like_prefix,
    },
    core::{
        error::{Error, Result},
        table::SqlDialect,
    },
};

/// What a spawned database's role may do: log in, and nothing beyond its own database. It owns
/// the database (so it may create schemas and objects there) but is no superuser, cannot
/// create databases or roles, replicate, or bypass row security. It keeps INHERIT: it belongs
/// to no role but the implicit `pg_database_owner`, through which it owns the `public` schema.
const ROLE_ATTRIBUTES: &str =
    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT";

/// An administrative connection for one provisioning step.
pub(super) struct Admin(Pooled<PgEngine>);

impl Admin {
    fn conn(&mut self) -> Result<&mut PgConn> {
        self.0.begin_use()
    }

    /// Runs a statement built from quoted names and generated hex; never client values.
    async fn exec(&mut self, sql: String) -> Result<()> {
        let r = self.conn()?.admin_exec(sql).await;
        self.0.end_use(&r);
        r
    }

    /// The text column of the rows `sql` returns for the bound argument.
    async fn names(&mut self, sql: &'static str, arg: &str) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_all(conn.raw())
            .await;
        let r = match r {
            Ok(rows) => rows
                .iter()
                .map(|row| row.try_get::<String, _>(0).map_err(super::classify))
                .collect(),
            Err(e) => Err(conn.fail(e)),
        };
        self.0.end_use(&r);
        r
    }

    /// An integer `sql` returns for the bound argument, if it returns a row.
    async fn integer(&mut self, sql: &'static str, arg: &str) -> Result<Option<i64>> {
        let conn = self.conn()?;
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_optional(conn.raw())
            .await;
        let r = match r {
            Ok(row) => row
                .map(|row| row.try_get::<i64, _>(0).map_err(super::classify))
                .transpose(),
            Err(e) => Err(conn.fail(e)),
        };
        self.0.end_use(&r);
        r
    }
}

/// Runs `fut` under the administrative timeout.
async fn admin_timeout<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(ADMIN_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(
                "the postgres server did not finish an administrative step in time".into(),
            ))
        })
}

impl PostgresBackend {
    async fn admin(&self) -> Result<Admin> {
        let pooled = self
            .server
            .admin()
            .acquire(Instant::now() + ADMIN_TIMEOUT)
            .await?;
        Ok(Admin(pooled))
    }

    /// Creates (or completes) the role and the database of `loc`.
    pub(super) async fn provision(&self, loc: &Locator) -> Result<()> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let name = PostgresDialect.quote_ident(&loc.ident);
            // The password is generated hex (checked by Locator::parse): safe inside quotes.
            let password = &loc.password;
            let role_exists = admin
                .integer(
                    "SELECT 1::int8 FROM pg_roles WHERE rolname = $1",
                    &loc.ident,
                )
                .await?
                .is_some();
            let verb = if role_exists { "ALTER" } else { "CREATE" };
            admin
                .exec(format!(
                    "{verb} ROLE {name} WITH {ROLE_ATTRIBUTES} PASSWORD '{password}'"
                ))
                .await?;
            let db_exists = admin
                .integer(
                    "SELECT 1::int8 FROM pg_database WHERE datname = $1",
                    &loc.ident,
                )
                .await?
                .is_some();
            if !db_exists {
                // template0 never has connections, so concurrent spawns cannot collide on it.
                admin
                    .exec(format!(
                        "CREATE DATABASE {name} OWNER {name} TEMPLATE template0 ENCODING 'UTF8'"
                    ))
                    .await?;
            }
            // PUBLIC may connect to a new database by default; only its own role may now.
            admin
                .exec(format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"))
                .await
        })
        .await
    }

    /// Drops the database and the role named `ident`; what is already gone is fine.
    pub(super) async fn unprovision(&self, ident: &str) -> Result<()> {
        self.server.close_idle(ident);
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let name = PostgresDialect.quote_ident(ident);
            // FORCE ends the database's remaining sessions (PostgreSQL 13+).
            admin
                .exec(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            match admin.exec(format!("DROP ROLE IF EXISTS {name}")).await {
                Ok(()) => Ok(()),
                // Another spawned database granted this role privileges: the role cannot be
                // dropped until that one is. Lock it out; a later orphan sweep drops it.
                Err(Error::Query { code: Some(c), .. }) if c == "2BP01" => {
                    warn!(
                        role = ident,
                        "role still has grants elsewhere; disabling its login"
                    );
                    admin
                        .exec(format!("ALTER ROLE {name} NOLOGIN PASSWORD NULL"))
                        .await
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The size of the database named `ident`, if it exists.
    pub(super) async fn database_size(&self, ident: &str) -> Result<Option<u64>> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let size = admin
                .integer(
                    "SELECT pg_database_size(datname)::int8 FROM pg_database WHERE datname = $1",
                    ident,
                )
                .await?;
            Ok(size.and_then(|s| u64::try_from(s).ok()))
        })
        .await
    }

    /// Databases and roles carrying this backend's prefix whose names are not in `known`.
    pub(super) async fn orphans(&self, known: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let pattern = like_prefix(&self.prefix);
            let mut found = admin
                .names(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
                    &pattern,
                )
                .await?;
            found.extend(
                admin
                    .names(
                        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1",
                        &pattern,
                    )
                    .await?,
            );
            Ok(found
                .into_iter()
                .filter(|n| Locator::is_ident(n, &self.prefix, super::MAX_IDENT))
                .filter(|n| !known.contains(n))
                .collect())
        })
        .await
    }
}
