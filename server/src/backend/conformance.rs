//! The conformance suite: one set of cases, written once, run against every backend by that
//! backend's own tests. Expectations follow [`Capabilities`]; there are no per-backend special
//! cases here. Each case cites the clause of the contract in [`super`] it checks.
//!
//! A backend whose server is unreachable skips with one line, unless `DBFORGE_REQUIRE_BACKENDS=1`
//! (CI), where that is a failure: see [`unreachable`].

use std::{sync::Arc, time::Duration};

use futures::StreamExt;

use super::{Backend, Database, Provisioned, StatementLimits};
use crate::core::{
    error::{Error, QueryErrorKind, Result},
    limits::Limits,
    names::{DatabaseName, Identifier},
    schema::TableKind,
    table::{self, ColumnSpec, ColumnType, TableSpec},
    value::{Row, RowEncoder, RowEvent, Statement, Summary, Truncation, Value},
};

/// Backend-specific inputs the cases need but cannot write portably.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// A statement that keeps running for well over ten seconds.
    pub slow_query: String,
    /// A statement returning `n` rows of (integer, text), with `n` as parameter 1.
    pub series_query: String,
    /// A cheap statement returning exactly one row.
    pub ping: String,
    /// Run before `slow_query`, for an engine that can interrupt only work that reads data
    /// (Oxigraph checks its cancellation token as it reads quads).
    pub slow_setup: Option<String>,
}

/// Reports a backend whose server cannot be reached: a one-line notice, or a panic when
/// `DBFORGE_REQUIRE_BACKENDS=1` says every backend must be tested.
pub fn unreachable(backend: &str, why: impl std::fmt::Display) {
    if std::env::var("DBFORGE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
        panic!("{backend} is required (DBFORGE_REQUIRE_BACKENDS=1) but unreachable: {why}");
    }
    eprintln!("skipping {backend} conformance: {why}");
}

/// Runs every case.
pub async fn run_all(backend: Arc<dyn Backend>, hooks: &Hooks) {
    spawn_and_destroy(backend.as_ref()).await;
    if !backend.capabilities().sql {
        unsupported_is_reported(backend.as_ref()).await;
        if backend.capabilities().sparql {
            // A query language with results, without tables: the cases on hooks apply.
            stream_large_result(backend.as_ref(), hooks).await;
            stream_encoded(backend.as_ref(), hooks).await;
            stream_cancel_releases(backend.as_ref(), hooks).await;
            statement_timeout(backend.as_ref(), hooks).await;
        }
        return;
    }
    typed_roundtrip(backend.as_ref()).await;
    errors_are_classified(backend.as_ref()).await;
    batch_atomicity(backend.as_ref()).await;
    sessions(backend.as_ref()).await;
    writes_after_reads(backend.as_ref()).await;
    stream_large_result(backend.as_ref(), hooks).await;
    stream_encoded(backend.as_ref(), hooks).await;
    stream_cancel_releases(backend.as_ref(), hooks).await;
    statement_timeout(backend.as_ref(), hooks).await;
    isolation_between_databases(backend.as_ref()).await;
    read_only_is_enforced(backend.as_ref()).await;
    schema_describes_what_exists(backend.as_ref()).await;
    explain_flags_full_scans(backend.as_ref()).await;
    dump_replays_identically(backend.as_ref()).await;
}

fn limits() -> StatementLimits {
    Limits::default().whole_result()
}

