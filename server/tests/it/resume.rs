//! Resumable Query streams: connections cut mid-stream for real (a loopback TCP proxy the test
//! kills) on every engine, then resumed with the last token; budget pages; tokens bound to
//! their key; expiry; the bounds on parked streams.

use std::{net::SocketAddr, time::Duration};

use dbforge::{Backend, CreateOptions, pb};
use futures::StreamExt;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::Channel;

use crate::harness::{self, TestServer};

type Queries = pb::query_service_client::QueryServiceClient<Channel>;

/// A loopback TCP proxy in front of a server; [`Proxy::cut`] drops every connection through it
/// at once, as a network failure would (new connections go through again).
struct Proxy {
    addr: SocketAddr,
    kill: watch::Sender<u64>,
}

impl Proxy {
    async fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (kill, killed) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut killed = killed.clone();
                let cuts = *killed.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.wait_for(|k| *k > cuts) => {}
                    }
                    // Both sockets are dropped here: the server sees its client vanish.
                });
            }
        });
        Proxy { addr, kill }
    }

    fn cut(&self) {
        self.kill.send_modify(|k| *k += 1);
    }
}

async fn queries(addr: SocketAddr) -> Queries {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Queries::new(ch)
}

fn with_key<T>(msg: T, key: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(k) = key {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {k}").parse().expect("header"),
        );
    }
    r
}

fn resumable(db: &str, sql: &str, max_rows: i64) -> pb::QueryRequest {
    pb::QueryRequest {
        database: db.into(),
        sql: sql.into(),
        max_rows,
        resumable: true,
        ..Default::default()
    }
}

fn resume(token: &str, max_rows: i64) -> pb::QueryRequest {
    pb::QueryRequest {
        resume_token: token.into(),
        max_rows,
        ..Default::default()
    }
}

/// What one page brought: the first column of its rows, the token of its last batch, and its
/// summary (absent when the stream broke).
#[derive(Debug, Default)]
struct Page {
    ids: Vec<i64>,
    last_token: String,
    summary: Option<pb::ResultSummary>,
    header: bool,
}

fn first_int(row: &pb::Row) -> i64 {
    match row.values.first().and_then(|v| v.kind.as_ref()) {
        Some(pb::value::Kind::IntValue(i)) => *i,
        Some(pb::value::Kind::DecimalValue(s)) => s.parse().expect("an integer"),
        Some(pb::value::Kind::TextValue(s)) => s
            .trim_start_matches("item-")
            .trim_start_matches('0')
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("unexpected first value {other:?}"),
    }
}

/// Reads a page to its end, or until `stop_after` rows arrived (then the stream is left open).
async fn read_page(
    stream: &mut tonic::Streaming<pb::QueryResponse>,
    stop_after: Option<usize>,
) -> Result<Page, tonic::Status> {
    let mut page = Page::default();
    while let Some(msg) = stream.next().await {
        match msg?.kind {
            Some(pb::query_response::Kind::Header(_)) => page.header = true,
            Some(pb::query_response::Kind::Batch(b)) => {
                assert!(!b.resume_token.is_empty(), "a resumable batch has a token");
                page.ids.extend(b.rows.iter().map(first_int));
                page.last_token = b.resume_token;
                if stop_after.is_some_and(|n| page.ids.len() >= n) {
                    return Ok(page);
                }
            }
            Some(pb::query_response::Kind::Summary(s)) => page.summary = Some(s),
            _ => {}
        }
    }
    Ok(page)
}

async fn query(
    q: &Queries,
    req: pb::QueryRequest,
    key: Option<&str>,
) -> Result<tonic::Streaming<pb::QueryResponse>, tonic::Status> {
    Ok(q.clone().query(with_key(req, key)).await?.into_inner())
}

/// Bytes of padding per row: 60,000 rows then take about 12 MB, far more than the transport
/// holds in flight, so a cut after 5,000 rows really is mid-stream.
const PAD: usize = 200;

