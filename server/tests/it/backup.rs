//! BackupService through gRPC on every backend: a rich database backed up, mutated, restored
//! (REPLACE and NEW) and compared with the moment of the backup; consistency under concurrent
//! writers; damaged backups refused with DATA_LOSS; access; recovery after a crash.

use std::{collections::BTreeMap, time::Duration};

use dbforge::{Backend, CreateOptions, pb};
use futures::StreamExt;
use tonic::{Code, Status, transport::Channel};

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, metric_value, mysql_url, postgres_url, redis_url,
    scrape_metrics, secured, serving, unique,
};

type Backups = pb::backup_service_client::BackupServiceClient<Channel>;

struct Clients {
    key: Option<String>,
    backups: Backups,
    query: pb::query_service_client::QueryServiceClient<Channel>,
    schema: pb::schema_service_client::SchemaServiceClient<Channel>,
}

impl Clients {
    /// A request carrying the key, if any.
    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(k) = &self.key {
            r.metadata_mut().insert(
                "authorization",
                format!("Bearer {k}").parse().expect("header"),
            );
        }
        r
    }

    fn new(ch: Channel) -> Self {
        Self::with_key(ch, None)
    }

    fn with_key(ch: Channel, key: Option<&str>) -> Self {
        Self {
            key: key.map(str::to_owned),
            backups: Backups::new(ch.clone()),
            query: pb::query_service_client::QueryServiceClient::new(ch.clone())
                .max_decoding_message_size(64 << 20),
            schema: pb::schema_service_client::SchemaServiceClient::new(ch),
        }
    }

    async fn backup(&self, db: &str) -> Result<pb::Backup, Status> {
        Ok(self
            .backups
            .clone()
            .create_backup(self.req(pb::CreateBackupRequest {
                database: db.into(),
                target: String::new(),
                labels: Default::default(),
            }))
            .await?
            .into_inner()
            .backup
            .expect("backup"))
    }

    async fn restore(
        &self,
        id: &str,
        new_name: Option<&str>,
    ) -> Result<pb::RestoreBackupResponse, Status> {
        let mode = if new_name.is_some() {
            pb::RestoreMode::New
        } else {
            pb::RestoreMode::Replace
        };
        Ok(self
            .backups
            .clone()
            .restore_backup(self.req(pb::RestoreBackupRequest {
                backup_id: id.into(),
                mode: mode as i32,
                new_name: new_name.unwrap_or_default().into(),
                labels: Default::default(),
            }))
            .await?
            .into_inner())
    }

    async fn list(&self, db: &str) -> Vec<pb::Backup> {
        self.backups
            .clone()
            .list_backups(self.req(pb::ListBackupsRequest {
                database: db.into(),
                ..Default::default()
            }))
            .await
            .expect("list backups")
            .into_inner()
            .backups
    }

    async fn exec(&self, db: &str, sql: &str) {
        self.query
            .clone()
            .execute(self.req(pb::ExecuteRequest {
                database: db.into(),
                sql: sql.into(),
                params: vec![],
            }))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn rows(&self, db: &str, sql: &str) -> Vec<Vec<pb::Value>> {
        let mut stream = self
            .query
            .clone()
            .query(self.req(pb::QueryRequest {
                database: db.into(),
                sql: sql.into(),
                params: vec![],
                max_rows: 0,
                summarize: false,
                read_only: false,
                max_bytes: 0,
                resumable: false,
                resume_token: String::new(),
            }))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            if let Some(pb::query_response::Kind::Batch(b)) = m.expect("query stream").kind {
                out.extend(b.rows.into_iter().map(|r| r.values));
            }
        }
        out
    }

    /// GetSchema (without the engine's row estimates) and every row of every table, in order.
    async fn snapshot(&self, db: &str, backend: Backend) -> Snapshot {
        let schema = self
            .schema
            .clone()
            .get_schema(self.req(pb::GetSchemaRequest {
                database: db.into(),
                table: String::new(),
            }))
            .await
            .expect("schema")
            .into_inner();
        let tables: Vec<pb::TableSchema> = schema
            .tables
            .into_iter()
            .map(|t| pb::TableSchema {
                row_estimate: None,
                ..t
            })
            .collect();
        let mut rows = BTreeMap::new();
        for t in &tables {
            let q = match backend {
                Backend::Mysql => format!("`{}`", t.name),
                _ => format!("\"{}\"", t.name),
            };
            let order: Vec<String> = (1..=t.columns.len()).map(|i| i.to_string()).collect();
            rows.insert(
                t.name.clone(),
                self.rows(
                    db,
                    &format!("SELECT * FROM {q} ORDER BY {}", order.join(", ")),
                )
                .await,
            );
        }
        Snapshot { tables, rows }
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    tables: Vec<pb::TableSchema>,
    rows: BTreeMap<String, Vec<Vec<pb::Value>>>,
}

