//! A hostile tenant on every engine: what a login may do to itself (settings, passwords, roles,
//! session state), exports that try to write, rows larger than a message, and tenant-chosen
//! names in the engines' catalogs. Every check of the engine's state is made through an
//! administrative connection of the test's own, not through the gateway.

use std::collections::BTreeMap;

use dbforge::{Backend, Code, CreateOptions, ExportFormat, ExportOptions, Role, Statement, Value};
use dbforge_server::backend::postgres::credential_is;
use sqlx::{Connection as _, Row as _};

use crate::harness::{
    ADMIN_KEY as ADMIN, as_key, assert_code, every_route, key_for, mysql_url, postgres_url,
    redis_url, secured, unique,
};

/// The read-only login that goes with the login `ident` (the server's `reader_ident`).
fn reader_of(ident: &str) -> String {
    match ident.rfind('_') {
        Some(i) => format!("{}-{}", &ident[..i], &ident[i + 1..]),
        None => format!("{ident}-ro"),
    }
}

/// A login's credentials and stored settings on PostgreSQL, as the superuser sees them.
async fn pg_login_state(url: &str, roles: &[&str]) -> BTreeMap<String, (String, String)> {
    let mut admin = sqlx::PgConnection::connect(url).await.expect("admin");
    let rows = sqlx::query(
        "SELECT a.rolname::text, coalesce(a.rolpassword, '')::text, \
                coalesce((SELECT string_agg(array_to_string(s.setconfig, ','), ';') \
                          FROM pg_db_role_setting s WHERE s.setrole = a.oid), '')::text \
         FROM pg_authid a WHERE a.rolname = ANY($1)",
    )
    .bind(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
    .fetch_all(&mut admin)
    .await
    .expect("roles");
    rows.iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

#[tokio::test]
async fn postgres_read_keys_cannot_change_their_login_or_session() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = secured(Backend::Postgres, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("pg-self");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("create");
    // The admin's first use leaves its pooled connection read-only (reads are tried that way).
    admin
        .execute(&db, "CREATE TABLE t (v integer)", &[])
        .await
        .expect("ddl");
    admin.execute(&db, "SELECT 1", &[]).await.expect("read");
    let owner = admin
        .execute(&db, "SELECT current_user::text", &[])
        .await
        .expect("who")
        .rows[0]
        .values()[0]
        .clone();
    let Value::Text(owner) = owner else {
        panic!("{owner:?}")
    };
    let reader_role = reader_of(&owner);
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    // The first call of a fresh read key succeeds: nothing is granted inside its session.
    reader
        .execute(&db, "SELECT 1", &[])
        .await
        .expect("the first read of a new read key");
    let before = pg_login_state(&url, &[&owner, &reader_role]).await;
    assert_eq!(before.len(), 2, "{before:?}");

    for sql in [
        "ALTER ROLE CURRENT_USER SET default_transaction_read_only = off",
        "ALTER ROLE CURRENT_USER SET statement_timeout = 0",
        "ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-the-tenant'",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "SELECT set_config('statement_timeout', '0', false)",
        "SET transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET SESSION AUTHORIZATION DEFAULT",
        "SET ROLE NONE",
        "RESET ALL",
        "DISCARD ALL",
    ] {
        every_route(&reader, &db, sql, true).await;
        // Whatever the statement did, the next call of the read key is read-only again and
        // the gateway's statement timeout is in force.
        let r = reader
            .execute(
                &db,
                "SELECT current_setting('transaction_read_only'), \
                 current_setting('default_transaction_read_only'), \
                 current_setting('statement_timeout')",
                &[],
            )
            .await
            .expect("settings");
        let v = r.rows[0].values();
        assert_eq!(v[0], Value::Text("on".into()), "after {sql}");
        assert_eq!(v[1], Value::Text("on".into()), "after {sql}");
        assert_ne!(v[2], Value::Text("0".into()), "after {sql}");
        assert_code(
            reader.execute(&db, "INSERT INTO t VALUES (1)", &[]).await,
            Code::PermissionDenied,
        );
    }
    // Two statements in one batch: the first cannot open the door for the second.
    for transactional in [false, true] {
        let r = reader
            .batch(
                &db,
                vec![
                    Statement::new(
                        "SELECT set_config('default_transaction_read_only', 'off', false)",
                        vec![],
                    ),
                    Statement::new("ALTER ROLE CURRENT_USER PASSWORD 'x'", vec![]),
                ],
                transactional,
            )
            .await;
        assert_code(r, Code::PermissionDenied);
    }
    assert_eq!(
        pg_login_state(&url, &[&owner, &reader_role]).await,
        before,
        "no password or stored setting of either login changed"
    );
    let r = admin
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(r.rows[0].values(), &[Value::Int(0)]);
    admin.delete_database(&db).await.expect("delete");
}

/// A MySQL account's stored credential, as root sees it.
async fn mysql_credentials(url: &str, users: &[&str]) -> BTreeMap<String, String> {
    let mut admin = sqlx::MySqlConnection::connect(url).await.expect("admin");
    let mut out = BTreeMap::new();
    for user in users {
        let row = sqlx::query(
            "SELECT CAST(JSON_VALUE(Priv, '$.authentication_string') AS CHAR) \
             FROM mysql.global_priv WHERE User = ?",
        )
        .bind(*user)
        .fetch_one(&mut admin)
        .await
        .expect("account");
        out.insert((*user).to_owned(), row.get::<String, _>(0));
    }
    out
}

#[tokio::test]
async fn mysql_keys_cannot_keep_a_changed_password() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = secured(Backend::Mysql, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("my-self");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Mysql))
        .await
        .expect("create");
    admin
        .execute(&db, "CREATE TABLE t (v INTEGER)", &[])
        .await
        .expect("ddl");
    let r = admin
        .execute(&db, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)", &[])
        .await
        .expect("who");
    let Value::Text(owner) = r.rows[0].values()[0].clone() else {
        panic!("{r:?}")
    };
    let reader_user = reader_of(&owner);
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    reader
        .execute(&db, "SELECT 1", &[])
        .await
        .expect("the first read of a new read key");
    let before = mysql_credentials(&url, &[&owner, &reader_user]).await;

    for sql in [
        "SET PASSWORD = PASSWORD('chosen-by-the-tenant')",
        "SET STATEMENT tx_read_only = 0 FOR SET PASSWORD = PASSWORD('x')",
        "/*!SET PASSWORD = PASSWORD('x')*/",
        "SET SESSION TRANSACTION READ WRITE",
        "SET @@session.tx_read_only = 0",
        "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
        "EXECUTE IMMEDIATE 'SET PASSWORD = PASSWORD(''x'')'",
        "PREPARE p FROM 'SET PASSWORD = PASSWORD(''x'')'",
    ] {
        let codes = every_route(&reader, &db, sql, true).await;
        assert!(!codes.contains(&Code::Ok), "{sql}: {codes:?}");
        let r = reader
            .execute(&db, "SELECT @@tx_read_only", &[])
            .await
            .expect("read-only");
        assert_eq!(r.rows[0].values(), &[Value::Int(1)], "after {sql}");
    }
    assert_eq!(
        mysql_credentials(&url, &[&owner, &reader_user]).await,
        before,
        "a read key changed no password"
    );

    // MySQL lets an account that may write change its own password, directly or from a
    // routine. The gateway's credentials stay those of the catalog: the next login puts them
    // back.
    let writer = key_for(&s, &admin, &db, Role::Write).await;
    writer
        .execute(&db, "SET PASSWORD = PASSWORD('chosen-by-the-tenant')", &[])
        .await
        .expect("the engine lets a login change its own password");
    writer
        .execute(
            &db,
            "CREATE PROCEDURE p() SET PASSWORD = PASSWORD('another')",
            &[],
        )
        .await
        .expect("routine");
    writer.execute(&db, "CALL p()", &[]).await.expect("call");
    let mut root = sqlx::MySqlConnection::connect(&url).await.expect("root");
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
    )
    .bind(&owner)
    .fetch_all(&mut root)
    .await
    .expect("sessions");
    for id in ids {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
            .execute(&mut root)
            .await;
    }
    // The gateway's pooled connections are gone; the next ones log in anew.
    let mut worked = false;
    for _ in 0..20 {
        if writer
            .execute(&db, "INSERT INTO t VALUES (1)", &[])
            .await
            .is_ok()
        {
            worked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        worked,
        "the gateway logs in again after the password changed"
    );
    assert_eq!(
        mysql_credentials(&url, &[&owner]).await[&owner],
        before[&owner],
        "the catalog's password is back"
    );
    admin.delete_database(&db).await.expect("delete");
}