fn name(prefix: &str) -> DatabaseName {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    DatabaseName::parse(&format!(
        "conf-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("valid name")
}

/// A scratch database, destroyed by [`Scratch::drop_now`].
struct Scratch<'a> {
    backend: &'a dyn Backend,
    provisioned: Provisioned,
    db: Arc<dyn Database>,
}

impl<'a> Scratch<'a> {
    async fn new(backend: &'a dyn Backend, prefix: &str) -> Self {
        let provisioned = backend.locate(&name(prefix));
        backend.create(&provisioned).await.expect("create");
        let db = backend.open(&provisioned).await.expect("open");
        Scratch {
            backend,
            provisioned,
            db,
        }
    }

    fn sql(&self, text: &str) -> Statement {
        Statement::new(self.placeholders(text))
    }

    /// Rewrites `?` placeholders into the backend's style (`$1`, `$2`, … on PostgreSQL).
    fn placeholders(&self, text: &str) -> String {
        if self.backend.capabilities().placeholder == "?" {
            return text.to_owned();
        }
        let mut out = String::new();
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    fn with(&self, text: &str, params: Vec<Value>) -> Statement {
        Statement {
            sql: self.placeholders(text),
            params,
        }
    }

    async fn exec(&self, stmt: Statement) -> Result<crate::core::value::StatementResult> {
        self.db.execute(stmt, &limits()).await
    }

    /// Creates `table` with an integer primary-key column, `id`, followed by `more`.
    async fn create_keyed(&self, table: &str, more: Vec<ColumnSpec>) {
        let dialect = self.backend.dialect().expect("SQL backends have a dialect");
        let key = ColumnSpec {
            primary_key: true,
            ..column("id", ColumnType::Integer)
        };
        let spec = TableSpec {
            table: id(table),
            columns: std::iter::once(key).chain(more).collect(),
            if_not_exists: false,
        };
        self.exec(table::create_table(dialect, &spec).expect("ddl"))
            .await
            .expect("create");
    }

    async fn count(&self, table: &str) -> i64 {
        let r = self
            .exec(self.sql(&format!("SELECT COUNT(*) FROM {table}")))
            .await
            .expect("count");
        match r.rows[0][0] {
            Value::Int(n) => n,
            ref other => panic!("count is {other:?}"),
        }
    }

    async fn drop_now(self) {
        drop(self.db);
        self.backend
            .destroy(&self.provisioned)
            .await
            .expect("destroy");
    }
}

fn id(s: &str) -> Identifier {
    Identifier::parse("column", s).expect("identifier")
}

fn column(n: &str, ty: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: id(n),
        ty,
        primary_key: false,
        not_null: false,
        unique: false,
        default: None,
    }
}

/// Provisioning: create and destroy are idempotent; a destroyed database cannot be opened.
pub async fn spawn_and_destroy(b: &dyn Backend) {
    let p = b.locate(&name("spawn"));
    b.create(&p).await.expect("create");
    let db = b.open(&p).await.expect("open");
    drop(db);
    assert!(b.size_bytes(&p).await.is_ok());
    b.destroy(&p).await.expect("destroy");
    b.destroy(&p).await.expect("destroy is idempotent");
    assert!(b.available());
}

/// Values keep their kind through a bind and a read, for every column type.
pub async fn typed_roundtrip(b: &dyn Backend) {
    let s = Scratch::new(b, "types").await;
    let dialect = b.dialect().expect("SQL backends have a dialect");
    let kinds = [
        ("i", ColumnType::Integer, Value::Int(-9_007_199_254_740_993)),
        ("f", ColumnType::Float, Value::Float(0.25)),
        (
            "t",
            ColumnType::Text,
            Value::Text("héllo 'quoted' \"double\" \n ✓".into()),
        ),
        (
            "b",
            ColumnType::Bytes,
            Value::Bytes(vec![0, 1, 127, 128, 255]),
        ),
        ("flag", ColumnType::Bool, Value::Bool(true)),
        (
            "d",
            ColumnType::Decimal,
            Value::Decimal("12345678901234567890.123456789".into()),
        ),
        (
            "j",
            ColumnType::Json,
            Value::Json(r#"{"a": [1, 2]}"#.into()),
        ),
        (
            "ts",
            ColumnType::Timestamp,
            Value::Timestamp(time::macros::datetime!(2024-02-29 13:45:01.123456 UTC)),
        ),
        (
            "day",
            ColumnType::Date,
            Value::Date(time::macros::date!(2024 - 02 - 29)),
        ),
    ];
    let spec = TableSpec {
        table: id("typed"),
        columns: kinds.iter().map(|(n, ty, _)| column(n, *ty)).collect(),
        if_not_exists: false,
    };
    s.exec(table::create_table(dialect, &spec).expect("ddl"))
        .await
        .expect("create table");
    let row: Vec<_> = kinds.iter().map(|(n, _, v)| (id(n), v.clone())).collect();
    s.exec(table::insert_row(dialect, &id("typed"), row))
        .await
        .expect("insert");
    let nulls: Vec<_> = kinds.iter().map(|(n, _, _)| (id(n), Value::Null)).collect();
    s.exec(table::insert_row(dialect, &id("typed"), nulls))
        .await
        .expect("insert nulls");
    let select = table::Select {
        table: id("typed"),
        columns: vec![],
        filters: vec![table::Filter::IsNotNull(id("i"))],
        order_by: vec![],
        limit: None,
        offset: None,
    };
    let r = s
        .exec(table::select(dialect, &select))
        .await
        .expect("select");
    assert_eq!(r.rows.len(), 1);
    for ((n, _, expected), got) in kinds.iter().zip(&r.rows[0]) {
        assert!(
            same_value(expected, got),
            "column {n}: wrote {expected:?}, read {got:?}"
        );
    }
    let select_nulls = table::Select {
        filters: vec![table::Filter::IsNull(id("i"))],
        ..select
    };
    let r = s
        .exec(table::select(dialect, &select_nulls))
        .await
        .expect("select nulls");
    assert!(
        r.rows[0].iter().all(|v| *v == Value::Null),
        "NULL everywhere: {:?}",
        r.rows[0]
    );
    s.drop_now().await;
}

/// Equality up to representation: decimals compare by value (engines pad the scale) and JSON
/// by its parsed form (engines normalize whitespace).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Decimal(x), Value::Decimal(y)) => trim_decimal(x) == trim_decimal(y),
        (Value::Json(x), Value::Json(y)) => {
            x.chars().filter(|c| !c.is_whitespace()).collect::<String>()
                == y.chars().filter(|c| !c.is_whitespace()).collect::<String>()
        }
        _ => a == b,
    }
}