fn code<T: std::fmt::Debug>(r: Result<T, Status>, want: Code, needle: &str) -> Status {
    let e = r.expect_err("should fail");
    assert_eq!(e.code(), want, "{e:?}");
    assert!(
        e.message().contains(needle),
        "{needle:?} not in {:?}",
        e.message()
    );
    e
}

/// The schema and rows of each engine's rich database: tables with keys, foreign keys,
/// checks, indexes, a view, a trigger and a sequence (where the engine has them).
fn rich(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Sqlite => vec![
            "CREATE TABLE author (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, born DATE)",
            "CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES author(id), title TEXT, price NUMERIC CHECK (price >= 0), cover BLOB)",
            "CREATE INDEX book_title ON book (title)",
            "CREATE TABLE audit (n INTEGER)",
            "CREATE TRIGGER book_added AFTER INSERT ON book BEGIN INSERT INTO audit VALUES (NEW.id); END",
            "CREATE VIEW cheap AS SELECT title FROM book WHERE price < 10",
            "INSERT INTO author (name, born) VALUES ('Ada', '1815-12-10'), ('Grace ''Amazing''', NULL), ('日本 🎉', '2000-01-01')",
            "INSERT INTO book VALUES (1, 1, 'Notes', 9.5, x'00ff10'), (2, 2, 'COBOL', 25, NULL), (3, 3, NULL, 0, x'')",
        ],
        Backend::Postgres => vec![
            "CREATE TABLE author (id serial PRIMARY KEY, name text NOT NULL UNIQUE, born date)",
            "CREATE TABLE book (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, author_id int REFERENCES author(id), title text, price numeric(10,2) CHECK (price >= 0), cover bytea, tags jsonb)",
            "CREATE INDEX book_title ON book (title)",
            "CREATE SEQUENCE tickets START 100",
            "SELECT nextval('tickets')",
            "SELECT nextval('tickets')",
            "CREATE TABLE audit (n bigint)",
            "CREATE FUNCTION note_book() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END $$",
            "CREATE TRIGGER book_added AFTER INSERT ON book FOR EACH ROW EXECUTE FUNCTION note_book()",
            "CREATE VIEW cheap AS SELECT title FROM book WHERE price < 10",
            "INSERT INTO author (name, born) VALUES ('Ada', '1815-12-10'), ('Grace ''Amazing''', NULL), ('日本 🎉', '2000-01-01')",
            "INSERT INTO book (author_id, title, price, cover, tags) VALUES (1, 'Notes', 9.5, '\\x00ff10', '{\"a\": [1, 2]}'), (2, 'COBOL', 25, NULL, NULL), (3, NULL, 0, '\\x', '[]')",
            // What COPY text escapes: tabs, newlines, backslashes, a line that reads `\.`.
            "CREATE TABLE odd (t text, a int[], j jsonb)",
            "INSERT INTO odd VALUES (E'tab\\there\\nnew line\\n\\\\.\\nback \\\\ slash', '{1,NULL,3}', '{\"k\": \"v\\\\n\"}'), (NULL, NULL, NULL), ('', '{}', 'null')",
            // User-defined types: an enum and a domain with a default and a check (composite
            // types are in the backend's dump test: the data plane reads them as text only).
            "CREATE TYPE mood AS ENUM ('happy', 'it''s sad')",
            "CREATE DOMAIN cents AS integer DEFAULT 1 NOT NULL CONSTRAINT positive CHECK (VALUE > 0)",
            "CREATE TABLE typed (id int PRIMARY KEY, m mood, p cents)",
            "INSERT INTO typed VALUES (1, 'it''s sad', 5), (2, NULL, 7)",
        ],
        Backend::Mysql => vec![
            "CREATE TABLE author (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, born DATE)",
            "CREATE TABLE book (id BIGINT AUTO_INCREMENT PRIMARY KEY, author_id INT, title VARCHAR(200), price DECIMAL(10,2) CHECK (price >= 0), cover BLOB, FOREIGN KEY (author_id) REFERENCES author(id))",
            "CREATE INDEX book_title ON book (title)",
            "CREATE TABLE audit (n BIGINT)",
            "CREATE TRIGGER book_added AFTER INSERT ON book FOR EACH ROW INSERT INTO audit VALUES (NEW.id)",
            "CREATE VIEW cheap AS SELECT title FROM book WHERE price < 10",
            "INSERT INTO author (name, born) VALUES ('Ada', '1815-12-10'), ('Grace ''Amazing''', NULL), ('日本 🎉', '2000-01-01')",
            "INSERT INTO book (author_id, title, price, cover) VALUES (1, 'Notes', 9.5, x'00ff10'), (2, 'COBOL', 25, NULL), (3, NULL, 0, x'')",
            // Dumped as the server's text (`CAST(… AS CHAR)`): fractions, negative times.
            "CREATE TABLE moment (id INT PRIMARY KEY, at DATETIME(6), stamp TIMESTAMP(3) NULL, span TIME(6), day DATE)",
            "INSERT INTO moment VALUES (1, '2024-02-29 23:59:59.123456', '2024-03-01 00:00:00.500', '-838:59:59.000000', '1000-01-01'), (2, NULL, NULL, '12:00:00.000001', NULL)",
        ],
        Backend::Redis | Backend::Graph | Backend::Unspecified => vec![],
    }
}