/// Every ACL user's rules, by name.
async fn acl_users(url: &str) -> BTreeMap<String, String> {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let lines: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("ACL LIST");
    lines
        .into_iter()
        .filter_map(|l| {
            let name = l.split(' ').nth(1)?.to_owned();
            Some((name, l))
        })
        .collect()
}

#[tokio::test]
async fn redis_keys_cannot_change_their_acl_user_or_connection() {
    let Some(url) = redis_url().await else {
        return;
    };
    let s = secured(Backend::Redis, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("kv-self");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("create");
    admin.execute(&db, "SET k v", &[]).await.expect("set");
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let writer = key_for(&s, &admin, &db, Role::Write).await;
    reader
        .execute(&db, "GET k", &[])
        .await
        .expect("the first read of a new read key");
    let before = acl_users(&url).await;
    for c in [&reader, &writer] {
        for line in [
            "AUTH default x",
            "AUTH x",
            "HELLO 3 AUTH default x",
            "ACL SETUSER default on nopass",
            "ACL WHOAMI",
            "CLIENT SETNAME tenant",
            "CONFIG SET maxmemory 1",
            "SELECT 1",
            "RESET",
        ] {
            let codes = every_route(c, &db, line, false).await;
            assert!(!codes.contains(&Code::Ok), "{line}: {codes:?}");
        }
        assert_code(
            reader.execute(&db, "SET k w", &[]).await,
            Code::PermissionDenied,
        );
    }
    let after = acl_users(&url).await;
    for (user, rules) in &before {
        if let Some(now) = after.get(user) {
            assert_eq!(now, rules, "ACL user {user} unchanged");
        }
    }
    admin.delete_database(&db).await.expect("delete");
}

/// The SQL engines of this machine, with the server URL each needs.
async fn sql_engines() -> Vec<(Backend, Option<String>)> {
    let mut engines = vec![(Backend::Sqlite, None)];
    if let Some(url) = postgres_url().await {
        engines.push((Backend::Postgres, Some(url)));
    }
    if let Some(url) = mysql_url().await {
        engines.push((Backend::Mysql, Some(url)));
    }
    engines
}

#[tokio::test]
async fn exports_refuse_writing_statements_on_every_engine() {
    for (backend, url) in sql_engines().await {
        let s = secured(backend, url).await;
        let admin = as_key(&s, ADMIN).await;
        let db = unique("export-write");
        admin
            .create_database(&db, CreateOptions::default().backend(backend))
            .await
            .expect("create");
        admin
            .execute(&db, "CREATE TABLE users (id INTEGER PRIMARY KEY)", &[])
            .await
            .expect("ddl");
        admin
            .execute(&db, "INSERT INTO users (id) VALUES (1), (2)", &[])
            .await
            .expect("insert");
        for sql in [
            "DELETE FROM users WHERE id = 2 RETURNING id",
            "INSERT INTO users (id) VALUES (3) RETURNING id",
        ] {
            let r = match admin
                .export_query(&db, sql, &[], ExportOptions::csv())
                .await
            {
                Ok(export) => export.bytes().await.map(drop),
                Err(e) => Err(e),
            };
            let err = r.expect_err(sql);
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{backend:?} {sql}: {err}"
            );
            assert!(err.message().contains("read statement"), "{err}");
        }
        let r = admin
            .execute(&db, "SELECT count(*) FROM users", &[])
            .await
            .expect("count");
        assert_eq!(
            r.rows[0].values(),
            &[Value::Int(2)],
            "{backend:?}: nothing changed"
        );
        let export = admin
            .export_query(
                &db,
                "SELECT id FROM users ORDER BY id",
                &[],
                ExportOptions::csv(),
            )
            .await
            .expect("a read still exports");
        assert_eq!(export.bytes().await.expect("bytes"), b"id\r\n1\r\n2\r\n");
        admin.delete_database(&db).await.expect("delete");
    }
}

