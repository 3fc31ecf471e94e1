//! The MCP endpoint at `/mcp` over plain HTTP/1.1, as the streamable HTTP transport speaks it:
//! the same keys as gRPC (401 without one), tools per mode, and a tool call that reaches the
//! core. The official MCP clients are tested in tests-interop/test_mcp.py and
//! sdk-typescript/test/mcp.test.ts.

use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::harness::{ADMIN_KEY, TestServer, as_key, secured};

/// POSTs one JSON-RPC message; returns the status, the session id header and the JSON messages
/// of the answer (the SSE `data:` lines, or the JSON body).
async fn post(
    s: &TestServer,
    key: Option<&str>,
    session: Option<&str>,
    message: Value,
) -> (u16, Option<String>, Vec<Value>) {
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::post("/mcp")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    if let Some(id) = session {
        req = req
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(message.to_string())))
        .expect("request");
    let resp = send.send_request(req).await.expect("an answer");
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    let messages = if text.trim_start().starts_with('{') {
        vec![serde_json::from_str(&text).expect("JSON body")]
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_json::from_str(d.trim()).expect("JSON event"))
            .collect()
    };
    (status, id, messages)
}

/// Initializes a session; returns its id.
async fn initialize(s: &TestServer, key: Option<&str>) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "it", "version": "1"}}});
    let (status, id, messages) = post(s, key, None, init).await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(messages[0]["result"]["serverInfo"]["name"], "dbforge");
    let id = id.expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(s, key, Some(&id), initialized).await;
    assert_eq!(status, 202);
    id
}

/// The result of one request in a session.
async fn request(
    s: &TestServer,
    key: Option<&str>,
    session: &str,
    method: &str,
    params: Value,
) -> Value {
    let msg = json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": params});
    let (status, _, messages) = post(s, key, Some(session), msg).await;
    assert_eq!(status, 200, "{messages:?}");
    let answer = messages
        .into_iter()
        .find(|m| m["id"] == 2)
        .expect("an answer to the request");
    answer["result"].clone()
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn mcp_without_a_key_is_401_and_with_the_admin_key_runs_tools() {
    let s = secured(dbforge::Backend::Sqlite, None).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "it", "version": "1"}}});
    for key in [None, Some("wrong-key-0123456789abcdefgh")] {
        let (status, _, messages) = post(&s, key, None, init.clone()).await;
        assert_eq!(status, 401);
        let message = messages[0]["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("UNAUTHENTICATED: "), "{message}");
    }
    let session = initialize(&s, Some(ADMIN_KEY)).await;
    let list = request(&s, Some(ADMIN_KEY), &session, "tools/list", json!({})).await;
    assert_eq!(tool_names(&list).len(), 10, "nine tools and ask");
    let created = request(
        &s,
        Some(ADMIN_KEY),
        &session,
        "tools/call",
        json!({"name": "create_database", "arguments": {"name": "mcp-it"}}),
    )
    .await;
    assert_eq!(created["isError"], json!(false), "{created}");
    let rows = request(
        &s,
        Some(ADMIN_KEY),
        &session,
        "tools/call",
        json!({"name": "query", "arguments": {"database": "mcp-it", "sql": "SELECT 1 AS one"}}),
    )
    .await;
    let text = rows["content"][0]["text"].as_str().expect("text");
    let parsed: Value = serde_json::from_str(text).expect("JSON rows");
    assert_eq!(
        parsed,
        json!({"columns": ["one"], "rows": [[1]], "row_count": 1, "truncated": false})
    );
    // The gRPC side sees what MCP made.
    let admin = as_key(&s, ADMIN_KEY).await;
    let db = admin
        .get_database("mcp-it")
        .await
        .expect("created over MCP");
    assert_eq!(db.name, "mcp-it");
}

#[tokio::test]
async fn mcp_minimal_mode_lists_three_tools_and_off_removes_the_endpoint() {
    let s = TestServer::with(|mut c| {
        c.mcp_tools = dbforge_server::config::McpTools::Minimal;
        c
    })
    .await;
    let session = initialize(&s, None).await;
    let list = request(&s, None, &session, "tools/list", json!({})).await;
    assert_eq!(
        tool_names(&list),
        ["list_databases", "describe_schema", "query"]
    );

    let off = TestServer::with(|mut c| {
        c.mcp_tools = dbforge_server::config::McpTools::Off;
        c.no_dashboard = true;
        c
    })
    .await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let (status, _, _) = post(&off, None, None, init).await;
    assert_ne!(status, 200);
}
