//! DatabaseService.ForkDatabase through gRPC on every backend: the fork holds the source's
//! data, and writes to either one afterwards never show in the other; forks from backups;
//! errors with their codes; access (read on the source, create on the fork's name, the forking
//! key owns the fork); audit and metrics.

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, key_for, metric_value, mysql_url, postgres_url, redis_url,
    scrape_metrics, secured, serving, unique,
};
use dbforge::{Backend, Client, Code, CreateBackup, CreateOptions, ForkOptions, Forked, Value};

/// Every row `sql` returns, as values.
async fn rows(c: &Client, db: &str, sql: &str) -> Vec<Vec<Value>> {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"))
        .rows
        .into_iter()
        .map(|r| r.into_values())
        .collect()
}

/// Asserts the code of an error and that its message holds `needle`.
#[track_caller]
fn assert_code<T: std::fmt::Debug>(res: Result<T, dbforge::Error>, code: Code, needle: &str) {
    let e = crate::harness::assert_code(res, code);
    assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
}

async fn exec(c: &Client, db: &str, sql: &str) {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"));
}

fn ids_and_values(pairs: &[(i64, &str)]) -> Vec<Vec<Value>> {
    pairs
        .iter()
        .map(|(i, v)| vec![Value::Int(*i), Value::Text((*v).into())])
        .collect()
}

async fn fork(c: &Client, source: &str, name: &str) -> Forked {
    c.fork_database(source, name, ForkOptions::default())
        .await
        .unwrap_or_else(|e| panic!("fork {source} into {name}: {e}"))
}

