//! Deployment files: no Docker engine runs here, so the compose file and the Dockerfile are
//! parsed and checked for what `docker compose config` and a reviewer would catch.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn get<'a>(y: &'a Yaml, key: &str) -> &'a Yaml {
    &y[key]
}

#[test]
fn compose_wires_the_gateway_to_every_backend() {
    let docs = YamlLoader::load_from_str(&repo_file("docker-compose.yml")).expect("valid YAML");
    let compose = &docs[0];
    let services = get(compose, "services");
    let declared_volumes = get(compose, "volumes")
        .as_hash()
        .expect("top-level volumes");
    for name in ["gateway", "postgres", "mysql", "redis"] {
        let svc = get(services, name);
        assert!(!svc.is_badvalue(), "service {name} is missing");
        let health = get(svc, "healthcheck");
        assert!(
            !get(health, "test").is_badvalue(),
            "{name} has no health check"
        );
        let volumes = get(svc, "volumes").as_vec().expect("volumes list");
        for v in volumes {
            let named = v
                .as_str()
                .and_then(|s| s.split(':').next())
                .expect("volume mapping");
            assert!(
                declared_volumes.contains_key(&Yaml::String(named.to_owned())),
                "{name} uses undeclared volume {named}"
            );
        }
    }
    let gateway = get(services, "gateway");
    assert_eq!(
        get(get(gateway, "build"), "dockerfile").as_str(),
        Some("Dockerfile")
    );
    // Brought back after a crash; health is grpc.health.v1, asked by the binary itself.
    for name in ["gateway", "postgres", "mysql", "redis"] {
        assert_eq!(
            get(get(services, name), "restart").as_str(),
            Some("unless-stopped"),
            "{name}"
        );
    }
    let check: Vec<&str> = get(get(gateway, "healthcheck"), "test")
        .as_vec()
        .expect("exec form")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        check,
        ["CMD", "/usr/local/bin/dbforge-server", "--health-check"]
    );
    assert!(
        repo_file("Dockerfile")
            .contains("CMD [\"/usr/local/bin/dbforge-server\", \"--health-check\"]"),
        "the image's HEALTHCHECK"
    );
    for dep in ["postgres", "mysql", "redis"] {
        assert_eq!(
            get(get(get(gateway, "depends_on"), dep), "condition").as_str(),
            Some("service_healthy"),
            "gateway must wait for a healthy {dep}"
        );
    }
    let env = get(gateway, "environment");
    let url = |k: &str| get(env, k).as_str().unwrap_or_default().to_owned();
    assert!(
        url("DBFORGE_POSTGRES_URL").starts_with("postgres://")
            && url("DBFORGE_POSTGRES_URL").contains("@postgres:5432")
    );
    assert!(
        url("DBFORGE_MYSQL_URL").starts_with("mysql://")
            && url("DBFORGE_MYSQL_URL").contains("@mysql:3306")
    );
    assert!(url("DBFORGE_REDIS_URL").starts_with("redis://redis:6379"));
    assert_eq!(url("DBFORGE_LISTEN"), "0.0.0.0:50051");
    // The credentials the gateway uses are the ones the servers are started with.
    let pg_env = get(get(services, "postgres"), "environment");
    let pg_pass = get(pg_env, "POSTGRES_PASSWORD")
        .as_str()
        .expect("postgres password");
    assert!(url("DBFORGE_POSTGRES_URL").contains(&format!(":{pg_pass}@")));
    let my_pass = get(
        get(get(services, "mysql"), "environment"),
        "MARIADB_ROOT_PASSWORD",
    )
    .as_str()
    .expect("mariadb password");
    assert!(url("DBFORGE_MYSQL_URL").contains(&format!("root:{my_pass}@")));
}

#[test]
fn dockerfile_is_multi_stage_and_builds_the_gateway() {
    let dockerfile = repo_file("Dockerfile");
    let stages: Vec<_> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages[0].contains(" AS builder"));
    assert!(dockerfile.contains("cargo build --release --locked -p dbforge-server"));
    assert!(dockerfile.contains("COPY --from=builder"));
    assert!(dockerfile.contains("USER "), "runs unprivileged");
    // The binary's flags the image relies on exist.
    for var in ["DBFORGE_LISTEN", "DBFORGE_DATA_DIR", "DBFORGE_LOG_FORMAT"] {
        assert!(dockerfile.contains(var));
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "DBFORGE_LISTEN",
        "DBFORGE_DATA_DIR",
        "DBFORGE_LOG_FORMAT",
        "DBFORGE_POSTGRES_URL",
        "DBFORGE_MYSQL_URL",
        "DBFORGE_REDIS_URL",
    ] {
        assert!(help.contains(var), "--help mentions {var}");
    }
}

