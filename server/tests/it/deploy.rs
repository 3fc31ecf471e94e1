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