/// Source with a table, rows and a view → fork → equal; then writes on each side stay there;
/// the fork can change its own schema (it owns its objects) and outlives its source.
async fn sql_round(s: &TestServer, backend: Backend, method: &str) {
    let c = &s.client;
    let src = unique("fks");
    c.create_database(&src, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    exec(
        c,
        &src,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await;
    exec(c, &src, "INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')").await;
    exec(c, &src, "CREATE VIEW tv AS SELECT id FROM t WHERE id > 1").await;

    let dst = unique("fkd");
    let forked = fork(c, &src, &dst).await;
    assert_eq!(forked.database.name, dst);
    assert_eq!(forked.database.backend, backend);
    assert_eq!(forked.method, method);
    let all = "SELECT id, v FROM t ORDER BY id";
    assert_eq!(
        rows(c, &dst, all).await,
        ids_and_values(&[(1, "a"), (2, "b")])
    );
    assert_eq!(
        rows(c, &dst, "SELECT count(*) FROM tv").await,
        vec![vec![Value::Int(1)]],
        "the view came along"
    );

    // Writes after the fork stay on their side.
    exec(c, &src, "INSERT INTO t (id, v) VALUES (3, 'src')").await;
    exec(c, &dst, "INSERT INTO t (id, v) VALUES (4, 'fork')").await;
    exec(c, &dst, "UPDATE t SET v = 'changed' WHERE id = 1").await;
    assert_eq!(
        rows(c, &src, all).await,
        ids_and_values(&[(1, "a"), (2, "b"), (3, "src")])
    );
    assert_eq!(
        rows(c, &dst, all).await,
        ids_and_values(&[(1, "changed"), (2, "b"), (4, "fork")])
    );

    // The fork's own login owns what it holds.
    exec(c, &dst, "ALTER TABLE t ADD COLUMN w INT").await;
    exec(c, &dst, "DROP VIEW tv").await;
    assert_eq!(
        rows(c, &src, "SELECT count(*) FROM tv").await,
        vec![vec![Value::Int(2)]]
    );

    // The fork outlives its source.
    c.delete_database(&src).await.expect("delete source");
    assert_eq!(
        rows(c, &dst, "SELECT count(*) FROM t").await,
        vec![vec![Value::Int(3)]]
    );
    c.delete_database(&dst).await.expect("delete fork");
}

#[tokio::test]
async fn forks_are_independent_copies_on_sqlite() {
    let s = TestServer::start().await;
    sql_round(&s, Backend::Sqlite, "sqlite-backup-api").await;
}

#[tokio::test]
async fn forks_are_independent_copies_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    sql_round(&s, Backend::Postgres, "template").await;
}

/// Rows of `pg_shdepend` in the current database that name a role other than the database's
/// own login and its read-only login: none, when a fork left nothing of the source's logins
/// behind (and nothing of its own in the source), so both can be dropped cleanly.
const FOREIGN_ROLE_DEPENDENCIES: &str = "SELECT count(*) FROM pg_shdepend d \
     WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND d.refclassid = 'pg_authid'::regclass \
     AND d.refobjid NOT IN (SELECT oid FROM pg_roles WHERE rolname = current_user \
         OR rolname = regexp_replace(current_user, '_([^_]*)$', '-\\1'))";

/// A PostgreSQL fork copied as a template belongs to its own logins alone, and the source to
/// its own; a source in use (an open session) cannot be a template, and the fork copies it
/// through a dump instead, with the same result.
#[tokio::test]
async fn postgres_forks_use_the_source_as_a_template_unless_it_is_in_use() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = secured(Backend::Postgres, Some(url)).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let c = &admin;
    let src = unique("fkpg");
    c.create_database(&src, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("spawn");
    for sql in [
        "CREATE TABLE t (id SERIAL PRIMARY KEY, v TEXT)",
        "INSERT INTO t (v) VALUES ('a'), ('b')",
        "CREATE SCHEMA extra",
        "CREATE TABLE extra.u (x INT)",
        "CREATE FUNCTION twice(i INT) RETURNS INT LANGUAGE sql AS 'SELECT i * 2'",
        "CREATE TYPE mood AS ENUM ('ok', 'bad')",
    ] {
        exec(c, &src, sql).await;
    }
    let tpl = unique("fkpgt");
    assert_eq!(fork(c, &src, &tpl).await.method, "template");
    for db in [&src, &tpl] {
        assert_eq!(
            rows(c, db, FOREIGN_ROLE_DEPENDENCIES).await,
            vec![vec![Value::Int(0)]],
            "{db}"
        );
    }
    // The fork's login owns every object: it alters, drops and creates freely; the serial
    // goes on from where the source was.
    for sql in [
        "INSERT INTO t (v) VALUES ('c')",
        "ALTER TABLE extra.u ADD COLUMN y INT",
        "DROP FUNCTION twice(INT)",
        "DROP TYPE mood",
        "CREATE TABLE mine (x INT)",
    ] {
        exec(c, &tpl, sql).await;
    }
    assert_eq!(
        rows(c, &tpl, "SELECT id, v FROM t ORDER BY id").await,
        ids_and_values(&[(1, "a"), (2, "b"), (3, "c")])
    );
    assert_eq!(
        rows(c, &src, "SELECT twice(21)").await,
        vec![vec![Value::Int(42)]]
    );
    // A read grant on the fork reads through the fork's read-only login, which got its
    // grants, and cannot write.
    let reader = key_for(&s, c, &tpl, dbforge::Role::Read).await;
    assert_eq!(
        rows(&reader, &tpl, "SELECT count(*) FROM extra.u").await,
        vec![vec![Value::Int(0)]]
    );
    assert_code(
        reader
            .execute(&tpl, "INSERT INTO mine VALUES (1)", &[])
            .await,
        Code::PermissionDenied,
        "",
    );

    // In use: a session holds a connection to the source.
    let mut tx = c.transaction(&src).await.expect("session");
    tx.execute("INSERT INTO t (v) VALUES ('uncommitted')", &[])
        .await
        .expect("insert");
    let dumped = unique("fkpgd");
    // A dump carries the database's own schema only, so with a table in `extra` the
    // fallback refuses rather than fork in part.
    let refused = c
        .fork_database(&src, &dumped, ForkOptions::default())
        .await
        .map(drop);
    assert_code(refused, Code::FailedPrecondition, "extra (1)");
    exec(c, &src, "DROP SCHEMA extra CASCADE").await;
    assert_eq!(fork(c, &src, &dumped).await.method, "dump-replay");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        rows(c, &dumped, "SELECT id, v FROM t ORDER BY id").await,
        ids_and_values(&[(1, "a"), (2, "b")]),
        "the uncommitted row is not in the fork"
    );
    // The dump carries what DumpDatabase does: types and functions come along.
    assert_eq!(
        rows(c, &dumped, "SELECT twice(21), 'bad'::mood::text").await,
        vec![vec![Value::Int(42), Value::Text("bad".into())]]
    );
    exec(c, &dumped, "INSERT INTO t (v) VALUES ('d')").await;
    // Pruning the source leaves both forks working.
    c.delete_database(&src).await.expect("delete source");
    for db in [&tpl, &dumped] {
        assert_eq!(
            rows(c, db, "SELECT count(*) FROM t").await,
            vec![vec![Value::Int(3)]]
        );
        c.delete_database(db).await.expect("delete fork");
    }
}

#[tokio::test]
async fn forks_are_independent_copies_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    sql_round(&s, Backend::Mysql, "dump-replay").await;
}