fn trim_decimal(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Errors: syntax and constraint failures are classified, and the database stays usable.
pub async fn errors_are_classified(b: &dyn Backend) {
    let s = Scratch::new(b, "errors").await;
    let name = ColumnSpec {
        not_null: true,
        ..column("name", ColumnType::Text)
    };
    s.create_keyed("t", vec![name]).await;
    let insert = |id: i64, name: Value| {
        s.with(
            "INSERT INTO t (id, name) VALUES (?, ?)",
            vec![Value::Int(id), name],
        )
    };
    let r = s
        .exec(insert(1, Value::Text("a".into())))
        .await
        .expect("insert");
    assert_eq!(r.rows_affected, 1);
    let kind = |r: Result<_>| match r {
        Err(Error::Query { kind, .. }) => kind,
        other => panic!("expected a query error, got {other:?}"),
    };
    assert_eq!(
        kind(s.exec(insert(1, Value::Text("b".into()))).await),
        QueryErrorKind::UniqueViolation
    );
    assert_eq!(
        kind(s.exec(insert(2, Value::Null)).await),
        QueryErrorKind::NotNull
    );
    assert_eq!(kind(s.exec(s.sql("SELEC 1")).await), QueryErrorKind::Syntax);
    assert_eq!(
        kind(s.exec(s.sql("SELECT * FROM no_such_table")).await),
        QueryErrorKind::Syntax
    );
    let r = s
        .exec(s.with(
            "UPDATE t SET name = ? WHERE id = ?",
            vec![Value::Text("z".into()), Value::Int(1)],
        ))
        .await
        .expect("update");
    assert_eq!(r.rows_affected, 1);
    assert_eq!(s.count("t").await, 1);
    s.drop_now().await;
}

/// Atomicity: a transactional batch commits all or nothing; a plain one stops at the failure.
pub async fn batch_atomicity(b: &dyn Backend) {
    let s = Scratch::new(b, "batch").await;
    s.create_keyed("t", Vec::new()).await;
    let ins = |v: i64| s.with("INSERT INTO t (id) VALUES (?)", vec![Value::Int(v)]);
    let err =
        s.db.batch(vec![ins(1), ins(2), ins(1)], true, &limits())
            .await
            .expect_err("duplicate");
    assert!(
        matches!(
            err,
            Error::Query {
                statement_index: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.count("t").await, 0);
    let err =
        s.db.batch(vec![ins(1), ins(2), ins(1), ins(3)], false, &limits())
            .await
            .expect_err("duplicate");
    assert!(
        matches!(
            err,
            Error::Query {
                statement_index: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.count("t").await, 2);
    let ok =
        s.db.batch(vec![ins(10), ins(11)], true, &limits())
            .await
            .expect("batch");
    assert_eq!(ok.len(), 2);
    assert_eq!(s.count("t").await, 4);
    s.drop_now().await;
}

/// Sessions: reads see the session's own writes; rollback and drop discard them; commit keeps
/// them.
pub async fn sessions(b: &dyn Backend) {
    if !b.capabilities().sessions {
        return;
    }
    let s = Scratch::new(b, "session").await;
    let dialect = b.dialect().expect("dialect");
    let spec = TableSpec {
        table: id("t"),
        columns: vec![column("v", ColumnType::Integer)],
        if_not_exists: false,
    };
    s.exec(table::create_table(dialect, &spec).expect("ddl"))
        .await
        .expect("create");
    let ins = || s.with("INSERT INTO t (v) VALUES (?)", vec![Value::Int(1)]);
    let mut sess = s.db.session(limits()).await.expect("session");
    sess.begin().await.expect("begin");
    sess.execute(ins()).await.expect("insert");
    let own = sess
        .execute(s.sql("SELECT COUNT(*) FROM t"))
        .await
        .expect("read");
    assert_eq!(own.rows[0][0], Value::Int(1));
    assert_eq!(s.count("t").await, 0, "not visible outside before commit");
    sess.rollback().await.expect("rollback");
    assert!(!sess.in_transaction());
    sess.begin().await.expect("begin again");
    sess.execute(ins()).await.expect("insert");
    sess.commit().await.expect("commit");
    assert_eq!(s.count("t").await, 1);
    sess.begin().await.expect("begin");
    sess.execute(ins()).await.expect("insert");
    drop(sess);
    // The rollback of a dropped session may finish in the background.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.count("t").await, 1, "dropped session rolled back");
    s.drop_now().await;
}

/// Reads and writes interleave on pooled connections: a read may leave its connection running
/// read-only outside transactions (PostgreSQL and MySQL make the read's first attempt that
/// way), and every write route after it still writes: autocommit Execute, a streamed write,
/// batches with and without a transaction, a session, DDL.
pub async fn writes_after_reads(b: &dyn Backend) {
    let s = Scratch::new(b, "rw").await;
    s.create_keyed("t", Vec::new()).await;
    let ins = |v: i64| s.with("INSERT INTO t (id) VALUES (?)", vec![Value::Int(v)]);
    assert_eq!(s.count("t").await, 0);
    let r = s.exec(ins(1)).await.expect("autocommit write after a read");
    assert_eq!(r.rows_affected, 1);
    assert_eq!(s.count("t").await, 1);
    s.db.batch(vec![ins(2)], false, &limits())
        .await
        .expect("batch after a read");
    assert_eq!(s.count("t").await, 2);
    s.db.batch(vec![ins(3)], true, &limits())
        .await
        .expect("transactional batch after a read");
    assert_eq!(s.count("t").await, 3);
    let mut stream =
        s.db.query(ins(4), Limits::default().stream(0))
            .await
            .expect("streamed write after a read");
    let mut affected = None;
    while let Some(ev) = stream.next().await {
        if let RowEvent::Done(sum) = ev.expect("event") {
            affected = Some(sum.rows_affected);
        }
    }
    assert_eq!(affected, Some(1));
    assert_eq!(s.count("t").await, 4);
    if b.capabilities().sessions {
        let mut sess = s.db.session(limits()).await.expect("session");
        sess.begin().await.expect("begin after a read");
        sess.execute(ins(5)).await.expect("insert in a session");
        sess.commit().await.expect("commit");
        assert_eq!(s.count("t").await, 5);
    }
    // DDL after a read.
    s.create_keyed("u", Vec::new()).await;
    assert_eq!(s.count("u").await, 0);
    s.drop_now().await;
}

/// Streaming: header first, then batches, then one summary; limits truncate with a summary.
pub async fn stream_large_result(b: &dyn Backend, hooks: &Hooks) {
    let s = Scratch::new(b, "stream").await;
    let n = 100_000;
    let mut stream =
        s.db.query(
            s.with(&hooks.series_query, vec![Value::Int(n)]),
            Limits::default().stream(0),
        )
        .await
        .expect("query");
    let mut rows = 0i64;
    let mut saw_header = false;
    let mut summary = None;
    while let Some(ev) = stream.next().await {
        match ev.expect("event") {
            RowEvent::Columns(cols) => {
                assert!(!saw_header && rows == 0);
                assert_eq!(cols.len(), 2);
                saw_header = true;
            }
            RowEvent::Rows(batch) => {
                assert!(saw_header && summary.is_none());
                rows += batch.len() as i64;
            }
            RowEvent::Encoded(_) => panic!("encoded rows from a stream without an encoder"),
            RowEvent::Done(s) => summary = Some(s),
        }
    }
    assert_eq!(rows, n);
    let summary = summary.expect("summary");
    assert_eq!(summary.row_count, n as u64);
    assert_eq!(summary.truncation, Truncation::None);

    let mut stream =
        s.db.query(
            s.with(&hooks.series_query, vec![Value::Int(n)]),
            Limits::default().stream(10),
        )
        .await
        .expect("query");
    let mut last = None;
    while let Some(ev) = stream.next().await {
        last = Some(ev.expect("event"));
    }
    match last {
        Some(RowEvent::Done(sum)) => {
            assert_eq!(sum.row_count, 10);
            assert_eq!(sum.truncation, Truncation::RowLimit);
        }
        other => panic!("expected a summary, got {other:?}"),
    }
    s.drop_now().await;
}

/// Writes a row as its debug form and a newline: any encoder will do to check that a backend
/// hands every row to the stream's encoder, in order, in the batches it would have sent.
#[derive(Debug)]
pub struct DebugLines;

impl RowEncoder for DebugLines {
    fn encode(&self, row: &Row, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{row:?}\n").as_bytes());
    }
}

/// A stream read into its batches (as [`DebugLines`] writes them, whether they came as rows or
/// encoded) and its summary.
#[derive(Debug)]
pub struct Batches {
    /// Rows and their lines, batch by batch.
    pub batches: Vec<(usize, Vec<u8>)>,
    /// The summary.
    pub summary: Summary,
    /// Whether the batches came encoded.
    pub encoded: bool,
}

/// Reads `stream` into [`Batches`]; panics on a stream out of order or with both kinds of
/// batch.
pub async fn read_batches(mut stream: super::RowStream) -> Batches {
    let (mut header, mut batches, mut summary) = (false, Vec::new(), None);
    let (mut plain, mut encoded) = (false, false);
    while let Some(ev) = stream.next().await {
        match ev.expect("event") {
            RowEvent::Columns(_) => {
                assert!(!header && batches.is_empty(), "one header, first");
                header = true;
            }
            RowEvent::Rows(rows) => {
                assert!(
                    header && summary.is_none(),
                    "rows between header and summary"
                );
                plain = true;
                let mut bytes = Vec::new();
                rows.iter().for_each(|r| DebugLines.encode(r, &mut bytes));
                batches.push((rows.len(), bytes));
            }
            RowEvent::Encoded(e) => {
                assert!(
                    header && summary.is_none(),
                    "rows between header and summary"
                );
                encoded = true;
                batches.push((e.rows, e.bytes));
            }
            RowEvent::Done(s) => summary = Some(s),
        }
    }
    assert!(
        !(plain && encoded),
        "a stream mixed plain and encoded batches"
    );
    Batches {
        batches,
        summary: summary.expect("summary"),
        encoded,
    }
}

/// Streaming with an encoder: the same rows, batches and summary as without one, each batch
/// already encoded.
pub async fn stream_encoded(b: &dyn Backend, hooks: &Hooks) {
    let s = Scratch::new(b, "encoded").await;
    let stmt = s.with(&hooks.series_query, vec![Value::Int(10_000)]);
    let plain = StatementLimits {
        batch_rows: 1000,
        ..Limits::default().stream(0)
    };
    let encoded = StatementLimits {
        encoder: Some(Arc::new(DebugLines)),
        ..plain.clone()
    };
    let want = read_batches(s.db.query(stmt.clone(), plain).await.expect("query")).await;
    let got = read_batches(s.db.query(stmt, encoded).await.expect("query")).await;
    assert!(!want.encoded && got.encoded);
    assert_eq!(want.batches.len(), 10, "batches of 1000 rows");
    assert_eq!(got.batches, want.batches);
    assert_eq!(got.summary.row_count, 10_000);
    assert_eq!(got.summary.truncation, Truncation::None);
    s.drop_now().await;
}

/// Cancellation: dropping a stream stops the statement and frees its connection.
pub async fn stream_cancel_releases(b: &dyn Backend, hooks: &Hooks) {
    let s = Scratch::new(b, "cancel").await;
    for _ in 0..8 {
        let mut stream =
            s.db.query(
                s.with(&hooks.series_query, vec![Value::Int(10_000_000)]),
                Limits::default().stream(0),
            )
            .await
            .expect("query");
        stream.next().await.expect("header").expect("ok");
        drop(stream);
    }
    let r = tokio::time::timeout(Duration::from_secs(10), s.exec(s.sql(&hooks.ping)))
        .await
        .expect("connections were released")
        .expect("query");
    assert_eq!(r.rows.len(), 1);
    s.drop_now().await;
}

/// Timeouts: a statement past its deadline is interrupted with `Timeout`, and the database
/// stays usable.
pub async fn statement_timeout(b: &dyn Backend, hooks: &Hooks) {
    let s = Scratch::new(b, "timeout").await;
    if let Some(setup) = &hooks.slow_setup {
        s.exec(s.sql(setup)).await.expect("slow setup");
    }
    let short = StatementLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let started = std::time::Instant::now();
    let err =
        s.db.execute(s.sql(&hooks.slow_query), &short)
            .await
            .expect_err("times out");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.exec(s.sql(&hooks.ping)).await.expect("usable afterwards");
    s.drop_now().await;
}

/// Isolation: what one database holds is invisible to another.
pub async fn isolation_between_databases(b: &dyn Backend) {
    let a = Scratch::new(b, "iso-a").await;
    let other = Scratch::new(b, "iso-b").await;
    a.exec(a.sql("CREATE TABLE private_a (x INTEGER)"))
        .await
        .expect("ddl");
    let err = other
        .exec(other.sql("SELECT * FROM private_a"))
        .await
        .expect_err("invisible");
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    a.drop_now().await;
    other.drop_now().await;
}

/// Read-only access ([`StatementLimits::read_only`]), on an engine that says it enforces it
/// ([`Backend::enforces_read_only`]): reads work by every route, including on tables created
/// later; every write is refused by the engine as `Forbidden` and changes nothing, whether it
/// comes through `execute`, a stream, a batch (with or without a transaction) or a session;
/// and the database's own access still writes.
pub async fn read_only_is_enforced(b: &dyn Backend) {
    if !b.enforces_read_only() {
        return;
    }
    let s = Scratch::new(b, "ro").await;
    s.exec(s.sql("CREATE TABLE t (v INTEGER)"))
        .await
        .expect("ddl");
    s.exec(s.with("INSERT INTO t (v) VALUES (?)", vec![Value::Int(1)]))
        .await
        .expect("insert");
    let ro = StatementLimits {
        read_only: true,
        ..limits()
    };
    let forbidden = |what: &str, r: Result<()>| match r {
        Err(Error::Query {
            kind: QueryErrorKind::Forbidden,
            ..
        }) => {}
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    };

    let r =
        s.db.execute(s.sql("SELECT v FROM t"), &ro)
            .await
            .expect("read");
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0][0], Value::Int(1));
    let mut stream =
        s.db.query(s.sql("SELECT v FROM t"), ro.clone())
            .await
            .expect("stream");
    let mut streamed = 0;
    while let Some(ev) = stream.next().await {
        if let RowEvent::Rows(batch) = ev.expect("streamed read") {
            streamed += batch.len();
        }
    }
    assert_eq!(streamed, 1);
    s.exec(s.sql("CREATE TABLE later (w INTEGER)"))
        .await
        .expect("ddl after the reader exists");
    let r = s.db.execute(s.sql("SELECT COUNT(*) FROM later"), &ro).await;
    assert_eq!(
        r.expect("a later table is readable").rows[0][0],
        Value::Int(0)
    );

    for sql in [
        "INSERT INTO t (v) VALUES (2)",
        "UPDATE t SET v = 5",
        "DELETE FROM t",
        "CREATE TABLE u (x INTEGER)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN y INTEGER",
    ] {
        forbidden(sql, s.db.execute(s.sql(sql), &ro).await.map(drop));
        let streamed = async {
            let mut stream = s.db.query(s.sql(sql), ro.clone()).await?;
            while let Some(ev) = stream.next().await {
                ev?;
            }
            Ok(())
        };
        forbidden(sql, streamed.await);
        for transactional in [false, true] {
            let r = s.db.batch(vec![s.sql(sql)], transactional, &ro).await;
            forbidden(sql, r.map(drop));
        }
        if b.capabilities().sessions {
            let mut sess = s.db.session(ro.clone()).await.expect("session");
            sess.begin().await.expect("begin");
            forbidden(sql, sess.execute(s.sql(sql)).await.map(drop));
            drop(sess);
        }
    }
    let r = s.exec(s.sql("SELECT v FROM t")).await.expect("read");
    assert_eq!(r.rows.len(), 1, "nothing changed");
    assert_eq!(r.rows[0][0], Value::Int(1), "nothing changed");
    assert_eq!(r.columns.len(), 1, "no column was added");
    s.exec(s.with("INSERT INTO t (v) VALUES (?)", vec![Value::Int(2)]))
        .await
        .expect("the database's own access still writes");
    assert_eq!(s.count("t").await, 2);
    s.drop_now().await;
}

/// Unsupported operations are reported, never faked: a backend without SQL has no dialect.
pub async fn unsupported_is_reported(b: &dyn Backend) {
    assert!(b.dialect().is_none() || !b.capabilities().table_service);
}

/// The rich schema the inspection cases share: keys, a unique and a check constraint, a foreign
/// key, an index and a view, in SQL every SQL engine here accepts.
const RICH_SCHEMA: &[&str] = &[
    "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE, \
     score INTEGER CHECK (score >= 0))",
    "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, \
     note VARCHAR(100), amount DECIMAL(10,2), \
     FOREIGN KEY (parent_id) REFERENCES parents (id))",
    "CREATE INDEX children_note ON children (note)",
    "CREATE VIEW named AS SELECT c.id, p.name FROM children c JOIN parents p ON p.id = c.parent_id",
];

/// Rows for [`RICH_SCHEMA`], with the values dumps get wrong first: quotes, backslashes,
/// NULLs, non-ASCII text, exact decimals.
const RICH_ROWS: &[&str] = &[
    "INSERT INTO parents (id, name, score) VALUES (1, 'O''Brien', 3), (2, 'a\\b', NULL), \
     (3, 'Zoë ✓', 0)",
    "INSERT INTO children (id, parent_id, note, amount) VALUES (10, 1, 'first', 12.50), \
     (11, 1, NULL, NULL), (12, 3, 'line\nbreak', 0.01)",
];

async fn rich<'a>(b: &'a dyn Backend, prefix: &str, rows: bool) -> Scratch<'a> {
    let db = Scratch::new(b, prefix).await;
    for sql in RICH_SCHEMA.iter().chain(if rows { RICH_ROWS } else { &[] }) {
        db.exec(db.sql(sql)).await.expect(sql);
    }
    db
}

/// Contract: [`Database::schema`] reports the tables and views with their columns, keys,
/// indexes, foreign keys, unique and check constraints, sorted by name; one missing table is
/// [`Error::NotFound`].
async fn schema_describes_what_exists(b: &dyn Backend) {
    let db = rich(b, "schema", false).await;
    let schema = db.db.schema(None, &limits()).await.expect("schema");
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["children", "named", "parents"], "sorted by name");
    let children = &schema.tables[0];
    assert_eq!(children.kind, TableKind::Table);
    assert_eq!(children.primary_key, ["id"]);
    let fk = children.foreign_keys.first().expect("a foreign key");
    assert_eq!(
        (fk.columns.as_slice(), fk.referenced_table.as_str()),
        (["parent_id".to_owned()].as_slice(), "parents")
    );
    assert!(
        children
            .indexes
            .iter()
            .any(|i| i.columns == ["note"] && !i.unique),
        "{:?}",
        children.indexes
    );
    let columns: Vec<(&str, bool)> = children
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.nullable))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", false),
            ("parent_id", false),
            ("note", true),
            ("amount", true)
        ]
    );
    assert_eq!(schema.tables[1].kind, TableKind::View);
    let parents = &schema.tables[2];
    let unique_name = parents.uniques.iter().any(|u| u.columns == ["name"])
        || parents
            .indexes
            .iter()
            .any(|i| i.unique && i.columns == ["name"]);
    assert!(unique_name, "{parents:?}");
    assert!(
        parents
            .checks
            .iter()
            .any(|c| c.expression.contains("score")),
        "{:?}",
        parents.checks
    );
    let one = db.db.schema(Some("parents"), &limits()).await.expect("one");
    assert_eq!(one.tables.len(), 1);
    assert!(matches!(
        db.db.schema(Some("missing"), &limits()).await,
        Err(Error::NotFound { .. })
    ));
    db.drop_now().await;
}

