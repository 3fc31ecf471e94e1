//! An in-process gateway for the SDK's tests (SQLite databases, no authentication), on an
//! ephemeral loopback port: `mod gateway;` in each test file.

use dbforge::{Client, ClientOptions, CreateOptions, Value};
use futures::TryStreamExt;
use tokio::sync::oneshot;

/// An in-process gateway without authentication; stopped when dropped.
pub struct Gateway {
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl Gateway {
    pub async fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let cfg = dbforge_server::config::Config {
            data_dir: data.path().into(),
            insecure_no_auth: true,
            ..Default::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(dbforge_server::server::run(cfg, listener, async {
            let _ = rx.await;
        }));
        // The listener is bound before serving starts, so connecting cannot race it.
        let client = Client::connect_with(ClientOptions::new(format!("http://{addr}")))
            .await
            .expect("connect");
        Gateway {
            client,
            shutdown: Some(tx),
            _data: data,
        }
    }

    pub async fn db(&self, name: &str) -> String {
        self.client
            .create_database(name, CreateOptions::default())
            .await
            .expect("create database");
        name.to_owned()
    }

    pub async fn rows(&self, db: &str, sql: &str) -> Vec<Vec<Value>> {
        self.client
            .query(db, sql, &[])
            .await
            .expect("query")
            .map_ok(dbforge::Row::into_values)
            .try_collect()
            .await
            .expect("rows")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