/// Changes every kind of thing a restore must undo.
fn mutations(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Sqlite => vec![
            "DROP VIEW cheap",
            "DELETE FROM book WHERE id = 2",
            "INSERT INTO author (name) VALUES ('late')",
            "DROP TABLE audit",
        ],
        Backend::Postgres => vec![
            "DROP VIEW cheap",
            "DELETE FROM book WHERE title = 'COBOL'",
            "SELECT setval('tickets', 5000)",
            "DELETE FROM odd",
            "INSERT INTO author (name) VALUES ('late')",
            "DROP TABLE audit",
        ],
        Backend::Mysql => vec![
            "DROP VIEW cheap",
            "DELETE FROM book WHERE title = 'COBOL'",
            "INSERT INTO author (name) VALUES ('late')",
            "DROP TRIGGER book_added",
            "DROP TABLE audit",
        ],
        Backend::Redis | Backend::Graph | Backend::Unspecified => vec![],
    }
}

/// Backup → mutate → restore REPLACE → identical to the backup; restore NEW leaves the
/// original alone.
async fn round(s: &TestServer, backend: Backend) {
    let c = Clients::new(s.client.channel());
    let db = unique("bk");
    s.client
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    for sql in rich(backend) {
        c.exec(&db, sql).await;
    }
    let before = c.snapshot(&db, backend).await;
    assert!(before.rows.values().any(|r| !r.is_empty()), "{before:?}");
    let backup = c.backup(&db).await.expect("backup");
    assert_eq!(
        backup.status,
        pb::BackupStatus::Completed as i32,
        "{backup:?}"
    );
    assert_eq!(backup.sha256.len(), 64);
    assert!(
        backup.size_bytes > 0 && backup.location.ends_with(".zst"),
        "{backup:?}"
    );
    let manifest = backup.manifest.clone().expect("manifest");
    assert!(manifest.tables >= 3 && manifest.views == 1, "{manifest:?}");
    assert!(!manifest.engine_version.is_empty(), "{manifest:?}");
    let authors = manifest
        .row_counts
        .iter()
        .find(|r| r.table == "author")
        .expect("author counted");
    assert_eq!(authors.rows, 3);
    let sequence_before = match backend {
        Backend::Postgres => Some(c.rows(&db, "SELECT last_value FROM tickets").await),
        _ => None,
    };

    for sql in mutations(backend) {
        c.exec(&db, sql).await;
    }
    assert_ne!(
        c.snapshot(&db, backend).await,
        before,
        "the mutations changed something"
    );
    let mutated = c.snapshot(&db, backend).await;

    // NEW: a copy as it was; the original keeps its changes.
    let copy = unique("bkcopy");
    let restored = c
        .restore(&backup.id, Some(&copy))
        .await
        .expect("restore new");
    assert_eq!(restored.database.expect("db").name, copy);
    assert!(restored.safety_backup.is_none());
    assert_eq!(
        c.snapshot(&copy, backend).await,
        before,
        "NEW is the backup"
    );
    assert_eq!(
        c.snapshot(&db, backend).await,
        mutated,
        "NEW left the original"
    );

    // REPLACE: the database is as it was, and the safety backup holds the mutated state.
    let replaced = c.restore(&backup.id, None).await.expect("restore replace");
    let safety = replaced.safety_backup.expect("safety backup");
    assert_eq!(safety.status, pb::BackupStatus::Completed as i32);
    assert_eq!(
        safety.labels.get("dbforge.safety-before-restore-of"),
        Some(&backup.id)
    );
    assert_eq!(
        c.snapshot(&db, backend).await,
        before,
        "REPLACE is the backup"
    );
    if let Some(seq) = sequence_before {
        assert_eq!(c.rows(&db, "SELECT last_value FROM tickets").await, seq);
    }
    // The trigger came back too.
    match backend {
        Backend::Postgres => {
            c.exec(&db, "INSERT INTO book (title) VALUES ('new')").await;
        }
        _ => {
            c.exec(&db, "INSERT INTO book (id, title) VALUES (99, 'new')")
                .await
        }
    }
    assert_eq!(
        c.rows(&db, "SELECT count(*) FROM audit").await.len(),
        1,
        "audit readable"
    );
    let audit = c.rows(&db, "SELECT count(*) FROM audit").await;
    assert_eq!(
        audit[0][0],
        pb::Value::from(dbforge::Value::Int(4)),
        "the trigger fired"
    );

    // The safety backup restores the mutated state.
    let back = unique("bksafe");
    c.restore(&safety.id, Some(&back))
        .await
        .expect("restore safety");
    assert_eq!(c.snapshot(&back, backend).await, mutated);

    let listed = c.list(&db).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].id, safety.id, "newest first");
}

