//! Lifecycle policies through gRPC: prunes for idleness and age on every engine (on a manual
//! clock), how a database's own TTL and a policy combine (the stricter wins), the per-key
//! limit at create and fork, who may set and see policies, and that they survive a restart.
//! Also ForkDatabase's own TTLs and UpdateDatabase's event.

use std::{sync::Arc, time::Duration};

use dbforge::{
    AuditFilter, Backend, Code, CreateOptions, DatabaseEventType, ForkOptions, Grant,
    LifecyclePolicy, Role, UpdateOptions, WatchOptions,
};
use dbforge_server::core::{
    clock::Clock,
    lifecycle::{PruneCause, PruneTrigger},
};

use crate::{
    harness::{
        ADMIN_KEY, TestServer, as_key, assert_code, metric_value, mysql_url, postgres_url,
        redis_url, scrape_metrics, unique,
    },
    lifecycle::{Lab, backend_name, ms, next_event},
};

const MIN: Duration = Duration::from_secs(60);

/// A policy on `prefix-*` prunes idle and old databases on `backend`, naming itself as the
/// cause; a database's own shorter TTL still wins; unselected databases stay.
async fn policies_prune(backend: Backend, url: Option<String>) {
    let lab = Lab::serving(backend, url).await;
    let c = lab.c();
    let prefix = unique("pol");
    let policy = format!("idle-{}", backend_name(backend));
    let (stored, created) = c
        .set_lifecycle_policy(
            LifecyclePolicy::pattern(&policy, format!("{prefix}-*"))
                .idle_ttl(30 * MIN)
                .max_age(120 * MIN),
        )
        .await
        .expect("set");
    assert!(created);
    assert_eq!(stored.updated_by, "-");
    let (idle, short, used, other) = (
        format!("{prefix}-idle"),
        format!("{prefix}-short"),
        format!("{prefix}-used"),
        unique("unselected"),
    );
    let opts = || CreateOptions::default().backend(backend);
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");
    // Created after the policy: it applies to future databases.
    c.create_database(&idle, opts()).await.expect("idle");
    c.create_database(&used, opts()).await.expect("used");
    c.create_database(&other, opts()).await.expect("other");
    // Its own TTL is shorter than the policy's rules: the stricter wins.
    c.create_database(&short, opts().ttl(10 * MIN))
        .await
        .expect("short");
    for _ in 0..4 {
        next_event(&mut w).await;
    }
    let probe = if backend == Backend::Redis {
        "PING"
    } else {
        "SELECT 1"
    };
    lab.clock.advance(11 * MIN);
    assert_eq!(
        lab.prune().await,
        vec![(short.clone(), PruneCause::Expired)]
    );
    let own = next_event(&mut w).await;
    assert_eq!(
        (own.kind, own.database.as_str(), own.cause.as_str()),
        (DatabaseEventType::Expired, short.as_str(), "ttl")
    );
    c.execute(&used, probe, &[]).await.expect("use");
    lab.clock.advance(20 * MIN);
    assert_eq!(lab.prune().await, vec![(idle.clone(), PruneCause::Idle)]);
    let by_policy = next_event(&mut w).await;
    assert_eq!(
        (
            by_policy.kind,
            by_policy.database.as_str(),
            by_policy.cause.clone(),
            by_policy.key_id.as_str()
        ),
        (
            DatabaseEventType::PrunedIdle,
            idle.as_str(),
            format!("policy={policy}"),
            "gateway"
        )
    );
    // Kept busy, it still reaches the policy's max age.
    // At 31 minutes now; kept busy until 106, then 121 minutes after its creation.
    for _ in 0..3 {
        c.execute(&used, probe, &[]).await.expect("use");
        lab.clock.advance(25 * MIN);
        assert_eq!(lab.prune().await, vec![]);
    }
    c.execute(&used, probe, &[]).await.expect("use");
    lab.clock.advance(15 * MIN);
    assert_eq!(lab.prune().await, vec![(used.clone(), PruneCause::Expired)]);
    let aged = next_event(&mut w).await;
    assert_eq!(
        (aged.kind, aged.cause.clone()),
        (DatabaseEventType::Expired, format!("policy={policy}"))
    );
    assert_eq!(ms(aged.time), lab.clock.now_ms());
    assert!(lab.exists(&other).await, "not selected by the policy");

    let (audit, _) = c
        .list_audit_events(AuditFilter {
            database: idle.clone(),
            ..Default::default()
        })
        .await
        .expect("audit");
    let prune = audit.iter().find(|e| e.rpc == "Prune").expect("audited");
    assert_eq!(prune.statement, format!("cause=idle policy={policy}"));
    let text = scrape_metrics(&lab.s).await;
    for action in ["pruned_idle", "pruned_expired"] {
        assert_eq!(
            metric_value(
                &text,
                "dbforge_policy_actions_total{",
                &[
                    &format!("policy=\"{policy}\""),
                    &format!("action=\"{action}\"")
                ],
            )
            .as_deref(),
            Some("1"),
            "{action}: {text}"
        );
    }
    c.delete_lifecycle_policy(&policy).await.expect("delete");
    c.delete_database(&other).await.expect("clean up");
}

