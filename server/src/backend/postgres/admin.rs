//! Provisioning on PostgreSQL: a database and a login role per spawned database, created, dropped
//! and swept through the administrative pool (the steps themselves are
//! [`SqlBackend`](crate::backend::sql::provision::SqlBackend)'s; this is their SQL).

use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{ConnectOptions as _, Connection as _, postgres::PgConnectOptions};
use tokio::time::Instant;
use tracing::warn;

use super::{
    CAPABILITIES, MAX_IDENT, Postgres, PostgresDialect,
    conn::{PgConn, PgEngine, PgTarget},
};
use crate::{
    backend::{
        Capabilities, ServerBackendConfig,
        reader::reader_ident,
        sql::{
            DbPool, Locator, Server,
            pool::ADMIN_TIMEOUT,
            provision::{Admin, AdminConn, Provisioner, Relogins, Shared},
        },
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

/// What a spawned database's read-only role may do: log in, nothing else. Its rights inside
/// the database (CONNECT, USAGE on schemas, SELECT on tables and sequences) are granted to it
/// one by one; it owns nothing, so it can create nothing and write nowhere.
const READER_ATTRIBUTES: &str =
    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT";

/// Run as the database's own role on a connection to its database: lets `{reader}` (a quoted
/// name, substituted before running) read every table, view and sequence of every schema the
/// role owns, now and later. Default privileges are the owner's to set, and the owner is the
/// only role that creates objects there, so future tables are covered too. `pg_catalog` and
/// `information_schema` stay readable as for every role.
///
/// A relation another role owns (an operator's table, made as the superuser rather than
/// through the gateway) makes the schema-wide GRANT fail as a whole; the schema's relations the
/// database's role owns are then granted one by one, and the others stay unreadable to the
/// read-only role, as they are to the database's own role.
const READER_GRANTS: &str = r#"DO $dbforge$
DECLARE s name; r name; me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspowner = me OR nspname = 'public'
  LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {reader}', s);
    BEGIN
      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {reader}', s);
      EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO {reader}', s);
    EXCEPTION WHEN insufficient_privilege THEN
      FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = s AND c.relowner = me AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      LOOP
        EXECUTE format('GRANT SELECT ON %I.%I TO {reader}', s, r);
      END LOOP;
    END;
  END LOOP;
END
$dbforge$;
ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO {reader};
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {reader};
ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO {reader}"#;

#[async_trait]
impl AdminConn for PgConn {
    async fn exec(&mut self, sql: String) -> Result<()> {
        self.admin_exec(sql).await
    }
}

/// Creates the login role `role` with `attributes` and `password`, or sets them on it.
async fn set_role(
    admin: &mut Admin<PgEngine>,
    role: &str,
    attributes: &str,
    password: &str,
) -> Result<()> {
    let exists = admin
        .integer("SELECT 1::int8 FROM pg_roles WHERE rolname = $1", role)
        .await?
        .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    let name = PostgresDialect.quote_ident(role);
    // The password is generated hex (checked by Locator::parse): safe inside quotes.
    admin
        .exec(format!(
            "{verb} ROLE {name} WITH {attributes} PASSWORD '{password}'"
        ))
        .await
}

/// The databases in which the role of the argument has stored settings of its own.
const ROLE_DATABASE_SETTINGS: &str = "SELECT d.datname::text FROM pg_db_role_setting s \
     JOIN pg_database d ON d.oid = s.setdatabase JOIN pg_roles r ON r.oid = s.setrole \
     WHERE r.rolname = $1";

/// Ends every session on the database named by the argument but the caller's.
const TERMINATE_SESSIONS: &str = "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
     WHERE datname = $1 AND pid <> pg_backend_pid()";

/// Whether `stored`, PostgreSQL's `rolpassword` of `login`, is `password`'s: a SCRAM-SHA-256
/// verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802 and 7677) or
/// an `md5` hash of password and login. Anything else (none, or an unknown scheme) is not.
pub fn credential_is(login: &str, stored: &str, password: &str) -> bool {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    if let Some(hash) = stored.strip_prefix("md5") {
        let digest = md5::Md5::digest(format!("{password}{login}").as_bytes());
        return crate::core::value::text::hex(&digest) == hash;
    }
    let Some(verifier) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let parsed = (|| {
        let (params, keys) = verifier.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored_key, _server_key) = keys.split_once(':')?;
        Some((
            iterations.parse::<u32>().ok()?,
            STANDARD.decode(salt).ok()?,
            STANDARD.decode(stored_key).ok()?,
        ))
    })();
    let Some((iterations, salt, stored_key)) = parsed else {
        return false;
    };
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&salted) else {
        return false;
    };
    mac.update(b"Client Key");
    let client_key = mac.finalize().into_bytes();
    Sha256::digest(client_key)[..] == stored_key[..]
}

