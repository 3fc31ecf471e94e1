//! The conformance suite on SQLite (always available: it is embedded).

use std::sync::Arc;

use super::{SqliteBackend, SqliteConfig};
use crate::backend::conformance::{self, Hooks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = SqliteBackend::new(SqliteConfig {
        dir: dir.path().to_path_buf(),
        max_readers: 4,
        cache_kib: 2048,
        max_value_bytes: 4 << 20,
        max_size_bytes: 1 << 30,
    })
    .expect("backend");
    let hooks = Hooks {
        slow_query: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                     SELECT count(*) FROM c"
            .into(),
        series_query:
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
                       SELECT x, 'row ' || x FROM c"
                .into(),
        ping: "SELECT 1".into(),
        slow_setup: None,
    };
    conformance::run_all(Arc::new(backend), &hooks).await;
}

/// Helpers of the inspect tests: databases in a temp dir, setup, and replaying dumps.
mod inspect_support {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::super::{SqliteBackend, SqliteConfig};
    use crate::{
        backend::{Backend, BackendKind, Database, StatementLimits},
        core::{
            limits::Limits,
            names::DatabaseName,
            script,
            value::{Statement, Value},
        },
    };

    pub fn config(dir: &std::path::Path) -> SqliteConfig {
        SqliteConfig {
            dir: dir.to_path_buf(),
            max_readers: 4,
            cache_kib: 2048,
            max_value_bytes: 4 << 20,
            max_size_bytes: 1 << 30,
        }
    }

    pub fn backend(dir: &std::path::Path) -> SqliteBackend {
        SqliteBackend::new(config(dir)).expect("backend")
    }

    pub fn limits() -> StatementLimits {
        Limits::default().whole_result()
    }

    pub async fn spawn(b: &SqliteBackend, name: &str) -> Arc<dyn Database> {
        let p = b.locate(&DatabaseName::parse(name).expect("name"));
        b.create(&p).await.expect("create");
        b.open(&p).await.expect("open")
    }

    pub fn sql(s: &str) -> Statement {
        Statement {
            sql: s.into(),
            params: Vec::new(),
        }
    }

    pub async fn run(db: &dyn Database, stmts: &[&str]) {
        db.batch(stmts.iter().map(|s| sql(s)).collect(), true, &limits())
            .await
            .expect("setup");
    }

    pub async fn rows(db: &dyn Database, q: &str) -> Vec<Vec<Value>> {
        db.execute(sql(q), &limits()).await.expect(q).rows
    }

    pub async fn dump_text(db: &dyn Database, schema_only: bool) -> (String, u64, usize) {
        let lim = StatementLimits {
            max_rows: u64::MAX,
            max_bytes: u64::MAX,
            ..limits()
        };
        let mut stream = db.dump(schema_only, lim).await.expect("dump");
        let (mut bytes, mut rows, mut chunks) = (Vec::new(), 0, 0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            assert!(
                chunk.data.len() <= 64 << 10,
                "chunk of {}",
                chunk.data.len()
            );
            bytes.extend_from_slice(&chunk.data);
            rows += chunk.rows;
            chunks += 1;
        }
        (String::from_utf8(bytes).expect("utf-8"), rows, chunks)
    }

    /// Replays a dump the way ImportSql does: split by the script splitter, every statement
    /// through a data-plane session (the sandbox), in one transaction.
    pub async fn replay(db: &dyn Database, dump: &str) {
        let stmts = script::split(BackendKind::Sqlite, dump, 64 << 20).expect("split");
        let mut session = db.session(limits()).await.expect("session");
        session.begin().await.expect("begin");
        for s in stmts {
            let line = s.line;
            let head: String = s.sql.chars().take(200).collect();
            session
                .execute(sql(&s.sql))
                .await
                .unwrap_or_else(|e| panic!("line {line}: {e:?}: {head}"));
        }
        session.commit().await.expect("commit");
    }
}

/// Schema, plans and dumps (inspect.rs) on real database files.
mod inspect {
    use futures::StreamExt;

