//! Authentication and authorization: keys, grants, read-only access enforced by the engine.

use std::time::{Duration, SystemTime};

use dbforge::{
    ApiKeySpec, Client, ClientOptions, Code, ColumnDef, ColumnType, CreateOptions, Filter,
    ForkOptions, Grant, LifecyclePolicy, ListFilter, Role, Select, Statement, UpdateOptions, Value,
    WatchOptions, params, record,
};

use crate::harness::{ADMIN_KEY as ADMIN, ServerProcess, TestServer, as_key, assert_code, key_for};

/// A gateway with keys, on SQLite alone.
async fn secured() -> TestServer {
    crate::harness::secured(dbforge::Backend::Sqlite, None).await
}

/// A gateway with keys that also serves `backend` at `url`.
async fn secured_with(backend: dbforge::Backend, url: String) -> TestServer {
    crate::harness::secured(backend, Some(url)).await
}

/// Calls every RPC of every service and returns the codes.
async fn every_rpc(c: &Client, db: &str) -> Vec<(&'static str, Code)> {
    let code = |r: Result<(), dbforge::Error>| r.err().map_or(Code::Ok, |e| e.code());
    vec![
        (
            "CreateDatabase",
            code(
                c.create_database("x-new", CreateOptions::default())
                    .await
                    .map(drop),
            ),
        ),
        ("GetDatabase", code(c.get_database(db).await.map(drop))),
        (
            "ListDatabases",
            code(c.list_databases(ListFilter::default()).await.map(drop)),
        ),
        ("DeleteDatabase", code(c.delete_database(db).await)),
        (
            "ForkDatabase",
            code(
                c.fork_database(db, "x-fork", ForkOptions::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "UpdateDatabase",
            code(
                c.update_database(
                    db,
                    UpdateOptions::default().idle_ttl(Duration::from_secs(60)),
                )
                .await
                .map(drop),
            ),
        ),
        (
            "WatchDatabases",
            code(
                c.watch_databases(WatchOptions::default().since(0))
                    .await
                    .map(drop),
            ),
        ),
        (
            "SetLifecyclePolicy",
            code(
                c.set_lifecycle_policy(
                    LifecyclePolicy::pattern("p", "*").idle_ttl(Duration::from_secs(60)),
                )
                .await
                .map(drop),
            ),
        ),
        (
            "ListLifecyclePolicies",
            code(c.list_lifecycle_policies().await.map(drop)),
        ),
        (
            "DeleteLifecyclePolicy",
            code(c.delete_lifecycle_policy("p").await),
        ),
        (
            "Execute",
            code(c.execute(db, "SELECT 1", &[]).await.map(drop)),
        ),
        ("Query", code(c.query(db, "SELECT 1", &[]).await.map(drop))),
        (
            "Preview",
            code(
                c.preview(db, vec![Statement::new("SELECT 1", vec![])])
                    .await
                    .map(drop),
            ),
        ),
        (
            "ExecuteBatch",
            code(c.batch(db, vec![], true).await.map(drop)),
        ),
        ("Session", code(c.transaction(db).await.map(drop))),
        (
            "CreateTable",
            code(
                c.create_table(db, "t2", vec![ColumnDef::new("a", ColumnType::Text)], false)
                    .await
                    .map(drop),
            ),
        ),
        (
            "InsertRows",
            code(c.insert_rows(db, "t", vec![]).await.map(drop)),
        ),
        (
            "SelectRows",
            code(c.select_rows(db, Select::from("t")).await.map(drop)),
        ),
        (
            "UpdateRows",
            code(
                c.update_all_rows(db, "t", record([("v", Value::from(1))]))
                    .await
                    .map(drop),
            ),
        ),
        (
            "DeleteRows",
            code(c.delete_all_rows(db, "t").await.map(drop)),
        ),
        (
            "CreateApiKey",
            code(c.create_api_key(ApiKeySpec::new("x")).await.map(drop)),
        ),
        ("ListApiKeys", code(c.list_api_keys(false).await.map(drop))),
        (
            "RevokeApiKey",
            code(c.revoke_api_key("nope").await.map(drop)),
        ),
        ("WhoAmI", code(c.who_am_i().await.map(drop))),
    ]
}

async fn seed(admin: &Client) -> String {
    let db = "guarded".to_string();
    admin
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create");
    admin
        .execute(&db, "CREATE TABLE t (v INTEGER)", &[])
        .await
        .expect("ddl");
    admin
        .execute(&db, "INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert");
    db
}

async fn rows_in_t(admin: &Client, db: &str) -> i64 {
    admin
        .execute(db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .rows[0]
        .get(0)
        .expect("int")
}

#[tokio::test]
async fn calls_without_a_valid_key_are_unauthenticated() {
    let s = secured().await;
    let admin = as_key(&s, ADMIN).await;
    let db = seed(&admin).await;
    let (_, revoked) = admin
        .create_api_key(ApiKeySpec::new("revoked").admin())
        .await
        .expect("key");
    let revoked_id = revoked.split('_').nth(1).expect("id").to_owned();
    assert!(admin.revoke_api_key(&revoked_id).await.expect("revoke"));
    assert!(!admin.revoke_api_key(&revoked_id).await.expect("again"));
    let expired_at = SystemTime::now() + Duration::from_millis(300);
    let (_, expiring) = admin
        .create_api_key(ApiKeySpec::new("expiring").admin().expires_at(expired_at))
        .await
        .expect("key");
    tokio::time::sleep(Duration::from_millis(400)).await;

    let anonymous = s.client.clone();
    for (who, client) in [
        ("no key", anonymous),
        ("garbage", as_key(&s, "dbf_0000_nothing").await),
        (
            "wrong secret",
            as_key(&s, &format!("{}x", &revoked[..revoked.len() - 1])).await,
        ),
        ("revoked", as_key(&s, &revoked).await),
        ("expired", as_key(&s, &expiring).await),
    ] {
        for (rpc, code) in every_rpc(&client, &db).await {
            assert_eq!(code, Code::Unauthenticated, "{who}: {rpc}");
        }
    }
    assert_eq!(rows_in_t(&admin, &db).await, 1, "nothing changed");
    // Health needs no key.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.client.channel());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without a key");
}

#[tokio::test]
async fn a_read_key_cannot_write_by_any_route() {
    let s = secured().await;
    let admin = as_key(&s, ADMIN).await;
    let db = seed(&admin).await;
    let (info, key) = admin
        .create_api_key(ApiKeySpec::new("reader").grant(Grant::database(&db, Role::Read)))
        .await
        .expect("key");
    assert!(!info.admin);
    let reader = as_key(&s, &key).await;
    let me = reader.who_am_i().await.expect("whoami");
    assert_eq!(me.id, info.id);
    assert_eq!(me.grants.len(), 1);

    // Reads work.
    let r = reader
        .execute(&db, "SELECT v FROM t", &[])
        .await
        .expect("read");
    assert_eq!(r.rows.len(), 1);
    reader
        .select_rows(&db, Select::from("t"))
        .await
        .expect("select rows");
    let mut tx = reader.transaction(&db).await.expect("read-only session");
    tx.execute("SELECT count(*) FROM t", &[])
        .await
        .expect("read in session");
    assert_code(
        tx.execute("INSERT INTO t VALUES (2)", &[]).await,
        Code::PermissionDenied,
    );
    drop(tx);

    for sql in [
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET v = 5",
        "DELETE FROM t",
        "CREATE TABLE u (x)",
        "DROP TABLE t",
        "CREATE TEMP TABLE tmp (x)",
        "WITH n(x) AS (SELECT 9) INSERT INTO t SELECT x FROM n",
        "PRAGMA user_version = 9",
        "ATTACH ':memory:' AS m",
        "VACUUM",
    ] {
        let e = assert_code(reader.execute(&db, sql, &[]).await, Code::PermissionDenied);
        assert!(!e.message().is_empty(), "{sql}");
        let streamed = match reader.query(&db, sql, &[]).await {
            Ok(mut rows) => rows.collect_rows().await,
            Err(e) => Err(e),
        };
        assert_code(streamed, Code::PermissionDenied);
        // Autocommit, so that VACUUM (which cannot run inside a transaction) reaches the engine.
        assert_code(
            reader
                .batch(&db, vec![Statement::new(sql, vec![])], false)
                .await,
            Code::PermissionDenied,
        );
    }
    assert_code(
        reader
            .insert_rows(&db, "t", vec![record([("v", Value::from(3))])])
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        reader
            .update_rows(
                &db,
                "t",
                record([("v", Value::from(3))]),
                vec![Filter::eq("v", 1)],
            )
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        reader.delete_all_rows(&db, "t").await,
        Code::PermissionDenied,
    );
    assert_code(reader.delete_database(&db).await, Code::PermissionDenied);
    assert_code(
        reader
            .create_api_key(ApiKeySpec::new("escalate").admin())
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(rows_in_t(&admin, &db).await, 1, "nothing changed");
    let user_version = admin
        .execute(&db, "PRAGMA user_version", &[])
        .await
        .expect("pragma");
    assert_eq!(user_version.rows[0].values(), &[Value::Int(0)]);
}

#[tokio::test]
async fn keys_see_only_their_databases() {
    let s = secured().await;
    let admin = as_key(&s, ADMIN).await;
    let db = seed(&admin).await;
    admin
        .create_database("team-a-1", CreateOptions::default().label("team", "a"))
        .await
        .expect("create");
    admin
        .create_database("other", CreateOptions::default())
        .await
        .expect("create");
    let (_, key) = admin
        .create_api_key(
            ApiKeySpec::new("team a")
                .grant(Grant::pattern("team-a-*", Role::Write))
                .grant(Grant::labels([("team", "b")], Role::Read)),
        )
        .await
        .expect("key");
    let team = as_key(&s, &key).await;
    let names: Vec<_> = team
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["team-a-1"]);
    team.execute("team-a-1", "CREATE TABLE x (a)", &[])
        .await
        .expect("write granted");
    assert_code(
        team.delete_database("team-a-1").await,
        Code::PermissionDenied,
    );
    for rpc in every_rpc(&team, &db).await {
        // Listings and watches are filtered to what the key may see rather than refused.
        if matches!(
            rpc.0,
            "ListDatabases" | "WatchDatabases" | "ListLifecyclePolicies" | "WhoAmI"
        ) {
            continue;
        }
        assert_eq!(rpc.1, Code::PermissionDenied, "{}", rpc.0);
    }
    // A name outside the grants is PERMISSION_DENIED whether it exists or not, so names don't
    // leak; a missing name inside them is NOT_FOUND.
    assert_code(
        team.get_database("no-such-db").await,
        Code::PermissionDenied,
    );
    assert_code(team.get_database("team-a-404").await, Code::NotFound);
    // A label grant follows the database's labels.
    admin
        .create_database("labelled", CreateOptions::default().label("team", "b"))
        .await
        .expect("create");
    team.get_database("labelled").await.expect("label grant");
    // Its watch, from the start of the log, shows those two and nothing of "guarded" or "other".
    let mut events = team
        .watch_databases(WatchOptions::default().since(0))
        .await
        .expect("watch");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("in time")
            .expect("event")
            .expect("not ended");
        seen.push(e.database);
    }
    assert_eq!(seen, ["team-a-1", "labelled"]);
    assert_eq!(rows_in_t(&admin, &db).await, 1);
}

#[tokio::test]
async fn creators_own_what_they_create_within_quota() {
    let s = secured().await;
    let admin = as_key(&s, ADMIN).await;
    admin
        .create_database("admins", CreateOptions::default())
        .await
        .expect("create");
    let (_, key) = admin
        .create_api_key(
            // A read grant: what it owns, it owns for having created it.
            ApiKeySpec::new("agent")
                .can_create(2)
                .grant(Grant::pattern("agent-*", Role::Read)),
        )
        .await
        .expect("key");
    let agent = as_key(&s, &key).await;
    agent
        .create_database("agent-1", CreateOptions::default())
        .await
        .expect("1");
    agent
        .create_database("agent-2", CreateOptions::default())
        .await
        .expect("2");
    assert_code(
        agent
            .create_database("agent-3", CreateOptions::default())
            .await,
        Code::ResourceExhausted,
    );
    agent
        .execute("agent-1", "CREATE TABLE t (x)", &[])
        .await
        .expect("owner writes");
    assert_code(
        agent.execute("admins", "SELECT 1", &[]).await,
        Code::PermissionDenied,
    );
    assert_code(
        agent.delete_database("admins").await,
        Code::PermissionDenied,
    );
    agent
        .delete_database("agent-2")
        .await
        .expect("owner deletes");
    agent
        .create_database("agent-3", CreateOptions::default())
        .await
        .expect("quota freed");
    let (_, plain) = admin
        .create_api_key(ApiKeySpec::new("plain"))
        .await
        .expect("key");
    assert_code(
        as_key(&s, &plain)
            .await
            .create_database("p", CreateOptions::default())
            .await,
        Code::PermissionDenied,
    );
    let keys = admin.list_api_keys(false).await.expect("list keys");
    assert!(
        keys.iter()
            .any(|k| k.name == "agent" && k.can_create && k.create_quota == 2)
    );
}

#[tokio::test]
async fn a_creating_key_learns_nothing_about_names_outside_its_grants() {
    let s = secured().await;
    let admin = as_key(&s, ADMIN).await;
    for name in ["other", "agent-43-x"] {
        admin
            .create_database(name, CreateOptions::default())
            .await
            .expect("create");
    }
    let (_, key) = admin
        .create_api_key(
            ApiKeySpec::new("agent 42")
                .can_create(10)
                .grant(Grant::pattern("agent-42-*", Role::Owner)),
        )
        .await
        .expect("key");
    let agent = as_key(&s, &key).await;
    // Inside its pattern: it creates, and a missing name is NOT_FOUND.
    agent
        .create_database("agent-42-a", CreateOptions::default())
        .await
        .expect("a name its grant covers");
    assert_code(agent.get_database("agent-42-zz").await, Code::NotFound);
    // Outside it, every call answers the same for a taken name and a free one.
    for (taken, free) in [("other", "nothing-here"), ("agent-43-x", "agent-43-y")] {
        let message = |e: dbforge::Error| e.message().replace(taken, "NAME").replace(free, "NAME");
        let calls = [
            (
                assert_code(agent.get_database(taken).await, Code::PermissionDenied),
                assert_code(agent.get_database(free).await, Code::PermissionDenied),
            ),
            (
                assert_code(
                    agent.create_database(taken, CreateOptions::default()).await,
                    Code::PermissionDenied,
                ),
                assert_code(
                    agent.create_database(free, CreateOptions::default()).await,
                    Code::PermissionDenied,
                ),
            ),
            (
                assert_code(
                    agent
                        .create_database(taken, CreateOptions::default().if_not_exists())
                        .await,
                    Code::PermissionDenied,
                ),
                assert_code(
                    agent
                        .create_database(free, CreateOptions::default().if_not_exists())
                        .await,
                    Code::PermissionDenied,
                ),
            ),
            (
                assert_code(
                    agent.execute(taken, "SELECT 1", &[]).await,
                    Code::PermissionDenied,
                ),
                assert_code(
                    agent.execute(free, "SELECT 1", &[]).await,
                    Code::PermissionDenied,
                ),
            ),
            (
                assert_code(agent.delete_database(taken).await, Code::PermissionDenied),
                assert_code(agent.delete_database(free).await, Code::PermissionDenied),
            ),
        ];
        for (a, b) in calls {
            assert_eq!(message(a), message(b));
        }
    }
    let refused = assert_code(
        agent
            .create_database("other-2", CreateOptions::default())
            .await,
        Code::PermissionDenied,
    );
    assert!(refused.message().contains("agent-42-*"), "{refused}");
    let names: Vec<_> = admin
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(
        names,
        ["agent-42-a", "agent-43-x", "other"],
        "nothing else was created"
    );
}

#[tokio::test]
async fn bootstrap_writes_an_owner_only_admin_key_and_never_logs_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::spawn_secured(dir.path());
    let path = dir.path().join("admin.key");
    let key = std::fs::read_to_string(&path)
        .expect("admin key file")
        .trim()
        .to_owned();
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let catalog = dir.path().join("catalog.db");
    let catalog_mode = std::fs::metadata(&catalog)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        catalog_mode, 0o600,
        "the catalog holds key hashes and role passwords"
    );
    assert!(key.starts_with("dbf_") && key.len() > 40);
    let admin =
        Client::connect_with(ClientOptions::new(format!("http://{}", server.addr)).api_key(&key))
            .await
            .expect("connect");
    assert!(admin.who_am_i().await.expect("whoami").admin);
    let (_, minted) = admin
        .create_api_key(ApiKeySpec::new("minted").admin())
        .await
        .expect("key");
    admin
        .create_database("d", CreateOptions::default())
        .await
        .expect("create");
    admin
        .execute("d", "SELECT ?", &params!["secret-param-value"])
        .await
        .expect("query");
    let logs = server.logs();
    assert!(logs.contains("admin.key"), "the path is logged");
    for secret in [key.as_str(), minted.as_str(), "secret-param-value"] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    assert!(server.terminate().await);
}

