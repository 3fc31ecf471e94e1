//! The catalog in PostgreSQL (`--catalog-url`): what it keeps survives restarts, gateways
//! starting at once migrate it once, and `dbforge-server catalog migrate` moves a catalog
//! from SQLite to PostgreSQL and back with nothing lost.
//!
//! A PostgreSQL catalog call blocks its caller (`block_in_place` on a runtime worker) while
//! the catalog's own thread drives the connection; `block_in_place` needs the multi-threaded
//! runtime: these tests (and the gateway's binary) use it.

use std::{path::Path, process::Command, time::Duration};

use dbforge::{
    ApiKeySpec, BackupFilter, Client, Code, CreateBackup, CreateOptions, Grant, LifecyclePolicy,
    ListFilter, Role, Value, params,
};
use dbforge_server::core::{
    catalog::{Catalog, SCHEMA_VERSION},
    error::Error,
};
use futures::{FutureExt, StreamExt, TryStreamExt};
use sqlx::{Connection, Executor};

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, assert_code, mysql_url, postgres_url, redis_url, unique,
};

/// A fresh PostgreSQL database for one test's catalog, dropped at the end.
struct CatalogDb {
    admin: String,
    name: String,
    url: String,
}

impl CatalogDb {
    async fn create(tag: &str) -> Option<Self> {
        let admin = postgres_url().await?;
        let name = format!("dbft{}_cat_{tag}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .expect("drop a leftover");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the catalog database");
        let base = admin.rsplit_once('/').expect("a database in the URL").0;
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }

    async fn conn(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the catalog")
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut self.conn().await)
            .await
            .expect("count")
    }

    async fn drop(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .await
        .expect("drop the catalog database");
    }
}

/// A gateway with authentication on, on `dir`, with its catalog at `catalog` (SQLite in `dir`
/// when `None`).
async fn gateway(dir: &Path, catalog: Option<&str>) -> TestServer {
    let (dir, catalog) = (dir.to_path_buf(), catalog.map(str::to_owned));
    TestServer::with(move |mut c| {
        c.data_dir = dir;
        c.catalog_url = catalog;
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN_KEY.into());
        c
    })
    .await
}

async fn admin(s: &TestServer) -> Client {
    as_key(s, ADMIN_KEY).await
}

/// A gateway without authentication on `dir`, with its catalog at `catalog` and PostgreSQL
/// databases on the server at `postgres`.
async fn open_gateway(dir: &Path, catalog: &str, postgres: &str) -> TestServer {
    let (dir, catalog, postgres) = (dir.to_path_buf(), catalog.to_owned(), postgres.to_owned());
    TestServer::with(move |mut c| {
        c.data_dir = dir;
        c.catalog_url = Some(catalog);
        c.postgres_url = Some(postgres);
        c
    })
    .await
}

/// The labels of database `name` as `c` lists it, `None` when it does not list it.
async fn labels_of(c: Client, name: String) -> Option<std::collections::BTreeMap<String, String>> {
    c.list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| d.labels)
}

/// What a catalog holds, as the API shows it: database names with labels, key names, lifecycle
/// policy names, completed backups per database and the audit chain's length.
#[derive(Debug, PartialEq)]
struct Seen {
    databases: Vec<(String, Vec<(String, String)>)>,
    keys: Vec<String>,
    policies: Vec<String>,
    backups: Vec<String>,
    audit_checked_at_least: bool,
}

async fn seen(c: &Client, audit_at_least: u64) -> Seen {
    let mut databases: Vec<_> = c
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| (d.name, d.labels.into_iter().collect()))
        .collect();
    databases.sort();
    let mut keys: Vec<_> = c
        .list_api_keys(true)
        .await
        .expect("keys")
        .into_iter()
        .map(|k| k.name)
        .collect();
    keys.sort();
    let policies = c
        .list_lifecycle_policies()
        .await
        .expect("policies")
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut backups: Vec<_> = c
        .list_backups(BackupFilter::default())
        .await
        .expect("backups")
        .into_iter()
        .map(|b| format!("{} {}", b.database, b.sha256))
        .collect();
    backups.sort();
    let v = c.verify_audit_log().await.expect("verify");
    assert!(v.ok, "the audit chain verifies: {v:?}");
    Seen {
        databases,
        keys,
        policies,
        backups,
        audit_checked_at_least: v.checked >= audit_at_least,
    }
}

/// Fills a gateway's catalog with one of everything; returns the scoped key's secret, the
/// revoked key's secret and how many audit records the chain holds.
async fn fill(s: &TestServer, sqlite_db: &str, pg_db: Option<&str>) -> (String, String, u64) {
    let c = admin(s).await;
    c.create_database(sqlite_db, CreateOptions::default().label("team", "a"))
        .await
        .expect("create");
    c.execute(sqlite_db, "CREATE TABLE t (x TEXT)", &[])
        .await
        .expect("ddl");
    c.execute(sqlite_db, "INSERT INTO t VALUES (?)", &params!["durable"])
        .await
        .expect("insert");
    if let Some(pg) = pg_db {
        c.create_database(
            pg,
            CreateOptions::default()
                .backend(dbforge::Backend::Postgres)
                .label("team", "b"),
        )
        .await
        .expect("create on PostgreSQL");
        c.execute(pg, "CREATE TABLE t (x TEXT)", &[])
            .await
            .expect("ddl");
        c.execute(pg, "INSERT INTO t VALUES ($1)", &params!["durable"])
            .await
            .expect("insert");
    }
    let (_, reader) = c
        .create_api_key(ApiKeySpec::new("reader").grant(Grant::database(sqlite_db, Role::Read)))
        .await
        .expect("key");
    let (_, revoked) = c
        .create_api_key(ApiKeySpec::new("revoked").admin())
        .await
        .expect("key");
    let revoked_id = revoked.split('_').nth(1).expect("id").to_owned();
    assert!(c.revoke_api_key(&revoked_id).await.expect("revoke"));
    c.set_lifecycle_policy(
        LifecyclePolicy::pattern("idle-scratch", "scratch-*").idle_ttl(Duration::from_secs(3600)),
    )
    .await
    .expect("policy");
    c.create_backup(sqlite_db, CreateBackup::default())
        .await
        .expect("backup");
    let v = c.verify_audit_log().await.expect("verify");
    assert!(v.ok && v.checked > 5, "{v:?}");
    (reader, revoked, v.checked)
}