/// The dashboard's console exports a Redis command's reply through ExportQuery: a read
/// command's rows come out in every format, as the result table shows them.
#[tokio::test]
async fn redis_exports_a_read_commands_reply_in_every_format() {
    let Some(url) = redis_url().await else {
        return;
    };
    let s = secured(Backend::Redis, Some(url)).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("export-kv-read");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("create");
    admin
        .execute(&db, "HSET user:1 name Ada lang en", &[])
        .await
        .expect("hset");
    admin
        .execute(&db, "SET greeting \"hello, world\"", &[])
        .await
        .expect("set");
    let export = |line: &'static str, format: ExportFormat| {
        let admin = admin.clone();
        let db = db.clone();
        async move {
            let e = admin
                .export_query(&db, line, &[], ExportOptions::new(format))
                .await
                .expect(line);
            String::from_utf8(e.bytes().await.expect(line)).expect("UTF-8")
        }
    };
    // One value: a `value` column; the comma is quoted in CSV.
    assert_eq!(
        export("GET greeting", ExportFormat::Csv).await,
        "value\r\n\"hello, world\"\r\n"
    );
    assert_eq!(
        export("GET greeting", ExportFormat::Json).await,
        "[\n{\"value\":\"hello, world\"}\n]\n"
    );
    // A hash: field and value columns, one row per field.
    let csv = export("HGETALL user:1", ExportFormat::Csv).await;
    let mut lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.remove(0), "field,value");
    lines.sort_unstable();
    assert_eq!(lines, ["lang,en", "name,Ada"]);
    let ndjson = export("HGETALL user:1", ExportFormat::Ndjson).await;
    let mut records: Vec<&str> = ndjson.lines().collect();
    records.sort_unstable();
    assert_eq!(
        records,
        [
            r#"{"field":"lang","value":"en"}"#,
            r#"{"field":"name","value":"Ada"}"#
        ]
    );
    admin.delete_database(&db).await.expect("delete");
}

