//! The S3 backup target against a real S3-compatible server: `moto_server` (installed into
//! `.venv` by `scripts/setup-sdks`), started by each test on its own loopback port, and the
//! gateway as a process configured the way a deployment is (`--backup-target s3=s3://…` and the
//! `AWS_*` environment). Backups round-trip through the bucket; an outage of the store during an
//! upload fails the backup (UNAVAILABLE, listed FAILED) and a later one succeeds once the store
//! is back; a store that cannot be reached fails the backup the same way.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use dbforge::{Client, CreateOptions, Value, pb};
use http_body_util::{BodyExt, Empty};
use sha2::{Digest, Sha256};
use tonic::{Code, Status, transport::Channel};

use crate::harness::{ServerProcess, unique};

type Backups = pb::backup_service_client::BackupServiceClient<Channel>;

const BUCKET: &str = "dbforge-backups";
const PREFIX: &str = "team/nightly";

/// `moto_server` from the repository's `.venv` or the PATH, or `None` with a one-line notice
/// (a failure with `DBFORGE_REQUIRE_BACKENDS=1`, as for the database servers).
fn moto_exe() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    if let Some(exe) = Some(venv).filter(|p| p.is_file()).or(on_path) {
        return Some(exe);
    }
    if std::env::var("DBFORGE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
        panic!(
            "moto_server is required (DBFORGE_REQUIRE_BACKENDS=1) but neither .venv/bin/moto_server \
             nor the PATH has it: run scripts/setup-sdks"
        );
    }
    eprintln!(
        "skipping S3 backup tests: moto_server not installed (scripts/setup-sdks installs it)"
    );
    None
}