#[tokio::test]
async fn backup_round_on_sqlite() {
    let s = TestServer::start().await;
    round(&s, Backend::Sqlite).await;
}

#[tokio::test]
async fn backup_round_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    round(&s, Backend::Postgres).await;
}

#[tokio::test]
async fn backup_round_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    round(&s, Backend::Mysql).await;
}

#[tokio::test]
async fn backup_round_on_redis() {
    let Some(url) = redis_url().await else { return };
    let s = serving(Backend::Redis, url).await;
    let c = Clients::new(s.client.channel());
    let db = unique("bkr");
    s.client
        .create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("spawn");
    for cmd in [
        "SET greeting hello",
        "SET session:1 token PX 600000",
        "RPUSH queue a b c",
        "SADD tags x y",
        "ZADD board 1.5 ada 2 grace",
        "HSET user:1 name Ada visits 3",
        "XADD events 1-1 kind start",
        "SET short-lived v PX 60000",
    ] {
        c.exec(&db, cmd).await;
    }
    let before = keys(&c, &db).await;
    assert_eq!(before.len(), 8);
    let backup = c.backup(&db).await.expect("backup");
    assert_eq!(backup.manifest.as_ref().expect("manifest").total_rows, 8);
    c.exec(&db, "DEL greeting").await;
    c.exec(&db, "HSET user:1 visits 99").await;
    c.exec(&db, "SET extra 1").await;
    // Expire a key the backup holds.
    c.exec(&db, "PEXPIRE short-lived 1").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.restore(&backup.id, None).await.expect("restore replace");
    let after = keys(&c, &db).await;
    // As at the moment of the backup: the short-lived key, expired since, is back with the
    // time to live it had then; the key added since is gone.
    assert_eq!(after, before);
    let short = c.rows(&db, "PTTL short-lived").await;
    let pb::Value {
        kind: Some(pb::value::Kind::IntValue(short)),
    } = &short[0][0]
    else {
        panic!("{short:?}")
    };
    assert!(*short > 0 && *short <= 60_000, "{short}");
    assert_eq!(
        c.rows(&db, "GET greeting").await[0][0],
        pb::Value::from(dbforge::Value::Text("hello".into()))
    );
    assert_eq!(
        c.rows(&db, "HGET user:1 visits").await[0][0],
        pb::Value::from(dbforge::Value::Text("3".into()))
    );
    let ttl = c.rows(&db, "PTTL session:1").await;
    let pb::Value {
        kind: Some(pb::value::Kind::IntValue(ms)),
    } = &ttl[0][0]
    else {
        panic!("{ttl:?}")
    };
    assert!(*ms > 500_000 && *ms <= 600_000, "TTL kept: {ms}");
}

