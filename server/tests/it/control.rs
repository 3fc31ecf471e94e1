//! DatabaseService: spawn, get, list, prune, and their errors.

use std::time::{Duration, SystemTime};

use dbforge::{Backend, Code, CreateOptions, DatabaseStatus, ListFilter};

use crate::harness::{TestServer, assert_code, unique};

#[tokio::test]
async fn create_get_list_delete() {
    let s = TestServer::start().await;
    let name = unique("life");
    let created = s
        .client
        .create_database(&name, CreateOptions::default().label("team", "search"))
        .await
        .expect("create");
    assert!(created.created);
    let db = created.database;
    assert_eq!(db.name, name);
    assert_eq!(db.backend, Backend::Sqlite);
    assert_eq!(db.status, DatabaseStatus::Ready);
    assert_eq!(db.labels.get("team").map(String::as_str), Some("search"));
    assert!(db.capabilities.sql && db.capabilities.transactions && db.capabilities.sessions);
    assert!(!db.capabilities.key_value);
    assert_eq!(db.capabilities.placeholder, "?");
    let age = SystemTime::now()
        .duration_since(db.created_at)
        .expect("created in the past");
    assert!(age < Duration::from_secs(60));

    s.client
        .execute(&name, "CREATE TABLE t (x)", &[])
        .await
        .expect("use it");
    let got = s.client.get_database(&name).await.expect("get");
    assert!(got.size_bytes > 0, "a database with a table takes space");
    assert!(got.last_accessed_at >= db.created_at);

    let listed = s
        .client
        .list_databases(ListFilter::default())
        .await
        .expect("list");
    assert!(listed.iter().any(|d| d.name == name));

    s.client.delete_database(&name).await.expect("delete");
    assert_code(s.client.get_database(&name).await, Code::NotFound);
    assert_code(
        s.client.execute(&name, "SELECT 1", &[]).await,
        Code::NotFound,
    );
    assert_code(s.client.delete_database(&name).await, Code::NotFound);
    assert!(
        !s.client
            .delete_database_if_exists(&name)
            .await
            .expect("allow_missing")
    );
}

#[tokio::test]
async fn spawn_is_idempotent_only_when_asked() {
    let s = TestServer::start().await;
    let name = s.db("idem").await;
    s.client
        .execute(&name, "CREATE TABLE kept (x)", &[])
        .await
        .expect("ddl");
    let err = assert_code(
        s.client
            .create_database(&name, CreateOptions::default())
            .await,
        Code::AlreadyExists,
    );
    assert!(err.message().contains(&name), "{err}");
    let again = s
        .client
        .create_database(&name, CreateOptions::default().if_not_exists())
        .await
        .expect("if_not_exists");
    assert!(!again.created);
    // The existing database was returned, not a new empty one.
    s.client
        .execute(&name, "SELECT * FROM kept", &[])
        .await
        .expect("table still there");
    // The same name on another backend is a conflict even with if_not_exists.
    assert_code(
        s.client
            .create_database(
                &name,
                CreateOptions::default()
                    .if_not_exists()
                    .backend(Backend::Postgres),
            )
            .await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn invalid_names_are_rejected() {
    let s = TestServer::start().await;
    let long = "a".repeat(64);
    for name in [
        "", "1abc", "-x", "Upper", "a b", "../etc", "a/b", "a.b", "a;drop", "a'b", "a\"b", "é",
        &long,
    ] {
        let err = assert_code(
            s.client
                .create_database(name, CreateOptions::default())
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            err.metadata("field").as_deref(),
            Some("name"),
            "{name}: {err}"
        );
        assert_code(s.client.get_database(name).await, Code::InvalidArgument);
    }
    // Nothing was created on disk for any of them.
    let files = std::fs::read_dir(s.data_dir().join("sqlite"))
        .expect("sqlite dir")
        .count();
    assert_eq!(files, 0);
}

#[tokio::test]
async fn invalid_labels_are_rejected() {
    let s = TestServer::start().await;
    assert_code(
        s.client
            .create_database(
                &unique("lbl"),
                CreateOptions::default().label("Bad Key", "v"),
            )
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn unconfigured_backend_is_a_failed_precondition() {
    let s = TestServer::start().await;
    let err = assert_code(
        s.client
            .create_database(
                &unique("pg"),
                CreateOptions::default().backend(Backend::Postgres),
            )
            .await,
        Code::FailedPrecondition,
    );
    assert!(err.message().contains("postgres"), "{err}");
}

#[tokio::test]
async fn list_pages_and_filters() {
    let s = TestServer::start().await;
    let run = unique("run");
    let mut names = Vec::new();
    for i in 0..7 {
        let name = format!("{run}-{i}");
        let opts = CreateOptions::default()
            .label("run", run.clone())
            .label("parity", if i % 2 == 0 { "even" } else { "odd" });
        s.client.create_database(&name, opts).await.expect("create");
        names.push(name);
    }
    s.db("other").await;

    let filter = ListFilter {
        labels: [("run".to_string(), run.clone())].into(),
        ..Default::default()
    };
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let (page, next) = s
            .client
            .list_databases_page(&filter, &token, 3)
            .await
            .expect("page");
        pages.push(page.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        match next {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(
        pages.concat(),
        names,
        "pages are in name order without gaps"
    );

    let odd = ListFilter {
        labels: [
            ("run".to_string(), run.clone()),
            ("parity".to_string(), "odd".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    assert_eq!(s.client.list_databases(odd).await.expect("odd").len(), 3);
    let pg = ListFilter {
        backend: Backend::Postgres,
        ..Default::default()
    };
    assert!(s.client.list_databases(pg).await.expect("pg").is_empty());

    let mut raw =
        dbforge::pb::database_service_client::DatabaseServiceClient::new(s.client.channel());
    let bad = raw
        .list_databases(dbforge::pb::ListDatabasesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(bad.expect_err("bad token").code(), Code::InvalidArgument);
}

#[tokio::test]
async fn prune_then_respawn_gives_an_empty_database() {
    let s = TestServer::start().await;
    let name = s.db("respawn").await;
    s.client
        .execute(&name, "CREATE TABLE t (x)", &[])
        .await
        .expect("ddl");
    s.client.delete_database(&name).await.expect("delete");
    s.client
        .create_database(&name, CreateOptions::default())
        .await
        .expect("respawn");
    let err = assert_code(
        s.client.execute(&name, "SELECT * FROM t", &[]).await,
        Code::InvalidArgument,
    );
    assert!(err.message().contains("no such table"), "{err}");
}

#[tokio::test]
async fn health_reports_each_service() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let s = TestServer::start().await;
    let mut health = HealthClient::new(s.client.channel());
    for service in [
        "",
        "dbforge.v1.DatabaseService",
        "dbforge.v1.QueryService",
        "dbforge.v1.TableService",
        "dbforge.v1.AccessService",
        "dbforge.v1.OperationsService",
        "dbforge.backend.sqlite",
    ] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service}");
    }
}