/// A series of `n` rows on each engine: `(x, padding)` for x in 1..=n, or a Redis list of
/// `item-<x, zero-padded>`.
async fn series(s: &TestServer, backend: Backend, n: i64) -> (String, String) {
    let db = harness::unique("resume");
    s.client
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    let sql = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
             SELECT x, substr(hex(zeroblob({PAD})), 1, {PAD}) AS pad FROM c"
        ),
        Backend::Postgres => {
            format!("SELECT x, repeat('x', {PAD}) AS pad FROM generate_series(1, {n}) AS x")
        }
        Backend::Mysql => format!("SELECT seq AS x, REPEAT('x', {PAD}) AS pad FROM seq_1_to_{n}"),
        Backend::Redis => {
            for chunk in (1..=n).collect::<Vec<_>>().chunks(5_000) {
                let items: Vec<String> = chunk.iter().map(|i| format!("item-{i:0>PAD$}")).collect();
                s.client
                    .execute(&db, &format!("RPUSH l {}", items.join(" ")), &[])
                    .await
                    .expect("rpush");
            }
            "LRANGE l 0 -1".into()
        }
        _ => unreachable!(),
    };
    (db, sql)
}

/// Cuts the connection after some rows, resumes with the last token on a new connection, and
/// checks that every row arrived exactly once and in order.
async fn cut_and_resume(s: &TestServer, backend: Backend) {
    const N: i64 = 60_000;
    let (db, sql) = series(s, backend, N).await;
    let proxy = Proxy::to(s.addr).await;
    let through_proxy = queries(proxy.addr).await;
    let mut stream = query(&through_proxy, resumable(&db, &sql, 0), None)
        .await
        .expect("query");
    let first = read_page(&mut stream, Some(5_000))
        .await
        .expect("first rows");
    assert!(first.header);
    assert!(first.ids.len() >= 5_000 && (first.ids.len() as i64) < N);
    proxy.cut();
    // The cut connection fails the call on the client too.
    let broken = read_page(&mut stream, None).await;
    assert!(broken.is_err(), "{backend:?}: the stream survived the cut");
    let direct = queries(s.addr).await;
    let mut resumed = query(&direct, resume(&first.last_token, 0), None)
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: resume: {e}"));
    let rest = read_page(&mut resumed, None).await.expect("the rest");
    assert!(rest.header, "a resumed page starts with the header");
    let summary = rest.summary.expect("summary");
    assert_eq!(summary.truncation, pb::Truncation::Unspecified as i32);
    assert!(
        summary.resume_token.is_empty(),
        "a whole result has no token"
    );
    assert_eq!(summary.row_count as usize, rest.ids.len());
    let all: Vec<i64> = first.ids.iter().chain(&rest.ids).copied().collect();
    assert_eq!(all.len() as i64, N, "{backend:?}: rows lost or repeated");
    assert!(
        all.iter().copied().eq(1..=N),
        "{backend:?}: rows out of order or repeated"
    );
    // Sent whole, the stream stays for the window (its tail may have been lost in flight):
    // resuming at its end sends no row and the same summary.
    let (id, _) = first.last_token.split_once('.').expect("id.offset");
    let mut end = query(&direct, resume(&format!("{id}.{N}"), 0), None)
        .await
        .expect("resume at the end");
    let end = read_page(&mut end, None).await.expect("end");
    assert!(end.ids.is_empty());
    let summary = end.summary.expect("summary");
    assert!(summary.resume_token.is_empty() && summary.truncation == 0);
}

#[tokio::test]
async fn a_stream_cut_mid_way_resumes_exactly_once_in_order_on_every_engine() {
    let s = TestServer::start().await;
    cut_and_resume(&s, Backend::Sqlite).await;
    if let Some(url) = harness::postgres_url().await {
        cut_and_resume(
            &harness::serving(Backend::Postgres, url).await,
            Backend::Postgres,
        )
        .await;
    }
    if let Some(url) = harness::mysql_url().await {
        cut_and_resume(&harness::serving(Backend::Mysql, url).await, Backend::Mysql).await;
    }
    if let Some(url) = harness::redis_url().await {
        cut_and_resume(&harness::serving(Backend::Redis, url).await, Backend::Redis).await;
    }
}

