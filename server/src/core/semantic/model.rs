//! The language model behind SemanticService: a [`ChatModel`] trait, so that the gateway's own
//! endpoint ([`OpenAiModel`]) and an MCP client's model (sampling, in `mcp/mod.rs`) are used
//! alike by the grounding and repair loop of [`super`].
//!
//! [`OpenAiModel`] speaks the OpenAI chat-completions protocol, which OpenAI, vLLM, Ollama and
//! llama.cpp's server all serve. The API key is held in a [`Secret`] whose `Debug` prints
//! nothing, sent only as the `Authorization` header, and never put in an error: the endpoint's
//! error bodies are quoted (shortened) but the request never is.

use std::{fmt, time::Duration};

use async_trait::async_trait;

use crate::core::error::{Error, Result};

/// Bytes of a model's response read at most; a longer one is an error. A chat completion
/// carrying one SQL query and a paragraph is a few KiB; the bound keeps a misbehaving endpoint
/// from filling the gateway's memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Characters of an endpoint's error body quoted in the error sent to the client.
const QUOTED_ERROR_CHARS: usize = 300;

/// Who says a message of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    /// The instructions.
    System,
    /// The question, or the engine's error in a repair round.
    User,
    /// The model's earlier answer, in a repair round.
    Assistant,
}

impl ChatRole {
    /// The protocol's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who says it.
    pub role: ChatRole,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A language model that completes a chat.
#[async_trait]
pub trait ChatModel: Send + Sync + fmt::Debug {
    /// The model's name, as answers report it.
    fn name(&self) -> String;
    /// The model's next message after `messages`. Errors: `Unavailable` when the model cannot
    /// be reached or refuses, `Timeout` when it takes too long.
    async fn complete(&self, messages: &[ChatMessage]) -> Result<String>;
}

/// A secret string (the API key): `Debug` and `Display` show nothing of it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Settings of the gateway's own model endpoint (`--llm-url`, `--llm-model`, `--llm-timeout`,
/// `DBFORGE_LLM_API_KEY`).
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The endpoint's base URL (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`); the
    /// completions path is appended unless the URL already ends with it.
    pub url: String,
    /// The model to ask for.
    pub model: String,
    /// Time one completion may take, connection included.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<Secret>,
}

/// A model behind an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<Secret>,
}

impl OpenAiModel {
    /// A client of `cfg`'s endpoint; nothing is sent until the first question.
    pub fn new(cfg: &LlmConfig) -> Result<Self> {
        let base = cfg.url.trim_end_matches('/');
        let endpoint = if base.ends_with("/chat/completions") {
            base.to_owned()
        } else {
            format!("{base}/chat/completions")
        };
        reqwest::Url::parse(&endpoint)
            .map_err(|e| Error::invalid("llm_url", format!("{}: {e}", cfg.url)))?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            // The key must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("cannot build the model's HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            model: cfg.model.clone(),
            api_key: cfg.api_key.clone(),
        })
    }

    /// The request body: the messages and deterministic sampling (the same question should
    /// get the same query, which also makes the cache honest).
    fn body(&self, messages: &[ChatMessage]) -> serde_json::Value {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        serde_json::json!({
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "stream": false,
        })
    }
}

#[async_trait]
impl ChatModel for OpenAiModel {
    fn name(&self) -> String {
        self.model.clone()
    }

    async fn complete(&self, messages: &[ChatMessage]) -> Result<String> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body(messages).to_string());
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let mut resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::Unavailable(format!(
                    "the model's endpoint sent more than {MAX_RESPONSE_BYTES} bytes; a chat \
                     completion is expected to be a few KiB"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(Error::Unavailable(format!(
                "the model's endpoint {} answered {status}: {}",
                self.endpoint,
                shorten(text.trim(), QUOTED_ERROR_CHARS)
            )));
        }
        completion_text(&body)
    }
}

impl OpenAiModel {
    /// A transport failure as the client should see it (reqwest's Display names the URL, never
    /// the headers).
    fn transport_error(&self, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout(format!(
                "the model's endpoint {} did not answer in time (--llm-timeout)",
                self.endpoint
            ))
        } else {
            Error::Unavailable(format!(
                "cannot reach the model's endpoint {}: {e}",
                self.endpoint
            ))
        }
    }
}

/// The first choice's message text of a chat-completions response.
fn completion_text(body: &[u8]) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Error::Unavailable(format!(
            "the model's endpoint did not answer with JSON ({e}): {}",
            shorten(&String::from_utf8_lossy(body), QUOTED_ERROR_CHARS)
        ))
    })?;
    v.pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "the model's endpoint answered without choices[0].message.content: {}",
                shorten(&v.to_string(), QUOTED_ERROR_CHARS)
            ))
        })
}

/// `s` cut to at most `max` characters, marked when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let cfg = LlmConfig {
            url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            timeout: Duration::from_secs(1),
            api_key: Some(Secret::new("sk-very-secret")),
        };
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
        let model = OpenAiModel::new(&cfg).expect("model");
        assert!(!format!("{model:?}").contains("sk-very-secret"));
        assert_eq!(model.endpoint, "http://127.0.0.1:1/v1/chat/completions");
    }

    #[test]
    fn completion_text_reads_the_first_choice() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#;
        assert_eq!(completion_text(body).expect("text"), "hi");
        let err = completion_text(br#"{"error":"x"}"#).expect_err("no choices");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    }
}