#[tokio::test]
async fn sqlite_databases_are_pruned_by_lifecycle_policies() {
    policies_prune(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn postgres_databases_are_pruned_by_lifecycle_policies() {
    let Some(url) = postgres_url().await else {
        return;
    };
    policies_prune(Backend::Postgres, Some(url)).await;
}

#[tokio::test]
async fn mysql_databases_are_pruned_by_lifecycle_policies() {
    let Some(url) = mysql_url().await else {
        return;
    };
    policies_prune(Backend::Mysql, Some(url)).await;
}

#[tokio::test]
async fn redis_databases_are_pruned_by_lifecycle_policies() {
    let Some(url) = redis_url().await else {
        return;
    };
    policies_prune(Backend::Redis, Some(url)).await;
}

#[tokio::test]
async fn label_selectors_and_existing_databases_are_covered() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let (tagged, untagged) = (unique("tagged"), unique("untagged"));
    // Exist before the policy.
    c.create_database(&tagged, CreateOptions::default().label("tier", "scratch"))
        .await
        .expect("create");
    c.create_database(&untagged, CreateOptions::default().label("tier", "prod"))
        .await
        .expect("create");
    c.set_lifecycle_policy(
        LifecyclePolicy::labels("scratch", [("tier", "scratch")]).max_age(60 * MIN),
    )
    .await
    .expect("set");
    lab.clock.advance(61 * MIN);
    assert_eq!(lab.prune().await, vec![(tagged, PruneCause::Expired)]);
    assert!(lab.exists(&untagged).await);
}

#[tokio::test]
async fn policies_survive_a_restart_and_are_listed_and_deleted() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    c.set_lifecycle_policy(LifecyclePolicy::pattern("b-rule", "b-*").idle_ttl(5 * MIN))
        .await
        .expect("set b");
    let (a, created) = c
        .set_lifecycle_policy(
            LifecyclePolicy::pattern("a-rule", "a-*")
                .label("team", "x")
                .max_age(60 * MIN)
                .max_databases_per_key(3),
        )
        .await
        .expect("set a");
    assert!(created);
    // Replacing by name.
    let (replaced, created) = c
        .set_lifecycle_policy(LifecyclePolicy::pattern("b-rule", "b-*").idle_ttl(7 * MIN))
        .await
        .expect("replace b");
    assert!(!created);
    assert_eq!(replaced.idle_ttl, Some(7 * MIN));
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
    let listed = s.client.list_lifecycle_policies().await.expect("list");
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["a-rule", "b-rule"]
    );
    assert_eq!(listed[0], a);
    assert_eq!(listed[1].idle_ttl, Some(7 * MIN));
    // Still enforced after the restart.
    let name = format!("b-{}", std::process::id());
    s.client
        .create_database(&name, CreateOptions::default())
        .await
        .expect("create");
    clock.advance(8 * MIN);
    assert_eq!(pruner.run().await.pruned, vec![(name, PruneCause::Idle)]);
    s.client
        .delete_lifecycle_policy("b-rule")
        .await
        .expect("delete");
    assert_code(
        s.client.delete_lifecycle_policy("b-rule").await,
        Code::NotFound,
    );
    assert!(
        !s.client
            .delete_lifecycle_policy_if_exists("b-rule")
            .await
            .expect("allow missing")
    );
    assert_eq!(
        s.client
            .list_lifecycle_policies()
            .await
            .expect("list")
            .len(),
        1
    );
    drop(dir);
}