/// A loopback port nothing listens on (for now).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// A `moto_server` child process on a loopback port; killed on drop. Its state (buckets,
/// objects) lives in its memory, so a restart starts empty.
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts `exe` on `port` and waits until it answers HTTP.
    async fn start(exe: &Path, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn moto_server");
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = moto.http("GET", "/").await {
                return moto;
            }
            if let Some(status) = moto.child.try_wait().expect("wait") {
                panic!(
                    "moto_server exited ({status}) before answering: {}",
                    moto.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 30 s: {}",
                moto.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Freezes the server (SIGSTOP): requests get no answer until it is killed.
    fn freeze(&self) {
        let status = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Kills the server (SIGKILL) and waits for it: its connections are closed, its port refuses.
    fn kill(&mut self) {
        self.child.kill().expect("kill moto_server");
        self.child.wait().expect("wait for moto_server");
    }

    /// One plain HTTP/1.1 request; status and body. Moto checks that a request carries
    /// credentials (it answers 403 to anonymous reads of private objects), not their signature.
    async fn http(&self, method: &str, path: &str) -> Result<(u16, Bytes), String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    async fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .http("PUT", &format!("/{bucket}"))
            .await
            .expect("create bucket");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// The keys in `bucket` under `prefix` (ListObjectsV2; the tests store far fewer than a page).
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"))
            .await
            .expect("list objects");
        let xml = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{xml}");
        assert!(!xml.contains("<IsTruncated>true"), "{xml}");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    async fn get(&self, bucket: &str, key: &str) -> Bytes {
        let (status, body) = self
            .http("GET", &format!("/{bucket}/{key}"))
            .await
            .expect("get object");
        assert_eq!(status, 200, "{key}: {}", String::from_utf8_lossy(&body));
        body
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway as a process with the S3 target `s3` at `s3://BUCKET/PREFIX` on the endpoint
/// `port`, credentials and endpoint from the environment as object_store reads them.
fn gateway(data_dir: &Path, port: u16) -> ServerProcess {
    let target = format!("s3=s3://{BUCKET}/{PREFIX}");
    let endpoint = format!("http://127.0.0.1:{port}");
    ServerProcess::spawn_env(
        data_dir,
        &["--backup-target", &target],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ],
    )
}

async fn create_backup(b: &Backups, db: &str) -> Result<pb::Backup, Status> {
    Ok(b.clone()
        .create_backup(pb::CreateBackupRequest {
            database: db.into(),
            target: "s3".into(),
            labels: Default::default(),
        })
        .await?
        .into_inner()
        .backup
        .expect("backup"))
}

async fn list(b: &Backups, db: &str) -> Vec<pb::Backup> {
    b.clone()
        .list_backups(pb::ListBackupsRequest {
            database: db.into(),
            ..Default::default()
        })
        .await
        .expect("list backups")
        .into_inner()
        .backups
}

async fn exec(c: &Client, db: &str, sql: &str) {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn rows(c: &Client, db: &str, sql: &str) -> Vec<Vec<Value>> {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
        .into_iter()
        .map(|r| r.into_values())
        .collect()
}

/// The key of `location` in the bucket (`s3://BUCKET/<key>`).
fn key_of(location: &str) -> &str {
    location
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("{location:?} is not in s3://{BUCKET}/"))
}

fn manifest_key(object_key: &str) -> String {
    format!(
        "{}.manifest.json",
        object_key.strip_suffix(".zst").expect("a .zst object")
    )
}

/// A backup to S3 is stored in the bucket (object and manifest, the object's bytes matching the
/// recorded SHA-256), restores with REPLACE, and DeleteBackup removes its objects (not those of
/// the restore's safety backup).
#[tokio::test]
async fn backup_restore_and_delete_through_an_s3_bucket() {
    let Some(exe) = moto_exe() else { return };
    let moto = Moto::start(&exe, free_port()).await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = gateway(dir.path(), moto.port);
    let client = gw.client().await;
    let backups = Backups::new(client.channel());

    let db = unique("bks3");
    client
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create database");
    exec(
        &client,
        &db,
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB)",
    )
    .await;
    exec(
        &client,
        &db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         INSERT INTO item SELECT i, 'item ' || i, randomblob(100) FROM n",
    )
    .await;
    let snapshot = "SELECT id, name, data FROM item ORDER BY id";
    let before = rows(&client, &db, snapshot).await;
    assert_eq!(before.len(), 2000);

    let b = create_backup(&backups, &db).await.expect("backup to S3");
    assert_eq!(b.status, pb::BackupStatus::Completed as i32, "{b:?}");
    assert_eq!(b.target, "s3");
    assert!(
        b.location.starts_with(&format!("s3://{BUCKET}/{PREFIX}/")),
        "{b:?}"
    );
    let object = key_of(&b.location).to_owned();
    let manifest = manifest_key(&object);
    let keys = moto.keys(BUCKET, &format!("{PREFIX}/")).await;
    assert!(
        keys.contains(&object) && keys.contains(&manifest),
        "{keys:?}"
    );
    // What S3 holds is what the gateway says it stored.
    let stored = moto.get(BUCKET, &object).await;
    assert_eq!(stored.len() as u64, b.size_bytes);
    assert_eq!(hex(&Sha256::digest(&stored)), b.sha256);
    let manifest_text = moto.get(BUCKET, &manifest).await;
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&manifest_text).expect("manifest JSON");
    assert_eq!(manifest_json["backup_id"], b.id.as_str(), "{manifest_json}");

    exec(&client, &db, "DELETE FROM item WHERE id % 2 = 0").await;
    exec(&client, &db, "UPDATE item SET name = 'changed'").await;
    assert_ne!(rows(&client, &db, snapshot).await, before);

    let restored = backups
        .clone()
        .restore_backup(pb::RestoreBackupRequest {
            backup_id: b.id.clone(),
            mode: pb::RestoreMode::Replace as i32,
            new_name: String::new(),
            labels: Default::default(),
        })
        .await
        .expect("restore from S3")
        .into_inner();
    assert_eq!(rows(&client, &db, snapshot).await, before);
    let safety = restored.safety_backup.expect("a safety backup");
    assert_eq!(safety.status, pb::BackupStatus::Completed as i32);
    let safety_object = key_of(&safety.location).to_owned();
    assert!(moto.keys(BUCKET, PREFIX).await.contains(&safety_object));

    let deleted = backups
        .clone()
        .delete_backup(pb::DeleteBackupRequest {
            id: b.id.clone(),
            allow_missing: false,
        })
        .await
        .expect("delete backup")
        .into_inner();
    assert!(deleted.deleted);
    let keys = moto.keys(BUCKET, PREFIX).await;
    assert!(
        !keys.contains(&object) && !keys.contains(&manifest),
        "{keys:?}"
    );
    assert!(
        keys.contains(&safety_object) && keys.contains(&manifest_key(&safety_object)),
        "{keys:?}"
    );
    assert!(list(&backups, &db).await.iter().all(|x| x.id != b.id));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store goes away in the middle of an upload: CreateBackup fails with UNAVAILABLE in
/// seconds (the store's few quick retries), the backup is listed FAILED with the reason and none
/// COMPLETED; once the store is back (same endpoint, empty), the next backup completes.
#[tokio::test]
async fn an_s3_outage_during_an_upload_fails_the_backup_and_the_next_one_succeeds() {
    let Some(exe) = moto_exe() else { return };
    let port = free_port();
    let mut moto = Moto::start(&exe, port).await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = gateway(dir.path(), port);
    let client = gw.client().await;
    let backups = Backups::new(client.channel());

    // 40 MiB that zstd cannot shrink: five 8 MiB parts, so the upload takes a while (moto
    // stores a few MB/s).
    let db = unique("bks3out");
    client
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create database");
    exec(
        &client,
        &db,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)",
    )
    .await;
    for _ in 0..2 {
        exec(
            &client,
            &db,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) \
             INSERT INTO big (b) SELECT randomblob(1 << 20) FROM n",
        )
        .await;
    }

    let task = {
        let (backups, db) = (backups.clone(), db.clone());
        tokio::spawn(async move { create_backup(&backups, &db).await })
    };
    // Wait until the upload is under way: the backup RUNNING with bytes stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let listed = list(&backups, &db).await;
        if let Some(b) = listed
            .iter()
            .find(|b| b.status == pb::BackupStatus::Running as i32 && b.size_bytes > 0)
        {
            break b.clone();
        }
        assert!(
            !task.is_finished(),
            "the backup ended before its upload was seen running: {listed:?}"
        );
        assert!(Instant::now() < deadline, "no upload seen: {listed:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Frozen first, so the upload cannot finish between looking and killing; then gone.
    moto.freeze();
    let b = backups
        .clone()
        .get_backup(pb::GetBackupRequest {
            id: running.id.clone(),
        })
        .await
        .expect("get backup")
        .into_inner()
        .backup
        .expect("backup");
    assert_eq!(
        b.status,
        pb::BackupStatus::Running as i32,
        "the upload finished before the outage (make the database bigger): {b:?}"
    );
    moto.kill();
    let killed = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(45), task)
        .await
        .expect("CreateBackup answers within 45 s of the outage")
        .expect("task")
        .expect_err("the backup fails");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("backup target \"s3\""), "{err:?}");
    eprintln!(
        "CreateBackup failed {:?} after the outage: {}",
        killed.elapsed(),
        err.message()
    );

    let listed = list(&backups, &db).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, running.id);
    assert_eq!(
        listed[0].status,
        pb::BackupStatus::Failed as i32,
        "{listed:?}"
    );
    assert!(listed[0].error.contains("backup target"), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|b| b.status != pb::BackupStatus::Completed as i32)
    );

    // The store is back on the same endpoint, empty: the gateway needs no restart.
    let moto = Moto::start(&exe, port).await;
    moto.create_bucket(BUCKET).await;
    let again = create_backup(&backups, &db)
        .await
        .expect("backup once the store is back");
    assert_eq!(
        again.status,
        pb::BackupStatus::Completed as i32,
        "{again:?}"
    );
    assert!(again.size_bytes > 40 << 20, "{again:?}");
    let keys = moto.keys(BUCKET, PREFIX).await;
    let object = key_of(&again.location).to_owned();
    assert!(
        keys.contains(&object) && keys.contains(&manifest_key(&object)),
        "{keys:?}"
    );
    let listed = list(&backups, &db).await;
    let statuses: Vec<i32> = listed.iter().map(|b| b.status).collect();
    assert_eq!(
        statuses,
        [
            pb::BackupStatus::Completed as i32,
            pb::BackupStatus::Failed as i32
        ],
        "{listed:?}"
    );
}

/// An S3 endpoint nothing listens on: CreateBackup fails with UNAVAILABLE within seconds and
/// the backup is listed FAILED.
#[tokio::test]
async fn an_unreachable_s3_target_fails_the_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = gateway(dir.path(), free_port());
    let client = gw.client().await;
    let backups = Backups::new(client.channel());
    let db = unique("bks3down");
    client
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create database");
    exec(&client, &db, "CREATE TABLE t (x INT)").await;
    exec(&client, &db, "INSERT INTO t VALUES (1), (2)").await;

    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), create_backup(&backups, &db))
        .await
        .expect("CreateBackup answers within 30 s")
        .expect_err("the backup fails");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("backup target \"s3\""), "{err:?}");
    eprintln!(
        "CreateBackup failed after {:?}: {}",
        started.elapsed(),
        err.message()
    );
    let listed = list(&backups, &db).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].status,
        pb::BackupStatus::Failed as i32,
        "{listed:?}"
    );
    assert!(!listed[0].error.is_empty(), "{listed:?}");
}