async fn keys(c: &Clients, db: &str) -> Vec<Vec<pb::Value>> {
    let mut keys = c.rows(db, "KEYS *").await;
    keys.sort_by_key(|k| format!("{k:?}"));
    keys
}

/// A counter and a log that every writer updates in one transaction: any state a backup
/// captures has as many log rows as the counter says.
async fn consistent_under_writers(s: &TestServer, backend: Backend) {
    let c = Clients::new(s.client.channel());
    let db = unique("bkc");
    s.client
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    c.exec(
        &db,
        "CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)",
    )
    .await;
    c.exec(
        &db,
        "CREATE TABLE log (writer INT NOT NULL, at INT NOT NULL)",
    )
    .await;
    c.exec(&db, "INSERT INTO counter VALUES (1, 0)").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, db, stop) = (s.connect().await, db.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let r = client
                    .batch(
                        &db,
                        vec![
                            dbforge::Statement::new(
                                "UPDATE counter SET n = n + 1 WHERE id = 1",
                                vec![],
                            ),
                            dbforge::Statement::new(
                                format!("INSERT INTO log VALUES ({w}, {i})"),
                                vec![],
                            ),
                        ],
                        true,
                    )
                    .await;
                // Serialization failures and lock waits under contention are fine: retried.
                let _ = r;
            }
            i
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut backups = Vec::new();
    for _ in 0..3 {
        backups.push(c.backup(&db).await.expect("backup under writers"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    for (i, b) in backups.iter().enumerate() {
        let copy = unique("bkcc");
        c.restore(&b.id, Some(&copy)).await.expect("restore");
        let n = c.rows(&copy, "SELECT n FROM counter").await;
        let logged = c.rows(&copy, "SELECT count(*) FROM log").await;
        let as_int = |v: &pb::Value| match &v.kind {
            Some(pb::value::Kind::IntValue(n)) => *n,
            Some(pb::value::Kind::DecimalValue(d)) => d.parse().expect("count"),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            as_int(&n[0][0]),
            as_int(&logged[0][0]),
            "backup {i}: the counter and the log agree"
        );
    }
}

#[tokio::test]
async fn backups_are_consistent_under_writers_on_sqlite() {
    let s = TestServer::start().await;
    consistent_under_writers(&s, Backend::Sqlite).await;
}

#[tokio::test]
async fn backups_are_consistent_under_writers_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    consistent_under_writers(&s, Backend::Postgres).await;
}

#[tokio::test]
async fn backups_are_consistent_under_writers_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    consistent_under_writers(&s, Backend::Mysql).await;
}