#[tokio::test]
async fn redis_exports_refuse_writing_commands() {
    let Some(url) = redis_url().await else {
        return;
    };
    let s = secured(Backend::Redis, Some(url)).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("export-kv");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("create");
    admin.execute(&db, "SET k v", &[]).await.expect("set");
    for line in ["DEL k", "GETDEL k", "SET k w GET"] {
        let r = match admin
            .export_query(&db, line, &[], ExportOptions::new(ExportFormat::Ndjson))
            .await
        {
            Ok(export) => export.bytes().await.map(drop),
            Err(e) => Err(e),
        };
        let err = r.expect_err(line);
        assert_eq!(err.code(), Code::InvalidArgument, "{line}: {err}");
    }
    let r = admin.execute(&db, "GET k", &[]).await.expect("get");
    assert_eq!(
        r.rows[0].values(),
        &[Value::Text("v".into())],
        "nothing changed"
    );
    admin.delete_database(&db).await.expect("delete");
}

#[tokio::test]
async fn a_row_larger_than_a_message_is_resource_exhausted_with_a_reason() {
    for (backend, url) in sql_engines().await {
        let s = secured(backend, url).await;
        let admin = as_key(&s, ADMIN).await;
        let db = unique("big-row");
        admin
            .create_database(&db, CreateOptions::default().backend(backend))
            .await
            .expect("create");
        // Two values of 3 MB: each fits in a message (SQLite caps a value at the message
        // size), the row does not.
        let sql = match backend {
            Backend::Sqlite => "SELECT printf('%.*c', 3000000, 'x'), printf('%.*c', 3000000, 'y')",
            _ => "SELECT repeat('x', 3000000), repeat('y', 3000000)",
        };
        let r = match admin.query(&db, sql, &[]).await {
            Ok(mut rows) => rows.collect_rows().await.map(drop),
            Err(e) => Err(e),
        };
        let err = r.expect_err("6 MB in one row");
        assert_eq!(err.code(), Code::ResourceExhausted, "{backend:?}: {err}");
        assert_eq!(err.reason().as_deref(), Some("LIMIT_EXCEEDED"), "{err}");
        // A row that fits still streams.
        let sql = match backend {
            Backend::Sqlite => "SELECT printf('%.*c', 3000000, 'x')",
            _ => "SELECT repeat('x', 3000000)",
        };
        let rows = admin
            .query(&db, sql, &[])
            .await
            .expect("query")
            .collect_rows()
            .await
            .expect("a 3 MB row fits");
        assert_eq!(rows.len(), 1);
        admin.delete_database(&db).await.expect("delete");
    }
}

