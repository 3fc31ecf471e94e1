//! HTTP/1.1 on the gRPC port: grpc-web calls, CORS preflights, /metrics.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{ServerProcess, TestServer};

/// Sends a raw HTTP/1.1 request and returns the whole response.
async fn http(s: &TestServer, request: &[u8]) -> Vec<u8> {
    http_to(s.addr, request).await
}

async fn http_to(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request).await.expect("send");
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.expect("read");
    out
}

fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

#[tokio::test]
async fn grpc_web_calls_and_cors_preflight() {
    let s = TestServer::with(|mut c| {
        c.cors_origins = vec!["http://app.example".into()];
        c
    })
    .await;
    s.db("web").await;
    // ListDatabasesRequest {} is the empty message.
    let body = grpc_web_frame(&[]);
    let mut req = format!(
        "POST /dbforge.v1.DatabaseService/ListDatabases HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nOrigin: http://app.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let resp = http(&s, &req).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: http://app.example"),
        "{text}"
    );
    assert!(lower.contains("access-control-expose-headers"), "{text}");
    assert!(lower.contains("grpc-status"), "{text}");
    assert!(
        text.contains("web-"),
        "the database name is in the reply: {text}"
    );

    let preflight = http(
        &s,
        b"OPTIONS /dbforge.v1.QueryService/Query HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web,authorization\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&preflight).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("access-control-allow-origin: http://app.example"),
        "{text}"
    );
    assert!(text.contains("authorization"), "{text}");

    let other = http(
        &s,
        b"OPTIONS /dbforge.v1.QueryService/Query HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&other).to_ascii_lowercase();
    assert!(!text.contains("access-control-allow-origin"), "{text}");
    assert!(text.starts_with("http/1.1 403"), "{text}");
    assert!(
        text.contains("--cors-origin http://evil.example"),
        "says how to allow it: {text}"
    );
}

