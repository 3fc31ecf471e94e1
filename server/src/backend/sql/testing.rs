//! Helpers for the server backends' tests: a scratch database, the cross-process lock that keeps
//! outage tests apart from the others, and the process's memory.

use std::sync::Arc;

use futures::StreamExt;

use crate::{
    backend::{Backend, BackendKind, Database, Provisioned, StatementLimits},
    core::{
        error::{Error, QueryErrorKind, Result},
        limits::Limits,
        names::DatabaseName,
        schema::Schema,
        value::{Statement, StatementResult, Value},
    },
};

/// Holds `<tmp>/dbforge-<backend>-tests.lock`: shared by ordinary tests, exclusively by a test
/// that stops the server. Across processes, as nextest runs every test in its own.
pub async fn server_lock(backend: &str, exclusive: bool) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("dbforge-{backend}-tests.lock"));
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("lock file");
        if exclusive {
            f.lock().expect("lock");
        } else {
            f.lock_shared().expect("lock");
        }
        f
    })
    .await
    .expect("lock task")
}

/// The default limits of one statement.
pub fn limits() -> StatementLimits {
    Limits::default().whole_result()
}

/// A statement with parameters.
pub fn stmt(sql: &str, params: Vec<Value>) -> Statement {
    Statement {
        sql: sql.into(),
        params,
    }
}

/// The kind of a query error, or a panic.
pub fn kind_of(r: Result<StatementResult>) -> QueryErrorKind {
    match r {
        Err(Error::Query { kind, .. }) => kind,
        other => panic!("expected a query error, got {other:?}"),
    }
}

/// A spawned database for one test.
pub struct TestDb {
    /// Where it lives.
    pub provisioned: Provisioned,
    /// The open handle.
    pub db: Arc<dyn Database>,
}

impl TestDb {
    /// Spawns and opens `name`.
    pub async fn new(b: &dyn Backend, name: &str) -> Self {
        let provisioned = b.locate(&DatabaseName::parse(name).expect("name"));
        b.create(&provisioned).await.expect("create");
        let db = b.open(&provisioned).await.expect("open");
        Self { provisioned, db }
    }

    /// Executes with the default limits.
    pub async fn exec(&self, sql: &str, params: Vec<Value>) -> Result<StatementResult> {
        self.db.execute(stmt(sql, params), &limits()).await
    }

    /// Executes, or panics.
    pub async fn ok(&self, sql: &str) -> StatementResult {
        self.exec(sql, vec![])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    /// The first cell of the result.
    pub async fn scalar(&self, sql: &str) -> Value {
        self.ok(sql).await.rows[0][0].clone()
    }

    /// Its whole dump as text.
    pub async fn dump_text(&self) -> String {
        let mut stream = self.db.dump(false, limits()).await.expect("dump");
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.expect("dump chunk").data);
        }
        String::from_utf8(out).expect("utf-8 dump")
    }

    /// Replays a dump statement by statement in one session transaction, as an import would.
    pub async fn replay(&self, kind: BackendKind, dump: &str) {
        let stmts = crate::core::script::split(kind, dump, 16 << 20).expect("split");
        let mut s = self.db.session(limits()).await.expect("session");
        s.begin().await.expect("begin");
        for st in stmts {
            s.execute(stmt(&st.sql, vec![]))
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", &st.sql[..st.sql.len().min(300)]));
        }
        s.commit().await.expect("commit");
    }

    /// Its schema without the engine's row estimates, which differ between a source and its
    /// copy.
    pub async fn schema_without_estimates(&self) -> Schema {
        let mut s = self.db.schema(None, &limits()).await.expect("schema");
        for t in &mut s.tables {
            t.row_estimate = None;
        }
        s
    }

    /// Closes and destroys it.
    pub async fn drop_in(self, b: &dyn Backend) {
        drop(self.db);
        b.destroy(&self.provisioned).await.expect("destroy");
    }
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Streams `stmt` to its end and returns the rows seen, the peak growth of resident memory
/// (bytes) and what the rows would take if they were held as Values.
pub async fn stream_measuring(db: &dyn Database, stmt: Statement) -> (u64, u64, u64) {
    use futures::StreamExt;

    use crate::core::value::RowEvent;
    let before = rss_kib();
    let mut s = db
        .query(stmt, Limits::default().stream(0))
        .await
        .expect("query");
    let (mut rows, mut held, mut peak) = (0u64, 0u64, before);
    let mut summary = None;
    while let Some(ev) = s.next().await {
        match ev.expect("event") {
            RowEvent::Rows(batch) => {
                rows += batch.len() as u64;
                // A Vec per row, the Values themselves, and what they point to.
                held += batch
                    .iter()
                    .map(|r| {
                        24 + r.len() * std::mem::size_of::<Value>()
                            + r.iter().map(Value::approx_size).sum::<usize>()
                    })
                    .sum::<usize>() as u64;
                peak = peak.max(rss_kib());
            }
            RowEvent::Encoded(_) => panic!("encoded rows from a stream without an encoder"),
            RowEvent::Done(sum) => summary = Some(sum),
            RowEvent::Columns(_) => {}
        }
    }
    assert_eq!(summary.expect("summary").row_count, rows);
    let growth = peak.saturating_sub(before) * 1024;
    eprintln!("streamed {rows} rows: RSS grew by {growth} bytes; held as Values: {held} bytes");
    (rows, growth, held)
}