#[tokio::test]
async fn forks_are_independent_copies_on_redis() {
    let Some(url) = redis_url().await else { return };
    let s = serving(Backend::Redis, url).await;
    let c = &s.client;
    let src = unique("fkr");
    c.create_database(&src, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("spawn");
    for cmd in [
        "SET greeting hello",
        "SET session token PX 600000",
        "RPUSH queue a b c",
        "HSET user name Ada visits 3",
    ] {
        exec(c, &src, cmd).await;
    }
    let dst = unique("fkrd");
    let forked = fork(c, &src, &dst).await;
    assert_eq!(forked.method, "key-records");
    assert_eq!(forked.database.backend, Backend::Redis);
    assert_eq!(
        rows(c, &dst, "GET greeting").await,
        vec![vec![Value::Text("hello".into())]]
    );
    assert_eq!(rows(c, &dst, "LRANGE queue 0 -1").await.len(), 3);
    assert_eq!(
        rows(c, &dst, "HGET user name").await,
        vec![vec![Value::Text("Ada".into())]]
    );
    // TTLs come along; keys without one stay without.
    let ttl = |r: Vec<Vec<Value>>| match r[0][0] {
        Value::Int(n) => n,
        ref other => panic!("PTTL answered {other:?}"),
    };
    let left = ttl(rows(c, &dst, "PTTL session").await);
    assert!(left > 0 && left <= 600_000, "{left}");
    assert_eq!(ttl(rows(c, &dst, "PTTL greeting").await), -1);

    exec(c, &src, "SET greeting changed-in-source").await;
    exec(c, &dst, "SET only-in-fork 1").await;
    exec(c, &dst, "DEL queue").await;
    assert_eq!(
        rows(c, &dst, "GET greeting").await,
        vec![vec![Value::Text("hello".into())]]
    );
    assert_eq!(
        rows(c, &src, "EXISTS only-in-fork").await,
        vec![vec![Value::Int(0)]]
    );
    assert_eq!(rows(c, &src, "LRANGE queue 0 -1").await.len(), 3);
    for db in [&src, &dst] {
        c.delete_database(db).await.expect("delete");
    }
}

/// A fork from a backup holds the backup, not the source's current data.
async fn from_backup_round(s: &TestServer, backend: Backend) {
    let c = &s.client;
    let src = unique("fkb");
    c.create_database(&src, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    exec(
        c,
        &src,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await;
    exec(c, &src, "INSERT INTO t (id, v) VALUES (1, 'a')").await;
    let backup = c
        .create_backup(&src, CreateBackup::default())
        .await
        .expect("backup");
    exec(c, &src, "INSERT INTO t (id, v) VALUES (2, 'after')").await;
    let dst = unique("fkbd");
    let forked = c
        .fork_database(&src, &dst, ForkOptions::default().from_backup(&backup.id))
        .await
        .expect("fork from backup");
    assert_eq!(forked.method, "backup");
    assert_eq!(
        rows(c, &dst, "SELECT id, v FROM t ORDER BY id").await,
        ids_and_values(&[(1, "a")])
    );
    // A backup of another database is refused.
    let other = unique("fkbo");
    c.create_database(&other, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    assert_code(
        c.fork_database(
            &other,
            &unique("fkbx"),
            ForkOptions::default().from_backup(&backup.id),
        )
        .await,
        Code::FailedPrecondition,
        "not of",
    );
}

#[tokio::test]
async fn forks_from_a_backup_hold_the_backup_on_sqlite() {
    let s = TestServer::start().await;
    from_backup_round(&s, Backend::Sqlite).await;
}

#[tokio::test]
async fn forks_from_a_backup_hold_the_backup_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    from_backup_round(&s, Backend::Postgres).await;
}

#[tokio::test]
async fn forks_from_a_backup_hold_the_backup_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    from_backup_round(&s, Backend::Mysql).await;
}

/// Bad input, unknown names and taken names, with their codes; a failed fork leaves nothing.
#[tokio::test]
async fn bad_forks_are_refused_with_their_codes() {
    let s = TestServer::start().await;
    let c = &s.client;
    let src = unique("fke");
    c.create_database(&src, CreateOptions::default())
        .await
        .expect("spawn");
    let taken = unique("fket");
    c.create_database(&taken, CreateOptions::default())
        .await
        .expect("spawn");
    let none = ForkOptions::default;
    assert_code(
        c.fork_database(&src, &taken, none()).await,
        Code::AlreadyExists,
        "already exists",
    );
    assert_code(
        c.fork_database(&src, &src, none()).await,
        Code::InvalidArgument,
        "must differ from source",
    );
    assert_code(
        c.fork_database(&src, "Bad Name", none()).await,
        Code::InvalidArgument,
        "name",
    );
    assert_code(
        c.fork_database("Bad Source", &unique("fkx"), none()).await,
        Code::InvalidArgument,
        "source",
    );
    assert_code(
        c.fork_database(&unique("fkmissing"), &unique("fkx"), none())
            .await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        c.fork_database(&src, &unique("fkx"), none().label("Bad Key", "v"))
            .await,
        Code::InvalidArgument,
        "label",
    );
    assert_code(
        c.fork_database(&src, &unique("fkx"), none().from_backup("bk-nope"))
            .await,
        Code::InvalidArgument,
        "",
    );
    let names: Vec<String> = c
        .list_databases(Default::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("fkx")), "{names:?}");
}

/// Forking needs read on the source and create on the new name; the forking key owns the
/// fork; forking from a backup needs the owner role; every fork is audited and counted.
#[tokio::test]
async fn forks_need_read_on_the_source_and_belong_to_the_forking_key() {
    let s = secured(Backend::Sqlite, None).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let src = unique("fka");
    admin
        .create_database(&src, CreateOptions::default())
        .await
        .expect("spawn");
    exec(&admin, &src, "CREATE TABLE t (x INT)").await;
    exec(&admin, &src, "INSERT INTO t VALUES (7)").await;
    let backup = admin
        .create_backup(&src, CreateBackup::default())
        .await
        .expect("backup");

    // A reader that may create `fkr-*`.
    let (_, reader_key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("reader")
                .can_create(0)
                .grant(dbforge::Grant::database(&src, dbforge::Role::Read))
                .grant(dbforge::Grant::pattern("fkr-*", dbforge::Role::Read)),
        )
        .await
        .expect("key");
    let reader = as_key(&s, &reader_key).await;
    // A key that may create `fko-*` but cannot see the source.
    let (_, outsider_key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("outsider")
                .can_create(0)
                .grant(dbforge::Grant::pattern("fko-*", dbforge::Role::Owner)),
        )
        .await
        .expect("key");
    let outsider = as_key(&s, &outsider_key).await;

    assert_code(
        outsider
            .fork_database(&src, &unique("fko"), ForkOptions::default())
            .await,
        Code::PermissionDenied,
        "no access",
    );
    assert_code(
        reader
            .fork_database(&src, &unique("elsewhere"), ForkOptions::default())
            .await,
        Code::PermissionDenied,
        "",
    );
    assert_code(
        reader
            .fork_database(
                &src,
                &unique("fkr"),
                ForkOptions::default().from_backup(&backup.id),
            )
            .await,
        Code::PermissionDenied,
        "owner",
    );

    let mine = unique("fkr");
    fork(&reader, &src, &mine).await;
    // The reader owns its fork: it writes to it and prunes it, while the source stays read-only.
    exec(&reader, &mine, "INSERT INTO t VALUES (8)").await;
    assert_eq!(
        rows(&reader, &mine, "SELECT x FROM t ORDER BY x").await,
        vec![vec![Value::Int(7)], vec![Value::Int(8)]]
    );
    assert_code(
        reader.execute(&src, "INSERT INTO t VALUES (9)", &[]).await,
        Code::PermissionDenied,
        "",
    );
    reader.delete_database(&mine).await.expect("owner prunes");

    // The admin (owner of everything) forks from the backup.
    admin
        .fork_database(
            &src,
            &unique("fka"),
            ForkOptions::default().from_backup(&backup.id),
        )
        .await
        .expect("fork from backup");

    let (audit, _) = admin
        .list_audit_events(Default::default())
        .await
        .expect("audit");
    let forks: Vec<_> = audit.iter().filter(|r| r.rpc == "ForkDatabase").collect();
    assert_eq!(forks.len(), 5, "{forks:?}");
    assert!(
        forks
            .iter()
            .any(|r| r.outcome == "OK" && r.database == mine && r.statement.contains(&src)),
        "{forks:?}"
    );
    assert!(
        forks.iter().any(|r| r.outcome == "PERMISSION_DENIED"),
        "{forks:?}"
    );

    let text = scrape_metrics(&s).await;
    let series = |labels: &[&str]| metric_value(&text, "dbforge_forks_total{", labels);
    assert_eq!(
        series(&["sqlite", "sqlite-backup-api", "outcome=\"completed\""]).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        series(&["sqlite", "method=\"backup\"", "outcome=\"completed\""]).as_deref(),
        Some("1"),
        "{text}"
    );
}