#[tokio::test]
async fn bad_policies_are_invalid_arguments() {
    let s = TestServer::start().await;
    let c = &s.client;
    let cases = [
        (
            LifecyclePolicy::pattern("no-rules", "x-*"),
            "at least one rule",
        ),
        (
            LifecyclePolicy {
                name: "no-selector".into(),
                idle_ttl: Some(MIN),
                ..Default::default()
            },
            "name_pattern",
        ),
        (
            LifecyclePolicy::pattern("Bad Name", "x-*").idle_ttl(MIN),
            "policy.name",
        ),
        (
            LifecyclePolicy::pattern("zero", "x-*").max_age(Duration::ZERO),
            "must be positive",
        ),
        (
            LifecyclePolicy::labels("bad-label", [("", "x")]).idle_ttl(MIN),
            "label",
        ),
    ];
    for (policy, says) in cases {
        let e = assert_code(c.set_lifecycle_policy(policy).await, Code::InvalidArgument);
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(c.list_lifecycle_policies().await.expect("list").is_empty());
}

#[tokio::test]
async fn max_databases_per_key_refuses_creates_and_forks_naming_the_policy() {
    let lab = Lab::start(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN_KEY.into());
        c
    })
    .await;
    let admin = as_key(&lab.s, ADMIN_KEY).await;
    let (_, key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("agent")
                .can_create(10)
                .grant(Grant::pattern("agent-*", Role::Read))
                .grant(Grant::pattern("side-*", Role::Read)),
        )
        .await
        .expect("key");
    let agent = as_key(&lab.s, &key).await;
    let agent_id = agent.who_am_i().await.expect("whoami").id;
    // Only an admin key sets or deletes policies.
    assert_code(
        agent
            .set_lifecycle_policy(
                LifecyclePolicy::pattern("mine", "agent-*").max_databases_per_key(100),
            )
            .await,
        Code::PermissionDenied,
    );
    admin
        .set_lifecycle_policy(
            LifecyclePolicy::pattern("two-each", "agent-*").max_databases_per_key(2),
        )
        .await
        .expect("set");
    admin
        .set_lifecycle_policy(LifecyclePolicy::pattern("elsewhere", "zzz-*").idle_ttl(MIN))
        .await
        .expect("set");
    assert_code(
        agent.delete_lifecycle_policy("two-each").await,
        Code::PermissionDenied,
    );
    agent
        .create_database("agent-1", CreateOptions::default())
        .await
        .expect("1");
    agent
        .create_database("agent-2", CreateOptions::default())
        .await
        .expect("2");
    let e = assert_code(
        agent
            .create_database("agent-3", CreateOptions::default())
            .await,
        Code::ResourceExhausted,
    );
    let text = e.to_string();
    assert!(
        text.contains("\"two-each\"") && text.contains("at most 2") && text.contains("owns 2"),
        "{text}"
    );
    assert!(text.contains(&agent_id), "{text}");
    let e = assert_code(
        agent
            .fork_database("agent-1", "agent-fork", ForkOptions::default())
            .await,
        Code::ResourceExhausted,
    );
    assert!(e.to_string().contains("two-each"), "{e}");
    // Outside the selector, and for admin keys, there is no such limit.
    agent
        .create_database("side-1", CreateOptions::default())
        .await
        .expect("not selected");
    admin
        .create_database("agent-admin", CreateOptions::default())
        .await
        .expect("admin keys are exempt");
    // A non-admin key lists only the policies selecting a database it can see.
    let seen: Vec<String> = agent
        .list_lifecycle_policies()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(seen, ["two-each"]);
    assert_eq!(
        admin.list_lifecycle_policies().await.expect("list").len(),
        2
    );
    // Room again after a delete.
    agent.delete_database("agent-2").await.expect("delete");
    agent
        .create_database("agent-3", CreateOptions::default())
        .await
        .expect("room again");
    let text = scrape_metrics(&lab.s).await;
    assert_eq!(
        metric_value(
            &text,
            "dbforge_policy_actions_total{",
            &["policy=\"two-each\"", "action=\"refused_create\""],
        )
        .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn a_fork_takes_its_own_ttl_and_idle_ttl() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let (src, fork, from_backup) = (unique("src"), unique("fork"), unique("fromb"));
    c.create_database(&src, CreateOptions::default().ttl(600 * MIN))
        .await
        .expect("create");
    c.execute(&src, "CREATE TABLE t (a)", &[])
        .await
        .expect("table");
    let t0 = lab.clock.now_ms();
    let forked = c
        .fork_database(
            &src,
            &fork,
            ForkOptions::default().ttl(60 * MIN).idle_ttl(10 * MIN),
        )
        .await
        .expect("fork")
        .database;
    assert_eq!(forked.expire_at.map(ms), Some(t0 + 3_600_000));
    assert_eq!(forked.idle_ttl, Some(10 * MIN));
    let backup = c
        .create_backup(&src, dbforge::CreateBackup::default())
        .await
        .expect("backup");
    let restored = c
        .fork_database(
            &src,
            &from_backup,
            ForkOptions::default()
                .from_backup(&backup.id)
                .idle_ttl(20 * MIN)
                .backup_before_prune(),
        )
        .await
        .expect("fork from a backup")
        .database;
    assert_eq!(restored.idle_ttl, Some(20 * MIN));
    assert!(restored.backup_before_prune);
    assert_eq!(restored.expire_at, None, "the source's TTL is not copied");
    lab.clock.advance(11 * MIN);
    assert_eq!(lab.prune().await, vec![(fork, PruneCause::Idle)]);
    assert_code(
        c.fork_database(
            &src,
            &unique("zero"),
            ForkOptions::default().idle_ttl(Duration::ZERO),
        )
        .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn update_database_is_an_event_naming_what_changed() {
    let lab = Lab::start(|c| c).await;
    let c = lab.c();
    let db = unique("upd");
    c.create_database(&db, CreateOptions::default())
        .await
        .expect("create");
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");
    c.update_database(
        &db,
        UpdateOptions::default()
            .labels([("team", "y")])
            .idle_ttl(MIN),
    )
    .await
    .expect("update");
    let e = next_event(&mut w).await;
    assert_eq!(
        (
            e.kind,
            e.database.as_str(),
            e.cause.as_str(),
            e.key_id.as_str()
        ),
        (
            DatabaseEventType::Updated,
            db.as_str(),
            "labels idle_ttl",
            "-"
        )
    );
    assert_eq!(e.labels.get("team").map(String::as_str), Some("y"));
}