/// What must hold after a restart or a move: the data, the keys (and the revocation), every
/// record, an intact audit chain.
async fn check(s: &TestServer, sqlite_db: &str, reader: &str, revoked: &str) {
    let r = as_key(s, reader)
        .await
        .execute(sqlite_db, "SELECT x FROM t", &[])
        .await
        .expect("the scoped key still reads");
    assert_eq!(r.rows[0].values(), &[Value::Text("durable".into())]);
    assert_code(
        as_key(s, revoked).await.who_am_i().await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_catalog_keeps_survives_a_restart_on_postgres() {
    let Some(cat) = CatalogDb::create("restart").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let dir = tempfile::tempdir().expect("temp dir");
    let (lite, pg) = (unique("catlite"), unique("catpg"));
    let serve = |dir: std::path::PathBuf, cat: String, pg_admin: String| {
        TestServer::with(move |mut c| {
            c.data_dir = dir;
            c.catalog_url = Some(cat);
            c.postgres_url = Some(pg_admin);
            c.insecure_no_auth = false;
            c.admin_key = Some(ADMIN_KEY.into());
            c
        })
    };

    let s = serve(dir.path().into(), cat.url.clone(), pg_admin.clone()).await;
    let (reader, revoked, checked) = fill(&s, &lite, Some(&pg)).await;
    let before = seen(&admin(&s).await, checked).await;
    s.stop().await;
    assert!(
        !dir.path().join("catalog.db").exists(),
        "with --catalog-url no SQLite catalog is made"
    );
    assert_eq!(cat.count("databases").await, 2);
    assert_eq!(cat.count("schema_version").await, 1);

    let s = serve(dir.path().into(), cat.url.clone(), pg_admin).await;
    let c = admin(&s).await;
    assert_eq!(seen(&c, checked).await, before);
    assert!(before.audit_checked_at_least);
    check(&s, &lite, &reader, &revoked).await;
    let r = c
        .execute(&pg, "SELECT x FROM t", &[])
        .await
        .expect("the PostgreSQL database's credentials came from the catalog");
    assert_eq!(r.rows[0].values(), &[Value::Text("durable".into())]);

    // The chain in PostgreSQL is checked like the SQLite one: an edited record is found.
    let seq: i64 = sqlx::query_scalar("SELECT max(seq) FROM audit WHERE rpc LIKE '%Execute%'")
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("an audited Execute");
    sqlx::query("UPDATE audit SET statement = 'SELECT 1' WHERE seq = $1")
        .bind(seq)
        .execute(&mut cat.conn().await)
        .await
        .expect("tamper");
    let v = c.verify_audit_log().await.expect("verify");
    assert!(!v.ok);
    assert_eq!(v.first_broken_seq, Some(u64::try_from(seq).expect("seq")));

    c.delete_database(&pg).await.expect("delete");
    c.delete_database(&lite).await.expect("delete");
    s.stop().await;
    cat.drop().await;
}

/// A catalog call completes while every worker of the gateway's runtime is blocked: on a
/// lock the caller holds, as authentication once waited on the keyring a reload held. The
/// catalog's connections are driven by a thread of their own; when they were driven by the
/// gateway's runtime, nobody polled their IO and the gateway hung (a CI run, 2026-12-07).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_catalog_call_completes_while_every_runtime_worker_is_blocked() {
    let Some(cat) = CatalogDb::create("blocked").await else {
        return;
    };
    let catalog = Catalog::connect(&cat.url).await.expect("connect");
    let (started, worker_blocked) = std::sync::mpsc::channel::<()>();
    let (answer, answered) = std::sync::mpsc::channel::<bool>();
    let reader = {
        let catalog = catalog.clone();
        tokio::task::spawn_blocking(move || {
            worker_blocked.recv().expect("the worker is blocked");
            let _ = answer.send(catalog.load_keys().is_ok());
        })
    };
    // The runtime's only worker, blocked until the catalog answers.
    let blocked = tokio::spawn(async move {
        started.send(()).expect("the reader waits");
        answered.recv_timeout(Duration::from_secs(10))
    });
    assert_eq!(
        blocked.await.expect("the blocked task"),
        Ok(true),
        "the catalog answered while the worker was blocked"
    );
    reader.await.expect("the reader");
    drop(catalog);
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_starting_at_once_migrate_the_catalog_once() {
    let Some(cat) = CatalogDb::create("race").await else {
        return;
    };
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (sa, sb) = tokio::join!(
        gateway(a.path(), Some(&cat.url)),
        gateway(b.path(), Some(&cat.url))
    );
    // Serving means started: the catalog is migrated by then.
    admin(&sa).await.who_am_i().await.expect("a serves");
    admin(&sb).await.who_am_i().await.expect("b serves");
    assert_eq!(cat.count("schema_version").await, 1);
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    // Both serve, on the one catalog: a key made through one is stored where both read.
    let (_, key) = admin(&sa)
        .await
        .create_api_key(ApiKeySpec::new("shared"))
        .await
        .expect("key");
    assert_eq!(
        cat.count("api_keys").await,
        2,
        "the admin key and the new one"
    );
    sa.stop().await;
    sb.stop().await;
    // A restart reads the key back from PostgreSQL.
    let s = gateway(a.path(), Some(&cat.url)).await;
    as_key(&s, &key)
        .await
        .who_am_i()
        .await
        .expect("the key is known");
    s.stop().await;

    // A catalog written by a newer gateway is refused, not rewritten.
    sqlx::query("UPDATE schema_version SET version = 99")
        .execute(&mut cat.conn().await)
        .await
        .expect("pretend a newer gateway");
    match Catalog::connect(&cat.url).await {
        Err(Error::FailedPrecondition(why)) => assert!(why.contains("99"), "{why}"),
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
    cat.drop().await;
}

#[tokio::test]
async fn a_catalog_url_that_cannot_be_reached_stops_the_start_with_a_clear_error() {
    let err = Catalog::connect("postgres://postgres@127.0.0.1:1/none")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(&err, Error::Unavailable(why) if why.contains("127.0.0.1:1")),
        "{err:?}"
    );
    let err = Catalog::connect("postgres://[bad")
        .await
        .expect_err("bad URL");
    assert!(err.to_string().contains("--catalog-url"), "{err}");
}

fn migrate(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env_remove("DBFORGE_CATALOG_URL")
        .output()
        .expect("run dbforge-server catalog migrate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_migrate_moves_a_catalog_to_postgres_and_back() {
    let Some(cat) = CatalogDb::create("move").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let lite = unique("catmove");
    let s = gateway(dir.path(), None).await;
    let (reader, revoked, checked) = fill(&s, &lite, None).await;
    let before = seen(&admin(&s).await, checked).await;
    s.stop().await;

    // SQLite → PostgreSQL.
    let out = migrate(dir.path(), &["catalog", "migrate", "--to", &cat.url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit"), "{stdout}");
    assert!(cat.count("audit").await >= i64::try_from(checked).expect("count"));
    let s = gateway(dir.path(), Some(&cat.url)).await;
    assert_eq!(seen(&admin(&s).await, checked).await, before);
    check(&s, &lite, &reader, &revoked).await;
    s.stop().await;

    // Into a catalog that holds rows already: refused, nothing written.
    let keys = cat.count("api_keys").await;
    let out = migrate(dir.path(), &["catalog", "migrate", "--to", &cat.url]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds"), "{stderr}");
    assert_eq!(cat.count("api_keys").await, keys);

    // PostgreSQL → SQLite: the moved catalog replaces the original and serves the same.
    let back = dir.path().join("catalog-back.db");
    let out = migrate(
        dir.path(),
        &[
            "--catalog-url",
            &cat.url,
            "catalog",
            "migrate",
            "--to",
            back.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("catalog.db{suffix}")));
    }
    std::fs::rename(&back, dir.path().join("catalog.db")).expect("swap the catalog");
    let s = gateway(dir.path(), None).await;
    let c = admin(&s).await;
    let after = seen(&c, checked).await;
    assert_eq!(after.databases, before.databases);
    assert_eq!(after.keys, before.keys);
    assert_eq!(after.policies, before.policies);
    assert_eq!(after.backups, before.backups);
    check(&s, &lite, &reader, &revoked).await;
    c.delete_database(&lite).await.expect("delete");
    s.stop().await;

    // Nothing to move: a clear refusal.
    let empty = tempfile::tempdir().expect("dir");
    let out = migrate(empty.path(), &["catalog", "migrate", "--to", &cat.url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no catalog to move"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cat.drop().await;
}

/// Polls `ok` every 20 ms until it holds; how long that took, or `None` after `bound`.
async fn within<F: std::future::Future<Output = bool>>(
    bound: Duration,
    mut ok: impl FnMut() -> F,
) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < bound {
        if ok().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_one_catalog_share_keys_and_one_audit_chain() {
    let Some(cat) = CatalogDb::create("share").await else {
        return;
    };
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let sa = gateway(a.path(), Some(&cat.url)).await;
    let sb = gateway(b.path(), Some(&cat.url)).await;
    let (ca, cb) = (admin(&sa).await, admin(&sb).await);

    // A key made on A is accepted on B, and its revocation on A refused there, within the
    // bound the README states (1 s; LISTEN/NOTIFY takes milliseconds).
    let (_, key) = ca
        .create_api_key(ApiKeySpec::new("roaming"))
        .await
        .expect("key");
    let id = key.split('_').nth(1).expect("id").to_owned();
    let on_b = as_key(&sb, &key).await;
    let took = within(Duration::from_secs(1), || async {
        on_b.who_am_i().await.is_ok()
    })
    .await;
    assert!(took.is_some(), "a key made on A is known to B within 1 s");
    assert!(ca.revoke_api_key(&id).await.expect("revoke"));
    let took = within(Duration::from_secs(1), || async {
        on_b.who_am_i().await.err().map(|e| e.code()) == Some(Code::Unauthenticated)
    })
    .await;
    assert!(
        took.is_some(),
        "a key revoked on A is refused by B within 1 s"
    );

    // Both append to the audit log at once: one chain, verifiable from either.
    let calls = |c: Client| async move {
        for _ in 0..40 {
            c.list_databases(ListFilter::default()).await.expect("list");
        }
    };
    tokio::join!(calls(ca.clone()), calls(cb.clone()));
    let vb = cb.verify_audit_log().await.expect("verify on B");
    let va = ca.verify_audit_log().await.expect("verify on A");
    assert!(va.ok && vb.ok, "{va:?} {vb:?}");
    assert!(va.checked >= 80, "{va:?}");
    let (rows, max): (i64, i64) = sqlx::query_as("SELECT count(*), max(seq) FROM audit")
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("audit");
    assert_eq!(rows, max, "sequence numbers 1..n with no gap or duplicate");

    sa.stop().await;
    sb.stop().await;
    cat.drop().await;
}

/// The lease's holder in the catalog, if any.
async fn lease_holder(cat: &CatalogDb) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'schedulers'")
        .fetch_optional(&mut cat.conn().await)
        .await
        .expect("leases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_runs_the_schedulers_and_another_takes_over_when_it_dies() {
    use crate::harness::ServerProcess;
    let Some(cat) = CatalogDb::create("lease").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let flags = [
        "--catalog-url",
        &cat.url,
        "--scheduler-lease",
        "1s",
        "--prune-interval",
        "100ms",
    ];
    // A serves no PostgreSQL databases, so it cannot prune them; B does.
    let mut a = ServerProcess::spawn(da.path(), &flags);
    a.client().await.who_am_i().await.expect("a serves");
    let a_pid = format!("/{}", a.child.id());
    let holder = lease_holder(&cat).await.expect("a lease");
    assert!(holder.ends_with(&a_pid), "{holder} holds it, not A");

    let mut b_flags = flags.to_vec();
    b_flags.extend(["--postgres-url", &pg_admin]);
    let b = ServerProcess::spawn(db.path(), &b_flags);
    let cb = b.client().await;
    let listed = |c: Client, name: String| labels_of(c, name).map(|l| l.is_some());
    // Both with a TTL that runs out at once. B prunes its own SQLite database (no other
    // gateway can reach its file) but not the PostgreSQL one while A holds the lease.
    let (shared, own) = (unique("leasedpg"), unique("leasedlite"));
    cb.create_database(
        &shared,
        CreateOptions::default()
            .backend(dbforge::Backend::Postgres)
            .ttl(Duration::from_secs(1)),
    )
    .await
    .expect("create");
    cb.create_database(&own, CreateOptions::default().ttl(Duration::from_secs(1)))
        .await
        .expect("create");
    let pruned_own = within(Duration::from_secs(5), || {
        listed(cb.clone(), own.clone()).map(|l| !l)
    })
    .await;
    assert!(
        pruned_own.is_some(),
        "every gateway prunes its own SQLite databases"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        listed(cb.clone(), shared.clone()).await,
        "B does not prune shared databases while A holds the lease"
    );
    let holder = lease_holder(&cat).await.expect("a lease");
    assert!(holder.ends_with(&a_pid), "A renews its lease: {holder}");

    // kill -9 A: B takes the lease once it expires (1 s, renewed every third) and its
    // pruner removes the PostgreSQL database.
    a.child.kill().expect("kill -9 A");
    a.child.wait().expect("reap A");
    let b_pid = format!("/{}", b.child.id());
    let took = within(Duration::from_secs(5), || async {
        lease_holder(&cat)
            .await
            .is_some_and(|h| h.ends_with(&b_pid))
    })
    .await;
    assert!(took.is_some(), "B takes the lease within 5 s of A's death");
    let pruned = within(Duration::from_secs(5), || {
        listed(cb.clone(), shared.clone()).map(|l| !l)
    })
    .await;
    assert!(
        pruned.is_some(),
        "B's pruner runs on shared databases once it holds the lease"
    );
    drop(b);
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_leaves_another_gateways_databases_and_unfinished_work_alone() {
    let Some(cat) = CatalogDb::create("owner").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = open_gateway(da.path(), &cat.url, &pg_admin).await;
    let b = open_gateway(db.path(), &cat.url, &pg_admin).await;
    let (lite, pg) = (unique("ownlite"), unique("ownpg"));
    a.client
        .create_database(&lite, CreateOptions::default())
        .await
        .expect("create");
    a.client
        .execute(&lite, "CREATE TABLE t (x INTEGER)", &[])
        .await
        .expect("ddl");
    a.client
        .create_database(
            &pg,
            CreateOptions::default().backend(dbforge::Backend::Postgres),
        )
        .await
        .expect("create on PostgreSQL");
    b.client.who_am_i().await.expect("b serves");

    // The catalog records the owner: A's node name, from A's data directory.
    let a_node = std::fs::read_to_string(da.path().join("node.id")).expect("node.id");
    let owner: String = sqlx::query_scalar("SELECT node FROM databases WHERE name = $1")
        .bind(&lite)
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("owner");
    assert_eq!(owner, a_node.trim());

    // A spawn of A's still in progress (as the catalog shows it) when B restarts: B does not
    // undo it, nor open A's SQLite file.
    sqlx::query("UPDATE databases SET state = 'provisioning' WHERE name = $1")
        .bind(&pg)
        .execute(&mut cat.conn().await)
        .await
        .expect("pretend a spawn in progress");
    b.stop().await;
    let b = open_gateway(db.path(), &cat.url, &pg_admin).await;
    // B lists A's SQLite database as A's (calls on it go to A), and did not touch its file.
    assert_eq!(
        listed_as(&b.client, &lite).await.map(|d| d.node),
        Some(a_node.trim().to_owned()),
        "A's SQLite database is A's"
    );
    assert!(!holds(db.path(), &lite), "B has no file of A's database");
    a.client
        .execute(&pg, "SELECT 1", &[])
        .await
        .expect("B's start did not drop A's PostgreSQL database");
    a.client
        .execute(&lite, "INSERT INTO t VALUES (1)", &[])
        .await
        .expect("A's SQLite database is untouched");
    assert_eq!(cat.count("databases").await, 2);

    // A's own start finishes its own unfinished spawn.
    a.stop().await;
    let a = open_gateway(da.path(), &cat.url, &pg_admin).await;
    a.client.who_am_i().await.expect("a serves");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM databases WHERE name = $1")
        .bind(&pg)
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("count");
    assert_eq!(left, 0, "A undid its own interrupted spawn");
    a.client.delete_database(&lite).await.expect("delete");
    a.stop().await;
    b.stop().await;
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_one_catalog_follow_each_others_server_databases() {
    let Some(cat) = CatalogDb::create("follow").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = open_gateway(da.path(), &cat.url, &pg_admin).await;
    let b = open_gateway(db.path(), &cat.url, &pg_admin).await;
    b.client.who_am_i().await.expect("b serves");
    let a_node = node_of(da.path());

    // Spawned through A after B started: B lists and serves it within 1 s.
    let (x, lite) = (unique("followpg"), unique("followlite"));
    a.client
        .create_database(
            &x,
            CreateOptions::default()
                .backend(dbforge::Backend::Postgres)
                .label("v", "1"),
        )
        .await
        .expect("create");
    a.client
        .execute(&x, "CREATE TABLE t (x TEXT)", &[])
        .await
        .expect("ddl");
    a.client
        .execute(&x, "INSERT INTO t VALUES ('from a')", &[])
        .await
        .expect("insert");
    a.client
        .create_database(&lite, CreateOptions::default())
        .await
        .expect("create");
    let seen = within(Duration::from_secs(1), || {
        labels_of(b.client.clone(), x.clone()).map(|l| l.is_some())
    })
    .await;
    assert!(seen.is_some(), "B lists A's new database within 1 s");
    let r = b
        .client
        .execute(&x, "SELECT x FROM t", &[])
        .await
        .expect("B serves A's PostgreSQL database");
    assert_eq!(r.rows[0].values(), &[Value::Text("from a".into())]);
    assert_eq!(
        listed_as(&b.client, &lite).await.map(|d| d.node),
        Some(a_node),
        "B lists A's SQLite database as A's (its file is on A's disk)"
    );

    // Labels changed through B reach A; a delete through B removes it from A.
    b.client
        .update_database(&x, dbforge::UpdateOptions::default().labels([("v", "2")]))
        .await
        .expect("update through B");
    let relabelled = within(Duration::from_secs(1), || {
        labels_of(a.client.clone(), x.clone())
            .map(|l| l.and_then(|l| l.get("v").cloned()).as_deref() == Some("2"))
    })
    .await;
    assert!(relabelled.is_some(), "A sees B's labels within 1 s");
    b.client
        .delete_database(&x)
        .await
        .expect("delete through B");
    let gone = within(Duration::from_secs(1), || {
        labels_of(a.client.clone(), x.clone()).map(|l| l.is_none())
    })
    .await;
    assert!(gone.is_some(), "A drops the database B deleted within 1 s");
    assert_code(a.client.execute(&x, "SELECT 1", &[]).await, Code::NotFound);
    a.client.delete_database(&lite).await.expect("delete");
    // Both gateways stored lifecycle events: one sequence, no number taken twice or lost.
    let (events, newest): (i64, i64) = sqlx::query_as("SELECT count(*), max(seq) FROM events")
        .fetch_one(&mut cat.conn().await)
        .await
        .expect("events");
    assert!(events >= 5, "{events} events");
    assert_eq!(events, newest, "sequence numbers 1..n");
    a.stop().await;
    b.stop().await;
    cat.drop().await;
}

/// This gateway's data-plane cap and open connections on PostgreSQL, and the live gateways.
async fn pg_cap(c: &Client) -> (u32, u32, usize) {
    let stats = c.server_stats().await.expect("stats");
    let cap = stats
        .connection_caps
        .iter()
        .find(|c| c.backend == dbforge::Backend::Postgres)
        .expect("a PostgreSQL cap");
    (cap.cap, cap.open, stats.nodes.len())
}

/// `n` calls at once on `c`, each holding a connection of one of `dbs` for 300 ms; samples
/// this gateway's open connections while they run and returns the largest.
async fn most_open_under_load(c: &Client, dbs: &[String], n: usize) -> u32 {
    let calls = futures::future::join_all((0..n).map(|i| {
        let (c, db) = (c.clone(), dbs[i % dbs.len()].clone());
        async move { c.execute(&db, "SELECT pg_sleep(0.3)", &[]).await }
    }));
    let sample = async {
        let mut most = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            most = most.max(pg_cap(c).await.1);
        }
        most
    };
    let (results, most) = tokio::join!(calls, sample);
    for r in results {
        r.expect("a call within the share waits for a connection, it does not fail");
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_the_servers_connection_cap_and_take_it_back_when_one_dies() {
    use crate::harness::ServerProcess;
    let Some(cat) = CatalogDb::create("nodes").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    // 20 in all: 2 kept for administration, so 18 for calls on one gateway; with two, each
    // keeps to 10 (8 for calls).
    let flags = [
        "--catalog-url",
        &cat.url,
        "--postgres-url",
        &pg_admin,
        "--max-server-connections",
        "20",
        "--database-connections",
        "10",
        "--scheduler-lease",
        "1s",
    ];
    let a = ServerProcess::spawn(da.path(), &flags);
    let ca = a.client().await;
    assert_eq!(pg_cap(&ca).await.0, 18, "alone, A has the whole cap");
    let dbs: Vec<String> = (0..3).map(|i| unique(&format!("capdb{i}"))).collect();
    for name in &dbs {
        ca.create_database(
            name,
            CreateOptions::default().backend(dbforge::Backend::Postgres),
        )
        .await
        .expect("create");
    }

    let mut b = ServerProcess::spawn(db.path(), &flags);
    let cb = b.client().await;
    let split = within(Duration::from_secs(3), || async {
        let ((cap_a, _, nodes_a), (cap_b, _, nodes_b)) = tokio::join!(pg_cap(&ca), pg_cap(&cb));
        (cap_a, cap_b, nodes_a, nodes_b) == (8, 8, 2, 2)
    })
    .await;
    assert!(split.is_some(), "A and B see each other and split the cap");
    let stats = ca.server_stats().await.expect("stats");
    let names: Vec<&str> = stats.nodes.iter().map(|n| n.name.as_str()).collect();
    assert!(names.contains(&stats.node.as_str()), "{names:?}");
    assert!(
        stats
            .nodes
            .iter()
            .all(|n| n.address.starts_with("127.0.0.1:") && !n.address.ends_with(":0")),
        "each node records the address it bound: {:?}",
        stats.nodes
    );
    let most = most_open_under_load(&ca, &dbs, 24).await;
    assert!(
        (1..=8).contains(&most),
        "24 calls on A use at most its 8 connections, not {most}"
    );

    // kill -9 B: A counts it out once its heartbeat is older than the lease, and takes the
    // whole cap back.
    b.child.kill().expect("kill -9 B");
    b.child.wait().expect("reap B");
    let regrown = within(Duration::from_secs(4), || async {
        let (cap, _, nodes) = pg_cap(&ca).await;
        (cap, nodes) == (18, 1)
    })
    .await;
    assert!(regrown.is_some(), "A takes the whole cap back after B dies");
    let most = most_open_under_load(&ca, &dbs, 24).await;
    assert!(
        (9..=18).contains(&most),
        "with the whole cap, 24 calls on A use more than 8 connections: {most}"
    );
    drop(a);
    cat.drop().await;
}

/// The node name of the gateway on `dir` (its `node.id`, written at its first start).
fn node_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node.id"))
        .expect("node.id")
        .lines()
        .next()
        .expect("a name")
        .to_owned()
}

/// The database `name` as `c` lists it.
async fn listed_as(c: &Client, name: &str) -> Option<dbforge::Database> {
    c.list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.name == name)
}

async fn count_of(c: &Client, db: &str) -> Result<i64, dbforge::Error> {
    let r = c.execute(db, "SELECT count(*) FROM t", &[]).await?;
    match r.rows[0].values() {
        [Value::Int(n)] => Ok(*n),
        other => panic!("count(*) gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_serve_each_others_sqlite_databases_and_outlive_the_owner() {
    use crate::harness::ServerProcess;
    let Some(cat) = CatalogDb::create("three").await else {
        return;
    };
    let pg_admin = postgres_url().await.expect("the same server");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let flags = [
        "--catalog-url",
        &cat.url,
        "--postgres-url",
        &pg_admin,
        "--scheduler-lease",
        "1s",
    ];
    let mut a = ServerProcess::spawn(dirs[0].path(), &flags);
    let b = ServerProcess::spawn(dirs[1].path(), &flags);
    let c = ServerProcess::spawn(dirs[2].path(), &flags);
    let (ca, cb, cc) = (a.client().await, b.client().await, c.client().await);
    let owner = node_of(dirs[0].path());

    // Spawned through A: a SQLite database (A's file) and a PostgreSQL one.
    let (lite, pg) = (unique("threelite"), unique("threepg"));
    ca.create_database(&lite, CreateOptions::default())
        .await
        .expect("create");
    ca.execute(&lite, "CREATE TABLE t (x INTEGER)", &[])
        .await
        .expect("ddl");
    ca.execute(
        &lite,
        "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
         WHERE x < 100) SELECT x FROM c",
        &[],
    )
    .await
    .expect("fill");
    ca.create_database(
        &pg,
        CreateOptions::default().backend(dbforge::Backend::Postgres),
    )
    .await
    .expect("create");
    ca.execute(&pg, "CREATE TABLE t (x INT)", &[])
        .await
        .expect("ddl");
    ca.execute(&pg, "INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert");

    // B and C list both, the SQLite one as A's, within 1 s.
    for client in [&cb, &cc] {
        let seen = within(Duration::from_secs(1), || async {
            listed_as(client, &lite).await.is_some() && listed_as(client, &pg).await.is_some()
        })
        .await;
        assert!(seen.is_some(), "every gateway lists both databases");
        let d = listed_as(client, &lite).await.expect("listed");
        assert_eq!(d.node, owner, "the SQLite database is A's");
        assert_eq!(d.status, dbforge::DatabaseStatus::Ready);
        assert!(d.capabilities.sql, "with SQLite's capabilities");
        assert_eq!(listed_as(client, &pg).await.expect("listed").node, "");
    }

    // Calls on A's SQLite database through B and C: unary, streamed, a batch, a session.
    assert_eq!(count_of(&cb, &lite).await.expect("through B"), 100);
    cc.execute(&lite, "INSERT INTO t VALUES (101)", &[])
        .await
        .expect("a write through C");
    let mut rows = cb
        .query(&lite, "SELECT x FROM t ORDER BY x", &[])
        .await
        .expect("a stream through B");
    let mut n = 0;
    while let Some(row) = rows.next().await {
        row.expect("row");
        n += 1;
    }
    assert_eq!(n, 101, "the stream through B has every row");
    let mut tx = cc.transaction(&lite).await.expect("a session through C");
    tx.execute("INSERT INTO t VALUES (102)", &[])
        .await
        .expect("in the session");
    tx.commit().await.expect("commit");
    let schema = cb.get_schema(&lite, None).await.expect("schema through B");
    assert!(schema.tables.iter().any(|t| t.name == "t"));
    assert_eq!(count_of(&ca, &lite).await.expect("on A"), 102);

    // kill -9 A under load on the PostgreSQL database through B and C.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = |client: Client| {
        let (stop, pg) = (stop.clone(), pg.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.execute(&pg, "SELECT count(*) FROM t", &[]).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };
    let loads = [load(cb.clone()), load(cc.clone())];
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.child.kill().expect("kill -9 A");
    a.child.wait().expect("reap A");
    // A's SQLite database answers UNAVAILABLE naming A, once its heartbeat is older than the
    // lease (until then, the forward finds nobody at A's address: also UNAVAILABLE).
    let e = assert_code(count_of(&cb, &lite).await, Code::Unavailable);
    assert!(e.message().contains(&owner), "names the owner: {e}");
    let down = within(Duration::from_secs(4), || async {
        listed_as(&cc, &lite).await.map(|d| d.status) == Some(dbforge::DatabaseStatus::Unavailable)
    })
    .await;
    assert!(down.is_some(), "C lists A's database as UNAVAILABLE");
    let e = assert_code(count_of(&cc, &lite).await, Code::Unavailable);
    assert!(e.message().contains("down"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loads {
        let (ok, failed) = l.await.expect("load");
        assert!(ok > 0 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    }
    // Everything else keeps working: a new SQLite database on B, the PostgreSQL one on C.
    let fresh = unique("threefresh");
    cb.create_database(&fresh, CreateOptions::default())
        .await
        .expect("B spawns while A is down");
    assert_eq!(count_of(&cc, &pg).await.expect("pg through C"), 1);

    // A back on its data directory: its database is served again, nothing lost.
    let a = ServerProcess::spawn(dirs[0].path(), &flags);
    a.client().await.who_am_i().await.expect("A is back");
    let back = within(Duration::from_secs(5), || async {
        count_of(&cb, &lite).await.ok() == Some(102)
    })
    .await;
    assert!(
        back.is_some(),
        "A's database is served through B again, all 102 rows"
    );
    let back = within(Duration::from_secs(5), || async {
        count_of(&cc, &lite).await.ok() == Some(102)
    })
    .await;
    assert!(back.is_some(), "and through C");
    // Deleted through C: forwarded to A, which prunes its file; every gateway drops it.
    assert!(holds(dirs[0].path(), &lite), "the file is on A's disk");
    cc.delete_database(&lite).await.expect("delete through C");
    assert!(!holds(dirs[0].path(), &lite), "A removed the file");
    let gone = within(Duration::from_secs(2), || async {
        listed_as(&cb, &lite).await.is_none() && listed_as(&cc, &lite).await.is_none()
    })
    .await;
    assert!(gone.is_some(), "B and C drop it");
    drop((a, b, c));
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_million_row_stream_keeps_both_gateways_memory_bounded() {
    use crate::harness::ServerProcess;
    let Some(cat) = CatalogDb::create("fwdstream").await else {
        return;
    };
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let flags = ["--catalog-url", &cat.url, "--scheduler-lease", "1s"];
    let a = ServerProcess::spawn(da.path(), &flags);
    let b = ServerProcess::spawn(db.path(), &flags);
    let (ca, cb) = (a.client().await, b.client().await);
    ca.create_database("big", CreateOptions::default())
        .await
        .expect("create on A");
    let seen = within(Duration::from_secs(2), || async {
        listed_as(&cb, "big").await.is_some()
    })
    .await;
    assert!(seen.is_some(), "B lists A's database");
    let (base_a, base_b) = (a.memory_kib("VmRSS"), b.memory_kib("VmRSS"));
    // ~230 MB of rows through B, read slowly at first so that both gateways must hold back.
    let mut rows = cb
        .query(
            "big",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT x, printf('%0200d', x) FROM c",
            &[],
        )
        .await
        .expect("a stream through B");
    let first = rows.next().await.expect("a row").expect("row");
    assert_eq!(first.values()[0], Value::Int(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut n, mut sum) = (1u64, 1i64);
    while let Some(row) = rows.next().await {
        if let Value::Int(x) = row.expect("row").values()[0] {
            sum += x;
        }
        n += 1;
    }
    assert_eq!(n, 1_000_000, "every row arrived");
    assert_eq!(sum, 500_000_500_000, "in order, none twice");
    for (name, process, base) in [("A", &a, base_a), ("B", &b, base_b)] {
        let peak = process.memory_kib("VmHWM");
        let growth = peak.saturating_sub(base) / 1024;
        eprintln!(
            "{name}: RSS {} MiB before, peak {} MiB",
            base / 1024,
            peak / 1024
        );
        assert!(growth < 64, "{name} grew by {growth} MiB streaming ~230 MB");
    }
    drop((a, b));
    cat.drop().await;
}

/// Whether the gateway on `dir` holds a SQLite file of database `name`.
fn holds(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir.join("sqlite"))
        .map(|d| {
            d.flatten().any(|f| {
                f.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}."))
            })
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sqlite_databases_go_to_the_named_gateway_or_the_one_with_the_most_free_space() {
    use crate::harness::ServerProcess;
    let Some(cat) = CatalogDb::create("place").await else {
        return;
    };
    // Two filesystems when the machine has a tmpfs: their free space differs, so placement
    // by free space has something to choose.
    let da = tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("dir");
    let db = tempfile::tempdir().expect("dir");
    let flags = ["--catalog-url", &cat.url, "--scheduler-lease", "1s"];
    let a = ServerProcess::spawn(da.path(), &flags);
    let b = ServerProcess::spawn(db.path(), &flags);
    let (ca, cb) = (a.client().await, b.client().await);
    let (node_a, node_b) = (node_of(da.path()), node_of(db.path()));
    let both = within(Duration::from_secs(3), || async {
        let (sa, sb) = (
            ca.server_stats().await.expect("stats"),
            cb.server_stats().await.expect("stats"),
        );
        sa.nodes.len() == 2 && sb.nodes.len() == 2
    })
    .await;
    assert!(both.is_some(), "each gateway sees both");

    // Named: through B onto A, and through A onto A itself.
    let named = unique("placenamed");
    cb.create_database(&named, CreateOptions::default().node(node_a.clone()))
        .await
        .expect("create on A through B");
    assert!(holds(da.path(), &named) && !holds(db.path(), &named));
    assert_eq!(
        listed_as(&cb, &named).await.map(|d| d.node),
        Some(node_a.clone())
    );
    let e = assert_code(
        cb.create_database(
            &unique("placenone"),
            CreateOptions::default().node("no-such-node"),
        )
        .await,
        Code::Unavailable,
    );
    assert!(e.message().contains("no-such-node"), "{e}");
    let e = assert_code(
        ca.create_database(
            &unique("placepg"),
            CreateOptions::default()
                .backend(dbforge::Backend::Postgres)
                .node(node_a.clone()),
        )
        .await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("SQLite"), "{e}");

    // Unnamed: the gateway with the most free space, the called one when within 1 %.
    let stats = ca.server_stats().await.expect("stats");
    let free = |n: &str| {
        stats
            .nodes
            .iter()
            .find(|x| x.name == n)
            .expect("listed")
            .free_bytes
    };
    let (free_a, free_b) = (free(&node_a), free(&node_b));
    assert!(free_a > 0 && free_b > 0, "{:?}", stats.nodes);
    for (client, called) in [(&ca, &node_a), (&cb, &node_b)] {
        let name = unique("placefree");
        client
            .create_database(&name, CreateOptions::default())
            .await
            .expect("create");
        let (mine, other) = if called == &node_a {
            (free_a, free_b)
        } else {
            (free_b, free_a)
        };
        // Free space moves between heartbeats: only a clear difference (10 %) is asserted.
        let expected = if mine >= other - other / 10 && other >= mine - mine / 10 {
            None
        } else if mine > other {
            Some(called.clone())
        } else {
            Some(if called == &node_a {
                node_b.clone()
            } else {
                node_a.clone()
            })
        };
        let placed = listed_as(client, &name).await.expect("listed").node;
        if let Some(expected) = expected {
            assert_eq!(placed, expected, "A has {free_a} bytes free, B {free_b}");
        }
        let dir = if placed == node_a {
            da.path()
        } else {
            db.path()
        };
        assert!(holds(dir, &name), "the file is where the listing says");
    }
    drop((a, b));
    cat.drop().await;
}

/// A gateway without authentication on `dir`, on the catalog at `catalog`, serving every
/// server engine.
async fn all_engines(
    dir: &Path,
    catalog: &str,
    urls: &[(dbforge::Backend, String); 3],
) -> TestServer {
    let (dir, catalog, urls) = (dir.to_path_buf(), catalog.to_owned(), urls.clone());
    TestServer::with(move |mut c| {
        c.data_dir = dir;
        c.catalog_url = Some(catalog);
        let [(_, pg), (_, my), (_, redis)] = urls;
        (c.postgres_url, c.mysql_url, c.redis_url) = (Some(pg), Some(my), Some(redis));
        c
    })
    .await
}

/// The statement that writes `id` into the test's table (a set, on Redis), and the one that
/// reads them all.
fn writes(backend: dbforge::Backend, id: i64) -> (String, &'static str) {
    match backend {
        dbforge::Backend::Redis => (format!("SADD w {id}"), "SMEMBERS w"),
        _ => (format!("INSERT INTO w VALUES ({id})"), "SELECT id FROM w"),
    }
}

async fn ids(c: &Client, db: &str, backend: dbforge::Backend) -> std::collections::BTreeSet<i64> {
    let rows: Vec<_> = c
        .query(db, writes(backend, 0).1, &[])
        .await
        .expect("read")
        .try_collect()
        .await
        .expect("rows");
    rows.iter()
        .map(|r| match backend {
            dbforge::Backend::Redis => r.get::<String>(0).expect("member").parse().expect("id"),
            _ => r.get::<i64>(0).expect("id"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_fences_its_database_on_every_gateway_and_loses_no_acknowledged_write() {
    let (Some(pg), Some(my), Some(redis)) =
        (postgres_url().await, mysql_url().await, redis_url().await)
    else {
        return;
    };
    let Some(cat) = CatalogDb::create("fence").await else {
        return;
    };
    use dbforge::{Backend as B, RestoreMode};
    let urls = [(B::Postgres, pg), (B::Mysql, my), (B::Redis, redis)];
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = all_engines(da.path(), &cat.url, &urls).await;
    let b = all_engines(db.path(), &cat.url, &urls).await;
    // A third gateway serves none of these engines: it has nothing to wait for, and confirms.
    let dc = tempfile::tempdir().expect("dir");
    let c = gateway(dc.path(), Some(&cat.url)).await;
    for (backend, _) in &urls {
        let backend = *backend;
        let name = unique("fenced");
        a.client
            .create_database(&name, CreateOptions::default().backend(backend))
            .await
            .expect("create");
        if backend != B::Redis {
            a.client
                .execute(&name, "CREATE TABLE w (id BIGINT PRIMARY KEY)", &[])
                .await
                .expect("ddl");
        }
        a.client
            .execute(&name, &writes(backend, 0).0, &[])
            .await
            .expect("first write");
        let base = a
            .client
            .create_backup(&name, CreateBackup::default())
            .await
            .expect("backup");
        // B serves the database A spawned (it follows the catalog within a second).
        let served = within(Duration::from_secs(2), || {
            let c = b.client.clone();
            let name = name.clone();
            async move { c.execute(&name, writes(backend, 0).1, &[]).await.is_ok() }
        })
        .await;
        assert!(served.is_some(), "{backend:?}: B serves A's database");

        // A transaction B opened before the restore must not commit into the old storage
        // (Redis has no interactive sessions).
        let mut open = None;
        if backend != B::Redis {
            let mut tx = b.client.transaction(&name).await.expect("begin on B");
            tx.execute(&writes(backend, 1_000_000).0, &[])
                .await
                .expect("write inside the transaction");
            open = Some(tx);
        }

        // B writes without pause while A restores.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = tokio::spawn({
            let (c, name, stop) = (b.client.clone(), name.clone(), stop.clone());
            async move {
                let (mut acked, mut unavailable, mut other) = (Vec::new(), 0, Vec::new());
                let mut id = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.execute(&name, &writes(backend, id).0, &[]).await {
                        Ok(_) => acked.push(id),
                        Err(e) if e.code() == Code::Unavailable => unavailable += 1,
                        Err(e) => other.push(e.to_string()),
                    }
                    id += 1;
                }
                (acked, unavailable, other)
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let restored = a
            .client
            .restore_backup(&base.id, RestoreMode::Replace)
            .await
            .expect("restore through A");
        // Writes go on, on the restored data.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (acked, unavailable, other) = writer.await.expect("writer");
        if let Some(tx) = open {
            assert!(
                tx.commit().await.is_err(),
                "{backend:?}: a transaction from before the restore did not commit"
            );
        }

        let safety = restored.safety_backup.expect("a safety backup");
        let kept = format!("{name}-safety");
        a.client
            .restore_backup(&safety.id, RestoreMode::new(&kept))
            .await
            .expect("restore the safety backup aside");
        let (before, after) = (
            ids(&a.client, &kept, backend).await,
            ids(&b.client, &name, backend).await,
        );
        let lost: Vec<_> = acked
            .iter()
            .filter(|id| !before.contains(id) && !after.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "{backend:?}: writes B acknowledged are in neither the safety backup nor the \
             restored database: {lost:?}"
        );
        assert!(
            before.intersection(&after).all(|id| *id == 0),
            "{backend:?}: a write landed on both sides of the swap"
        );
        assert!(
            !before.contains(&1_000_000) && !after.contains(&1_000_000),
            "{backend:?}: the cut transaction's write is nowhere"
        );
        assert!(
            unavailable > 0,
            "{backend:?}: B refused writes while A restored"
        );
        assert!(
            after.iter().any(|id| *id > 0),
            "{backend:?}: B wrote again after the restore"
        );
        eprintln!(
            "{backend:?}: {} writes acknowledged, {unavailable} refused, other errors: {other:?}",
            acked.len()
        );
        // No fence is left behind.
        assert_eq!(cat.count("fences").await, 0, "{backend:?}");
        for n in [&name, &kept] {
            a.client.delete_database(n).await.expect("delete");
        }
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_policy_covers_every_gateways_sqlite_databases() {
    use dbforge::{BackupPolicy, BackupStatus, Schedule, Selector};
    let Some(cat) = CatalogDb::create("policies").await else {
        return;
    };
    let pg = postgres_url().await.expect("the same server");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let fast = |dir: &Path| {
        let (dir, catalog, pg) = (dir.to_path_buf(), cat.url.clone(), pg.clone());
        TestServer::with(move |mut c| {
            c.data_dir = dir;
            c.catalog_url = Some(catalog);
            c.postgres_url = Some(pg);
            c.backup_tick = Duration::from_millis(200);
            c
        })
    };
    // A starts first and holds the schedulers' lease.
    let a = fast(da.path()).await;
    a.client.who_am_i().await.expect("a serves");
    let b = fast(db.path()).await;
    b.client.who_am_i().await.expect("b serves");
    let prefix = unique("pol");
    let (on_a, on_b, shared) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("{prefix}-pg"),
    );
    for (via, name, opts) in [
        (&a, &on_a, CreateOptions::default().node(node_of(da.path()))),
        (&b, &on_b, CreateOptions::default().node(node_of(db.path()))),
        (
            &a,
            &shared,
            CreateOptions::default().backend(dbforge::Backend::Postgres),
        ),
    ] {
        via.client
            .create_database(name, opts)
            .await
            .expect("create");
    }
    a.client
        .set_backup_policy(
            BackupPolicy::new(
                "everywhere",
                Selector::Pattern(format!("{prefix}-*")),
                Schedule::Cron("* * * * * *".into()),
            )
            .keep_last(2),
        )
        .await
        .expect("policy");
    // Each database is backed up by the gateway that reaches it: B's SQLite file by B.
    let done = within(Duration::from_secs(15), || {
        let c = a.client.clone();
        let names = [on_a.clone(), on_b.clone(), shared.clone()];
        async move {
            for name in &names {
                let made = c
                    .list_backups(BackupFilter {
                        status: BackupStatus::Completed,
                        ..BackupFilter::database(name.as_str())
                    })
                    .await
                    .expect("list");
                if made.is_empty() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(
        done.is_some(),
        "every database has a scheduled backup within 15 s"
    );
    // B keeps its own run state; the policy's row is the lease holder's. A run is recorded
    // after its backups and retention, so the rows may come a moment after the backups.
    let recorded = within(Duration::from_secs(5), || async {
        cat.count("policy_nodes").await == 2
    })
    .await;
    assert!(
        recorded.is_some(),
        "A and B each recorded their runs of the policy on their SQLite databases"
    );
    // Retention applies on each gateway's own databases too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in [&on_a, &on_b, &shared] {
        let kept = a
            .client
            .list_backups(BackupFilter {
                status: BackupStatus::Completed,
                ..BackupFilter::database(name.as_str())
            })
            .await
            .expect("list");
        assert!(
            (1..=3).contains(&kept.len()),
            "{name}: keep_last 2 (one more may be finishing): {}",
            kept.len()
        );
    }
    a.client
        .delete_backup_policy("everywhere")
        .await
        .expect("delete the policy");
    assert_eq!(cat.count("policy_nodes").await, 0, "its runs go with it");
    a.stop().await;
    b.stop().await;
    cat.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_serving_mutual_tls_forward_to_each_other() {
    use dbforge::ClientOptions;
    let Some(cat) = CatalogDb::create("tls").await else {
        return;
    };
    let pki = crate::tls::Pki::new();
    let tls_gateway = |dir: &Path, client_ca: bool| {
        let (dir, catalog, pki) = (dir.to_path_buf(), cat.url.clone(), &pki);
        TestServer::with_client(
            move |mut c| {
                c.data_dir = dir;
                c.catalog_url = Some(catalog);
                pki.serving(c, client_ca)
            },
            false,
        )
    };
    let connect = |s: &TestServer, identity: bool| {
        let mut opts = ClientOptions::new(format!("https://localhost:{}", s.addr.port()))
            .ca_file(pki.path("ca.pem"));
        if identity {
            opts = opts.client_identity(pki.path("client.pem"), pki.path("client.key"));
        }
        Client::connect_with(opts)
    };
    let (da, db, dc) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    // A and B require client certificates; each trusts the other through --tls-client-ca.
    let a = tls_gateway(da.path(), true).await;
    let ca = connect(&a, true).await.expect("connect to A");
    ca.who_am_i().await.expect("A serves");
    let b = tls_gateway(db.path(), true).await;
    let cb = connect(&b, true).await.expect("connect to B");
    cb.who_am_i().await.expect("B serves");

    let name = unique("tlsfwd");
    ca.create_database(&name, CreateOptions::default().node(node_of(da.path())))
        .await
        .expect("create on A");
    ca.execute(&name, "CREATE TABLE t (x TEXT)", &[])
        .await
        .expect("ddl");
    ca.execute(&name, "INSERT INTO t VALUES ('over tls')", &[])
        .await
        .expect("insert");
    // B forwards calls on A's SQLite database to A over mutual TLS.
    let served = within(Duration::from_secs(3), || {
        let (c, name) = (cb.clone(), name.clone());
        async move { c.execute(&name, "SELECT x FROM t", &[]).await.is_ok() }
    })
    .await;
    assert!(served.is_some(), "B serves A's SQLite database over TLS");
    let r = cb
        .execute(&name, "SELECT x FROM t", &[])
        .await
        .expect("through B");
    assert_eq!(r.rows[0].values(), &[Value::Text("over tls".into())]);
    // Sessions are relayed over the same transport.
    let mut tx = cb.transaction(&name).await.expect("begin through B");
    tx.execute("INSERT INTO t VALUES ('in a session')", &[])
        .await
        .expect("insert in the session");
    tx.commit().await.expect("commit through B");
    assert_eq!(count_of(&ca, &name).await.expect("count on A"), 2);

    // A TLS gateway that trusts no CA for its peers says what to set instead of forwarding.
    let c = tls_gateway(dc.path(), false).await;
    let cc = connect(&c, false).await.expect("connect to C");
    cc.who_am_i().await.expect("C serves");
    let refused = within(Duration::from_secs(3), || {
        let (c, name) = (cc.clone(), name.clone());
        async move {
            matches!(c.execute(&name, "SELECT x FROM t", &[]).await,
                Err(e) if e.code() == Code::Unavailable && e.to_string().contains("--tls-peer-ca"))
        }
    })
    .await;
    assert!(
        refused.is_some(),
        "C refuses with UNAVAILABLE naming --tls-peer-ca"
    );
    a.stop().await;
    b.stop().await;
    c.stop().await;
    cat.drop().await;
}
