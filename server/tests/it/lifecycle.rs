//! Lifecycles through gRPC: TTLs and idle TTLs set at creation or by UpdateDatabase, the
//! pruner (run on demand against a manual clock, so no test waits for a real TTL), the final
//! backup before a prune and what its failure keeps, audit records and metrics, and who may
//! change a database's lifecycle.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use dbforge::{
    AuditFilter, Backend, BackupFilter, BackupStatus, Client, Code, CreateBackup, CreateOptions,
    DatabaseEvent, DatabaseEventType, DatabaseEvents, ForkOptions, Grant, Role, UpdateOptions,
    WatchOptions,
};
use dbforge_server::{
    config::Config,
    core::{
        clock::{Clock, ManualClock},
        lifecycle::{PruneCause, PruneTrigger},
    },
};

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, assert_code, metric_value, mysql_url, postgres_url, redis_url,
    scrape_metrics, unique,
};

const MIN: Duration = Duration::from_secs(60);

/// A gateway on a manual clock whose pruner runs only when asked.
pub(crate) struct Lab {
    pub(crate) s: TestServer,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) pruner: PruneTrigger,
}

impl Lab {
    pub(crate) async fn start(f: impl FnOnce(Config) -> Config) -> Self {
        let clock = ManualClock::new();
        let pruner = PruneTrigger::new();
        let (c, p) = (Arc::clone(&clock), pruner.clone());
        let s = TestServer::with(move |mut cfg| {
            cfg.clock = Some(c);
            cfg.prune_trigger = Some(p);
            // Passes run when a test asks, not on their own.
            cfg.prune_interval = Duration::from_secs(24 * 3600);
            f(cfg)
        })
        .await;
        Lab { s, clock, pruner }
    }

    /// A gateway serving `backend` at `url` as well as SQLite.
    pub(crate) async fn serving(backend: Backend, url: Option<String>) -> Self {
        Self::start(move |mut c| {
            match backend {
                Backend::Postgres => c.postgres_url = url,
                Backend::Mysql => c.mysql_url = url,
                Backend::Redis => c.redis_url = url,
                _ => {}
            }
            c
        })
        .await
    }

    pub(crate) fn c(&self) -> &Client {
        &self.s.client
    }

    /// Runs one pruner pass; the names it pruned, with their causes.
    pub(crate) async fn prune(&self) -> Vec<(String, PruneCause)> {
        self.pruner.run().await.pruned
    }

    pub(crate) async fn exists(&self, name: &str) -> bool {
        match self.c().get_database(name).await {
            Ok(_) => true,
            Err(e) if e.code() == Code::NotFound => false,
            Err(e) => panic!("get {name}: {e}"),
        }
    }
}

pub(crate) fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

