//! TLS and mutual TLS with certificates made in the test.

use dbforge::{Client, ClientOptions, Code, CreateOptions};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use dbforge_server::config::Config;

use crate::harness::TestServer;

pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        write("ca.pem", ca.pem());
        for (name, sans) in [
            (
                "server",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ),
            ("client", vec!["agent.example".to_string()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &ca)
                .expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// `c` serving TLS with the server certificate, requiring client certificates signed by
    /// the CA when `mutual`.
    pub(crate) fn serving(&self, mut c: Config, mutual: bool) -> Config {
        c.tls_cert = Some(self.path("server.pem"));
        c.tls_key = Some(self.path("server.key"));
        c.tls_client_ca = mutual.then(|| self.path("ca.pem"));
        c
    }
}

async fn tls_server(pki: &Pki, mutual: bool) -> TestServer {
    TestServer::with_client(|c| pki.serving(c, mutual), false).await
}

fn https(s: &TestServer) -> String {
    format!("https://localhost:{}", s.addr.port())
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let pki = Pki::new();
    let s = tls_server(&pki, false).await;
    let client = Client::connect_with(ClientOptions::new(https(&s)).ca_file(pki.path("ca.pem")))
        .await
        .expect("TLS connect");
    client
        .create_database("over-tls", CreateOptions::default())
        .await
        .expect("create");
    let r = client
        .execute("over-tls", "SELECT 1", &[])
        .await
        .expect("query");
    assert_eq!(r.rows.len(), 1);
    // Plain text to a TLS port fails instead of leaking anything.
    let plain = Client::connect(format!("http://127.0.0.1:{}", s.addr.port())).await;
    if let Ok(c) = plain {
        let e = c
            .get_database("over-tls")
            .await
            .expect_err("plaintext refused");
        assert!(
            matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Internal),
            "{e}"
        );
    }
    assert_untrusted_fails(&s).await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = Pki::new();
    let s = tls_server(&pki, true).await;
    let with_cert = Client::connect_with(
        ClientOptions::new(https(&s))
            .ca_file(pki.path("ca.pem"))
            .client_identity(pki.path("client.pem"), pki.path("client.key")),
    )
    .await
    .expect("mTLS connect");
    with_cert
        .create_database("mtls", CreateOptions::default())
        .await
        .expect("create");
    // Without a client certificate the server ends the handshake; with TLS 1.3 the client
    // learns it on its first call, as a transport failure.
    let without =
        Client::connect_with(ClientOptions::new(https(&s)).ca_file(pki.path("ca.pem"))).await;
    let refused = match without {
        Err(e) => e,
        Ok(c) => c
            .get_database("mtls")
            .await
            .expect_err("no client certificate"),
    };
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::Unknown),
        "{refused}"
    );
}

/// A client that trusts another CA cannot talk to the server.
async fn assert_untrusted_fails(s: &TestServer) {
    let other = Pki::new();
    let res =
        Client::connect_with(ClientOptions::new(https(s)).ca_file(other.path("ca.pem"))).await;
    match res {
        Err(e) => assert_eq!(e.code(), Code::Unavailable, "{e}"),
        Ok(c) => {
            let e = c
                .get_database("over-tls")
                .await
                .expect_err("untrusted server");
            assert_eq!(e.code(), Code::Unavailable, "{e}");
        }
    }
}