    use super::inspect_support::*;
    use crate::{
        backend::{Database, StatementLimits},
        core::{
            error::{Error, QueryErrorKind},
            schema::{CheckSchema, ForeignKeySchema, IndexSchema, TableKind, UniqueSchema},
            value::{Statement, Value, ValueKind},
        },
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schema_describes_tables_constraints_and_views() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "schema").await;
        run(
            &*db,
            &[
                "CREATE TABLE author (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
                 name TEXT DEFAULT 'anon')",
                "CREATE TABLE book (\n  author_id INTEGER NOT NULL REFERENCES author (id) \
                 ON DELETE CASCADE,\n  seq INTEGER NOT NULL,\n  title TEXT NOT NULL,\n  \
                 price DECIMAL(10, 2) CONSTRAINT price_positive CHECK (price > 0),\n  \
                 note TEXT CHECK (note <> 'a '')'' (CHECK'),\n  \
                 PRIMARY KEY (seq, author_id),\n  CHECK (title <> '')\n)",
                "CREATE INDEX book_title ON book (title, lower(note))",
                "CREATE VIEW cheap AS SELECT title FROM book WHERE price < 10",
                "INSERT INTO author (email) VALUES ('a@x'), ('b@x')",
                "INSERT INTO book VALUES (1, 1, 'One', 5, NULL), (1, 2, 'Two', 20, 'n')",
            ],
        )
        .await;
        let schema = db.schema(None, &limits()).await.expect("schema");
        let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["author", "book", "cheap"]);

        let author = &schema.tables[0];
        assert_eq!(author.primary_key, ["id"]);
        assert!(author.columns[0].auto_increment && !author.columns[0].nullable);
        assert_eq!(author.columns[0].kind, ValueKind::Int);
        assert_eq!(author.columns[2].default.as_deref(), Some("'anon'"));
        assert_eq!(
            author.uniques,
            [UniqueSchema {
                name: String::new(),
                columns: vec!["email".into()]
            }]
        );
        assert_eq!(author.row_estimate, Some(2));

        let book = &schema.tables[1];
        assert_eq!(book.kind, TableKind::Table);
        assert_eq!(book.primary_key, ["seq", "author_id"]);
        let cols: Vec<(&str, &str, ValueKind, bool, bool, bool)> = book
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.declared_type.as_str(),
                    c.kind,
                    c.nullable,
                    c.primary_key,
                    c.auto_increment,
                )
            })
            .collect();
        assert_eq!(
            cols,
            [
                ("author_id", "INTEGER", ValueKind::Int, false, true, false),
                ("seq", "INTEGER", ValueKind::Int, false, true, false),
                ("title", "TEXT", ValueKind::Text, false, false, false),
                (
                    "price",
                    "DECIMAL(10, 2)",
                    ValueKind::Decimal,
                    true,
                    false,
                    false
                ),
                ("note", "TEXT", ValueKind::Text, true, false, false),
            ]
        );
        assert_eq!(
            book.indexes,
            [
                IndexSchema {
                    name: "book_title".into(),
                    columns: vec!["title".into(), "lower(note)".into()],
                    unique: false,
                    primary: false,
                },
                IndexSchema {
                    name: "sqlite_autoindex_book_1".into(),
                    columns: vec!["seq".into(), "author_id".into()],
                    unique: true,
                    primary: true,
                },
            ]
        );
        assert!(book.uniques.is_empty());
        assert_eq!(
            book.foreign_keys,
            [ForeignKeySchema {
                name: String::new(),
                columns: vec!["author_id".into()],
                referenced_table: "author".into(),
                referenced_columns: vec!["id".into()],
                on_update: "NO ACTION".into(),
                on_delete: "CASCADE".into(),
            }]
        );
        assert_eq!(
            book.checks,
            [
                CheckSchema {
                    name: "price_positive".into(),
                    expression: "price > 0".into()
                },
                CheckSchema {
                    name: String::new(),
                    expression: "note <> 'a '')'' (CHECK'".into()
                },
                CheckSchema {
                    name: String::new(),
                    expression: "title <> ''".into()
                },
            ]
        );
        assert_eq!(book.row_estimate, Some(2));
        assert!(book.definition.starts_with("CREATE TABLE book ("));

        let view = &schema.tables[2];
        assert_eq!(view.kind, TableKind::View);
        assert_eq!(view.definition, "SELECT title FROM book WHERE price < 10");
        assert_eq!(view.columns.len(), 1);
        assert_eq!(view.columns[0].name, "title");
        assert_eq!(view.row_estimate, None);

        let one = db.schema(Some("book"), &limits()).await.expect("one");
        assert_eq!(one.tables, std::slice::from_ref(book));
        let err = db
            .schema(Some("nope"), &limits())
            .await
            .expect_err("missing");
        assert!(
            matches!(&err, Error::NotFound { what: "table", name } if name == "nope"),
            "{err:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn explain_flags_full_scans_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "explain").await;
        run(
            &*db,
            &[
                "CREATE TABLE big (id INTEGER PRIMARY KEY, k TEXT, v TEXT)",
                "CREATE INDEX big_k ON big (k)",
            ],
        )
        .await;
        let plan = db
            .explain(
                sql("SELECT * FROM big AS b WHERE v = 'x'"),
                false,
                &limits(),
            )
            .await
            .expect("plan");
        assert_eq!(plan.nodes.len(), 1, "{plan:?}");
        assert_eq!(plan.nodes[0].operation, "SCAN");
        assert_eq!(plan.nodes[0].relation, "big");
        assert!(plan.nodes[0].full_scan);
        assert_eq!(plan.full_scans(), ["big"]);
        assert_eq!(plan.raw, "QUERY PLAN\n`--SCAN b\n");

        let by_key = Statement {
            sql: "SELECT * FROM big WHERE k = ? ORDER BY v".into(),
            params: vec![Value::Text("a".into())],
        };
        let plan = db.explain(by_key, false, &limits()).await.expect("plan");
        let ops: Vec<(&str, &str, bool)> = plan
            .nodes
            .iter()
            .map(|n| (n.operation.as_str(), n.relation.as_str(), n.full_scan))
            .collect();
        assert_eq!(
            ops,
            [("SEARCH", "big", false), ("USE TEMP B-TREE", "", false)]
        );
        assert_eq!(plan.nodes[0].detail, "USING INDEX big_k (k=?)");
        assert!(plan.full_scans().is_empty());

        let err = db
            .explain(sql("SELECT * FROM missing"), false, &limits())
            .await
            .expect_err("no such table");
        assert!(
            matches!(&err, Error::Query { kind: QueryErrorKind::Syntax, message, .. }
                if message.contains("no such table")),
            "{err:?}"
        );
        let err = db
            .explain(sql("SELECT 1"), true, &limits())
            .await
            .expect_err("analyze");
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    operation: "Explain with analyze",
                    backend: "sqlite"
                }
            ),
            "{err:?}"
        );
        // The sandbox holds under EXPLAIN too.
        let err = db
            .explain(sql("ATTACH 'x.db' AS x"), false, &limits())
            .await
            .expect_err("attach");
        assert!(
            matches!(
                &err,
                Error::Query {
                    kind: QueryErrorKind::Forbidden,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// `defer_foreign_keys`, which dumps need, moves checks to COMMIT and never skips them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_foreign_keys_are_still_enforced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "defer").await;
        run(
            &*db,
            &[
                "CREATE TABLE p (id INTEGER PRIMARY KEY)",
                "CREATE TABLE c (pid INTEGER REFERENCES p (id))",
            ],
        )
        .await;
        let fk = |e: &Error| {
            matches!(
                e,
                Error::Query {
                    kind: QueryErrorKind::ForeignKey,
                    ..
                }
            )
        };
        // Outside a transaction the setting ends with its own statement.
        db.execute(sql("PRAGMA defer_foreign_keys = ON"), &limits())
            .await
            .expect("pragma");
        let err = db
            .execute(sql("INSERT INTO c VALUES (1)"), &limits())
            .await
            .expect_err("orphan");
        assert!(fk(&err), "{err:?}");
        // Inside one, the orphan is refused at COMMIT, and nothing is kept.
        let mut s = db.session(limits()).await.expect("session");
        s.begin().await.expect("begin");
        s.execute(sql("PRAGMA defer_foreign_keys = ON"))
            .await
            .expect("pragma");
        s.execute(sql("INSERT INTO c VALUES (1)"))
            .await
            .expect("deferred");
        let err = s.commit().await.expect_err("commit checks");
        assert!(fk(&err), "{err:?}");
        drop(s);
        assert_eq!(
            rows(&*db, "SELECT count(*) FROM c").await,
            [[Value::Int(0)]]
        );
    }

    const WEIRD: &str = "we\"ird; DROP TABLE x; --";

    fn float_cases() -> Vec<f64> {
        vec![
            0.1,
            1e308,
            -1e308,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1.0 / 3.0,
            std::f64::consts::PI,
            -2.5,
            123_456_789.123_456_78,
            2.225_073_858_507_201e-308,
            9_007_199_254_740_993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]
    }

    async fn fill(db: &dyn Database) {
        run(
            db,
            &[
                "PRAGMA user_version = 7",
                // Created before its parent: the dump must insert parents first.
                "CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL \
                 REFERENCES parent (id), t TEXT)",
                "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
                "CREATE TABLE vals (t TEXT, r REAL, b BLOB, any_col, \
                 g INTEGER GENERATED ALWAYS AS (length(t)) VIRTUAL)",
                "CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
                "CREATE TABLE log (msg TEXT)",
                "CREATE TABLE node (id INTEGER PRIMARY KEY, up INTEGER REFERENCES node (id))",
                "CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID",
                &format!(
                    "CREATE TABLE \"{}\" (\"col; --\" TEXT, \"a\"\"b\" INTEGER CHECK (\"a\"\"b\" \
                     <> 0))",
                    WEIRD.replace('"', "\"\"")
                ),
                &format!(
                    "CREATE INDEX \"ix; {}\" ON \"{}\" (\"col; --\")",
                    WEIRD.replace('"', "\"\""),
                    WEIRD.replace('"', "\"\"")
                ),
                "CREATE VIEW v_children AS SELECT c.t, p.name FROM child c JOIN parent p \
                 ON p.id = c.pid",
                "CREATE TRIGGER seq_log AFTER INSERT ON seq BEGIN \
                 INSERT INTO log (msg) VALUES ('inserted; ' || new.v); \
                 INSERT INTO log (msg) VALUES ('END; again'); END",
                "INSERT INTO parent (id, name) VALUES (1, 'p1'), (2, 'p2')",
                "INSERT INTO child (pid, t) VALUES (2, 'c1'), (1, 'c2')",
                "INSERT INTO seq (v) VALUES ('a'), ('b'), ('c')",
                "DELETE FROM seq WHERE id = 3",
                "INSERT INTO kv VALUES ('x', 1), ('y', x'00ff')",
                &format!(
                    "INSERT INTO \"{}\" VALUES ('v; DROP TABLE parent; --', 1)",
                    WEIRD.replace('"', "\"\"")
                ),
                // Each row points at the next: across INSERT batches only deferred checks pass.
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1200) \
                 INSERT INTO node (id, up) SELECT x, CASE WHEN x < 1200 THEN x + 1 END FROM c",
                // A gap in the rowids, which the dump keeps.
                "INSERT INTO vals (rowid, t) VALUES (100, 'after a gap')",
                "INSERT INTO vals (t) VALUES (CAST(x'61006263' AS TEXT))",
            ],
        )
        .await;
        let texts = [
            "plain",
            "it's \"quoted\" `x` [y]",
            "line1\nline2\r\n;\nEND;\n-- not a comment\n/* nor this */",
            "héllo → 世界 🎉",
            "",
            "BEGIN; CREATE TRIGGER t; END;",
        ];
        let mut stmts = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            stmts.push(Statement {
                sql: "INSERT INTO vals (t, r, b, any_col) VALUES (?, ?, ?, ?)".into(),
                params: vec![
                    Value::Text((*t).into()),
                    Value::Null,
                    Value::Bytes(vec![u8::try_from(i).expect("small"), 0, 255]),
                    if i % 2 == 0 {
                        Value::Int(i64::MIN + i64::try_from(i).expect("small"))
                    } else {
                        Value::Text(format!("{i}"))
                    },
                ],
            });
        }
        for f in float_cases() {
            stmts.push(Statement {
                sql: "INSERT INTO vals (r, any_col) VALUES (?, ?)".into(),
                params: vec![Value::Float(f), Value::Float(f)],
            });
        }
        stmts.push(Statement {
            sql: "INSERT INTO vals (t, r, b, any_col) VALUES (NULL, NULL, ?, NULL)".into(),
            params: vec![Value::Bytes(
                (0..1 << 20).map(|i| (i % 251) as u8).collect(),
            )],
        });
        db.batch(stmts, true, &limits()).await.expect("values");
    }

    /// Everything that must survive a dump: catalog text, header fields and every row with
    /// its storage class.
    async fn snapshot(db: &dyn Database) -> Vec<Vec<Vec<Value>>> {
        let weird = format!("\"{}\"", WEIRD.replace('"', "\"\""));
        let mut out = vec![
            rows(
                db,
                "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name",
            )
            .await,
            rows(db, "PRAGMA user_version").await,
            rows(db, "SELECT name, seq FROM sqlite_sequence ORDER BY name").await,
        ];
        for q in [
            "SELECT * FROM parent ORDER BY id".to_owned(),
            "SELECT * FROM child ORDER BY id".to_owned(),
            "SELECT rowid, typeof(t), t, typeof(r), r, typeof(b), b, typeof(any_col), any_col, \
             g, hex(t) FROM vals ORDER BY rowid"
                .to_owned(),
            "SELECT * FROM seq ORDER BY id".to_owned(),
            "SELECT rowid, * FROM log ORDER BY rowid".to_owned(),
            "SELECT count(*), sum(up) FROM node".to_owned(),
            "SELECT k, typeof(v), v FROM kv ORDER BY k".to_owned(),
            format!("SELECT rowid, * FROM {weird}"),
            "SELECT * FROM v_children ORDER BY t".to_owned(),
        ] {
            out.push(rows(db, &q).await);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dump_replays_into_an_identical_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let src = spawn(&b, "dump-src").await;
        fill(&*src).await;
        let (text, dumped_rows, chunks) = dump_text(&*src, false).await;
        assert!(text.starts_with("-- DB-Forge dump of a sqlite database\n"));
        assert!(
            chunks > 30,
            "a 2 MiB dump comes in 64 KiB chunks, got {chunks}"
        );
        let parent_at = text.find("INSERT INTO \"parent\"").expect("parent rows");
        let child_at = text.find("INSERT INTO \"child\"").expect("child rows");
        assert!(parent_at < child_at, "parents are inserted first");
        // 2 parents, 2 children, 6 + 14 + 1 + 2 vals, 2 seq, 6 log, 1200 nodes, 2 kv, 1 weird
        assert_eq!(dumped_rows, 2 + 2 + 23 + 2 + 6 + 1200 + 2 + 1);

        let dst = spawn(&b, "dump-dst").await;
        replay(&*dst, &text).await;
        let (before, after) = (snapshot(&*src).await, snapshot(&*dst).await);
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a, b, "snapshot part {i} differs");
        }
        // Floats are bit-for-bit the same.
        let bits = |rows: Vec<Vec<Value>>| -> Vec<u64> {
            rows.into_iter()
                .map(|r| match r[0] {
                    Value::Float(f) => f.to_bits(),
                    ref other => panic!("not a float: {other:?}"),
                })
                .collect()
        };
        let q = "SELECT r FROM vals WHERE r IS NOT NULL ORDER BY rowid";
        let want: Vec<u64> = float_cases().into_iter().map(f64::to_bits).collect();
        assert_eq!(bits(rows(&*src, q).await), want);
        assert_eq!(bits(rows(&*dst, q).await), want);

        // The AUTOINCREMENT counter continues past the deleted id 3; the trigger is live.
        let r = dst
            .execute(sql("INSERT INTO seq (v) VALUES ('d')"), &limits())
            .await
            .expect("insert");
        assert_eq!(r.last_insert_id, Some(4));
        assert_eq!(
            rows(&*dst, "SELECT count(*) FROM log").await,
            [[Value::Int(8)]]
        );
        // Foreign keys still hold after the replay.
        assert!(rows(&*dst, "PRAGMA foreign_key_check").await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schema_only_dump_has_no_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let src = spawn(&b, "dump-schema-src").await;
        fill(&*src).await;
        let (text, dumped_rows, _) = dump_text(&*src, true).await;
        assert_eq!(dumped_rows, 0);
        assert!(!text.contains("INSERT INTO \"parent\""));
        let dst = spawn(&b, "dump-schema-dst").await;
        replay(&*dst, &text).await;
        let q = "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name <> \
                 'sqlite_sequence' ORDER BY type, name";
        assert_eq!(rows(&*src, q).await, rows(&*dst, q).await);
        assert_eq!(
            rows(&*dst, "SELECT count(*) FROM vals").await,
            [[Value::Int(0)]]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_dump_stops_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        // One reader only: if the dump kept it after the client left, the schema call below
        // would wait forever.
        let b = super::super::SqliteBackend::new(super::super::SqliteConfig {
            max_readers: 1,
            ..config(dir.path())
        })
        .expect("backend");
        let db = spawn(&b, "dump-drop").await;
        fill(&*db).await;
        let lim = StatementLimits {
            stream_buffer: 1,
            ..limits()
        };
        let mut stream = db.dump(false, lim).await.expect("dump");
        let first = stream.next().await.expect("one chunk").expect("ok");
        assert!(first.data.starts_with(b"-- DB-Forge dump"));
        drop(stream);
        let schema = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            db.schema(Some("vals"), &limits()),
        )
        .await
        .expect("the dump released its reader")
        .expect("schema");
        assert_eq!(schema.tables[0].row_estimate, Some(23));
    }
}