#[tokio::test]
async fn tenant_names_do_not_show_in_engine_catalogs() {
    let marker = unique("secret-tenant").replace('-', "_");
    let name = marker.replace('_', "-");
    if let Some(url) = postgres_url().await {
        let s = secured(Backend::Postgres, Some(url.clone())).await;
        let admin = as_key(&s, ADMIN).await;
        admin
            .create_database(&name, CreateOptions::default().backend(Backend::Postgres))
            .await
            .expect("create");
        let mut root = sqlx::PgConnection::connect(&url).await.expect("admin");
        let found: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE '%' || $1 || '%') \
                  + (SELECT count(*) FROM pg_roles WHERE rolname LIKE '%' || $1 || '%')",
        )
        .bind(&marker)
        .fetch_one(&mut root)
        .await
        .expect("catalog");
        assert_eq!(found, 0, "pg_database and pg_roles carry no tenant name");
        admin.delete_database(&name).await.expect("delete");
    }
    if let Some(url) = mysql_url().await {
        let s = secured(Backend::Mysql, Some(url.clone())).await;
        let admin = as_key(&s, ADMIN).await;
        admin
            .create_database(&name, CreateOptions::default().backend(Backend::Mysql))
            .await
            .expect("create");
        let mut root = sqlx::MySqlConnection::connect(&url).await.expect("admin");
        let found: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME LIKE CONCAT('%', ?, '%')) \
                  + (SELECT COUNT(*) FROM mysql.user WHERE User LIKE CONCAT('%', ?, '%'))",
        )
        .bind(&marker)
        .bind(&marker)
        .fetch_one(&mut root)
        .await
        .expect("catalog");
        assert_eq!(found, 0, "schemas and users carry no tenant name");
        admin.delete_database(&name).await.expect("delete");
    }
    if let Some(url) = redis_url().await {
        let s = secured(Backend::Redis, Some(url.clone())).await;
        let admin = as_key(&s, ADMIN).await;
        admin
            .create_database(&name, CreateOptions::default().backend(Backend::Redis))
            .await
            .expect("create");
        admin.execute(&name, "SET k v", &[]).await.expect("set");
        let users = acl_users(&url).await;
        assert!(
            !users.keys().any(|u| u.contains(&name)),
            "ACL users carry no tenant name: {:?}",
            users.keys().collect::<Vec<_>>()
        );
        admin.delete_database(&name).await.expect("delete");
    }
}

#[tokio::test]
async fn read_keys_dump_describe_and_explain_on_every_engine() {
    let mut engines = sql_engines().await;
    if let Some(url) = redis_url().await {
        engines.push((Backend::Redis, Some(url)));
    }
    for (backend, url) in engines {
        let s = secured(backend, url).await;
        let admin = as_key(&s, ADMIN).await;
        let db = unique("ro-dump");
        admin
            .create_database(&db, CreateOptions::default().backend(backend))
            .await
            .expect("create");
        let reader = key_for(&s, &admin, &db, Role::Read).await;
        if backend == Backend::Redis {
            admin.execute(&db, "SET k v", &[]).await.expect("set");
            let dump = reader
                .dump_database(&db, false)
                .await
                .expect("dump")
                .bytes()
                .await
                .expect("bytes");
            assert!(String::from_utf8_lossy(&dump).contains("\"k\""), "{dump:?}");
        } else {
            admin
                .execute(&db, "CREATE TABLE t (v INTEGER PRIMARY KEY)", &[])
                .await
                .expect("ddl");
            admin
                .execute(&db, "INSERT INTO t (v) VALUES (7)", &[])
                .await
                .expect("insert");
            let dump = reader
                .dump_database(&db, false)
                .await
                .expect("a read key dumps")
                .bytes()
                .await
                .expect("bytes");
            let text = String::from_utf8_lossy(&dump);
            assert!(text.contains("CREATE TABLE"), "{backend:?}: {text}");
            assert!(text.contains('7'), "{backend:?}: {text}");
            let schema = reader.get_schema(&db, None).await.expect("schema");
            assert_eq!(schema.tables.len(), 1, "{backend:?}");
            reader
                .explain(&db, "SELECT v FROM t", &[], false)
                .await
                .expect("explain");
            // A session of a read key reads, and its commit keeps nothing of what it set.
            let mut tx = reader.transaction(&db).await.expect("session");
            let r = tx.execute("SELECT v FROM t", &[]).await.expect("read");
            assert_eq!(r.rows[0].values(), &[Value::Int(7)]);
            tx.commit().await.expect("commit");
        }
        admin.delete_database(&db).await.expect("delete");
    }
}