/// A taken port stops start-up with a sentence naming the address and the cause, not a Debug
/// dump of the OS error.
#[test]
fn a_taken_port_is_named_with_its_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
        .args([
            "--insecure-no-auth",
            "--listen",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("DBFORGE_ADMIN_KEY")
        .env("NO_COLOR", "1")
        .output()
        .expect("run dbforge-server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "the cause: {stderr}");
    assert!(stderr.contains("--listen"), "what to do: {stderr}");
    assert!(!stderr.contains("Os {"), "no Debug dump: {stderr}");
}

// ---- systemd -------------------------------------------------------------------------------

/// `key=value` settings of a unit file, in order (comments and sections dropped).
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_restarts_on_failure_waits_for_readiness_and_is_hardened() {
    let text = repo_file("deploy/dbforge.service");
    let settings = unit_settings(&text);
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(text.contains(section), "{section}");
    }
    assert_eq!(get("Type"), ["notify"], "READY=1 ends start-up");
    assert_eq!(get("Restart"), ["on-failure"]);
    assert_eq!(get("ExecStart"), ["/usr/local/bin/dbforge-server"]);
    assert_eq!(get("EnvironmentFile"), ["/etc/dbforge/dbforge.env"]);
    assert_eq!(get("WantedBy"), ["multi-user.target"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "dbforge"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    // The state directory systemd makes is where the gateway keeps its data.
    assert!(get("Environment").contains(&"DBFORGE_DATA_DIR=/var/lib/dbforge"));
    // Stopping lets the graceful shutdown (30 s grace by default) finish first.
    let stop: u64 = get("TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .expect("seconds");
    assert!(stop > 30, "TimeoutStopSec={stop}");
    // Every variable of the example environment file is a real flag's.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for line in repo_file("deploy/dbforge.env").lines() {
        let line = line.trim_start_matches("# ");
        if let Some((var, _)) = line.split_once('=')
            && var.starts_with("DBFORGE_")
        {
            assert!(help.contains(&format!("env: {var}")), "{var} is not a flag");
        }
    }
    // systemd's own checker, where systemd is installed, with the built binary in ExecStart.
    if let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        && out.status.success()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let unit = dir.path().join("dbforge.service");
        std::fs::write(
            &unit,
            text.replace(
                "ExecStart=/usr/local/bin/dbforge-server",
                &format!("ExecStart={}", env!("CARGO_BIN_EXE_dbforge-server")),
            ),
        )
        .expect("write unit");
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze verify");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.trim().is_empty(), "{said}");
    }
}

/// The next datagram on the notify socket, within 30 s.
async fn notification(sock: &tokio::net::UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), sock.recv(&mut buf))
        .await
        .expect("a notification within 30 s")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A real unix datagram socket in NOTIFY_SOCKET, as systemd sets it for `Type=notify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&socket).expect("bind the notify socket");
    let data = dir.path().join("data");
    let server = crate::harness::ServerProcess::spawn_env(
        &data,
        &[],
        &[("NOTIFY_SOCKET", socket.to_str().expect("utf-8 path"))],
    );
    let ready = notification(&sock).await;
    let lines: Vec<&str> = ready.lines().collect();
    assert!(lines.contains(&"READY=1"), "{ready:?}");
    assert!(
        lines.contains(&format!("STATUS=serving on {}", server.addr).as_str()),
        "{ready:?}"
    );
    // Ready means serving: a call works at once.
    let client = server.client().await;
    client
        .list_databases(dbforge::ListFilter::default())
        .await
        .expect("serves once ready");
    let stopping = tokio::spawn(async move { notification(&sock).await });
    assert!(server.terminate().await, "a clean exit after SIGTERM");
    let stopping = stopping.await.expect("task");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// `--health-check` is the container's health check: grpc.health.v1 on `--listen`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_flag_asks_grpc_health_of_the_listening_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = crate::harness::ServerProcess::spawn(dir.path(), &[]);
    let check = |listen: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
            .args(["--health-check", "--listen", &listen])
            .env_remove("DBFORGE_LISTEN")
            .output()
            .expect("run --health-check")
    };
    let out = tokio::task::spawn_blocking({
        let addr = server.addr.to_string();
        move || check(addr)
    })
    .await
    .expect("task");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
    // A wildcard address (0.0.0.0 in the container) is asked on loopback.
    let out = tokio::task::spawn_blocking({
        let wildcard = format!("0.0.0.0:{}", server.addr.port());
        move || check(wildcard)
    })
    .await
    .expect("task");
    assert!(out.status.success(), "{out:?}");
    drop(server);
    // Nothing listens: exit 1, saying why.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let out = tokio::task::spawn_blocking(move || check(closed))
        .await
        .expect("task");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{out:?}"
    );
}
