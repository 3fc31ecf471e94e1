//! Provisioning on MySQL/MariaDB: a schema and a user per spawned database, created, dropped and
//! swept through the administrative pool (the steps themselves are
//! [`SqlBackend`](crate::backend::sql::provision::SqlBackend)'s; this is their SQL).

use std::{str::FromStr, sync::Arc};

use async_trait::async_trait;
use sqlx::{ConnectOptions as _, mysql::MySqlConnectOptions};

use super::{
    CAPABILITIES, CAPABILITIES_RETURNING, MAX_IDENT, Mysql, MysqlDialect,
    conn::{MyConn, MysqlEngine, MysqlTarget, TypeCache},
};
use crate::{
    backend::{
        Capabilities, ServerBackendConfig,
        reader::reader_ident,
        sql::{
            Locator, Server,
            provision::{Admin, AdminConn, Provisioner, Relogins, Shared},
        },
    },
    core::{
        error::{Error, Result},
        table::SqlDialect,
    },
};

#[async_trait]
impl AdminConn for MyConn {
    async fn exec(&mut self, sql: String) -> Result<()> {
        self.admin_exec(sql).await
    }
}

/// The account of a spawned database's user. `ident` is `[a-z0-9_]` (checked by
/// [`Locator::parse`]), so it is safe inside quotes; `'%'` lets the gateway connect from any
/// host it runs on.
fn account(ident: &str) -> String {
    format!("'{ident}'@'%'")
}

/// Creates the user `account` with `password`, or sets its password.
async fn set_user(admin: &mut Admin<MysqlEngine>, account: &str, password: &str) -> Result<()> {
    // The password is generated hex (checked by Locator::parse): safe inside quotes.
    admin
        .exec(format!(
            "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"
        ))
        .await?;
    admin
        .exec(format!("ALTER USER {account} IDENTIFIED BY '{password}'"))
        .await
}

/// Whether `stored`, the `authentication_string` of a `mysql_native_password` account, is
/// `password`'s: `*` and the upper-case hex of SHA1(SHA1(password)).
pub fn credential_is(stored: &str, password: &str) -> bool {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    stored
        .strip_prefix('*')
        .is_some_and(|h| h.eq_ignore_ascii_case(&crate::core::value::text::hex(&twice)))
}

