//! SQLite files damaged between two runs of a gateway: checked at the first start after an
//! unclean shutdown, quarantined (never deleted), reported DAMAGED with an event, refused to
//! every call, and restored from a backup — by hand, or at once with `--restore-damaged`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use dbforge::{
    Client, Code, CreateBackup, DatabaseEvent, DatabaseEventType, DatabaseStatus, ForkOptions,
    ListFilter, RestoreMode, Value, WatchOptions,
};

use crate::harness::{ServerProcess, TestServer, assert_code, unique};

/// The marker a run leaves until its clean shutdown (`core/damage.rs`).
const RUNNING_MARKER: &str = "dbforge.running";

/// The SQLite file of database `db` in `data_dir`.
fn sqlite_file(data_dir: &Path, db: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(data_dir.join("sqlite"))
        .expect("sqlite dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(&format!("{db}.")) && name.ends_with(".sqlite")
        })
        .collect();
    assert_eq!(found.len(), 1, "one file for {db}: {found:?}");
    found[0].clone()
}

/// Overwrites `len` bytes at `at` with 0xFF: a torn write, a bad sector.
fn corrupt(path: &Path, at: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&vec![0xFF; len]).expect("write");
    f.sync_all().expect("sync");
    drop(f);
    // Pages in the write-ahead log win over the main file's: a torn disk takes its header too
    // (SQLite then ignores the log's frames).
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() >= 32) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .expect("open wal");
        f.write_all(&[0xFF; 32]).expect("write");
        f.sync_all().expect("sync");
    }
    std::fs::read(path).expect("read back")
}

async fn fill(c: &Client, db: &str, rows: i64) {
    c.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)", &[])
        .await
        .expect("create table");
    c.execute(
        db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO t SELECT i, printf('%.200c', 'x') FROM n",
        &[Value::Int(rows)],
    )
    .await
    .expect("fill");
}

async fn count(c: &Client, db: &str) -> dbforge::Result<Value> {
    let r = c.execute(db, "SELECT count(*) FROM t", &[]).await?;
    Ok(r.rows[0].values()[0].clone())
}

/// Every stored event about `db`, oldest first.
async fn events_of(c: &Client, db: &str) -> Vec<DatabaseEvent> {
    let mut w = c
        .watch_databases(WatchOptions::default().since(0))
        .await
        .expect("watch");
    let mut got = Vec::new();
    // Stored events arrive at once; a short silence means they are all here.
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(500), w.next()).await {
        let e = next.expect("watch").expect("not ended");
        if e.database == db {
            got.push(e);
        }
    }
    got
}