/// Contract: [`Database::explain`] returns the engine's plan and a normalized tree in which a
/// scan of a whole table is flagged.
async fn explain_flags_full_scans(b: &dyn Backend) {
    let db = rich(b, "explain", true).await;
    let plan = db
        .db
        .explain(db.sql("SELECT * FROM parents"), false, &limits())
        .await
        .expect("explain");
    assert!(!plan.raw.is_empty());
    fn any(
        nodes: &[crate::core::schema::PlanNode],
        f: &dyn Fn(&crate::core::schema::PlanNode) -> bool,
    ) -> bool {
        nodes.iter().any(|n| f(n) || any(&n.children, f))
    }
    assert!(
        any(&plan.nodes, &|n| n.full_scan
            && n.relation.contains("parents")),
        "{plan:?}"
    );
    db.drop_now().await;
}

/// Every row of every table and view, in key order.
async fn contents(db: &Scratch<'_>) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT id, name, score FROM parents ORDER BY id",
        "SELECT id, parent_id, note, amount FROM children ORDER BY id",
        "SELECT id, name FROM named ORDER BY id",
    ] {
        out.push(db.exec(db.sql(sql)).await.expect(sql).rows);
    }
    out
}

/// Replays a dump the way ImportSql does: split by the script splitter, every statement
/// through a session, in one transaction.
async fn replay(b: &dyn Backend, db: &Scratch<'_>, dump: &str) {
    let stmts = crate::core::script::split(b.kind(), dump, 16 << 20).expect("split");
    let mut session = db.db.session(limits()).await.expect("session");
    session.begin().await.expect("begin");
    for st in stmts {
        session
            .execute(Statement::new(st.sql.clone()))
            .await
            .unwrap_or_else(|e| panic!("line {}: {e:?}: {:.300}", st.line, st.sql));
    }
    session.commit().await.expect("commit");
}

