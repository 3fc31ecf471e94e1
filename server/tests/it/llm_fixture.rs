//! An OpenAI-compatible chat-completions server on loopback that answers from a script, for the
//! SemanticService tests (and, through `#[path]`, the ask-eval scorer's tests in `bench/`).
//!
//! It records every request (the `Authorization` header and the JSON body) so a test can read
//! the grounding prompt the gateway sent, and answers each question (the chat's first user
//! message) with the next of its scripted replies; a question with no reply left gets HTTP 500.
//! A minimal HTTP/1.1 handler (one request per connection, `Connection: close`) is enough for a
//! fixture and keeps it usable from crates that have no web framework.

#![allow(dead_code)]

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// One request as the fixture received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The path requested.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Recorded {
    /// The chat's messages' contents, in order.
    pub fn contents(&self) -> Vec<String> {
        self.body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The system message: the grounding prompt.
    pub fn system(&self) -> String {
        self.contents().first().cloned().unwrap_or_default()
    }

    /// The last message, the question or a repair request.
    pub fn last(&self) -> String {
        self.contents().last().cloned().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    script: HashMap<String, VecDeque<String>>,
    requests: Vec<Recorded>,
}

/// The fixture server; stops when dropped.
pub struct FakeLlm {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&shared)));
            }
        });
        FakeLlm { addr, state, task }
    }

    /// The base URL to give `--llm-url`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues `replies` (the model's message texts) for `question`, in order.
    pub fn script(&self, question: &str, replies: &[&str]) {
        let mut s = self.state.lock().expect("state");
        s.script
            .entry(question.to_owned())
            .or_default()
            .extend(replies.iter().map(|r| (*r).to_owned()));
    }

    /// Queues, for `question`, the JSON answer `{"sql": sql, "rationale": rationale}`.
    pub fn answer(&self, question: &str, sql: &str, rationale: &str) {
        let text = serde_json::json!({"sql": sql, "rationale": rationale}).to_string();
        self.script(question, &[&text]);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("state").requests.clone()
    }

    /// The requests about `question`.
    pub fn requests_for(&self, question: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.contents().get(1).map(String::as_str) == Some(question))
            .collect()
    }
}

async fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let mut length = 0;
    let mut authorization = None;
    for l in lines {
        if let Some((name, value)) = l.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: serde_json::Value =
        serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
    let recorded = Recorded {
        path,
        authorization,
        body,
    };
    let question = recorded.contents().get(1).cloned().unwrap_or_default();
    let reply = {
        let mut s = state.lock().expect("state");
        s.requests.push(recorded);
        s.script.get_mut(&question).and_then(VecDeque::pop_front)
    };
    let (status, body) = match reply {
        Some(text) => (
            "200 OK",
            serde_json::json!({
                "id": "fixture",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
            })
            .to_string(),
        ),
        None => (
            "500 Internal Server Error",
            serde_json::json!({"error": {"message": format!("no scripted reply for {question:?}")}})
                .to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}