#[tokio::test]
async fn no_auth_is_refused_off_loopback() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dbforge_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        insecure_no_auth: true,
        ..Default::default()
    };
    let err = dbforge_server::server::run(cfg, listener, std::future::pending())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
}

/// Every data-plane route refuses `sql` for `reader` with PERMISSION_DENIED.
async fn refused_by_every_route(reader: &Client, db: &str, sql: &str, sessions: bool) {
    let codes = crate::harness::every_route(reader, db, sql, sessions).await;
    assert!(
        codes.iter().all(|c| *c == Code::PermissionDenied),
        "{sql}: {codes:?}"
    );
}

/// Read grants on a SQL server engine: reads by every route, every write refused by the
/// engine's read-only role or user, the write key unaffected, and no reach into another
/// database.
async fn read_grants_on_sql_server(backend: dbforge::Backend, url: String, writes: &[&str]) {
    let s = secured_with(backend, url).await;
    let admin = as_key(&s, ADMIN).await;
    let db = crate::harness::unique("ro-sql");
    let created = admin
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("create");
    assert!(created.database.capabilities.read_only_grants);
    admin
        .execute(&db, "CREATE TABLE t (v INTEGER)", &[])
        .await
        .expect("ddl");
    admin
        .execute(&db, "INSERT INTO t (v) VALUES (1)", &[])
        .await
        .expect("insert");
    let other = crate::harness::unique("ro-other");
    admin
        .create_database(&other, CreateOptions::default().backend(backend))
        .await
        .expect("create other");
    admin
        .execute(&other, "CREATE TABLE secret (v INTEGER)", &[])
        .await
        .expect("ddl");
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let writer = key_for(&s, &admin, &db, Role::Write).await;

    let r = reader
        .execute(&db, "SELECT v FROM t", &[])
        .await
        .expect("read");
    assert_eq!(r.rows[0].values(), &[Value::Int(1)]);
    let rows = reader
        .query(&db, "SELECT v FROM t", &[])
        .await
        .expect("stream")
        .collect_rows()
        .await
        .expect("streamed rows");
    assert_eq!(rows.len(), 1);
    reader
        .batch(&db, vec![Statement::new("SELECT v FROM t", vec![])], true)
        .await
        .expect("a batch of reads");
    reader
        .select_rows(&db, Select::from("t"))
        .await
        .expect("select rows");
    let mut tx = reader.transaction(&db).await.expect("read-only session");
    tx.execute("SELECT count(*) FROM t", &[])
        .await
        .expect("read in session");
    drop(tx);

    for sql in [
        "INSERT INTO t (v) VALUES (2)",
        "UPDATE t SET v = 5",
        "DELETE FROM t",
        "CREATE TABLE u (x INTEGER)",
        "ALTER TABLE t ADD COLUMN y INTEGER",
        "DROP TABLE t",
    ]
    .iter()
    .chain(writes)
    {
        refused_by_every_route(&reader, &db, sql, true).await;
    }
    assert_code(
        reader
            .insert_rows(&db, "t", vec![record([("v", Value::from(3))])])
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        reader.execute(&other, "SELECT v FROM secret", &[]).await,
        Code::PermissionDenied,
    );
    assert_eq!(rows_in_t(&admin, &db).await, 1, "nothing changed");

    writer
        .execute(&db, "INSERT INTO t (v) VALUES (2)", &[])
        .await
        .expect("the write key still writes");
    assert_eq!(rows_in_t(&admin, &db).await, 2);
    // A table made after the read key was used is readable through it too.
    writer
        .execute(&db, "CREATE TABLE later (w INTEGER)", &[])
        .await
        .expect("ddl");
    let r = reader
        .execute(&db, "SELECT count(*) FROM later", &[])
        .await
        .expect("a later table");
    assert_eq!(r.rows[0].values(), &[Value::Int(0)]);
    admin.delete_database(&db).await.expect("delete");
    admin.delete_database(&other).await.expect("delete");
}

