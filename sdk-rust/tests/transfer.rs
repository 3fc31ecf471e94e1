//! The SDK's transfer and schema calls, and its error messages, against a gateway started in
//! this process (SQLite databases), on an ephemeral loopback port.

mod gateway;

use std::io;

use dbforge::{ColumnType, ExportFormat, ExportOptions, ImportCsvOptions, ImportSource, Value};
use futures::TryStreamExt;
use gateway::Gateway;

const PEOPLE: &str = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, note TEXT)";

#[tokio::test(flavor = "multi_thread")]
async fn export_streams_chunks_with_row_counts_and_csv_imports_from_tiny_chunks() {
    let g = Gateway::start().await;
    let db = g.db("source").await;
    g.client.execute(&db, PEOPLE, &[]).await.expect("create");
    g.client
        .execute(
            &db,
            "INSERT INTO people VALUES (1, 'Zoë \"Z\", 東京', 'two\nlines'), (2, '', NULL)",
            &[],
        )
        .await
        .expect("insert");

    let mut export = g
        .client
        .export_table(&db, "people", ExportOptions::csv())
        .await
        .expect("export");
    let mut file = Vec::new();
    let mut last = None;
    while let Some(chunk) = export.try_next().await.expect("chunk") {
        file.extend_from_slice(&chunk.data);
        last = Some((chunk.rows, chunk.done));
    }
    assert_eq!(last, Some((2, true)));
    assert_eq!(export.rows(), 2);
    let text = String::from_utf8(file.clone()).expect("utf-8");
    assert_eq!(
        text,
        "id,name,note\r\n1,\"Zoë \"\"Z\"\", 東京\",\"two\nlines\"\r\n2,\"\",\r\n"
    );

    // Three-byte chunks cut the multi-byte characters, the quotes and the CRLFs apart: the
    // server must reassemble the file, not parse chunk by chunk.
    let copy = g.db("copy").await;
    g.client.execute(&copy, PEOPLE, &[]).await.expect("create");
    let parts: Vec<Vec<u8>> = file.chunks(3).map(<[u8]>::to_vec).collect();
    let report = g
        .client
        .import_csv(
            &copy,
            "people",
            ImportSource::iter(parts),
            ImportCsvOptions::default(),
        )
        .await
        .expect("import");
    assert_eq!((report.rows_read, report.rows_inserted), (2, 2));
    assert!(!report.table_created);
    let all = "SELECT id, name, note FROM people ORDER BY id";
    assert_eq!(g.rows(&copy, all).await, g.rows(&db, all).await);
    assert_eq!(
        g.rows(
            &copy,
            "SELECT name IS NULL, note IS NULL FROM people WHERE id = 2"
        )
        .await,
        [[Value::Int(0), Value::Int(1)]]
    );

    // A query as NDJSON.
    let ndjson = g
        .client
        .export_query(
            &db,
            "SELECT id FROM people WHERE id > ?",
            &dbforge::params![1],
            ExportOptions::new(ExportFormat::Ndjson),
        )
        .await
        .expect("export query")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(ndjson, b"{\"id\":2}\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_import_creates_tables_and_skips_bad_rows() {
    let g = Gateway::start().await;
    let db = g.db("csv").await;
    let csv = "zip;n\n01234;1\n99999;2\n12345;x\n";
    let report = g
        .client
        .import_csv(
            &db,
            "places",
            csv,
            ImportCsvOptions::default()
                .delimiter(';')
                .column_type("zip", ColumnType::Text)
                // `n` is INTEGER from the first two rows; the third's `x` then does not fit.
                .sample_rows(2)
                .skip_bad_rows(),
        )
        .await
        .expect("import");
    assert!(report.table_created);
    assert_eq!(
        (report.rows_read, report.rows_inserted, report.rows_rejected),
        (3, 2, 1)
    );
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].line, 4);
    assert!(!report.rejected[0].reason.is_empty());
    // The override kept the leading zero.
    assert_eq!(
        g.rows(&db, "SELECT zip FROM places ORDER BY n").await,
        [[Value::Text("01234".into())], [Value::Text("99999".into())]]
    );

    // Without skip_bad_rows, all or nothing.
    let err = g
        .client
        .import_csv(
            &db,
            "places",
            "zip;n\n1;2\n",
            ImportCsvOptions::default().create(),
        )
        .await
        .expect_err("the table exists");
    assert_eq!(err.code(), dbforge::Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_cancels_the_import_and_nothing_is_applied() {
    let g = Gateway::start().await;
    let db = g.db("cancel").await;
    g.client
        .execute(&db, "CREATE TABLE t (n INTEGER)", &[])
        .await
        .expect("create");
    let source = ImportSource::stream(futures::stream::iter([
        Ok(b"INSERT INTO t VALUES (1);\n".to_vec()),
        Err(io::Error::other("the disk went away")),
    ]));
    let err = g.client.import_sql(&db, source).await.expect_err("aborted");
    assert!(matches!(err, dbforge::Error::Io(_)), "{err:?}");
    assert_eq!(err.to_string(), "the disk went away");
    assert_eq!(
        g.rows(&db, "SELECT count(*) FROM t").await,
        [[Value::Int(0)]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_replays_into_a_fresh_database() {
    let g = Gateway::start().await;
    let db = g.db("dumped").await;
    g.client
        .import_sql(
            &db,
            "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, b BLOB);\n\
             CREATE INDEX a_v ON a (v);\n\
             INSERT INTO a (v, b) VALUES ('x;y', x'00ff'), (NULL, NULL), ('ünï', x'');\n\
             CREATE VIEW av AS SELECT v FROM a WHERE v IS NOT NULL;\n",
        )
        .await
        .expect("seed");
    let dump = g
        .client
        .dump_database(&db, false)
        .await
        .expect("dump")
        .bytes()
        .await
        .expect("bytes");
    let copy = g.db("restored").await;
    let report = g.client.import_sql(&copy, dump).await.expect("replay");
    assert!(report.statements >= 4, "{report:?}");
    for sql in [
        "SELECT * FROM a ORDER BY id",
        "SELECT * FROM av ORDER BY v",
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite%'",
    ] {
        assert_eq!(g.rows(&copy, sql).await, g.rows(&db, sql).await, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_and_explain_are_typed() {
    let g = Gateway::start().await;
    let db = g.db("typed").await;
    g.client
        .execute(
            &db,
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)",
            &[],
        )
        .await
        .expect("create");
    let schema = g.client.get_schema(&db, None).await.expect("schema");
    let people = schema.table("people").expect("people");
    assert_eq!(people.kind(), dbforge::TableKind::Table);
    assert_eq!(people.primary_key, ["id"]);
    let columns: Vec<(&str, bool)> = people
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.nullable))
        .collect();
    assert_eq!(columns, [("id", false), ("name", false), ("age", true)]);
    assert_eq!(people.columns[2].kind(), dbforge::pb::ValueKind::Int);
    assert!(
        schema.text.contains("CREATE TABLE people ("),
        "{}",
        schema.text
    );
    let err = g
        .client
        .get_schema(&db, Some("nope"))
        .await
        .expect_err("unknown table");
    assert_eq!(err.code(), dbforge::Code::NotFound);

    let plan = g
        .client
        .explain(
            &db,
            "SELECT * FROM people WHERE name = ?",
            &dbforge::params!["Ada"],
            false,
        )
        .await
        .expect("explain");
    assert_eq!(plan.full_scans, ["people"]);
    assert!(
        plan.nodes
            .iter()
            .any(|n| n.full_scan && n.relation == "people")
    );
    let err = g
        .client
        .explain(&db, "SELECT 1", &[], true)
        .await
        .expect_err("no analyze on SQLite");
    assert_eq!(err.code(), dbforge::Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_refusals_name_the_sdks_methods_not_rpcs() {
    let g = Gateway::start().await;
    let db = g.db("words").await;
    let err = g
        .client
        .execute(&db, "BEGIN", &[])
        .await
        .expect_err("BEGIN outside a transaction");
    assert_eq!(err.code(), dbforge::Code::InvalidArgument);
    let said = ": use `client.batch(database, statements, true)` or `client.transaction(database)`";
    assert!(err.message().ends_with(said), "{}", err.message());
    let shown = err.to_string();
    assert!(
        shown.starts_with("INVALID_ARGUMENT: ") && shown.ends_with(said),
        "{shown}"
    );
    assert!(
        !shown.contains("ExecuteBatch") && !shown.contains("Session"),
        "{shown}"
    );
    // The server's own words stay available.
    assert!(
        err.grpc_message()
            .ends_with(": use ExecuteBatch with `transaction` or a Session"),
        "{}",
        err.grpc_message()
    );
    let dbforge::Error::Status(status) = &err else {
        panic!("not a status: {err:?}");
    };
    assert_eq!(status.message(), err.grpc_message());

    let err = g
        .client
        .explain(&db, "SELECT 1", &[], true)
        .await
        .expect_err("no analyze on SQLite");
    assert!(
        err.to_string().starts_with(
            "UNIMPLEMENTED: `explain(database, sql, params, true)` (analyze) is not supported by \
             the sqlite backend"
        ),
        "{err}"
    );
}