fn preflight_from(origin: &str) -> Vec<u8> {
    format!(
        "OPTIONS /dbforge.v1.QueryService/Query HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Without `--cors-origin`, a page on another origin gets an answer that says how to allow it
/// (it used to be an empty 400), and the gateway logs the origin once a minute, not once a call.
#[tokio::test]
async fn refused_origins_are_told_how_to_get_in_and_logged_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::spawn(dir.path(), &[]);
    for origin in [
        "http://app.example",
        "http://app.example",
        "http://other.example:8080",
    ] {
        let resp = http_to(server.addr, &preflight_from(origin)).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 403"), "{text}");
        assert!(
            text.contains(&format!("--cors-origin {origin}")),
            "the body says how to allow it: {text}"
        );
        assert!(
            !text
                .to_ascii_lowercase()
                .contains("access-control-allow-origin")
        );
    }
    // A page the gateway served itself is same-origin: nothing refused, nothing logged.
    let own = format!("http://{}", server.addr);
    let same = http_to(
        server.addr,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nOrigin: {own}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await;
    assert!(String::from_utf8_lossy(&same).starts_with("HTTP/1.1 200"));
    // The log is written asynchronously by the child: give it a moment.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = server.logs();
        if logs.contains("other.example") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused a browser call"))
        .collect();
    assert_eq!(refused.len(), 2, "once per origin:\n{logs}");
    assert!(refused[0].contains("http://app.example"), "{}", refused[0]);
    assert!(refused[0].contains("--cors-origin"), "{}", refused[0]);
    assert!(
        refused[1].contains("http://other.example:8080"),
        "{}",
        refused[1]
    );
    assert!(!logs.contains(&format!("origin={own}")), "{logs}");
}

/// With `--no-dashboard`, `GET /` says what the port is instead of an empty 400.
#[tokio::test]
async fn the_root_page_says_what_the_port_serves() {
    let s = TestServer::with(|mut c| {
        c.no_dashboard = true;
        c
    })
    .await;
    let resp = http(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{text}"
    );
    for what in [
        "gRPC",
        "grpc-web",
        "/metrics",
        "--cors-origin",
        "grpc.health.v1.Health",
        "README",
    ] {
        assert!(text.contains(what), "mentions {what}: {text}");
    }
    // gRPC still answers on the same port.
    s.client
        .list_databases(dbforge::ListFilter::default())
        .await
        .expect("gRPC next to the page");
}

#[tokio::test]
async fn metrics_are_served_over_http() {
    let s = TestServer::start().await;
    s.db("m").await;
    let resp = http(
        &s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("dbforge_rpc_requests_total"), "{text}");
}

/// A grpc-web call refused before its body was read (here: no API key) answers with its status
/// and leaves the HTTP/1.1 connection usable, even when the client is still sending the body
/// (Node's chunked sender); the gateway used to close the connection under it.
#[tokio::test]
async fn a_refused_http1_call_keeps_its_connection() {
    use bytes::Bytes;
    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let s = TestServer::with_client(
        |mut c| {
            c.insecure_no_auth = false;
            c.admin_key = Some("web-admin-key-0123456789abcdef".into());
            c
        },
        false,
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    for _ in 0..3 {
        // The frame in two chunks, the second sent after the gateway could have answered.
        let frame = grpc_web_frame(&[]);
        let (a, b) = frame.split_at(2);
        let parts = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
        let body = StreamBody::new(futures::stream::iter(parts).then(|p| async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            Ok::<_, std::convert::Infallible>(Frame::data(p))
        }));
        let req = http::Request::post("/dbforge.v1.DatabaseService/ListDatabases")
            .header("host", "x")
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(body)
            .expect("request");
        send.ready().await.expect("the connection is still open");
        let resp = send.send_request(req).await.expect("an answer");
        let status = resp.headers().get("grpc-status").cloned();
        resp.into_body().collect().await.expect("the whole answer");
        assert_eq!(status.as_ref().map(|v| v.as_bytes()), Some(&b"16"[..]));
    }
}

/// The dashboard is served at `/` and at its app routes, with its security headers; its
/// scripts come gzipped; gRPC and `/metrics` keep their routes next to it.
#[tokio::test]
async fn the_dashboard_is_served_with_its_security_headers() {
    let s = TestServer::start().await;
    let mut script = String::new();
    for path in ["/", "/databases", "/db/some%20db/console"] {
        let resp = http(
            &s,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let text = String::from_utf8_lossy(&resp);
        let lower = text.to_ascii_lowercase();
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
        assert!(lower.contains("content-type: text/html"), "{text}");
        assert!(
            lower.contains(&format!(
                "content-security-policy: {}",
                dbforge_server::dashboard::CSP.to_ascii_lowercase()
            )),
            "{text}"
        );
        assert!(lower.contains("x-content-type-options: nosniff"), "{text}");
        assert!(lower.contains("referrer-policy: no-referrer"), "{text}");
        assert!(text.contains("<div id=\"app\">"), "{text}");
        script = text
            .split("src=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("the page loads a script")
            .to_owned();
    }
    let resp = http(
        &s,
        format!(
            "GET {script} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let head = String::from_utf8_lossy(&resp[..resp.len().min(1024)]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    let metrics = http(
        &s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&metrics).contains("dbforge_"));
    s.client
        .list_databases(dbforge::ListFilter::default())
        .await
        .expect("gRPC next to the dashboard");
}

/// The dashboard's fallback must not turn a call to a service the gateway lacks into a page:
/// over gRPC (HTTP/2) and grpc-web the caller gets UNIMPLEMENTED, with the dashboard on or off.
#[tokio::test]
async fn unknown_services_are_unimplemented_next_to_the_dashboard() {
    for no_dashboard in [false, true] {
        let s = TestServer::with(|mut c| {
            c.no_dashboard = no_dashboard;
            c
        })
        .await;
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        for path in [
            "/no.such.v1.Service/Call",
            "/dbforge.v1.DatabaseService/NoSuchMethod",
        ] {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.expect("ready");
            let got: Result<tonic::Response<()>, tonic::Status> = grpc
                .unary(
                    tonic::Request::new(()),
                    http::uri::PathAndQuery::from_static(path),
                    tonic_prost::ProstCodec::<(), ()>::default(),
                )
                .await;
            let status = got.expect_err("no such RPC");
            assert_eq!(
                status.code(),
                tonic::Code::Unimplemented,
                "{path} (dashboard off: {no_dashboard}): {status:?}"
            );
        }
        if !no_dashboard {
            let body = grpc_web_frame(&[]);
            let mut req = format!(
                "POST /no.such.v1.Service/Call HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            let text = String::from_utf8_lossy(&http(&s, &req).await).to_ascii_lowercase();
            assert!(text.contains("grpc-status: 12"), "{text}");
            assert!(!text.contains("<html"), "{text}");
        }
    }
}
