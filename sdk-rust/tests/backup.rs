//! Backups, restores and policies through the SDK, against a gateway started in this process
//! (SQLite databases, the default `local` target in its data directory).

mod gateway;

use std::time::Duration;

use dbforge::{
    Backend, BackupFilter, BackupPolicy, BackupStatus, Code, CreateBackup, RestoreMode, Schedule,
    Selector, Value,
};
use gateway::Gateway;

const NOTES: &str = "SELECT id, body FROM notes ORDER BY id";

async fn notes_db(g: &Gateway, name: &str) -> String {
    let db = g.db(name).await;
    g.client
        .execute(
            &db,
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
            &[],
        )
        .await
        .expect("create table");
    g.client
        .execute(
            &db,
            "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')",
            &[],
        )
        .await
        .expect("insert");
    db
}

fn note(id: i64, body: &str) -> Vec<Value> {
    vec![Value::from(id), Value::from(body)]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_a_deleted_row_in_place_after_a_safety_backup() {
    let g = Gateway::start().await;
    let db = notes_db(&g, "notes").await;

    let backup = g
        .client
        .create_backup(&db, CreateBackup::default().label("why", "test"))
        .await
        .expect("create backup");
    assert_eq!(backup.database, db);
    assert_eq!(backup.backend, Backend::Sqlite);
    assert_eq!(backup.status, BackupStatus::Completed, "{}", backup.error);
    assert!(backup.size_bytes > 0);
    assert_eq!(backup.sha256.len(), 64, "hex SHA-256: {}", backup.sha256);
    assert_eq!(backup.labels["why"], "test");
    let manifest = backup
        .manifest
        .clone()
        .expect("a completed backup has a manifest");
    assert_eq!(manifest.total_rows, 3);
    assert_eq!(manifest.row_counts[0].table, "notes");
    assert_eq!(manifest.row_counts[0].rows, 3);

    assert_eq!(
        g.client.get_backup(&backup.id).await.expect("get"),
        backup,
        "GetBackup answers what CreateBackup did"
    );
    let listed = g
        .client
        .list_backups(BackupFilter::database(&db))
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|b| &b.id).collect::<Vec<_>>(),
        [&backup.id]
    );
    let by_label = g
        .client
        .list_backups(BackupFilter::default().label("why", "test"))
        .await
        .expect("list by label");
    assert_eq!(by_label.len(), 1);
    let none = g
        .client
        .list_backups(BackupFilter::database(&db).status(BackupStatus::Failed))
        .await
        .expect("list failed");
    assert!(none.is_empty(), "{none:?}");

    g.client
        .execute(&db, "DELETE FROM notes WHERE id = 2", &[])
        .await
        .expect("delete a row");
    let restored = g
        .client
        .restore_backup(&backup.id, RestoreMode::Replace)
        .await
        .expect("restore");
    assert_eq!(restored.database.name, db);
    assert_eq!(
        g.rows(&db, NOTES).await,
        [note(1, "one"), note(2, "two"), note(3, "three")],
        "the deleted row is back"
    );
    let safety = restored
        .safety_backup
        .expect("REPLACE names its safety backup");
    assert_eq!(safety.database, db);
    assert_eq!(safety.status, BackupStatus::Completed);
    assert_eq!(
        safety.manifest.map(|m| m.total_rows),
        Some(2),
        "it holds the database as it was just before the restore"
    );
    let ids: Vec<String> = g
        .client
        .list_backups(BackupFilter::database(&db))
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, [safety.id.clone(), backup.id.clone()], "newest first");

    // The safety backup undoes the restore.
    g.client
        .restore_backup(&safety.id, RestoreMode::Replace)
        .await
        .expect("undo");
    assert_eq!(
        g.rows(&db, "SELECT count(*) FROM notes").await,
        [vec![Value::from(2_i64)]]
    );

    g.client.delete_backup(&backup.id).await.expect("delete");
    let err = g.client.get_backup(&backup.id).await.expect_err("deleted");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(
        !g.client
            .delete_backup_if_exists(&backup.id)
            .await
            .expect("if exists")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_into_a_new_database_leaving_the_original_alone() {
    let g = Gateway::start().await;
    let db = notes_db(&g, "origin").await;
    let backup = g
        .client
        .create_backup(&db, CreateBackup::default())
        .await
        .expect("create backup");
    g.client
        .execute(&db, "DELETE FROM notes", &[])
        .await
        .expect("empty the original");

    let restored = g
        .client
        .restore_backup(
            &backup.id,
            RestoreMode::New {
                name: "origin-copy".into(),
                labels: [("from".to_owned(), backup.id.clone())].into(),
            },
        )
        .await
        .expect("restore new");
    assert_eq!(restored.database.name, "origin-copy");
    assert_eq!(restored.database.backend, Backend::Sqlite);
    assert_eq!(restored.database.labels["from"], backup.id);
    assert_eq!(restored.safety_backup, None, "NEW replaces nothing");
    assert_eq!(restored.rows, 3);
    assert_eq!(
        g.rows("origin-copy", NOTES).await,
        [note(1, "one"), note(2, "two"), note(3, "three")]
    );
    assert!(
        g.rows(&db, NOTES).await.is_empty(),
        "the original is untouched"
    );

    let err = g
        .client
        .restore_backup(&backup.id, RestoreMode::new("origin-copy"))
        .await
        .expect_err("the name is taken");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_set_listed_replaced_and_deleted() {
    let g = Gateway::start().await;
    let db = notes_db(&g, "scheduled").await;

    let policy = BackupPolicy::new(
        "every-6h",
        Selector::Database(db.clone()),
        Schedule::Every(Duration::from_secs(6 * 3600)),
    )
    .keep_last(5)
    .keep_within(Duration::from_secs(7 * 86_400));
    let (stored, created) = g
        .client
        .set_backup_policy(policy.clone())
        .await
        .expect("set");
    assert!(created);
    assert_eq!(
        (&stored.name, &stored.selector, &stored.schedule),
        (&policy.name, &policy.selector, &policy.schedule)
    );
    assert_eq!(
        (stored.keep_last, stored.keep_within),
        (5, policy.keep_within)
    );
    assert!(stored.updated_at.is_some());
    assert!(stored.next_run_at.is_some(), "the server says when it runs");

    let nightly = BackupPolicy::new(
        "nightly",
        Selector::Pattern("sched*".into()),
        Schedule::Cron("0 3 * * *".into()),
    )
    .keep_last(7);
    g.client.set_backup_policy(nightly).await.expect("set cron");
    let (_, created) = g
        .client
        .set_backup_policy(policy.clone().keep_last(9))
        .await
        .expect("replace");
    assert!(!created, "same name replaces");

    let listed = g.client.list_backup_policies().await.expect("list");
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["every-6h", "nightly"],
        "by name"
    );
    assert_eq!(listed[0].keep_last, 9);
    assert_eq!(listed[1].schedule, Schedule::Cron("0 3 * * *".into()));

    g.client
        .delete_backup_policy("nightly")
        .await
        .expect("delete");
    let err = g
        .client
        .delete_backup_policy("nightly")
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(
        !g.client
            .delete_backup_policy_if_exists("nightly")
            .await
            .expect("if exists")
    );

    let err = g
        .client
        .set_backup_policy(BackupPolicy::new(
            "no-retention",
            Selector::Database(db),
            Schedule::Every(Duration::from_secs(3600)),
        ))
        .await
        .expect_err("neither keep_last nor keep_within");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_backups_and_databases_are_not_found() {
    let g = Gateway::start().await;
    let err = g
        .client
        .restore_backup("bk-000000000000-00000000", RestoreMode::Replace)
        .await
        .expect_err("no such backup");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = g
        .client
        .create_backup("no-such-database", CreateBackup::default())
        .await
        .expect_err("no such database");
    assert_eq!(err.code(), Code::NotFound, "{err}");
}