/// Virtual tables: described without their shadow tables, dumped through their own columns.
mod virtual_tables {
    use futures::StreamExt;

    use super::inspect_support::*;
    use crate::core::value::Value;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fts5_dumps_and_replays() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let src = spawn(&b, "fts-src").await;
        run(
            &*src,
            &[
                "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
                "INSERT INTO docs VALUES ('a', 'hello world'), ('b', 'it''s; END; hello')",
            ],
        )
        .await;
        let schema = src.schema(None, &limits()).await.expect("schema");
        let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["docs"]);
        let mut stream = src.dump(false, limits()).await.expect("dump");
        let mut text = Vec::new();
        while let Some(c) = stream.next().await {
            text.extend(c.expect("chunk").data);
        }
        let dst = spawn(&b, "fts-dst").await;
        replay(&*dst, std::str::from_utf8(&text).expect("utf-8")).await;
        let q = "SELECT title, body FROM docs WHERE docs MATCH 'hello' ORDER BY title";
        let want = vec![
            vec![Value::Text("a".into()), Value::Text("hello world".into())],
            vec![
                Value::Text("b".into()),
                Value::Text("it's; END; hello".into()),
            ],
        ];
        assert_eq!(rows(&*src, q).await, want);
        assert_eq!(rows(&*dst, q).await, want);
    }
}