/// A budget cuts a page; its summary's token fetches the next page, until the end.
async fn pages(s: &TestServer, backend: Backend) {
    let (db, sql) = series(s, backend, 2_500).await;
    let q = queries(s.addr).await;
    let mut stream = query(&q, resumable(&db, &sql, 1_000), None)
        .await
        .expect("query");
    let mut page = read_page(&mut stream, None).await.expect("page 1");
    let mut all = page.ids.clone();
    let mut n = 1;
    loop {
        let summary = page.summary.expect("summary");
        if summary.resume_token.is_empty() {
            assert_eq!(summary.truncation, pb::Truncation::Unspecified as i32);
            break;
        }
        assert_eq!(summary.truncation, pb::Truncation::RowLimit as i32);
        assert_eq!(summary.row_count, 1_000);
        assert_eq!(page.ids.len(), 1_000);
        let mut next = query(&q, resume(&summary.resume_token, 1_000), None)
            .await
            .unwrap_or_else(|e| panic!("{backend:?} page {}: {e}", n + 1));
        page = read_page(&mut next, None).await.expect("page");
        all.extend(&page.ids);
        n += 1;
    }
    assert_eq!(n, 3, "{backend:?}: 2,500 rows in pages of 1,000");
    assert!(all.iter().copied().eq(1..=2_500), "{backend:?}");
}

#[tokio::test]
async fn a_budget_cut_stream_resumes_page_by_page_on_every_engine() {
    let s = TestServer::start().await;
    pages(&s, Backend::Sqlite).await;
    if let Some(url) = harness::postgres_url().await {
        pages(
            &harness::serving(Backend::Postgres, url).await,
            Backend::Postgres,
        )
        .await;
    }
    if let Some(url) = harness::mysql_url().await {
        pages(&harness::serving(Backend::Mysql, url).await, Backend::Mysql).await;
    }
    if let Some(url) = harness::redis_url().await {
        pages(&harness::serving(Backend::Redis, url).await, Backend::Redis).await;
    }
}

#[tokio::test]
async fn a_resume_token_is_refused_to_another_key_and_kept_for_its_own() {
    let s = harness::secured(Backend::Sqlite, None).await;
    let admin = harness::as_key(&s, harness::ADMIN_KEY).await;
    let db = harness::unique("resumekey");
    admin
        .create_database(&db, CreateOptions::default())
        .await
        .expect("db");
    let mut keys = Vec::new();
    for name in ["owner", "other"] {
        let (_, key) = admin
            .create_api_key(
                dbforge::ApiKeySpec::new(name)
                    .grant(dbforge::Grant::database(&db, dbforge::Role::Read)),
            )
            .await
            .expect("key");
        keys.push(key);
    }
    let (owner, other) = (Some(keys[0].as_str()), Some(keys[1].as_str()));
    let q = queries(s.addr).await;
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) \
               SELECT x FROM c";
    let mut stream = query(&q, resumable(&db, sql, 10), owner)
        .await
        .expect("query");
    let page = read_page(&mut stream, None).await.expect("page");
    let token = page.summary.expect("summary").resume_token;
    assert!(!token.is_empty());
    let e = query(&q, resume(&token, 0), other)
        .await
        .expect_err("another key's token");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    assert!(e.message().contains("another key"), "{}", e.message());
    let mut rest = query(&q, resume(&token, 0), owner)
        .await
        .expect("the owner still resumes");
    let rest = read_page(&mut rest, None).await.expect("rest");
    assert!(rest.ids.iter().copied().eq(11..=100));
}