async fn status(c: &Client, db: &str) -> (DatabaseStatus, DatabaseStatus) {
    let got = c.get_database(db).await.expect("get").status;
    let listed = c
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.name == db)
        .expect("listed")
        .status;
    (got, listed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_damaged_before_an_unclean_restart_is_quarantined_and_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = TestServer::on_dir(dir.path()).await;
    let c = &s.client;
    let (db, intact) = (unique("torn"), unique("intact"));
    for name in [&db, &intact] {
        c.create_database(name, Default::default())
            .await
            .expect("create");
        fill(c, name, 300).await;
    }
    let backup = c
        .create_backup(&db, CreateBackup::default())
        .await
        .expect("backup");
    // Written after the backup: the restore brings the backup's state back.
    c.execute(&db, "INSERT INTO t VALUES (1000, 'late')", &[])
        .await
        .expect("insert");
    s.stop().await;
    assert!(
        !dir.path().join(RUNNING_MARKER).exists(),
        "a clean shutdown removes the marker"
    );

    // A clean restart does not check (nor find) anything, even with the file torn.
    let file = sqlite_file(dir.path(), &db);
    let torn = corrupt(&file, 0, 100);
    let s = TestServer::on_dir(dir.path()).await;
    assert_eq!(
        s.client.get_database(&db).await.expect("get").status,
        DatabaseStatus::Ready
    );
    s.stop().await;

    // The same file after a run that did not end cleanly (its marker is left behind).
    std::fs::write(dir.path().join(RUNNING_MARKER), "pid 1\n").expect("marker");
    let s = TestServer::on_dir(dir.path()).await;
    let c = &s.client;
    assert_eq!(
        status(c, &db).await,
        (DatabaseStatus::Damaged, DatabaseStatus::Damaged)
    );
    assert_eq!(
        status(c, &intact).await,
        (DatabaseStatus::Ready, DatabaseStatus::Ready),
        "a sound file is left alone"
    );
    assert_eq!(count(c, &intact).await.expect("intact"), Value::Int(300));

    // Quarantined byte for byte, never deleted, and nothing re-created in its place.
    assert!(!file.exists(), "the damaged file was moved");
    let quarantine: Vec<PathBuf> = std::fs::read_dir(dir.path().join("sqlite/quarantine"))
        .expect("quarantine dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    assert_eq!(std::fs::read(&quarantine[0]).expect("read"), torn);

    let damaged: Vec<_> = events_of(c, &db)
        .await
        .into_iter()
        .filter(|e| e.kind == DatabaseEventType::Damaged)
        .collect();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    let cause = &damaged[0].cause;
    assert!(
        cause.contains(&format!("quarantined={}", quarantine[0].display())),
        "{cause}"
    );
    assert!(cause.contains("problem="), "{cause}");
    assert_eq!(damaged[0].key_id, "gateway");

    // Every use of it is refused, saying what to do; nothing opens (re-creates) the file.
    let err = assert_code(count(c, &db).await, Code::FailedPrecondition);
    assert!(
        err.to_string().contains("damaged") && err.to_string().contains("RestoreBackup"),
        "{err}"
    );
    assert_code(
        c.create_backup(&db, CreateBackup::default()).await,
        Code::FailedPrecondition,
    );
    assert_code(
        c.fork_database(&db, &unique("fork"), ForkOptions::default())
            .await,
        Code::FailedPrecondition,
    );
    assert!(!file.exists());

    // Still damaged after another (clean) restart: the catalog remembers.
    s.stop().await;
    let s = TestServer::on_dir(dir.path()).await;
    let c = &s.client;
    assert_eq!(status(c, &db).await.0, DatabaseStatus::Damaged);
    assert!(!file.exists());

    // Restored by hand from its backup: usable again, with the backup's rows.
    let restored = c
        .restore_backup(&backup.id, RestoreMode::Replace)
        .await
        .expect("restore a damaged database");
    assert!(
        restored.safety_backup.is_none(),
        "nothing to keep of a quarantined file"
    );
    assert_eq!(
        status(c, &db).await,
        (DatabaseStatus::Ready, DatabaseStatus::Ready)
    );
    assert_eq!(count(c, &db).await.expect("count"), Value::Int(300));
    s.stop().await;
    let s = TestServer::on_dir(dir.path()).await;
    assert_eq!(status(&s.client, &db).await.0, DatabaseStatus::Ready);
    assert_eq!(
        std::fs::read_dir(dir.path().join("sqlite/quarantine"))
            .expect("quarantine dir")
            .count(),
        1,
        "the quarantined file is kept"
    );
}

/// A real crash (SIGKILL of the server process), a file torn meanwhile, and a restart with
/// `--restore-damaged`: the database comes back from its newest backup on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_restore_damaged_a_file_torn_by_a_crash_comes_back_from_its_newest_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = unique("crashed");
    let newest = {
        let server = ServerProcess::spawn(dir.path(), &[]);
        let c = server.client().await;
        c.create_database(&db, Default::default())
            .await
            .expect("create");
        fill(&c, &db, 100).await;
        c.create_backup(&db, CreateBackup::default())
            .await
            .expect("older backup");
        c.execute(&db, "INSERT INTO t VALUES (500, 'newer')", &[])
            .await
            .expect("insert");
        let newest = c
            .create_backup(&db, CreateBackup::default())
            .await
            .expect("newest backup");
        c.execute(&db, "INSERT INTO t VALUES (501, 'lost')", &[])
            .await
            .expect("insert");
        // Dropping the process handle kills it (SIGKILL): no shutdown, marker left.
        drop(server);
        newest
    };
    assert!(
        dir.path().join(RUNNING_MARKER).exists(),
        "a crash leaves the marker"
    );
    // The header of the file: no longer a database at all.
    corrupt(&sqlite_file(dir.path(), &db), 0, 100);

    let s = TestServer::with(|mut cfg| {
        cfg.data_dir = dir.path().to_path_buf();
        cfg.restore_damaged = true;
        cfg
    })
    .await;
    let c = &s.client;
    assert_eq!(
        status(c, &db).await,
        (DatabaseStatus::Ready, DatabaseStatus::Ready)
    );
    assert_eq!(count(c, &db).await.expect("count"), Value::Int(101));
    let events = events_of(c, &db).await;
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, DatabaseEventType::Damaged | DatabaseEventType::Restored))
        .collect();
    assert_eq!(
        kinds,
        [DatabaseEventType::Damaged, DatabaseEventType::Restored]
    );
    let restored = events
        .iter()
        .find(|e| e.kind == DatabaseEventType::Restored)
        .expect("restored");
    assert_eq!(restored.cause, format!("backup={} damaged", newest.id));
    assert_eq!(restored.key_id, "gateway");
    assert_eq!(
        std::fs::read_dir(dir.path().join("sqlite/quarantine"))
            .expect("quarantine dir")
            .count(),
        1,
        "the torn file is kept"
    );
}