/// Reads run on the calling task within a budget, and move to the blocking pool past it.
mod inline_reads {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        thread,
        time::{Duration, Instant},
    };

    use super::{super::SqliteDatabase, inspect_support::*};
    use crate::{
        backend::{Backend, Database},
        core::{names::DatabaseName, value::Value},
    };

    /// Counts to `n` in SQL: long enough for any `n` in the millions to outrun the budget.
    fn count_to(n: i64) -> String {
        format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
             SELECT count(*) FROM c"
        )
    }

    /// Selects `n` through [`SqliteDatabase::read`]: on which thread it ran, and what it gave.
    async fn select(db: &SqliteDatabase, n: i64) -> (thread::ThreadId, Vec<Vec<Value>>) {
        db.read(move |conn| {
            let r = conn.run(&sql(&format!("SELECT {n}")), 10, 1 << 20);
            (thread::current().id(), r.expect("select").rows)
        })
        .await
        .expect("read")
    }

    #[tokio::test]
    async fn a_short_read_stays_on_the_task_and_a_long_one_moves() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let p = b.locate(&DatabaseName::parse("inline").expect("name"));
        b.create(&p).await.expect("create");
        let mut db = b.open_database(&p).await.expect("open");
        // Generous, so that a slow machine does not move the short reads; the long one takes
        // far longer.
        Arc::get_mut(&mut db.inner)
            .expect("only handle")
            .inline_budget = Duration::from_millis(20);
        let here = thread::current().id();

        // The first read opens its connection on the pool; the next ones find it free.
        let first = db.read(|_| thread::current().id()).await.expect("read");
        assert_ne!(first, here);
        for n in 1..=3 {
            assert_eq!(select(&db, n).await, (here, vec![vec![Value::Int(n)]]));
        }

        // Past the budget the read is interrupted and runs again, whole, on the pool.
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let long = db
            .read(move |conn| {
                counted.fetch_add(1, Ordering::Relaxed);
                conn.set_deadline(Duration::from_secs(60));
                let r = conn.run(&sql(&count_to(3_000_000)), 10, 1 << 20);
                (thread::current().id(), r.map(|r| r.rows))
            })
            .await
            .expect("read");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        assert_ne!(long.0, here);
        assert_eq!(long.1.expect("count"), vec![vec![Value::Int(3_000_000)]]);

        // The interrupted connection went back to the pool in working order, budget reset.
        assert_eq!(select(&db, 4).await, (here, vec![vec![Value::Int(4)]]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_execute_interrupts_its_statement_on_the_pool() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let p = b.locate(&DatabaseName::parse("cancel-exec").expect("name"));
        b.create(&p).await.expect("create");
        let db = b.open_database(&p).await.expect("open");
        let slots = db.inner.reader_slots.available_permits();
        let long = crate::backend::StatementLimits {
            timeout: Duration::from_secs(120),
            read_only: true,
            ..limits()
        };
        // The caller gives up (a client's cancel drops the call's future) while the statement,
        // moved to the blocking pool past the inline budget, is still counting.
        let call = db.execute(sql(&count_to(1_000_000_000_000)), &long);
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .expect_err("the count outlasts the caller");
        // It stops at once instead of holding its reader until the 120 s deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.inner.reader_slots.available_permits() < slots {
            assert!(
                Instant::now() < deadline,
                "the abandoned statement still holds its reader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            db.execute(sql("SELECT 7"), &long)
                .await
                .expect("select")
                .rows,
            vec![vec![Value::Int(7)]]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn execute_gives_a_long_read_its_whole_result_and_deadline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "inline-exec").await;
        assert_eq!(rows(&*db, "SELECT 1").await, vec![vec![Value::Int(1)]]);
        assert_eq!(
            rows(&*db, &count_to(2_000_000)).await,
            vec![vec![Value::Int(2_000_000)]]
        );
        // A statement past its deadline still answers with the deadline, not the budget.
        let short = crate::backend::StatementLimits {
            timeout: Duration::from_millis(50),
            ..limits()
        };
        let err = db
            .execute(sql(&count_to(1_000_000_000)), &short)
            .await
            .expect_err("runs past its deadline");
        assert!(
            matches!(err, crate::core::error::Error::Timeout(_)),
            "{err:?}"
        );
    }
}