#[async_trait]
impl Provisioner for Postgres {
    type Engine = PgEngine;
    const MAX_IDENT: usize = MAX_IDENT;
    const DIALECT: &'static dyn SqlDialect = &PostgresDialect;
    const MAX_PREFIX: usize = 24;
    const SIZE: &'static str =
        "SELECT pg_database_size(datname)::int8 FROM pg_database WHERE datname = $1";
    const NAMES: &'static [&'static str] = &[
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1",
    ];
    const CREDENTIALS: &'static str = "SELECT rolname::text || ' ' || coalesce(rolpassword, '') \
                                       FROM pg_authid WHERE rolname LIKE $1";
    // A read-only login (its name holds the one `-`) keeps the one setting it was given.
    const DRIFTED_SETTINGS: Option<&'static str> = Some(
        "SELECT DISTINCT r.rolname::text FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname LIKE $1 \
         AND NOT (s.setdatabase = 0 AND strpos(r.rolname, '-') > 0 \
                  AND s.setconfig = ARRAY['default_transaction_read_only=on'])",
    );

    fn credential_is(login: &str, stored: &str, password: &str) -> bool {
        credential_is(login, stored, password)
    }

    fn configure(cfg: &ServerBackendConfig) -> Result<(Self, PgEngine, PgTarget)> {
        let admin_options = PgConnectOptions::from_str(&cfg.url)
            .map_err(|e| Error::invalid("postgres_url", e))?
            .application_name("dbforge-admin")
            .disable_statement_logging();
        let engine = Postgres {
            admin_options: admin_options.clone(),
            epochs: Mutex::default(),
        };
        Ok((engine, PgEngine, PgTarget::new(admin_options)))
    }

    fn capabilities(&self, _server: &Server<PgEngine>) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn targets(&self, loc: &Locator, relogin: Relogins<'_>) -> (PgTarget, PgTarget) {
        (
            self.owner_target(loc, relogin(loc.ident.clone(), false)),
            self.reader_target(loc, relogin(reader_ident(&loc.ident), true)),
        )
    }

    /// Creates (or completes) the role and the database of `loc`.
    async fn provision(&self, admin: &mut Admin<PgEngine>, loc: &Locator) -> Result<()> {
        let name = PostgresDialect.quote_ident(&loc.ident);
        set_role(admin, &loc.ident, ROLE_ATTRIBUTES, &loc.password).await?;
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
    }

    /// A copy of `source`'s database made by the server: `CREATE DATABASE … TEMPLATE`, then
    /// the copy handed over to `loc`'s role (`hand_over_copy`). PostgreSQL copies only a
    /// database no session is connected to: with sessions on it still `COPY_DRAIN` after the
    /// caller closed the gateway's idle ones, this answers FAILED_PRECONDITION before making
    /// anything, and CREATE DATABASE fails the same way (after waiting 5 s) when one connects
    /// meanwhile.
    /// It also needs an admin login that may read the source's files: a superuser, or the
    /// source's owner; others get the server's refusal (and the core copies through a dump).
    async fn provision_copy(
        &self,
        admin: &mut Admin<PgEngine>,
        source: &Locator,
        loc: &Locator,
    ) -> Result<()> {
        // The server ends a closed connection's session a moment after the close: wait that
        // long for the ones just closed, not for sessions in use.
        let deadline = Instant::now() + COPY_DRAIN;
        loop {
            let sessions = admin
                .integer(
                    "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname = $1",
                    &source.ident,
                )
                .await?
                .unwrap_or_default();
            if sessions == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::FailedPrecondition(format!(
                    "the source has {sessions} open session(s), and PostgreSQL copies only a \
                     database nobody is connected to"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set_role(admin, &loc.ident, ROLE_ATTRIBUTES, &loc.password).await?;
        let name = PostgresDialect.quote_ident(&loc.ident);
        let template = PostgresDialect.quote_ident(&source.ident);
        admin
            .exec(format!(
                "CREATE DATABASE {name} OWNER {name} TEMPLATE {template}"
            ))
            .await?;
        admin
            .exec(format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"))
            .await?;
        let reader = reader_ident(&source.ident);
        let has_reader = admin
            .integer("SELECT 1::int8 FROM pg_roles WHERE rolname = $1", &reader)
            .await?
            .is_some();
        hand_over_copy(
            &self.admin_options,
            source,
            loc,
            has_reader.then_some(reader.as_str()),
        )
        .await
    }

    /// Creates (or completes) the read-only role of `loc`, which read grants log in as, and
    /// gives it read access to everything in the database, through a connection of the
    /// database's own role (the owner of what is there).
    async fn ensure_reader(backend: &Arc<Shared<Self>>, loc: &Locator) -> Result<()> {
        let reader = reader_ident(&loc.ident);
        let mut admin = backend.admin().await?;
        let db = PostgresDialect.quote_ident(&loc.ident);
        let name = PostgresDialect.quote_ident(&reader);
        // The reader shares the owner's password: both are the gateway's, never shown to
        // clients.
        set_role(&mut admin, &reader, READER_ATTRIBUTES, &loc.password).await?;
        // A second line of defence behind the privileges: every transaction it starts is
        // read-only, so even a write no privilege covers (a large object) is refused.
        admin
            .exec(format!(
                "ALTER ROLE {name} SET default_transaction_read_only = on"
            ))
            .await?;
        admin
            .exec(format!("GRANT CONNECT ON DATABASE {db} TO {name}"))
            .await?;
        drop(admin);
        let (owner, _) = backend.targets(loc);
        let owner = DbPool::of(&backend.server, &loc.ident, owner);
        let mut conn = owner.acquire(Instant::now() + ADMIN_TIMEOUT).await?;
        // The owner's pooled connections run reads read-only first (see `read_then_write`):
        // one left that way would refuse the GRANTs below.
        conn.read_write().await?;
        let c = conn.begin_use()?;
        let r = c.admin_exec(READER_GRANTS.replace("{reader}", &name)).await;
        conn.end_use(&r);
        r?;
        let c = conn.begin_use()?;
        let r = sqlx::query_scalar::<_, bool>(
            "SELECT has_function_privilege($1, 'pg_catalog.lo_create(oid)', 'EXECUTE')",
        )
        .bind(&reader)
        .persistent(false)
        .fetch_one(c.raw())
        .await;
        let r = r.map_err(|e| c.fail(e));
        conn.end_use(&r);
        if r? {
            keep_large_objects_to_owner(&backend.engine.admin_options, loc).await?;
        }
        Ok(())
    }

    async fn disconnect(&self, admin: &mut Admin<PgEngine>, ident: &str) -> Result<()> {
        // Both logins connect to the database `ident` only.
        admin.strings(TERMINATE_SESSIONS, ident).await.map(drop)
    }

    /// Drops the database and the role named `ident`; what is already gone is fine.
    async fn unprovision(&self, admin: &mut Admin<PgEngine>, ident: &str) -> Result<()> {
        let name = PostgresDialect.quote_ident(ident);
        // FORCE ends the database's remaining sessions (PostgreSQL 13+).
        admin
            .exec(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        for role in [ident.to_owned(), reader_ident(ident)] {
            let name = PostgresDialect.quote_ident(&role);
            match admin.exec(format!("DROP ROLE IF EXISTS {name}")).await {
                Ok(()) => {}
                // Another spawned database granted this role privileges: the role cannot
                // be dropped until that one is. Lock it out; a later orphan sweep drops it
                // (with the database's read-only role, which only ever has grants here).
                Err(Error::Query { code: Some(c), .. }) if c == "2BP01" => {
                    warn!(
                        role = role.as_str(),
                        "role still has grants elsewhere; disabling its login"
                    );
                    admin
                        .exec(format!("ALTER ROLE {name} NOLOGIN PASSWORD NULL"))
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets the password of the login `role` back to the catalog's (see [`Relogin`](crate::backend::sql::Relogin)). A
    /// read-only role also gets its settings back to the one it is made with.
    async fn reset_login(
        &self,
        admin: &mut Admin<PgEngine>,
        role: &str,
        password: &str,
        reader: bool,
    ) -> Result<()> {
        let name = PostgresDialect.quote_ident(role);
        let attributes = if reader {
            READER_ATTRIBUTES
        } else {
            ROLE_ATTRIBUTES
        };
        // The password is generated hex (checked by Locator::parse): safe inside quotes.
        admin
            .exec(format!(
                "ALTER ROLE {name} WITH {attributes} PASSWORD '{password}'"
            ))
            .await?;
        // Settings the login stored for itself, everywhere and in any one database.
        admin.exec(format!("ALTER ROLE {name} RESET ALL")).await?;
        for db in admin.strings(ROLE_DATABASE_SETTINGS, role).await? {
            let db = PostgresDialect.quote_ident(&db);
            admin
                .exec(format!("ALTER ROLE {name} IN DATABASE {db} RESET ALL"))
                .await?;
        }
        if reader {
            admin
                .exec(format!(
                    "ALTER ROLE {name} SET default_transaction_read_only = on"
                ))
                .await?;
        }
        Ok(())
    }

    fn forget(&self, ident: &str) {
        self.epochs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(ident);
    }
}

/// Makes the database of `loc`, just copied from `source`'s, the property of `loc`'s role alone,
/// in one transaction on an administrative connection to it:
///
/// - `REASSIGN OWNED` gives everything in it the source's role owned (schemas, tables,
///   sequences, views, functions, types) to the copy's role. It also hands over the shared
///   objects that role owns, which is the source database itself: that one is given straight
///   back, in the same transaction, so no one ever sees it otherwise.
/// - `DROP OWNED` then removes what the copy still held for the source's logins: its default
///   privileges, the source read-only login's grants (`reader`), the large-object functions'
///   grant (given to the copy's role instead). Nothing in the copy names the source's logins
///   afterwards, so they can still be dropped. For the read-only login it also revokes its
///   CONNECT on its own database (a shared object), which is granted again.
///
/// The copy's read-only login gets its grants afterwards, as at every spawn.
async fn hand_over_copy(
    admin_options: &PgConnectOptions,
    source: &Locator,
    loc: &Locator,
    reader: Option<&str>,
) -> Result<()> {
    let q = |ident: &str| PostgresDialect.quote_ident(ident);
    let (src, dest) = (q(&source.ident), q(&loc.ident));
    let mut sql = format!(
        "BEGIN; REASSIGN OWNED BY {src} TO {dest}; ALTER DATABASE {src} OWNER TO {src}; \
         DROP OWNED BY {src}; "
    );
    if let Some(reader) = reader {
        let reader = q(reader);
        sql.push_str(&format!(
            "DROP OWNED BY {reader}; GRANT CONNECT ON DATABASE {src} TO {reader}; "
        ));
    }
    sql.push_str(&format!(
        "GRANT EXECUTE ON FUNCTION {LARGE_OBJECT_FUNCTIONS} TO {dest}; COMMIT"
    ));
    let options = admin_options.clone().database(&loc.ident);
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(super::classify)?;
    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(super::classify);
    let _ = conn.close().await;
    r
}

/// How long a copy waits for the source's sessions to end once the gateway closed its idle
/// connections to it (their sessions end a moment after the close).
const COPY_DRAIN: Duration = Duration::from_millis(500);

/// The functions that create large objects.
const LARGE_OBJECT_FUNCTIONS: &str = "pg_catalog.lo_creat(integer), pg_catalog.lo_create(oid), \
                                      pg_catalog.lo_from_bytea(oid, bytea)";

/// Takes the creation of large objects from PUBLIC and gives it to the database's own role.
/// Any role may create large objects, even inside a read-only transaction, and no privilege
/// on a table is needed: left alone, a read grant could still store data. The functions
/// belong to the superuser, so this runs on an administrative connection to the spawned
/// database itself, opened for this step only (once per database: the caller checks first).
async fn keep_large_objects_to_owner(
    admin_options: &PgConnectOptions,
    loc: &Locator,
) -> Result<()> {
    let options = admin_options.clone().database(&loc.ident);
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(super::classify)?;
    let functions = LARGE_OBJECT_FUNCTIONS;
    let owner = PostgresDialect.quote_ident(&loc.ident);
    let sql = format!(
        "REVOKE EXECUTE ON FUNCTION {functions} FROM PUBLIC; \
         GRANT EXECUTE ON FUNCTION {functions} TO {owner}"
    );
    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(super::classify);
    let _ = conn.close().await;
    r
}

#[cfg(test)]
mod credential_tests {
    use super::credential_is;

    // Stored by PostgreSQL 15 for `CREATE ROLE tmpcred PASSWORD 'abc123'`, with
    // password_encryption scram-sha-256 and then md5.
    const SCRAM: &str = "SCRAM-SHA-256$4096:Y488eMmlELCubHvuAzqX/Q==$qfPOD1n5FB5kK5VV6VPdqZEZkvb/\
                         TUYg7g9iGVi4j7w=:+vBlYy4Yzyr7q0+0D1UGnePMsYx6+eGS3tOFc+vAESY=";
    const MD5: &str = "md59e8bdb8089bcc227898c7ce5e928376a";

    #[test]
    fn scram_and_md5_verifiers_check_the_password() {
        assert!(credential_is("tmpcred", SCRAM, "abc123"));
        assert!(!credential_is("tmpcred", SCRAM, "abc124"));
        assert!(credential_is("tmpcred", MD5, "abc123"));
        assert!(
            !credential_is("other", MD5, "abc123"),
            "md5 is salted with the login"
        );
        assert!(
            !credential_is("tmpcred", "", "abc123"),
            "no password is not the password"
        );
        assert!(!credential_is("tmpcred", "SCRAM-SHA-256$x", "abc123"));
    }
}