/// Flipped bytes, a cut and a swapped manifest: DATA_LOSS, and the database is untouched.
#[tokio::test]
async fn damaged_backups_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let c = Clients::new(s.client.channel());
    let db = s.db("bkd").await;
    c.exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    c.exec(&db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t SELECT i, hex(randomblob(20)) FROM n").await;
    let a = c.backup(&db).await.expect("backup a");
    c.exec(&db, "DELETE FROM t WHERE id > 10").await;
    let b = c.backup(&db).await.expect("backup b");
    c.exec(&db, "INSERT INTO t VALUES (100000, 'current')")
        .await;
    let current = c.snapshot(&db, Backend::Sqlite).await;
    let dir = s.data_dir().join("backups").join(&db);
    let object = dir.join(format!("{}.zst", a.id));
    let manifest = dir.join(format!("{}.manifest.json", a.id));
    let pristine = std::fs::read(&object).expect("stored object");

    let mut flipped = pristine.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(&object, &flipped).expect("flip");
    code(c.restore(&a.id, None).await, Code::DataLoss, "");
    code(
        c.restore(&a.id, Some(&unique("bkx"))).await,
        Code::DataLoss,
        "",
    );
    assert_eq!(c.snapshot(&db, Backend::Sqlite).await, current);

    std::fs::write(&object, &pristine[..pristine.len() - 100]).expect("truncate");
    code(c.restore(&a.id, None).await, Code::DataLoss, "checksum");
    assert_eq!(c.snapshot(&db, Backend::Sqlite).await, current);

    std::fs::write(&object, &pristine).expect("put back");
    let a_manifest = std::fs::read(&manifest).expect("manifest");
    let b_manifest = dir.join(format!("{}.manifest.json", b.id));
    std::fs::copy(&b_manifest, &manifest).expect("swap manifests");
    code(c.restore(&a.id, None).await, Code::DataLoss, "manifest");
    assert_eq!(c.snapshot(&db, Backend::Sqlite).await, current);

    // Pristine again: it restores.
    std::fs::write(&manifest, &a_manifest).expect("manifest back");
    c.restore(&a.id, None).await.expect("restore");
    assert_eq!(
        c.rows(&db, "SELECT count(*) FROM t").await[0][0],
        pb::Value::from(dbforge::Value::Int(5000))
    );
    // Failed restores left no database behind.
    let names: Vec<String> = s
        .client
        .list_databases(Default::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("bkx")), "{names:?}");
}