/// `last_insert_id` comes from what SQLite compiled, not from the statement's first word.
mod last_insert_id {
    use super::inspect_support::*;
    use crate::backend::Database;

    async fn id(db: &dyn Database, q: &str) -> Option<i64> {
        db.execute(sql(q), &limits()).await.expect(q).last_insert_id
    }

    #[tokio::test]
    async fn inserts_report_their_rowid_however_they_are_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "insert-id").await;
        run(
            &*db,
            &[
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                "CREATE TABLE other (id INTEGER PRIMARY KEY)",
                "CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT)",
                "CREATE TRIGGER t_upd AFTER UPDATE ON t BEGIN \
                 INSERT INTO log (what) VALUES ('update'); END",
            ],
        )
        .await;
        assert_eq!(id(&*db, "INSERT\nINTO t (v) VALUES ('a')").await, Some(1));
        let with = "WITH x(v) AS (SELECT 'b') INSERT INTO t (v) SELECT v FROM x";
        assert_eq!(id(&*db, with).await, Some(2));
        let commented = "-- a note\n/* and a block */ INSERT INTO t (v) VALUES ('c')";
        assert_eq!(id(&*db, commented).await, Some(3));
        assert_eq!(
            id(&*db, "REPLACE INTO t (id, v) VALUES (10, 'd')").await,
            Some(10)
        );
        // From the statement cache, and into another table with the same rowid as the last.
        assert_eq!(id(&*db, "INSERT\nINTO t (v) VALUES ('a')").await, Some(11));
        assert_eq!(
            id(&*db, "INSERT INTO other (id) VALUES (11)").await,
            Some(11)
        );
    }

    /// `changes()` keeps the last write's count; a statement that writes no rows says 0.
    #[tokio::test]
    async fn statements_that_change_no_rows_report_none_affected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "no-rows-affected").await;
        run(&*db, &["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]).await;
        let affected = |q: &'static str| {
            let db = &db;
            async move { db.execute(sql(q), &limits()).await.expect(q).rows_affected }
        };
        assert_eq!(
            affected("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')").await,
            3
        );
        assert_eq!(affected("CREATE TABLE u (a)").await, 0);
        assert_eq!(affected("UPDATE t SET v = v").await, 3);
        assert_eq!(affected("CREATE INDEX t_v ON t (v)").await, 0);
        assert_eq!(affected("UPDATE t SET v = v WHERE id > 100").await, 0);
        assert_eq!(affected("DELETE FROM t WHERE id = 1").await, 1);
        assert_eq!(affected("DROP TABLE u").await, 0);
        let mut s = db.session(limits()).await.expect("session");
        s.begin().await.expect("begin");
        assert_eq!(
            s.execute(sql("UPDATE t SET v = 'x'"))
                .await
                .expect("update")
                .rows_affected,
            2
        );
        assert_eq!(
            s.execute(sql("CREATE TABLE w (a)"))
                .await
                .expect("ddl")
                .rows_affected,
            0
        );
        s.rollback().await.expect("rollback");
    }

    #[tokio::test]
    async fn other_statements_report_none_after_an_insert() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "no-insert-id").await;
        run(
            &*db,
            &[
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                "CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT)",
                "CREATE TRIGGER t_upd AFTER UPDATE ON t BEGIN \
                 INSERT INTO log (what) VALUES ('update'); END",
            ],
        )
        .await;
        assert_eq!(
            id(&*db, "INSERT INTO t (v) VALUES ('a'), ('b')").await,
            Some(2)
        );
        // Each of these follows an insert that set last_insert_rowid and left changes() > 0;
        // the UPDATE's trigger even inserts.
        for q in [
            "UPDATE t SET v = 'c' WHERE id = 1",
            "WITH x AS (SELECT 1) UPDATE t SET v = 'd'",
            "-- INSERT\nDELETE FROM t WHERE id = 2",
            "SELECT * FROM t",
            "CREATE TABLE u (a)",
            "INSERT INTO t (id, v) VALUES (1, 'x') ON CONFLICT DO NOTHING",
        ] {
            assert_eq!(
                id(&*db, "INSERT INTO t (v) VALUES ('e')").await.map(|_| ()),
                Some(())
            );
            assert_eq!(id(&*db, q).await, None, "{q}");
        }
    }

    #[tokio::test]
    async fn batches_and_sessions_report_it_too() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "insert-id-session").await;
        run(&*db, &["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]).await;
        let results = db
            .batch(
                vec![
                    sql("WITH x(v) AS (SELECT 'a') INSERT INTO t (v) SELECT v FROM x"),
                    sql("UPDATE t SET v = 'b'"),
                ],
                true,
                &limits(),
            )
            .await
            .expect("batch");
        let ids: Vec<_> = results.iter().map(|r| r.last_insert_id).collect();
        assert_eq!(ids, [Some(1), None]);
        let mut session = db.session(limits()).await.expect("session");
        session.begin().await.expect("begin");
        let r = session
            .execute(sql("/* x */ INSERT\nINTO t (v) VALUES ('c')"))
            .await
            .expect("insert");
        assert_eq!(r.last_insert_id, Some(2));
    }

    /// The connection remembers a bounded number of statements; one the statement cache keeps
    /// past that is compiled again to be asked.
    #[tokio::test]
    async fn a_cached_insert_is_still_an_insert_after_the_memory_starts_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = backend(dir.path());
        let db = spawn(&b, "insert-id-many").await;
        run(&*db, &["CREATE TABLE t (id INTEGER PRIMARY KEY)"]).await;
        let mut session = db.session(limits()).await.expect("session");
        session.begin().await.expect("begin");
        for n in 1..=600 {
            let r = session
                .execute(sql("INSERT INTO t DEFAULT VALUES"))
                .await
                .expect("insert");
            assert_eq!(r.last_insert_id, Some(n));
            let r = session
                .execute(sql(&format!("SELECT {n}")))
                .await
                .expect("select");
            assert_eq!(r.last_insert_id, None);
        }
    }
}