async fn expires_and_idles(backend: Backend, url: Option<String>) {
    let lab = Lab::serving(backend, url).await;
    let c = lab.c();
    let (expiring, idle, used, forever) = (
        unique("ttl"),
        unique("idle"),
        unique("used"),
        unique("keep"),
    );
    let t0 = lab.clock.now_ms();
    let db = c
        .create_database(
            &expiring,
            CreateOptions::default().backend(backend).ttl(60 * MIN),
        )
        .await
        .expect("create with a TTL")
        .database;
    assert_eq!(
        db.expire_at.map(ms),
        Some(t0 + 3_600_000),
        "TTL counts from now"
    );
    assert_eq!(db.idle_ttl, None);
    for name in [&idle, &used] {
        let db = c
            .create_database(
                name,
                CreateOptions::default().backend(backend).idle_ttl(30 * MIN),
            )
            .await
            .expect("create with an idle TTL")
            .database;
        assert_eq!(db.idle_ttl, Some(30 * MIN));
        assert_eq!(db.expire_at, None);
    }
    c.create_database(&forever, CreateOptions::default().backend(backend))
        .await
        .expect("create");

    // Nothing is due yet.
    lab.clock.advance(20 * MIN);
    assert_eq!(lab.prune().await, vec![]);
    // A data-plane call is activity; a control-plane call is not.
    let probe = if backend == Backend::Redis {
        "PING"
    } else {
        "SELECT 1"
    };
    c.execute(&used, probe, &[]).await.expect("use");
    c.get_database(&idle).await.expect("get is not activity");
    lab.clock.advance(15 * MIN);
    assert_eq!(lab.prune().await, vec![(idle.clone(), PruneCause::Idle)]);
    assert!(!lab.exists(&idle).await);
    assert!(lab.exists(&used).await, "used 15 minutes ago");

    lab.clock.advance(30 * MIN);
    let mut pruned = lab.prune().await;
    pruned.sort();
    let mut want = vec![
        (expiring.clone(), PruneCause::Expired),
        (used.clone(), PruneCause::Idle),
    ];
    want.sort();
    assert_eq!(pruned, want);
    for name in [&expiring, &used] {
        assert!(!lab.exists(name).await, "{name} pruned");
    }
    assert!(lab.exists(&forever).await, "no TTL, never pruned");
    lab.clock.advance(1000 * 24 * 60 * MIN);
    assert_eq!(lab.prune().await, vec![]);

    // Audited with the cause, under the gateway's key, and counted.
    for (name, cause) in [(&expiring, "expired"), (&idle, "idle"), (&used, "idle")] {
        let (events, _) = c
            .list_audit_events(AuditFilter {
                database: name.clone(),
                ..Default::default()
            })
            .await
            .expect("audit");
        let prune = events
            .iter()
            .find(|e| e.rpc == "Prune")
            .unwrap_or_else(|| panic!("no Prune record for {name}: {events:?}"));
        assert_eq!(prune.key_id, "gateway");
        assert_eq!(prune.outcome, "OK");
        assert_eq!(prune.statement, format!("cause={cause}"));
    }
    let text = scrape_metrics(&lab.s).await;
    let series = |cause: &str| {
        metric_value(
            &text,
            "dbforge_prunes_total{",
            &[
                &format!("backend=\"{}\"", backend_name(backend)),
                &format!("cause=\"{cause}\""),
                "outcome=\"pruned\"",
            ],
        )
    };
    assert_eq!(series("expired").as_deref(), Some("1"), "{text}");
    assert_eq!(series("idle").as_deref(), Some("2"));
}

pub(crate) fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Postgres => "postgres",
        Backend::Mysql => "mysql",
        Backend::Redis => "redis",
        _ => "sqlite",
    }
}