#[async_trait]
impl Provisioner for Mysql {
    type Engine = MysqlEngine;
    const MAX_IDENT: usize = MAX_IDENT;
    const DIALECT: &'static dyn SqlDialect = &MysqlDialect;
    const MAX_PREFIX: usize = 16;
    // No row when the schema does not exist.
    const SIZE: &'static str = "SELECT CAST(COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0) \
                                AS UNSIGNED) FROM information_schema.SCHEMATA s \
                                LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME \
                                WHERE s.SCHEMA_NAME = ? GROUP BY s.SCHEMA_NAME";
    const NAMES: &'static [&'static str] = &[
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
        "SELECT User FROM mysql.user WHERE User LIKE ?",
    ];
    const CREDENTIALS: &'static str =
        "SELECT CONCAT(User, ' ', authentication_string) FROM mysql.user WHERE User LIKE ?";
    const DRIFTED_SETTINGS: Option<&'static str> = None;

    fn credential_is(_login: &str, stored: &str, password: &str) -> bool {
        credential_is(stored, password)
    }

    fn configure(cfg: &ServerBackendConfig) -> Result<(Self, MysqlEngine, MysqlTarget)> {
        let admin_options = MySqlConnectOptions::from_str(&cfg.url)
            .map_err(|e| Error::invalid("mysql_url", e))?
            .disable_statement_logging();
        let admin = MysqlTarget {
            options: admin_options.clone(),
            schema: String::new(),
            types: Arc::new(TypeCache::default()),
            reader: false,
            relogin: None,
        };
        Ok((Mysql { admin_options }, MysqlEngine::default(), admin))
    }

    fn capabilities(&self, server: &Server<MysqlEngine>) -> &'static Capabilities {
        // Known once the server has answered; until then, the conservative set.
        match server.engine().flavor() {
            Some(f) if f.returning => &CAPABILITIES_RETURNING,
            _ => &CAPABILITIES,
        }
    }

    fn targets(&self, loc: &Locator, relogin: Relogins<'_>) -> (MysqlTarget, MysqlTarget) {
        let types = Arc::new(TypeCache::default());
        let reader = reader_ident(&loc.ident);
        (
            self.target(loc, &loc.ident, &types, relogin(loc.ident.clone(), false)),
            self.target(loc, &reader, &types, relogin(reader.clone(), true)),
        )
    }

    /// Creates (or completes) the schema and the user of `loc`.
    async fn provision(&self, admin: &mut Admin<MysqlEngine>, loc: &Locator) -> Result<()> {
        let schema = MysqlDialect.quote_ident(&loc.ident);
        let account = account(&loc.ident);
        admin
            .exec(format!(
                "CREATE DATABASE IF NOT EXISTS {schema} CHARACTER SET utf8mb4"
            ))
            .await?;
        set_user(admin, &account, &loc.password).await?;
        // Every privilege on its own schema and none elsewhere: naming another schema is
        // "access denied" (no GRANT OPTION, FILE, PROCESS, SUPER or global rights).
        admin
            .exec(format!("GRANT ALL PRIVILEGES ON {schema}.* TO {account}"))
            .await
    }

    /// Creates (or completes) the read-only user of `loc`, which read grants log in as:
    /// `SELECT` and `SHOW VIEW` on its schema and nothing else, so the server refuses every
    /// write, DDL, temporary table, routine call and file access from it.
    async fn ensure_reader(backend: &Arc<Shared<Self>>, loc: &Locator) -> Result<()> {
        let mut admin = backend.admin().await?;
        let schema = MysqlDialect.quote_ident(&loc.ident);
        let account = account(&reader_ident(&loc.ident));
        // The reader shares the owner's password: both are the gateway's, never shown to
        // clients.
        set_user(&mut admin, &account, &loc.password).await?;
        admin
            .exec(format!(
                "GRANT SELECT, SHOW VIEW ON {schema}.* TO {account}"
            ))
            .await
    }

    async fn disconnect(&self, admin: &mut Admin<MysqlEngine>, ident: &str) -> Result<()> {
        for user in [ident, reader_ident(ident).as_str()] {
            let sessions = admin
                .integers(
                    "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
                     WHERE USER = ?",
                    user,
                )
                .await?;
            for id in sessions {
                match admin.exec(format!("KILL CONNECTION {id}")).await {
                    // 1094: the session ended meanwhile.
                    Err(Error::Query { code: Some(c), .. }) if c == "1094" => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Drops the schema and the user named `ident`; what is already gone is fine.
    async fn unprovision(&self, admin: &mut Admin<MysqlEngine>, ident: &str) -> Result<()> {
        let reader = reader_ident(ident);
        // MySQL keeps a dropped user's sessions alive: end them first.
        self.disconnect(admin, ident).await?;
        let schema = MysqlDialect.quote_ident(ident);
        admin
            .exec(format!("DROP DATABASE IF EXISTS {schema}"))
            .await?;
        admin
            .exec(format!(
                "DROP USER IF EXISTS {}, {}",
                account(ident),
                account(&reader)
            ))
            .await
    }

    /// Sets the password of the login `user` back to the catalog's (see [`Relogin`](crate::backend::sql::Relogin)).
    async fn reset_login(
        &self,
        admin: &mut Admin<MysqlEngine>,
        user: &str,
        password: &str,
        _reader: bool,
    ) -> Result<()> {
        // The password is generated hex (checked by Locator::parse): safe inside quotes.
        admin
            .exec(format!(
                "ALTER USER {} IDENTIFIED BY '{password}'",
                account(user)
            ))
            .await
    }
}

#[cfg(test)]
mod credential_tests {
    use super::credential_is;

    #[test]
    fn native_password_hashes_check_the_password() {
        // MariaDB's PASSWORD('abc123').
        let stored = "*6691484EA6B50DDDE1926A220DA01FA9E575C18A";
        assert!(credential_is(stored, "abc123"));
        assert!(!credential_is(stored, "abc124"));
        assert!(!credential_is("", "abc123"));
    }
}