/// TableService on a backend, as the Forge drives it: a hostile table name, a DEFAULT of every
/// column type (the dialect's literals), the existence check and CREATE in one session, then
/// filtered, ordered and paged selects, an update and a delete.
pub async fn table_service_round_trip(b: &dyn Backend) {
    use crate::core::{
        names::Identifier,
        table::{
            self, ColumnSpec, ColumnType, Filter, FilterOp, Order, RowScope, Select, TableSpec,
        },
    };
    let d = b.dialect().expect("dialect");
    let db = TestDb::new(b, "dialect").await;
    let id = |s: &str| Identifier::parse("column", s).expect("identifier");
    let col = |n: &str, ty, default| ColumnSpec {
        name: id(n),
        ty,
        primary_key: false,
        not_null: false,
        unique: false,
        default,
    };
    let ts = time::macros::datetime!(2024-02-29 13:45:01.5 UTC);
    let text = "it's \\ \"q\" `b` ✓";
    let name = id("we\"ird`name");
    let defaults = vec![
        Value::Float(0.25),
        Value::Text(text.into()),
        Value::Bool(true),
        Value::Decimal("12.50".into()),
        Value::Json(r#"{"k": "v"}"#.into()),
        Value::Timestamp(ts),
        Value::Date(time::macros::date!(2024 - 02 - 29)),
        Value::Bytes(vec![0, 255]),
    ];
    let types = [
        ColumnType::Float,
        ColumnType::Text,
        ColumnType::Bool,
        ColumnType::Decimal,
        ColumnType::Json,
        ColumnType::Timestamp,
        ColumnType::Date,
        ColumnType::Bytes,
    ];
    let mut columns = vec![ColumnSpec {
        primary_key: true,
        ..col("id", ColumnType::Integer, None)
    }];
    for (i, (ty, v)) in types.iter().zip(&defaults).enumerate() {
        columns.push(col(&format!("c{i}"), *ty, Some(v.clone())));
    }
    let spec = TableSpec {
        table: name.clone(),
        columns,
        if_not_exists: false,
    };
    let mut s = db.db.session(limits()).await.expect("session");
    s.begin().await.expect("begin");
    let exists = s
        .execute(d.table_exists(name.as_str()))
        .await
        .expect("exists");
    assert!(exists.rows.is_empty());
    s.execute(table::create_table(d, &spec).expect("ddl"))
        .await
        .expect("create");
    s.commit().await.expect("commit");
    let exists = db
        .db
        .execute(d.table_exists(name.as_str()), &limits())
        .await
        .expect("exists");
    assert_eq!(exists.rows.len(), 1);

    for i in 1..=5 {
        let row = vec![(id("id"), Value::Int(i))];
        db.db
            .execute(table::insert_row(d, &name, row), &limits())
            .await
            .expect("insert");
    }
    let select = Select {
        table: name.clone(),
        columns: vec![],
        filters: vec![
            Filter::In(id("id"), (2..=5).map(Value::Int).collect()),
            Filter::Compare(id("c1"), FilterOp::Like, Value::Text("it%".into())),
            Filter::IsNotNull(id("c4")),
        ],
        order_by: vec![Order {
            column: id("id"),
            descending: true,
        }],
        limit: Some(2),
        offset: Some(1),
    };
    let r = db
        .db
        .execute(table::select(d, &select), &limits())
        .await
        .expect("select");
    let ids: Vec<Value> = r.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, vec![Value::Int(4), Value::Int(3)]);
    for (want, got) in defaults.iter().zip(&r.rows[0][1..]) {
        let same = match (want, got) {
            (Value::Decimal(a), Value::Decimal(b)) => {
                let t = |s: &str| s.trim_end_matches('0').trim_end_matches('.').to_owned();
                t(a) == t(b)
            }
            (Value::Json(a), Value::Json(b)) => a.replace(' ', "") == b.replace(' ', ""),
            _ => want == got,
        };
        assert!(same, "default {want:?} read back as {got:?}");
    }
    let offset_only = Select {
        filters: vec![],
        order_by: vec![Order {
            column: id("id"),
            descending: false,
        }],
        limit: None,
        offset: Some(3),
        ..select
    };
    let r = db
        .db
        .execute(table::select(d, &offset_only), &limits())
        .await
        .expect("offset");
    let ids: Vec<Value> = r.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, vec![Value::Int(4), Value::Int(5)]);
    let update = table::update(
        d,
        &name,
        vec![(id("c2"), Value::Bool(false))],
        &RowScope::Matching(vec![Filter::Compare(id("id"), FilterOp::Le, Value::Int(2))]),
    )
    .expect("update");
    let r = db.db.execute(update, &limits()).await.expect("update");
    assert_eq!(r.rows_affected, 2);
    let delete = table::delete(
        d,
        &name,
        &RowScope::Matching(vec![Filter::Compare(
            id("c2"),
            FilterOp::Eq,
            Value::Bool(false),
        )]),
    );
    let r = db.db.execute(delete, &limits()).await.expect("delete");
    assert_eq!(r.rows_affected, 2);
    drop(s);
    db.drop_in(b).await;
}