#[tokio::test]
async fn postgres_read_access_survives_a_table_the_operator_made() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = secured(Backend::Postgres, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("pg-operator");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("create");
    admin
        .execute(&db, "CREATE TABLE mine (v integer)", &[])
        .await
        .expect("ddl");
    admin
        .execute(&db, "INSERT INTO mine VALUES (1)", &[])
        .await
        .expect("insert");
    let r = admin
        .execute(&db, "SELECT current_database()::text", &[])
        .await
        .expect("which database");
    let Value::Text(engine_db) = r.rows[0].values()[0].clone() else {
        panic!("{r:?}")
    };
    // An operator adds a table of their own as the superuser, outside the gateway.
    let mut root_db = sqlx::PgConnection::connect_with(
        &url.parse::<sqlx::postgres::PgConnectOptions>()
            .expect("url")
            .database(&engine_db),
    )
    .await
    .expect("the spawned database as the superuser");
    sqlx::raw_sql("CREATE TABLE operator_made (x integer)")
        .execute(&mut root_db)
        .await
        .expect("operator's table");
    // Exports (read-only) and a new read key still read what the database's role owns.
    let export = admin
        .export_table(&db, "mine", ExportOptions::csv())
        .await
        .expect("export")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(export, b"v\r\n1\r\n");
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let r = reader
        .execute(&db, "SELECT v FROM mine", &[])
        .await
        .expect("a read key reads the database's own tables");
    assert_eq!(r.rows[0].values(), &[Value::Int(1)]);
    assert_code(
        reader
            .execute(&db, "SELECT x FROM operator_made", &[])
            .await,
        Code::PermissionDenied,
    );
    drop(root_db);
    admin.delete_database(&db).await.expect("delete");
}

/// Polls `check` for up to 20 s (the gateway sweeps credentials every few seconds).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..80 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{what} did not happen within 20 s");
}

#[tokio::test]
async fn postgres_write_keys_cannot_keep_a_changed_password_or_stored_setting() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = secured(Backend::Postgres, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("pg-drift");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("create");
    let writer = key_for(&s, &admin, &db, Role::Write).await;
    let r = writer
        .execute(
            &db,
            "SELECT current_user::text, current_database()::text",
            &[],
        )
        .await
        .expect("who");
    let (Value::Text(owner), Value::Text(engine_db)) =
        (r.rows[0].values()[0].clone(), r.rows[0].values()[1].clone())
    else {
        panic!("{r:?}")
    };
    let reader_role = reader_of(&owner);
    let before = pg_login_state(&url, &[&owner, &reader_role]).await;

    // PostgreSQL lets every login do these to itself, whatever its privileges.
    for sql in [
        "ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-the-tenant'".to_owned(),
        "ALTER ROLE CURRENT_USER SET statement_timeout = 0".to_owned(),
        format!("ALTER ROLE CURRENT_USER IN DATABASE \"{engine_db}\" SET work_mem = '1GB'"),
    ] {
        writer
            .execute(&db, &sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    eventually("the gateway resetting the login", || async {
        let now = pg_login_state(&url, &[&owner, &reader_role]).await;
        // The tenant's password no longer works (a new verifier, with a new salt, for the
        // catalog's password), and both logins' settings are as they were.
        let (verifier, settings) = &now[&owner];
        !credential_is(&owner, verifier, "chosen-by-the-tenant")
            && *settings == before[&owner].1
            && now[&reader_role] == before[&reader_role]
    })
    .await;
    // The gateway kept working throughout, and still does.
    writer
        .execute(&db, "CREATE TABLE t (v integer)", &[])
        .await
        .expect("the gateway's login works");
    admin.delete_database(&db).await.expect("delete");
}

#[tokio::test]
async fn mysql_write_keys_cannot_keep_a_changed_password() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = secured(Backend::Mysql, Some(url.clone())).await;
    let admin = as_key(&s, ADMIN).await;
    let db = unique("my-drift");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Mysql))
        .await
        .expect("create");
    let writer = key_for(&s, &admin, &db, Role::Write).await;
    let r = writer
        .execute(&db, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)", &[])
        .await
        .expect("who");
    let Value::Text(owner) = r.rows[0].values()[0].clone() else {
        panic!("{r:?}")
    };
    let before = mysql_credentials(&url, &[&owner]).await;
    writer
        .execute(&db, "SET PASSWORD = PASSWORD('chosen-by-the-tenant')", &[])
        .await
        .expect("MySQL lets a login change its own password");
    // Without any login being refused (the pooled connections stay), the gateway notices.
    eventually("the gateway resetting the password", || async {
        mysql_credentials(&url, &[&owner]).await == before
    })
    .await;
    admin.delete_database(&db).await.expect("delete");
}