/// Read and write keys cannot back up or restore; the owner can; other keys do not see the
/// backups.
#[tokio::test]
async fn only_owners_back_up_and_others_do_not_see_backups() {
    let s = secured(Backend::Sqlite, None).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let (_, owner_key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("owner")
                .can_create(0)
                .grant(dbforge::Grant::pattern("bka-*", dbforge::Role::Read)),
        )
        .await
        .expect("key");
    let owner = as_key(&s, &owner_key).await;
    let db = unique("bka");
    owner
        .create_database(&db, CreateOptions::default())
        .await
        .expect("spawn");
    let (_, writer_key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("writer")
                .grant(dbforge::Grant::database(&db, dbforge::Role::Write)),
        )
        .await
        .expect("key");
    let (_, other_key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("other")
                .can_create(0)
                .grant(dbforge::Grant::pattern("other-*", dbforge::Role::Owner)),
        )
        .await
        .expect("key");
    let owner_c = Clients::with_key(owner.channel(), Some(&owner_key));
    let writer_c = Clients::with_key(owner.channel(), Some(&writer_key));
    let other_c = Clients::with_key(owner.channel(), Some(&other_key));
    owner_c.exec(&db, "CREATE TABLE t (x INT)").await;

    code(writer_c.backup(&db).await, Code::PermissionDenied, "owner");
    let b = owner_c.backup(&db).await.expect("owner backs up");
    code(
        writer_c.restore(&b.id, None).await,
        Code::PermissionDenied,
        "owner",
    );
    code(
        writer_c.restore(&b.id, Some(&unique("bkw"))).await,
        Code::PermissionDenied,
        "",
    );
    assert!(other_c.list("").await.is_empty(), "others see nothing");
    code(
        other_c
            .backups
            .clone()
            .get_backup(other_c.req(pb::GetBackupRequest { id: b.id.clone() }))
            .await,
        Code::NotFound,
        "backup",
    );
    code(other_c.restore(&b.id, None).await, Code::NotFound, "backup");
    assert_eq!(owner_c.list(&db).await.len(), 1);
    owner_c.restore(&b.id, None).await.expect("owner restores");
    // Every call was audited.
    let (audit, _) = admin
        .list_audit_events(Default::default())
        .await
        .expect("audit");
    let rpcs: Vec<&str> = audit.iter().map(|r| r.rpc.as_str()).collect();
    assert!(
        rpcs.contains(&"CreateBackup") && rpcs.contains(&"RestoreBackup"),
        "{rpcs:?}"
    );
}

/// A backup the gateway was killed during is failed at the next start and its partial
/// object removed; a restore's staging database is dropped.
#[tokio::test]
async fn a_backup_interrupted_by_a_crash_is_failed_and_cleaned_at_start() {
    let s = TestServer::start().await;
    let c = Clients::new(s.client.channel());
    let db = s.db("bkk").await;
    c.exec(&db, "CREATE TABLE t (x INT)").await;
    let b = c.backup(&db).await.expect("backup");
    let dir = s.data_dir().to_path_buf();
    let data = s.stop().await;
    // As a kill mid-upload leaves it: the record running, a partial staging file.
    let object = dir.join("backups").join(&db).join(format!("{}.zst", b.id));
    let partial = dir
        .join("backups")
        .join(&db)
        .join(format!("{}.zst#1", b.id));
    std::fs::copy(&object, &partial).expect("partial");
    let cat = rusqlite::Connection::open(dir.join("catalog.db")).expect("catalog");
    cat.execute(
        "UPDATE backups SET status = 'running' WHERE id = ?1",
        [&b.id],
    )
    .expect("mark running");
    drop(cat);
    let s = TestServer::on_dir(&dir).await;
    let c = Clients::new(s.client.channel());
    let listed = c.list(&db).await;
    assert_eq!(
        listed[0].status,
        pb::BackupStatus::Failed as i32,
        "{listed:?}"
    );
    assert!(listed[0].error.contains("interrupted"), "{listed:?}");
    assert!(!object.exists() && !partial.exists());
    drop(data);
}

/// Calls during a REPLACE restore see the database before or after it, or UNAVAILABLE: never
/// half of it.
#[tokio::test]
async fn calls_during_a_replace_see_before_or_after_or_unavailable() {
    let s = TestServer::start().await;
    let c = Clients::new(s.client.channel());
    let db = s.db("bkf").await;
    c.exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    c.exec(&db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) INSERT INTO t SELECT i, hex(randomblob(32)) FROM n").await;
    let b = c.backup(&db).await.expect("backup");
    c.exec(&db, "DELETE FROM t WHERE id > 25000").await;
    let restore = {
        let c = Clients::new(s.client.channel());
        let id = b.id.clone();
        tokio::spawn(async move { c.restore(&id, None).await })
    };
    let mut seen = BTreeMap::<String, usize>::new();
    while !restore.is_finished() {
        let r = c
            .query
            .clone()
            .execute(pb::ExecuteRequest {
                database: db.clone(),
                sql: "SELECT count(*) FROM t".into(),
                params: vec![],
            })
            .await;
        let key = match r {
            Ok(resp) => format!(
                "{:?}",
                resp.into_inner().result.expect("result").rows[0].values[0].kind
            ),
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                assert!(e.message().contains("being restored"), "{e:?}");
                "UNAVAILABLE".to_owned()
            }
        };
        *seen.entry(key).or_default() += 1;
    }
    restore.await.expect("task").expect("restore");
    let allowed = [
        "Some(IntValue(25000))".to_owned(),
        "Some(IntValue(50000))".to_owned(),
        "UNAVAILABLE".to_owned(),
    ];
    assert!(seen.keys().all(|k| allowed.contains(k)), "{seen:?}");
    assert_eq!(
        c.rows(&db, "SELECT count(*) FROM t").await[0][0],
        pb::Value::from(dbforge::Value::Int(50000))
    );
}