#[tokio::test]
async fn a_parked_stream_expires_after_the_resume_window() {
    let s = TestServer::with(|mut c| {
        c.resume_window = Duration::from_millis(300);
        c
    })
    .await;
    let db = s.db("resumeexp").await;
    let q = queries(s.addr).await;
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) \
               SELECT x FROM c";
    let mut stream = query(&q, resumable(&db, sql, 10), None)
        .await
        .expect("query");
    let token = read_page(&mut stream, None)
        .await
        .expect("page")
        .summary
        .expect("summary")
        .resume_token;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = query(&q, resume(&token, 0), None)
        .await
        .expect_err("expired");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    assert!(e.message().contains("expired"), "{}", e.message());
}

#[tokio::test]
async fn resumable_streams_are_bounded_per_key_the_oldest_parked_giving_way() {
    let s = TestServer::with(|mut c| {
        c.max_resumable_per_key = 2;
        c
    })
    .await;
    let db = s.db("resumeflood").await;
    let q = queries(s.addr).await;
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) \
               SELECT x FROM c";
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let mut stream = query(&q, resumable(&db, sql, 5), None)
            .await
            .expect("query");
        let page = read_page(&mut stream, None).await.expect("page");
        tokens.push(page.summary.expect("summary").resume_token);
    }
    // Three parked streams on a bound of two: the first gave way to the third.
    let e = query(&q, resume(&tokens[0], 0), None)
        .await
        .expect_err("the oldest parked stream gave way");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    assert!(e.message().contains("gave way"), "{}", e.message());
    for t in &tokens[1..] {
        let mut next = query(&q, resume(t, 5), None)
            .await
            .expect("the newer ones resume");
        read_page(&mut next, None).await.expect("page");
    }
    // Streams being read are never taken: two open ones (too large to be sent at once) fill
    // the bound, a third is refused.
    let (big_db, big) = series(&s, Backend::Sqlite, 60_000).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = query(&q, resumable(&big_db, &big, 0), None)
            .await
            .expect("query");
        let header = stream.next().await.expect("header").expect("header");
        assert!(matches!(
            header.kind,
            Some(pb::query_response::Kind::Header(_))
        ));
        open.push(stream);
    }
    let e = query(&q, resumable(&db, sql, 5), None)
        .await
        .expect_err("a third while two are being read");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    assert!(
        e.message().contains("--max-resumable-per-key"),
        "{}",
        e.message()
    );
    // Plain streams are not affected.
    s.client.query(&db, sql, &[]).await.expect("plain query");
    // Finishing one frees its place.
    let mut first = open.remove(0);
    while let Some(m) = first.next().await {
        m.expect("rows");
    }
    query(&q, resumable(&db, sql, 5), None)
        .await
        .expect("a place was freed");
}

#[tokio::test]
async fn bad_resume_requests_are_refused_with_reasons() {
    let s = TestServer::with(|mut c| {
        c.resume_replay_bytes = 64;
        c
    })
    .await;
    let db = s.db("resumebad").await;
    let q = queries(s.addr).await;
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) \
               SELECT x FROM c";
    for bad in ["", "nope", "AAAA.1", "AAAAAAAAAAAAAAAAAAAAAA.one"] {
        if bad.is_empty() {
            continue;
        }
        let e = query(&q, resume(bad, 0), None)
            .await
            .expect_err("malformed");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e}");
    }
    let unknown = query(&q, resume("AAAAAAAAAAAAAAAAAAAAAA.0", 0), None)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown}");
    let summarize = query(
        &q,
        pb::QueryRequest {
            summarize: true,
            ..resumable(&db, sql, 0)
        },
        None,
    )
    .await
    .expect_err("summarize");
    assert_eq!(
        summarize.code(),
        tonic::Code::InvalidArgument,
        "{summarize}"
    );
    let mut stream = query(&q, resumable(&db, sql, 40), None)
        .await
        .expect("query");
    let page = read_page(&mut stream, None).await.expect("page");
    let token = page.summary.expect("summary").resume_token;
    let (id, _) = token.split_once('.').expect("id.offset");
    // A token with SQL, on another database, or past the rows sent.
    let with_sql = query(
        &q,
        pb::QueryRequest {
            sql: "SELECT 1".into(),
            ..resume(&token, 0)
        },
        None,
    )
    .await
    .expect_err("sql with a token");
    assert_eq!(with_sql.code(), tonic::Code::InvalidArgument, "{with_sql}");
    let other_db = query(
        &q,
        pb::QueryRequest {
            database: "elsewhere".into(),
            ..resume(&token, 0)
        },
        None,
    )
    .await
    .expect_err("another database");
    assert_eq!(other_db.code(), tonic::Code::InvalidArgument, "{other_db}");
    let ahead = query(&q, resume(&format!("{id}.41"), 0), None)
        .await
        .expect_err("past the rows sent");
    assert_eq!(ahead.code(), tonic::Code::InvalidArgument, "{ahead}");
    // The 64-byte replay buffer holds only the last few rows: row 0 is gone.
    let old = query(&q, resume(&format!("{id}.0"), 0), None)
        .await
        .expect_err("older than the replay buffer");
    assert_eq!(old.code(), tonic::Code::FailedPrecondition, "{old}");
    assert!(old.message().contains("replay"), "{}", old.message());
    // None of the refusals consumed the stream; a slightly earlier row is still replayable.
    let mut rest = query(&q, resume(&format!("{id}.38"), 0), None)
        .await
        .expect("resume two rows back");
    let rest = read_page(&mut rest, None).await.expect("rest");
    assert!(rest.ids.iter().copied().eq(39..=100), "{:?}", rest.ids);
}

