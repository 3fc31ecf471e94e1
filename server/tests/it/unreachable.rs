//! A configured backend whose server cannot be reached: the gateway stays idle (the probe backs
//! off instead of spinning), says so once in the log with the URL (no password) and the cause,
//! reports the backend NOT_SERVING, and calls name the server and the cause.

use std::time::Duration;

use dbforge::{Backend, Code, CreateOptions};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{ServerProcess, assert_code};

/// A loopback port nothing listens on (bound, then released), so connects are refused at once.
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// What one unreachable backend looks like from outside.
async fn stays_idle_and_says_why(flag: &str, url: &str, backend: Backend, name: &str) {
    // The URL as logged: everything but the password.
    let shown = url.replace(":s3cret@", "@").replace("//@", "//");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::spawn(dir.path(), &[flag, url]);
    // Start-up is over once it listens; what follows is the idle gateway.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.cpu_time();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let used = server.cpu_time() - before;
    // Spinning on refused connects used ~90% of a core; backing off uses well under 1%.
    assert!(
        used < window / 10,
        "{name}: the idle gateway used {used:?} of CPU in {window:?}"
    );

    let logs = server.logs();
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("database server is unreachable"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning for {name}:\n{logs}");
    let line = warned[0];
    assert!(line.contains(&format!("backend=\"{name}\"")), "{line}");
    assert!(line.contains("Connection refused"), "the cause: {line}");
    assert!(
        !logs.contains("s3cret"),
        "the password stays out of the log:\n{logs}"
    );
    assert!(line.contains(&shown), "the URL without password: {line}");

    let client = server.client().await;
    let mut health = HealthClient::new(client.channel());
    let status = health
        .check(HealthCheckRequest {
            service: format!("dbforge.backend.{name}"),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);

    let err = assert_code(
        client
            .create_database("unreachable", CreateOptions::default().backend(backend))
            .await,
        Code::Unavailable,
    );
    let msg = err.to_string();
    let addr = shown.rsplit('@').next().unwrap_or(&shown);
    let addr = addr.trim_start_matches("redis://");
    let addr = addr.split('/').next().unwrap_or(addr);
    assert!(msg.contains(addr), "the address: {msg}");
    assert!(msg.contains("Connection refused"), "the cause: {msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_leave_the_gateway_idle_and_are_logged_once() {
    let pg = format!(
        "postgres://postgres:s3cret@127.0.0.1:{}/postgres",
        refused_port()
    );
    let my = format!("mysql://root:s3cret@127.0.0.1:{}", refused_port());
    let redis = format!("redis://:s3cret@127.0.0.1:{}", refused_port());
    // One gateway per backend, at the same time: each must stay idle on its own.
    tokio::join!(
        stays_idle_and_says_why("--postgres-url", &pg, Backend::Postgres, "postgres"),
        stays_idle_and_says_why("--mysql-url", &my, Backend::Mysql, "mysql"),
        stays_idle_and_says_why("--redis-url", &redis, Backend::Redis, "redis"),
    );
}