#[tokio::test]
async fn read_grants_are_enforced_by_postgres() {
    let Some(url) = crate::harness::postgres_url().await else {
        return;
    };
    let writes = [
        "CREATE TEMP TABLE tmp (x INTEGER)",
        "SELECT lo_create(0)",
        "CREATE SCHEMA mine",
    ];
    read_grants_on_sql_server(dbforge::Backend::Postgres, url, &writes).await;
}

#[tokio::test]
async fn read_grants_are_enforced_by_mysql() {
    let Some(url) = crate::harness::mysql_url().await else {
        return;
    };
    let writes = [
        "CREATE TEMPORARY TABLE tmp (x INTEGER)",
        "REPLACE INTO t (v) VALUES (3)",
        "TRUNCATE TABLE t",
    ];
    read_grants_on_sql_server(dbforge::Backend::Mysql, url, &writes).await;
}

#[tokio::test]
async fn read_grants_are_enforced_by_redis() {
    let Some(url) = crate::harness::redis_url().await else {
        return;
    };
    let s = secured_with(dbforge::Backend::Redis, url).await;
    let admin = as_key(&s, ADMIN).await;
    let db = crate::harness::unique("ro-kv");
    let created = admin
        .create_database(
            &db,
            CreateOptions::default().backend(dbforge::Backend::Redis),
        )
        .await
        .expect("create");
    assert!(created.database.capabilities.read_only_grants);
    admin.execute(&db, "SET k v", &[]).await.expect("set");
    admin.execute(&db, "RPUSH l a b", &[]).await.expect("rpush");
    let other = crate::harness::unique("ro-kv-other");
    admin
        .create_database(
            &other,
            CreateOptions::default().backend(dbforge::Backend::Redis),
        )
        .await
        .expect("create other");
    admin
        .execute(&other, "SET secret s", &[])
        .await
        .expect("set");
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let writer = key_for(&s, &admin, &db, Role::Write).await;

    let r = reader.execute(&db, "GET k", &[]).await.expect("GET");
    assert_eq!(r.rows[0].values(), &[Value::Text("v".into())]);
    let rows = reader
        .query(&db, "LRANGE l 0 -1", &[])
        .await
        .expect("stream")
        .collect_rows()
        .await
        .expect("streamed rows");
    assert_eq!(rows.len(), 2);
    for line in [
        "SET k w",
        "DEL k",
        "RPUSH l c",
        "INCR n",
        "EXPIRE k 5",
        "HSET h f v",
    ] {
        refused_by_every_route(&reader, &db, line, false).await;
    }
    assert_code(
        reader.execute(&other, "GET secret", &[]).await,
        Code::PermissionDenied,
    );
    let r = admin.execute(&db, "GET k", &[]).await.expect("GET");
    assert_eq!(
        r.rows[0].values(),
        &[Value::Text("v".into())],
        "nothing changed"
    );
    writer
        .execute(&db, "SET k w", &[])
        .await
        .expect("the write key still writes");
    let r = reader.execute(&db, "GET k", &[]).await.expect("GET");
    assert_eq!(r.rows[0].values(), &[Value::Text("w".into())]);
    admin.delete_database(&db).await.expect("delete");
    admin.delete_database(&other).await.expect("delete");
}