/// The Rust SDK resumes a resumable stream by itself when the connection drops: the caller
/// reads every row once, in order, without seeing the failure.
#[tokio::test]
async fn the_rust_sdk_resumes_a_dropped_stream_by_itself() {
    const N: i64 = 60_000;
    let s = TestServer::start().await;
    let (db, sql) = series(&s, Backend::Sqlite, N).await;
    let proxy = Proxy::to(s.addr).await;
    let c = dbforge::Client::connect(format!("http://{}", proxy.addr))
        .await
        .expect("connect");
    let opts = dbforge::QueryOptions {
        resumable: true,
        ..Default::default()
    };
    let mut rows = c.query_with(&db, &sql, &[], opts).await.expect("query");
    let mut ids = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.expect("no error reaches the caller");
        ids.push(row.get::<i64>(0).expect("x"));
        if ids.len() == 5_000 {
            assert!(rows.resume_token().is_some());
            proxy.cut();
        }
    }
    assert!(ids.iter().copied().eq(1..=N), "{} rows", ids.len());
    assert!(rows.resume_token().is_none(), "the whole result was read");
    // Without `resumable`, the same cut is the caller's error.
    let mut plain = c.query(&db, &sql, &[]).await.expect("query");
    let mut failed = false;
    let mut n = 0;
    while let Some(row) = plain.next().await {
        n += 1;
        if n == 5_000 {
            proxy.cut();
        }
        if row.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a plain stream does not survive the cut");
}

/// `Client::resume_query` continues a budget-cut stream page by page.
#[tokio::test]
async fn the_rust_sdk_fetches_the_next_page_with_resume_query() {
    let s = TestServer::start().await;
    let (db, sql) = series(&s, Backend::Sqlite, 250).await;
    let opts = dbforge::QueryOptions {
        resumable: true,
        max_rows: 100,
        ..Default::default()
    };
    let mut rows = s
        .client
        .query_with(&db, &sql, &[], opts)
        .await
        .expect("query");
    let mut ids = Vec::new();
    loop {
        while let Some(row) = rows.next().await {
            ids.push(row.expect("row").get::<i64>(0).expect("x"));
        }
        let summary = rows.summary().expect("summary").clone();
        let Some(token) = summary.resume_token else {
            break;
        };
        assert_eq!(summary.truncation, dbforge::Truncation::RowLimit);
        assert_eq!(rows.resume_token(), Some(token.clone()));
        rows = s
            .client
            .resume_query(&token, opts)
            .await
            .expect("next page");
    }
    assert!(ids.iter().copied().eq(1..=250));
}