async fn dump_text(db: &Scratch<'_>, schema_only: bool) -> String {
    let lim = StatementLimits {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
        ..limits()
    };
    let mut stream = db.db.dump(schema_only, lim).await.expect("dump");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend(chunk.expect("dump chunk").data);
    }
    String::from_utf8(out).expect("utf-8 dump")
}

/// The schema without the engine's row estimates, which differ between a source and its copy.
async fn schema_of(db: &Scratch<'_>) -> crate::core::schema::Schema {
    let mut s = db.db.schema(None, &limits()).await.expect("schema");
    for t in &mut s.tables {
        t.row_estimate = None;
    }
    s
}

/// Contract: [`Database::dump`] streams a script that the same engine replays into an identical
/// database: the same schema and every row; a schema-only dump replays into empty tables.
async fn dump_replays_identically(b: &dyn Backend) {
    let src = rich(b, "dump-src", true).await;
    let dump = dump_text(&src, false).await;
    let dst = Scratch::new(b, "dump-dst").await;
    replay(b, &dst, &dump).await;
    assert_eq!(schema_of(&dst).await, schema_of(&src).await, "{dump}");
    assert_eq!(contents(&dst).await, contents(&src).await, "{dump}");
    // Foreign keys hold in the copy.
    assert!(
        dst.exec(dst.sql("INSERT INTO children (id, parent_id) VALUES (99, 999)"))
            .await
            .is_err()
    );

    let empty = Scratch::new(b, "dump-schema").await;
    replay(b, &empty, &dump_text(&src, true).await).await;
    assert_eq!(schema_of(&empty).await, schema_of(&src).await);
    assert_eq!(empty.count("parents").await, 0);
    for db in [src, dst, empty] {
        db.drop_now().await;
    }
}