#[tokio::test]
async fn sqlite_databases_past_their_ttl_or_idle_ttl_are_pruned() {
    expires_and_idles(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn postgres_databases_past_their_ttl_or_idle_ttl_are_pruned() {
    let Some(url) = postgres_url().await else {
        return;
    };
    expires_and_idles(Backend::Postgres, Some(url)).await;
}

#[tokio::test]
async fn mysql_databases_past_their_ttl_or_idle_ttl_are_pruned() {
    let Some(url) = mysql_url().await else {
        return;
    };
    expires_and_idles(Backend::Mysql, Some(url)).await;
}

#[tokio::test]
async fn redis_databases_past_their_ttl_or_idle_ttl_are_pruned() {
    let Some(url) = redis_url().await else {
        return;
    };
    expires_and_idles(Backend::Redis, Some(url)).await;
}

async fn backs_up_before_pruning(backend: Backend, url: Option<String>) {
    let lab = Lab::serving(backend, url).await;
    let c = lab.c();
    let name = unique("final");
    let db = c
        .create_database(
            &name,
            CreateOptions::default()
                .backend(backend)
                .ttl(10 * MIN)
                .backup_before_prune(),
        )
        .await
        .expect("create")
        .database;
    assert!(db.backup_before_prune);
    let write = if backend == Backend::Redis {
        "SET k v"
    } else {
        "CREATE TABLE kept (id INT)"
    };
    c.execute(&name, write, &[]).await.expect("write");
    lab.clock.advance(11 * MIN);
    assert_eq!(lab.prune().await, vec![(name.clone(), PruneCause::Expired)]);
    assert!(!lab.exists(&name).await);
    let backups = c
        .list_backups(BackupFilter::database(&name))
        .await
        .expect("list backups");
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(backups[0].status, BackupStatus::Completed);
    assert_eq!(
        backups[0]
            .labels
            .get("dbforge.final-before-prune")
            .map(String::as_str),
        Some("expired")
    );
    let (events, _) = c
        .list_audit_events(AuditFilter {
            database: name.clone(),
            ..Default::default()
        })
        .await
        .expect("audit");
    let prune = events.iter().find(|e| e.rpc == "Prune").expect("audited");
    assert_eq!(
        prune.statement,
        format!("cause=expired backup={}", backups[0].id)
    );
}

#[tokio::test]
async fn sqlite_databases_are_backed_up_before_their_prune_when_asked() {
    backs_up_before_pruning(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn postgres_databases_are_backed_up_before_their_prune_when_asked() {
    let Some(url) = postgres_url().await else {
        return;
    };
    backs_up_before_pruning(Backend::Postgres, Some(url)).await;
}

#[tokio::test]
async fn a_failed_final_backup_keeps_the_database() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let name = unique("nobackup");
    c.create_database(
        &name,
        CreateOptions::default()
            .idle_ttl(5 * MIN)
            .backup_before_prune(),
    )
    .await
    .expect("create");
    // The default target is <data-dir>/backups: a file there makes every backup fail.
    let dir = lab.s.data_dir().join("backups");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::write(&dir, b"not a directory").expect("block the target");
    lab.clock.advance(6 * MIN);
    let report = lab.pruner.run().await;
    assert_eq!(report.pruned, vec![]);
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert_eq!(report.kept[0].0, name);
    assert!(
        lab.exists(&name).await,
        "kept after its final backup failed"
    );
    let (events, _) = c
        .list_audit_events(AuditFilter {
            database: name.clone(),
            ..Default::default()
        })
        .await
        .expect("audit");
    let prune = events.iter().find(|e| e.rpc == "Prune").expect("audited");
    assert_eq!(prune.outcome, "ABORTED");
    assert!(
        prune
            .statement
            .starts_with("cause=idle final backup failed:"),
        "{}",
        prune.statement
    );
    let text = scrape_metrics(&lab.s).await;
    assert_eq!(
        metric_value(
            &text,
            "dbforge_prunes_total{",
            &["cause=\"idle\"", "outcome=\"backup_failed\""]
        )
        .as_deref(),
        Some("1")
    );
    // Once backups work again, the next pass backs it up and prunes it.
    std::fs::remove_file(&dir).expect("unblock");
    assert_eq!(lab.prune().await, vec![(name.clone(), PruneCause::Idle)]);
}

#[tokio::test]
async fn update_database_changes_labels_and_lifecycle() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let name = unique("upd");
    c.create_database(
        &name,
        CreateOptions::default().label("a", "1").ttl(10 * MIN),
    )
    .await
    .expect("create");
    let now = lab.clock.now_ms();

    // Only what is named changes.
    let db = c
        .update_database(&name, UpdateOptions::default().idle_ttl(45 * MIN))
        .await
        .expect("idle ttl");
    assert_eq!(db.idle_ttl, Some(45 * MIN));
    assert_eq!(db.expire_at.map(ms), Some(now + 600_000));
    assert_eq!(db.labels.get("a").map(String::as_str), Some("1"));
    assert!(!db.backup_before_prune);

    // A new TTL counts from now on the gateway's clock; labels are replaced as a whole.
    lab.clock.advance(5 * MIN);
    let db = c
        .update_database(
            &name,
            UpdateOptions::default()
                .ttl(60 * MIN)
                .labels([("b", "2")])
                .backup_before_prune(true),
        )
        .await
        .expect("ttl");
    assert_eq!(db.expire_at.map(ms), Some(now + 300_000 + 3_600_000));
    assert_eq!(
        db.labels.into_iter().collect::<Vec<_>>(),
        vec![("b".to_owned(), "2".to_owned())]
    );
    assert!(db.backup_before_prune);
    // GetDatabase and ListDatabases show the same.
    assert_eq!(
        c.get_database(&name).await.expect("get").expire_at.map(ms),
        Some(now + 300_000 + 3_600_000)
    );
    // The old TTL no longer applies.
    lab.clock.advance(10 * MIN);
    assert_eq!(lab.prune().await, vec![]);

    // An absolute time; clearing.
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis((lab.clock.now_ms() + 120_000) as u64);
    let db = c
        .update_database(&name, UpdateOptions::default().expire_at(at))
        .await
        .expect("expire at");
    assert_eq!(db.expire_at, Some(at));
    let db = c
        .update_database(&name, UpdateOptions::default().clear_ttl().clear_idle_ttl())
        .await
        .expect("clear");
    assert_eq!((db.expire_at, db.idle_ttl), (None, None));
    lab.clock.advance(10_000 * MIN);
    assert_eq!(lab.prune().await, vec![], "nothing left to expire");

    // Errors.
    let past = SystemTime::UNIX_EPOCH + Duration::from_millis((lab.clock.now_ms() - 1) as u64);
    let e = assert_code(
        c.update_database(&name, UpdateOptions::default().expire_at(past))
            .await,
        Code::InvalidArgument,
    );
    assert!(e.to_string().contains("expire_at"), "{e}");
    assert_code(
        c.update_database(&name, UpdateOptions::default().ttl(Duration::ZERO))
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        c.update_database(&name, UpdateOptions::default().labels([("Bad Key", "x")]))
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        c.update_database("no-such-db", UpdateOptions::default().ttl(MIN))
            .await,
        Code::NotFound,
    );
    assert_code(
        c.create_database(
            &unique("zero"),
            CreateOptions::default().idle_ttl(Duration::ZERO),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_code(
        c.create_database(&unique("past"), CreateOptions::default().expire_at(past))
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn lifecycles_survive_a_restart() {
    let lab = Lab::start(|c| c).await;
    let name = unique("restart");
    lab.c()
        .create_database(
            &name,
            CreateOptions::default()
                .ttl(60 * MIN)
                .idle_ttl(30 * MIN)
                .backup_before_prune(),
        )
        .await
        .expect("create");
    let before = lab.c().get_database(&name).await.expect("get");
    let Lab { s, clock, .. } = lab;
    let dir = s.stop().await.expect("temp dir");
    let pruner = PruneTrigger::new();
    let (c2, p2) = (Arc::clone(&clock), pruner.clone());
    let data_dir = dir.path().to_path_buf();
    let s = TestServer::with(move |mut cfg| {
        cfg.data_dir = data_dir;
        cfg.clock = Some(c2);
        cfg.prune_trigger = Some(p2);
        cfg.prune_interval = Duration::from_secs(24 * 3600);
        cfg
    })
    .await;
    let after = s.client.get_database(&name).await.expect("get");
    assert_eq!(after.expire_at, before.expire_at);
    assert_eq!(after.idle_ttl, before.idle_ttl);
    assert!(after.backup_before_prune);
    clock.advance(61 * MIN);
    let report = pruner.run().await;
    assert_eq!(report.pruned, vec![(name.clone(), PruneCause::Expired)]);
    drop(dir);
}

#[tokio::test]
async fn only_an_owner_may_update_a_database() {
    let lab = Lab::start(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN_KEY.into());
        c
    })
    .await;
    let admin = as_key(&lab.s, ADMIN_KEY).await;
    let db = unique("owned");
    admin
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create");
    let mut clients = Vec::new();
    for role in [Role::Read, Role::Write, Role::Owner] {
        let (_, key) = admin
            .create_api_key(dbforge::ApiKeySpec::new("k").grant(Grant::database(&db, role)))
            .await
            .expect("key");
        clients.push((role, as_key(&lab.s, &key).await));
    }
    for (role, c) in &clients {
        let res = c
            .update_database(&db, UpdateOptions::default().ttl(MIN))
            .await;
        if *role == Role::Owner {
            res.expect("an owner grant may update");
        } else {
            let e = assert_code(res, Code::PermissionDenied);
            assert!(!e.to_string().is_empty());
        }
    }
    // A name outside the grants is PERMISSION_DENIED whether it exists or not.
    let (_, c) = &clients[2];
    assert_code(
        c.update_database("elsewhere", UpdateOptions::default().ttl(MIN))
            .await,
        Code::PermissionDenied,
    );
    // The creator owns what it creates.
    let (_, creator_key) = admin
        .create_api_key(
            // A read grant: what it owns, it owns for having created it.
            dbforge::ApiKeySpec::new("creator")
                .can_create(5)
                .grant(Grant::pattern("mine-*", Role::Read)),
        )
        .await
        .expect("key");
    let creator = as_key(&lab.s, &creator_key).await;
    let mine = unique("mine");
    creator
        .create_database(&mine, CreateOptions::default())
        .await
        .expect("create own");
    creator
        .update_database(&mine, UpdateOptions::default().idle_ttl(MIN))
        .await
        .expect("the creator may update");
}

// ---- WatchDatabases ------------------------------------------------------------------------

pub(crate) async fn next_event(w: &mut DatabaseEvents) -> DatabaseEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream did not fail")
        .expect("the stream did not end")
}

/// Sends created, forked, backed_up, restored, deleted and expired events, numbered one by one.
async fn watch_round(backend: Backend, url: Option<String>) {
    let lab = Lab::serving(backend, url).await;
    let c = lab.c();
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");
    let (a, b) = (unique("wa"), unique("wb"));
    c.create_database(
        &a,
        CreateOptions::default()
            .backend(backend)
            .label("team", "x")
            .ttl(10 * MIN),
    )
    .await
    .expect("create");
    let created = next_event(&mut w).await;
    assert_eq!(
        (created.kind, created.database.as_str(), created.backend),
        (DatabaseEventType::Created, a.as_str(), backend)
    );
    assert_eq!(created.key_id, "-", "no authentication");
    assert_eq!(created.labels.get("team").map(String::as_str), Some("x"));
    c.fork_database(&a, &b, ForkOptions::default())
        .await
        .expect("fork");
    let forked = next_event(&mut w).await;
    assert_eq!(
        (forked.kind, forked.database.as_str(), forked.cause.as_str()),
        (
            DatabaseEventType::Forked,
            b.as_str(),
            format!("source={a}").as_str()
        )
    );
    assert_eq!(forked.sequence, created.sequence + 1);
    let backup = c
        .create_backup(&b, CreateBackup::default())
        .await
        .expect("backup");
    let backed_up = next_event(&mut w).await;
    assert_eq!(
        (backed_up.kind, backed_up.database.as_str()),
        (DatabaseEventType::BackedUp, b.as_str())
    );
    assert_eq!(backed_up.cause, format!("backup={}", backup.id));
    c.restore_backup(&backup.id, dbforge::RestoreMode::Replace)
        .await
        .expect("restore");
    let restored = next_event(&mut w).await;
    assert_eq!(
        (restored.kind, restored.database.as_str()),
        (DatabaseEventType::Restored, b.as_str())
    );
    c.delete_database(&b).await.expect("delete");
    let deleted = next_event(&mut w).await;
    assert_eq!(
        (deleted.kind, deleted.database.as_str()),
        (DatabaseEventType::Deleted, b.as_str())
    );
    lab.clock.advance(11 * MIN);
    assert_eq!(lab.prune().await, vec![(a.clone(), PruneCause::Expired)]);
    let expired = next_event(&mut w).await;
    assert_eq!(
        (
            expired.kind,
            expired.database.as_str(),
            expired.cause.as_str(),
            expired.key_id.as_str()
        ),
        (DatabaseEventType::Expired, a.as_str(), "ttl", "gateway")
    );
    assert_eq!(expired.sequence, deleted.sequence + 1);
    assert_eq!(ms(expired.time), lab.clock.now_ms(), "the gateway's clock");
}

#[tokio::test]
async fn sqlite_lifecycle_events_are_watched_in_order() {
    watch_round(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn postgres_lifecycle_events_are_watched_in_order() {
    let Some(url) = postgres_url().await else {
        return;
    };
    watch_round(Backend::Postgres, Some(url)).await;
}

#[tokio::test]
async fn a_resumed_watch_gets_every_later_event_once_and_in_order() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");
    let names: Vec<String> = (0..6).map(|_| unique("rs")).collect();
    for n in &names[..3] {
        c.create_database(n, CreateOptions::default())
            .await
            .expect("create");
    }
    let first = next_event(&mut w).await;
    assert_eq!(first.database, names[0]);
    // The connection drops with two events unread; three more happen meanwhile.
    drop(w);
    for n in &names[3..] {
        c.create_database(n, CreateOptions::default())
            .await
            .expect("create");
    }
    let mut w = c
        .watch_databases(WatchOptions::default().since(first.sequence))
        .await
        .expect("resume");
    for (i, n) in names[1..].iter().enumerate() {
        let e = next_event(&mut w).await;
        assert_eq!(
            (e.sequence, e.database.as_str()),
            (first.sequence + 1 + i as i64, n.as_str())
        );
    }
    // Then live ones, with no repeat of the stored ones.
    c.delete_database(&names[0]).await.expect("delete");
    let live = next_event(&mut w).await;
    assert_eq!(
        (live.sequence, live.kind),
        (first.sequence + 6, DatabaseEventType::Deleted)
    );
    // A since beyond the newest event is OUT_OF_RANGE.
    let res = match c
        .watch_databases(WatchOptions::default().since(live.sequence + 100))
        .await
    {
        Ok(mut w) => w.next().await.map(drop),
        Err(e) => Err(e),
    };
    assert_code(res, Code::OutOfRange);
}

/// A key that may create databases named `<prefix>-*` (and so owns them).
async fn creator(s: &TestServer, admin: &Client, prefix: &str) -> Client {
    let (_, k) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new(prefix)
                .can_create(5)
                .grant(Grant::pattern(format!("{prefix}-*"), Role::Read)),
        )
        .await
        .expect("key");
    as_key(s, &k).await
}

#[tokio::test]
async fn a_key_watches_only_the_databases_it_can_see() {
    let lab = Lab::start(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN_KEY.into());
        c
    })
    .await;
    let admin = as_key(&lab.s, ADMIN_KEY).await;
    let (ka, kb) = (
        creator(&lab.s, &admin, "ka").await,
        creator(&lab.s, &admin, "kb").await,
    );
    let mut wa = ka
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch a");
    let mut wb = kb
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch b");
    let mut wall = admin
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch all");
    let (a1, b1, a2) = (unique("ka"), unique("kb"), unique("ka"));
    admin
        .create_database(&a1, CreateOptions::default())
        .await
        .expect("a1");
    kb.create_database(&b1, CreateOptions::default())
        .await
        .expect("b1");
    ka.create_database(&a2, CreateOptions::default())
        .await
        .expect("a2");
    let seen_a = [next_event(&mut wa).await, next_event(&mut wa).await];
    assert_eq!(
        seen_a
            .iter()
            .map(|e| e.database.as_str())
            .collect::<Vec<_>>(),
        vec![a1.as_str(), a2.as_str()]
    );
    assert_eq!(seen_a[1].key_id, ka.who_am_i().await.expect("whoami").id);
    let seen_b = next_event(&mut wb).await;
    assert_eq!(seen_b.database, b1);
    let all: Vec<String> = [
        next_event(&mut wall).await,
        next_event(&mut wall).await,
        next_event(&mut wall).await,
    ]
    .into_iter()
    .map(|e| e.database)
    .collect();
    assert_eq!(all, vec![a1, b1.clone(), a2]);
    // The label selector narrows further; b's key still sees nothing of a's databases.
    kb.delete_database(&b1).await.expect("delete b1");
    let gone = next_event(&mut wb).await;
    assert_eq!(
        (gone.kind, gone.database.as_str()),
        (DatabaseEventType::Deleted, b1.as_str())
    );
}

#[tokio::test]
async fn mysql_lifecycle_events_are_watched_in_order() {
    let Some(url) = mysql_url().await else {
        return;
    };
    watch_round(Backend::Mysql, Some(url)).await;
}

#[tokio::test]
async fn redis_lifecycle_events_are_watched_in_order() {
    let Some(url) = redis_url().await else {
        return;
    };
    watch_round(Backend::Redis, Some(url)).await;
}

#[tokio::test]
async fn mysql_databases_are_backed_up_before_their_prune_when_asked() {
    let Some(url) = mysql_url().await else {
        return;
    };
    backs_up_before_pruning(Backend::Mysql, Some(url)).await;
}

#[tokio::test]
async fn redis_databases_are_backed_up_before_their_prune_when_asked() {
    let Some(url) = redis_url().await else {
        return;
    };
    backs_up_before_pruning(Backend::Redis, Some(url)).await;
}
