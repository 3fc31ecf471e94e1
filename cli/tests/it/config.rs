//! Connection settings: profiles in the config file, flags over environment over profile, and
//! TLS with --ca-file.

use predicates::prelude::*;

use crate::harness::{KEY, Server};

/// Writes the config file where the commands' HOME has it.
fn write_config(s: &Server, text: &str) -> std::path::PathBuf {
    let dir = s.home().join("config/dbforge");
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

#[test]
fn profiles_supply_the_connection() {
    let s = Server::start();
    write_config(
        &s,
        &format!(
            "default_profile = \"here\"\n\n[profiles.here]\nendpoint = \"{}\"\napi_key = \"{KEY}\"\ntimeout = \"20s\"\n\n[profiles.nowhere]\nendpoint = \"http://127.0.0.1:9\"\n",
            s.endpoint()
        ),
    );
    // Without the environment, the default profile reaches the server.
    s.cmd()
        .env_remove("DBFORGE_ENDPOINT")
        .env_remove("DBFORGE_API_KEY")
        .args(["db", "list", "-o", "json"])
        .assert()
        .success()
        .stdout("[]\n");
    s.cmd()
        .env_remove("DBFORGE_ENDPOINT")
        .env_remove("DBFORGE_API_KEY")
        .args(["config", "show", "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::contains("profile      here\n"))
        .stdout(predicate::str::contains(format!(
            "endpoint     {} (profile \"here\")",
            s.endpoint()
        )))
        .stdout(predicate::str::contains(
            "api_key      ****6789 (profile \"here\")",
        ))
        .stdout(predicate::str::contains(
            "timeout      20s (profile \"here\")",
        ));
    // --profile picks another; the environment wins over the profile; a flag over both.
    s.cmd()
        .env_remove("DBFORGE_ENDPOINT")
        .args(["--profile", "nowhere", "db", "list"])
        .assert()
        .code(7);
    s.cmd()
        .args(["--profile", "nowhere", "db", "list", "-o", "json"])
        .assert()
        .success();
    s.cmd()
        .args(["--endpoint", "http://127.0.0.1:9", "db", "list"])
        .assert()
        .code(7);
    s.cmd()
        .args(["--profile", "elsewhere", "db", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no profile \"elsewhere\""))
        .stderr(predicate::str::contains("profiles: here, nowhere"));
}

#[test]
fn bad_config_files_are_usage_errors() {
    let s = Server::start();
    let path = write_config(&s, "[profiles.x]\nendpont = \"typo\"\n");
    s.cmd().args(["db", "list"]).assert().code(2).stderr(
        predicate::str::contains("invalid config file").and(predicate::str::contains("endpont")),
    );
    // A file named explicitly must exist.
    s.cmd()
        .args(["--config", "/nonexistent/dbforge.toml", "db", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the config file /nonexistent/dbforge.toml",
        ));
    s.cmd()
        .args(["config", "path", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(format!(
            "{{\"path\":\"{}\",\"exists\":true}}\n",
            path.display()
        ));
}

#[cfg(unix)]
#[test]
fn readable_keys_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    let path = write_config(&s, &format!("[profiles.p]\napi_key = \"{KEY}\"\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    s.cmd()
        .args(["db", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "holds an API key and others can read it",
        ));
}

#[test]
fn tls_with_a_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let pki = tempfile::tempdir().expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("sign");
    let path = |n: &str| pki.path().join(n);
    std::fs::write(path("ca.pem"), ca.pem()).expect("write");
    std::fs::write(path("server.pem"), cert.pem()).expect("write");
    std::fs::write(path("server.key"), key.serialize_pem()).expect("write");

    let s = Server::with(|mut c| {
        c.tls_cert = Some(path("server.pem"));
        c.tls_key = Some(path("server.key"));
        c
    });
    let endpoint = format!("https://localhost:{}", s.addr.port());
    s.cmd()
        .args(["--endpoint", &endpoint, "--ca-file"])
        .arg(path("ca.pem"))
        .args(["db", "create", "over-tls", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"created\":true"));
    // host:port without a scheme, with a CA file: TLS, as --ca-file promises.
    s.cmd()
        .args([
            "--endpoint",
            &format!("localhost:{}", s.addr.port()),
            "--ca-file",
        ])
        .arg(path("ca.pem"))
        .args(["sql", "over-tls", "SELECT 1 AS one"])
        .assert()
        .success()
        .stdout("{\"one\":1}\n");
    // The same through the environment.
    s.cmd()
        .env("DBFORGE_ENDPOINT", &endpoint)
        .env("DBFORGE_CA_FILE", path("ca.pem"))
        .args(["sql", "over-tls", "SELECT 1 AS one"])
        .assert()
        .success()
        .stdout("{\"one\":1}\n");
    // Without the CA the certificate is not trusted: the connection fails.
    s.cmd()
        .args(["--endpoint", &endpoint, "db", "list"])
        .assert()
        .code(7);
}

/// `--endpoint 127.0.0.1:50051` is `http://127.0.0.1:50051`, as grpcurl and the Python SDK read
/// it, from the flag, the environment or a profile.
#[test]
fn an_endpoint_without_a_scheme_is_plaintext_http() {
    let s = Server::start();
    let bare = s.addr.to_string();
    s.cmd()
        .args(["--endpoint", &bare])
        .args(["--color", "never"])
        .args(["db", "list", "-o", "ndjson"])
        .assert()
        .success();
    s.cmd()
        .env("DBFORGE_ENDPOINT", &bare)
        .args(["db", "create", "bare-endpoint", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"created\":true"));
    write_config(
        &s,
        &format!("default_profile = \"bare\"\n\n[profiles.bare]\nendpoint = \"{bare}\"\n"),
    );
    s.cmd()
        .env_remove("DBFORGE_ENDPOINT")
        .args(["config", "show", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("http://{bare}")));
    s.cmd()
        .env_remove("DBFORGE_ENDPOINT")
        .args(["sql", "bare-endpoint", "SELECT 1 AS one"])
        .assert()
        .success()
        .stdout("{\"one\":1}\n");
}