/// A transaction open when a restore replaces its database cannot commit into the storage
/// being replaced: its next statement and its commit are refused, and its write is in neither
/// the safety backup nor the restored database.
#[tokio::test]
async fn a_transaction_open_across_a_replace_cannot_commit() {
    let s = TestServer::start().await;
    let c = Clients::new(s.client.channel());
    let db = s.db("bktx").await;
    c.exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    c.exec(&db, "INSERT INTO t VALUES (1)").await;
    let b = c.backup(&db).await.expect("backup");
    let mut tx = s.client.transaction(&db).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (2)", &[])
        .await
        .expect("write inside the transaction");
    let restored = c.restore(&b.id, None).await.expect("restore");
    let refused = tx
        .execute("INSERT INTO t VALUES (3)", &[])
        .await
        .expect_err("a statement after the restore");
    assert_eq!(refused.code(), dbforge::Code::Unavailable, "{refused}");
    assert!(tx.commit().await.is_err(), "the commit is refused too");
    assert_eq!(
        c.rows(&db, "SELECT count(*) FROM t").await[0][0],
        pb::Value::from(dbforge::Value::Int(1))
    );
    let safety = restored.safety_backup.expect("a safety backup");
    let aside = unique("bktx-safety");
    c.restore(&safety.id, Some(&aside))
        .await
        .expect("restore aside");
    assert_eq!(
        c.rows(&aside, "SELECT count(*) FROM t").await[0][0],
        pb::Value::from(dbforge::Value::Int(1)),
        "the uncommitted write is not in the safety backup"
    );
}

/// A target that refuses the write (as a full disk does) fails the backup, leaves nothing
/// listed as good or stored, and the metrics count both outcomes and the newest backup's age.
#[tokio::test]
async fn a_failed_write_keeps_nothing_and_metrics_count_backups() {
    let s = TestServer::start().await;
    let c = Clients::new(s.client.channel());
    let db = s.db("bkm").await;
    c.exec(&db, "CREATE TABLE t (x INT)").await;
    // The database's folder in the target is a file: every write under it fails.
    let folder = s.data_dir().join("backups").join(&db);
    std::fs::write(&folder, b"in the way").expect("block the folder");
    let failed = code(c.backup(&db).await, Code::Unavailable, "backup target");
    assert!(failed.message().contains("local"), "{failed:?}");
    let listed = c.list(&db).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, pb::BackupStatus::Failed as i32);
    assert!(!listed[0].error.is_empty());
    std::fs::remove_file(&folder).expect("unblock");
    c.backup(&db).await.expect("backup");

    let text = scrape_metrics(&s).await;
    let series = |name: &str, labels: &[&str]| metric_value(&text, name, labels);
    assert_eq!(
        series(
            "dbforge_backups_total{",
            &["sqlite", "outcome=\"completed\""]
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        series("dbforge_backups_total{", &["sqlite", "outcome=\"failed\""]).as_deref(),
        Some("1")
    );
    assert!(series("dbforge_backup_bytes_total{", &["sqlite"]).is_some());
    assert!(series("dbforge_backup_duration_seconds_count{", &["sqlite"]).is_some());
    assert!(series("dbforge_backup_newest_age_seconds{", &[db.as_str()]).is_some());
}
