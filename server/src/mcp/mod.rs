//! The MCP endpoint: the Model Context Protocol (streamable HTTP, on the official Rust SDK
//! `rmcp`) at `/mcp` on the gateway's own port, for agent hosts that speak MCP instead of an SDK.
//!
//! It is one more thin adapter over the core, beside `api/`:
//! - **One authorization path.** The `Authorization: Bearer <key>` header is turned into a
//!   [`Principal`] by the same [`Authenticator`] the gRPC interceptor uses (same keys, rate
//!   limit and rejection counter; `--insecure-no-auth` lets everyone in as it does for gRPC).
//!   Every tool then calls the same [`Forge`] method as its RPC, which checks the grants, and
//!   opens the same [`Call`], so the audit record and the metrics are those of that RPC
//!   (`rpc` = `Query`, `Execute`, `GetSchema`, …).
//! - **query is read-only for every key.** A result that fits one page is answered from one
//!   [`Forge::execute_read_only`]; a longer one runs as a resumable stream
//!   ([`Forge::query_resumable`] with `read_only`). Both run on the read-only login a read grant
//!   uses, so the engine refuses a write whatever the key's role;
//!   writes go through `execute`, which (with the other writing tools) is listed only for keys
//!   that may write somewhere.
//! - **Results sized for a model** ([`dbforge_mcp::render`]): `max_rows` and `max_bytes` budgets, and a cut
//!   result says so (`truncated`, `truncated_by`, `row_count`) and carries a `resume_token`: the
//!   next page of the same result ([`crate::core::resume`]).
//! - **Descriptions from the proto.** The catalogue (names, descriptions, schemas, modes) and the
//!   shape of results are the `dbforge-mcp` crate's, shared with `dbforge mcp` (the CLI's stdio
//!   server); descriptions are read from this server's descriptor set ([`pb::FILE_DESCRIPTOR_SET`]).
//! - **Cancellation.** `notifications/cancelled` cancels the call's token; the running tool is
//!   dropped, which drops its row stream and so cancels the statement (the Cancellation clause of
//!   `backend/mod.rs`), and the audit record says CANCELLED.

use std::sync::{Arc, LazyLock};

use dbforge_mcp::{
    Mode,
    args::{self, Args},
    docs::Docs,
    render::{Csv, Cut, Rows},
    resources,
    tools::{self, ToolSpec},
};

use futures::StreamExt;
use rmcp::{
    ErrorData as McpError, Peer, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::{
    api::{
        Call,
        auth::Authenticator,
        code_name,
        limits::{KeyLimits, StreamPermit},
    },
    config::McpTools,
    core::semantic::{
        AskStatus, Semantic,
        model::{ChatMessage, ChatModel, ChatRole},
    },
    core::{
        access::Principal,
        error::{Error, Result},
        forge::{DatabaseSpec, Forge, ListFilter},
        limits::Budget,
        names::Identifier,
        preview::StatementPreview,
        resume::PageEvent,
        summary::ColumnSummary,
        transfer::{CsvOptions, ExportFormat, ExportSource, json_value},
        value::{Statement, Truncation, Value},
    },
    pb,
};

/// The path of the endpoint.
pub const PATH: &str = "/mcp";

/// The proto's comments, from the descriptor set reflection serves.
static DOCS: LazyLock<Docs> = LazyLock::new(|| Docs::new(pb::FILE_DESCRIPTOR_SET));

fn mode(tools: McpTools) -> Mode {
    match tools {
        McpTools::Full => Mode::Full,
        McpTools::Minimal => Mode::Minimal,
        McpTools::Off => Mode::Off,
    }
}

/// The `/mcp` route: authentication, then the streamable HTTP transport of `rmcp`, whose
/// sessions each get an [`McpApi`]. `stop` ends open event streams at shutdown.
///
/// With API keys the `Host` header is not checked (a key, not the address, decides access, and
/// the gateway may be reached under any name); without them (`--insecure-no-auth`, loopback
/// only) rmcp's loopback-only `Host` check stays on against DNS rebinding from a browser.
pub fn router(
    semantic: Semantic,
    auth: Authenticator,
    limits: Arc<KeyLimits>,
    which: McpTools,
    insecure: bool,
    stop: CancellationToken,
) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop);
    if !insecure {
        config = config.disable_allowed_hosts();
    }
    let api = McpApi {
        forge: semantic.forge().clone(),
        semantic,
        limits,
        mode: mode(which),
    };
    let service = StreamableHttpService::new(
        move || Ok(api.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .route_service(PATH, service)
        .route_layer(axum::middleware::from_fn_with_state(auth, authenticate))
}

/// Puts the caller's [`Principal`] in the request's extensions (rmcp hands the request's parts
/// to the handler), or answers 401 (no or bad key) or 429 (rate) before MCP sees the request.
async fn authenticate(
    axum::extract::State(auth): axum::extract::State<Authenticator>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match auth.authenticate_http(req.headers()) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            let ending_session = req.method() == http::Method::DELETE;
            let mut resp = next.run(req).await;
            // rmcp answers a session's DELETE 202; the Python client expects 200 or 204 and
            // logs a warning on every close otherwise.
            if ending_session && resp.status() == http::StatusCode::ACCEPTED {
                *resp.status_mut() = http::StatusCode::NO_CONTENT;
            }
            resp
        }
        Err(err) => {
            let status = Status::from(err);
            let http = match status.code() {
                tonic::Code::Unauthenticated => http::StatusCode::UNAUTHORIZED,
                tonic::Code::ResourceExhausted => http::StatusCode::TOO_MANY_REQUESTS,
                _ => http::StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": -32001,
                    "message": format!("{}: {}", code_name(status.code()), status.message()),
                },
            });
            (
                http,
                [
                    (http::header::WWW_AUTHENTICATE, "Bearer"),
                    (http::header::CONTENT_TYPE, "application/json"),
                ],
                body.to_string(),
            )
                .into_response()
        }
    }
}

// Sampling is deprecated by a later protocol revision (SEP-2577) that clients do not speak
// yet; it is what they offer today, so its items are used knowingly here and below.
/// The MCP client's own model, reached through MCP sampling (`sampling/createMessage`): the
/// `ask` tool uses it when the gateway has no model of its own, so an agent needs no
/// server-side model. The system prompt carries the grounding; the chat's turns go as the
/// sampling messages.
#[derive(Debug)]
struct Sampling {
    peer: Peer<RoleServer>,
}

/// Tokens a sampled answer may take: one query and a paragraph.
const SAMPLING_MAX_TOKENS: u32 = 2048;

#[allow(deprecated)]
#[async_trait::async_trait]
impl ChatModel for Sampling {
    fn name(&self) -> String {
        // The client picks the model; answers of different clients share a cache key only when
        // they are both sampled, which is what the client asked for by offering sampling.
        "mcp-sampling".to_owned()
    }

    async fn complete(&self, messages: &[ChatMessage]) -> Result<String> {
        let system: Vec<&str> = messages
            .iter()
            .filter(|m| m.role == ChatRole::System)
            .map(|m| m.content.as_str())
            .collect();
        let turns = messages
            .iter()
            .filter_map(|m| match m.role {
                ChatRole::User => Some(rmcp::model::SamplingMessage::user_text(m.content.clone())),
                ChatRole::Assistant => Some(rmcp::model::SamplingMessage::assistant_text(
                    m.content.clone(),
                )),
                ChatRole::System => None,
            })
            .collect();
        let params = rmcp::model::CreateMessageRequestParams::new(turns, SAMPLING_MAX_TOKENS)
            .with_system_prompt(system.join("\n\n"))
            .with_temperature(0.0);
        let result = self.peer.create_message(params).await.map_err(|e| {
            Error::Unavailable(format!("the MCP client's model (sampling) failed: {e}"))
        })?;
        result
            .message
            .content
            .iter()
            .find_map(|c| c.as_text().map(|t| t.text.clone()))
            .ok_or_else(|| {
                Error::Unavailable("the MCP client's model answered without text".into())
            })
    }
}

/// The MCP adapter: tools and resources over the Forge.
#[derive(Debug, Clone)]
pub struct McpApi {
    forge: Forge,
    semantic: Semantic,
    limits: Arc<KeyLimits>,
    mode: Mode,
}

/// The caller the authentication layer recorded; its absence is a wiring bug.
fn caller(ctx: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("request reached MCP without authentication", None))
}

impl ServerHandler for McpApi {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("dbforge", env!("CARGO_PKG_VERSION")))
        .with_instructions(dbforge_mcp::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let who = caller(&ctx)?;
        let tools = tools::offered(self.mode, who.may_write_somewhere())
            .map(|t| t.tool(&DOCS))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let who = caller(&ctx)?;
        // A tool of the mode that is not listed for this key (execute for a read key) still
        // runs: the core refuses it, as it refuses the RPC.
        let Some(spec) = tools::offered(self.mode, true).find(|t| t.name == request.name) else {
            return Err(McpError::invalid_params(
                format!("no tool named {:?} here", request.name),
                None,
            ));
        };
        let args = Args(request.arguments.unwrap_or_default());
        let mut call = Call::new(self.forge.audit(), &who, spec.rpc);
        if let Some(db) = args.target() {
            call = call.database(db);
        }
        if let Some(sql) = args.sql() {
            call = call.statement(sql);
        }
        let outcome = tokio::select! {
            outcome = self.run(spec, &who, &args, &ctx.peer) => outcome.map_err(Status::from),
            () = ctx.ct.cancelled() => {
                let status = Status::cancelled("the client cancelled the call");
                let _ = call.done(Err::<(), _>(status), |_| None).await;
                return Err(McpError::internal_error("cancelled", None));
            }
        };
        let rows = |r: &Done| r.rows;
        let result = match call.done(outcome, rows).await {
            Ok(done) => CallToolResult::success(done.content),
            Err(status) => {
                let mut text = format!("{}: {}", code_name(status.code()), status.message());
                if spec.name == "query" && status.code() == tonic::Code::PermissionDenied {
                    text.push_str(" (query runs read-only; writes go through execute)");
                }
                CallToolResult::error(vec![ContentBlock::text(text)])
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let who = caller(&ctx)?;
        let call = Call::new(self.forge.audit(), &who, "ListDatabases");
        let filter = ListFilter {
            page_size: 1000,
            ..ListFilter::default()
        };
        let page = self.forge.list_databases(&who, filter).await;
        let page = call
            .done(page.map_err(Status::from), |_| None)
            .await
            .map_err(|s| McpError::internal_error(s.message().to_owned(), None))?;
        let resources = page
            .databases
            .iter()
            .map(|db| {
                Resource::new(
                    resources::uri(db.name.as_str()),
                    format!("{} schema", db.name),
                )
                .with_description(format!(
                    "The schema of the {} database {}",
                    db.backend, db.name
                ))
                .with_mime_type("text/plain")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(resources::TEMPLATE, "database schema")
                .with_description("A database's schema in the compact form of describe_schema")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let who = caller(&ctx)?;
        let uri = request.uri;
        let Some(name) = resources::database(&uri) else {
            return Err(McpError::resource_not_found(resources::unknown(&uri), None));
        };
        let call = Call::new(self.forge.audit(), &who, "GetSchema").database(name);
        let schema = self.forge.schema(&who, name, None).await;
        let text = call
            .done(schema.map_err(Status::from), |_| None)
            .await
            .map_err(|s| {
                McpError::resource_not_found(
                    format!("{}: {}", code_name(s.code()), s.message()),
                    None,
                )
            })?
            .render_text();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri.clone()).with_mime_type("text/plain"),
        ])
        .into())
    }
}

/// A tool's answer and the row count its audit record carries.
struct Done {
    content: Vec<ContentBlock>,
    rows: Option<u64>,
}

impl Done {
    fn json(text: String) -> Self {
        Done {
            content: vec![ContentBlock::text(text)],
            rows: None,
        }
    }
}

impl McpApi {
    /// The `ask` tool: the gateway's model, else the client's through sampling when it offers
    /// it (else FAILED_PRECONDITION saying how to configure one).
    async fn ask(&self, who: &Principal, args: &Args, peer: &Peer<RoleServer>) -> Result<Done> {
        let db = args.required("database")?;
        let question = args.required("question")?;
        let run = args.flag("run")?;
        let max_rows = args
            .count("max_rows")?
            .unwrap_or(dbforge_mcp::tools::DEFAULT_MAX_ROWS);
        let sampled = !self.semantic.has_model()
            && peer
                .peer_info()
                .is_some_and(|info| info.capabilities.sampling.is_some());
        let model: Option<Arc<dyn ChatModel>> = if sampled {
            Some(Arc::new(Sampling { peer: peer.clone() }))
        } else {
            None
        };
        let answer = self.semantic.answer(who, db, question, model).await?;
        let mut out = json!({
            "status": if answer.status == AskStatus::Answered { "answered" } else { "gave_up" },
            "sql": answer.sql,
            "rationale": answer.rationale,
            "valid": answer.validation.valid,
            "full_scans": answer.validation.full_scans,
            "cached": answer.cached,
            "model": answer.model,
        });
        if answer.status == AskStatus::GaveUp {
            out["message"] = Json::String(answer.message.clone());
        }
        let mut rows_sent = None;
        if run && answer.status == AskStatus::Answered {
            let limits = self.forge.limits().whole_result();
            let budget = Budget {
                rows: max_rows.min(limits.max_rows),
                bytes: limits.max_bytes,
            };
            let ran = self
                .semantic
                .run(who, db, &answer.sql, budget, None)
                .await?;
            let rows = rows_json(&ran.rows)?;
            rows_sent = Some(ran.summary.row_count);
            out["columns"] = json!(names(&ran.columns));
            out["rows"] = Json::Array(rows);
            out["truncated"] = Json::Bool(ran.summary.truncation != Truncation::None);
        }
        Ok(Done {
            content: vec![ContentBlock::text(out.to_string())],
            rows: rows_sent,
        })
    }

    async fn run(
        &self,
        spec: &ToolSpec,
        who: &Principal,
        args: &Args,
        peer: &Peer<RoleServer>,
    ) -> Result<Done> {
        let forge = &self.forge;
        match spec.name {
            "ask" => self.ask(who, args, peer).await,
            "list_databases" => {
                let filter = ListFilter::try_from(pb::ListDatabasesRequest {
                    page_token: args.text("page_token")?.unwrap_or_default().to_owned(),
                    ..Default::default()
                })?;
                let mut page = forge.list_databases(who, filter).await?;
                let databases: Vec<Json> = page
                    .databases
                    .iter()
                    .map(|d| json!({"name": d.name.as_str(), "backend": d.backend.as_str(), "labels": d.labels}))
                    .collect();
                // The token is written by the one conversion the RPC uses.
                page.databases.clear();
                let token = pb::ListDatabasesResponse::from(page).next_page_token;
                let mut out = json!({ "databases": databases });
                if !token.is_empty() {
                    out["next_page_token"] = Json::String(token);
                }
                Ok(Done::json(out.to_string()))
            }
            "describe_schema" => {
                let db = args.required("database")?;
                let table = match args.text("table")? {
                    None | Some("") => None,
                    Some(t) => Some(Identifier::parse("table", t)?),
                };
                let schema = forge.schema(who, db, table).await?;
                let mut text = schema.render_text();
                if text.is_empty() {
                    text = "-- no tables".into();
                }
                Ok(Done::json(text))
            }
            "query" if args.flag("summarize")? => {
                let db = args.required("database")?;
                let _permit: StreamPermit = self.limits.open_stream(who)?;
                let max_rows = args.count("max_rows")?.unwrap_or(0);
                let (columns, summaries, done) = forge
                    .summarize(who, db, statement(args)?, budget(max_rows), true)
                    .await?;
                let summaries = summaries
                    .into_iter()
                    .map(summary_json)
                    .collect::<Result<Vec<_>>>()?;
                let out = json!({
                    "columns": names(&columns),
                    "summaries": summaries,
                    "rows_read": done.row_count,
                    "truncated": done.truncation != Truncation::None,
                });
                Ok(Done {
                    content: vec![ContentBlock::text(out.to_string())],
                    rows: Some(done.row_count),
                })
            }
            "preview" => {
                let db = args.required("database")?;
                let sample =
                    usize::try_from(args.count("sample_rows")?.unwrap_or(0)).unwrap_or(usize::MAX);
                let previews = forge
                    .preview(who, db, vec![statement(args)?], sample)
                    .await?;
                let previews = previews
                    .into_iter()
                    .map(preview_json)
                    .collect::<Result<Vec<_>>>()?;
                let out = json!({ "statements": previews, "committed": false });
                Ok(Done::json(out.to_string()))
            }
            "query" => {
                let (max_rows, max_bytes) = args.budgets()?;
                let _permit: StreamPermit = self.limits.open_stream(who)?;
                // A resumable stream, paged by max_rows: a cut result parks its cursor, and its
                // resume_token continues the same result (core::resume).
                let page = budget(max_rows);
                let mut pages = match args.text("resume_token")? {
                    Some(token) if !token.is_empty() => {
                        if args.text("sql")?.is_some_and(|s| !s.is_empty()) {
                            return Err(Error::invalid(
                                "sql",
                                "resume_token continues a result: leave sql out",
                            ));
                        }
                        let db = args.text("database")?.unwrap_or_default();
                        forge.resume_query(who, token, db, page).await?
                    }
                    _ => {
                        let db = args.required("database")?;
                        let stmt = statement(args)?;
                        if let Some(done) =
                            self.one_page(who, db, &stmt, max_rows, max_bytes).await?
                        {
                            return Ok(done);
                        }
                        forge.query_resumable(who, db, stmt, page, true).await?
                    }
                };
                let mut out = Rows::new(max_rows, max_bytes);
                let mut resume = None;
                'read: while let Some(event) = pages.next().await {
                    match event? {
                        PageEvent::Columns(columns) => out.columns(names(&columns)),
                        PageEvent::Rows { rows, token } => {
                            let (stream, end) = token.rsplit_once('.').unwrap_or_default();
                            let start = end.parse::<u64>().unwrap_or_default() - rows.len() as u64;
                            for (i, row) in rows.iter().enumerate() {
                                if !out.wants_more() || !out.push(&row_json(row)?) {
                                    // The next page starts at the row that did not fit.
                                    resume = Some(format!("{stream}.{}", start + i as u64));
                                    break 'read;
                                }
                            }
                        }
                        PageEvent::Done { summary, token } => {
                            if let Some(token) = token {
                                out.cut_by(Cut::MaxRows);
                                resume = Some(token);
                            } else if summary.truncation != Truncation::None {
                                out.cut_by(Cut::ServerLimit);
                            }
                        }
                    }
                }
                // Dropping the page parks the stream for the resume (or keeps it, sent whole,
                // for the window).
                drop(pages);
                let sent = out.sent();
                let extra: Vec<(&str, Json)> = resume
                    .map(|t| ("resume_token", Json::String(t)))
                    .into_iter()
                    .collect();
                Ok(Done {
                    content: vec![ContentBlock::text(out.finish(&extra))],
                    rows: Some(sent),
                })
            }
            "execute" => {
                let db = args.required("database")?;
                let (max_rows, max_bytes) = args.budgets()?;
                let result = forge.execute(who, db, statement(args)?).await?;
                let mut out = Rows::new(max_rows, max_bytes);
                out.columns(names(&result.columns));
                for row in &result.rows {
                    if !out.wants_more() || !out.push(&row_json(row)?) {
                        break;
                    }
                }
                let extra = [
                    ("rows_affected", json!(result.rows_affected)),
                    ("last_insert_id", json!(result.last_insert_id)),
                ];
                Ok(Done {
                    content: vec![ContentBlock::text(out.finish(&extra))],
                    rows: Some(result.rows_affected),
                })
            }
            "create_database" => {
                let spec = DatabaseSpec::try_from(pb::CreateDatabaseRequest {
                    name: args.required("name")?.to_owned(),
                    backend: match args.text("backend")? {
                        None | Some("") | Some("sqlite") => pb::Backend::Sqlite,
                        Some("postgres") => pb::Backend::Postgres,
                        Some("mysql") => pb::Backend::Mysql,
                        Some("redis") => pb::Backend::Redis,
                        Some(other) => {
                            return Err(Error::invalid(
                                "backend",
                                format!("{other:?} is not sqlite, postgres, mysql or redis"),
                            ));
                        }
                    } as i32,
                    if_not_exists: args.flag("if_not_exists")?,
                    labels: Default::default(),
                    ttl: seconds(args.count("ttl")?)
                        .map(pb::create_database_request::Ttl::ExpireAfter),
                    idle_ttl: seconds(args.count("idle_ttl")?),
                    backup_before_prune: false,
                    // MCP calls run on the gateway called: no placement elsewhere.
                    node: String::new(),
                })?;
                let (db, created) = forge.create_database(who, spec).await?;
                Ok(Done::json(
                    json!({"name": db.name.as_str(), "backend": db.backend.as_str(), "created": created})
                        .to_string(),
                ))
            }
            "delete_database" => {
                let name = args.required("name")?;
                let deleted = forge
                    .delete_database(who, name, args.flag("allow_missing")?)
                    .await?;
                Ok(Done::json(json!({ "deleted": deleted }).to_string()))
            }
            "explain" => {
                let db = args.required("database")?;
                let plan = forge
                    .explain(who, db, statement(args)?, args.flag("analyze")?)
                    .await?;
                let out = json!({"plan": plan.raw, "full_scans": plan.full_scans()});
                Ok(Done::json(out.to_string()))
            }
            "export_query_csv" => {
                let db = args.required("database")?;
                let (_, max_bytes) = args.budgets()?;
                let _permit: StreamPermit = self.limits.open_stream(who)?;
                let source = ExportSource::Query(statement(args)?);
                let mut chunks = forge
                    .export(who, db, source, ExportFormat::Csv, CsvOptions::default())
                    .await?;
                let mut csv = Csv::new(max_bytes);
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    if !csv.push(&chunk.data, chunk.rows) {
                        break;
                    }
                }
                let rows = csv.rows();
                let (text, summary) = csv.finish();
                Ok(Done {
                    content: vec![ContentBlock::text(text), ContentBlock::text(summary)],
                    rows,
                })
            }
            other => Err(Error::internal(format!(
                "tool {other} has no implementation"
            ))),
        }
    }
}

impl McpApi {
    /// The `query` tool's answer for a result that fits one page, or `None` when it does not.
    ///
    /// Most agent queries read a few rows. Those are answered from one read-only `Execute` on
    /// the read-only login (the same engine-side refusal of writes), which costs no cursor, no
    /// producer task and no parked stream: the MCP round trip stays within 1.5× of gRPC
    /// `Execute` (BENCHMARKS.md, phase 17). A result past the page (more than `max_rows` rows,
    /// or rows whose JSON passes `max_bytes`) is dropped unread past the page, and the
    /// statement runs again as a resumable stream, whose pages and `resume_token` come from that
    /// one run. Engine bytes are capped at 8× the page's JSON bytes: an integer's JSON can be
    /// an eighth of its engine size, so a result cut there cannot have fitted.
    async fn one_page(
        &self,
        who: &Principal,
        db: &str,
        stmt: &Statement,
        max_rows: u64,
        max_bytes: u64,
    ) -> Result<Option<Done>> {
        let budget = Budget {
            rows: max_rows.max(1),
            bytes: max_bytes.saturating_mul(8).max(1),
        };
        let result = match self
            .forge
            .execute_read_only(who, db, stmt.clone(), budget)
            .await
        {
            Ok(result) => result,
            Err(Error::LimitExceeded(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Rows::new(max_rows, max_bytes);
        out.columns(names(&result.columns));
        for row in &result.rows {
            if !out.push(&row_json(row)?) {
                return Ok(None);
            }
        }
        let rows = out.sent();
        Ok(Some(Done {
            content: vec![ContentBlock::text(out.finish(&[]))],
            rows: Some(rows),
        }))
    }
}

impl From<args::ArgError> for Error {
    fn from(e: args::ArgError) -> Self {
        Error::invalid(e.field, e.reason)
    }
}

/// A tool's count of seconds as a proto duration.
fn seconds(n: Option<u64>) -> Option<prost_types::Duration> {
    n.map(|n| prost_types::Duration {
        seconds: i64::try_from(n).unwrap_or(i64::MAX),
        nanos: 0,
    })
}

/// A budget of `rows` (the tools cut by bytes themselves, on the JSON they render).
fn budget(rows: u64) -> Budget {
    Budget { rows, bytes: 0 }
}

/// `sql` and `params` as the core's statement.
fn statement(args: &Args) -> Result<Statement> {
    let (sql, params) = args.statement()?;
    let params = params
        .into_iter()
        .map(|p| match p {
            args::Param::Null => Value::Null,
            args::Param::Bool(b) => Value::Bool(b),
            args::Param::Int(i) => Value::Int(i),
            args::Param::Float(f) => Value::Float(f),
            args::Param::Text(t) => Value::Text(t),
        })
        .collect();
    Ok(Statement { sql, params })
}

fn names(columns: &[crate::core::value::Column]) -> Vec<String> {
    columns.iter().map(|c| c.name.clone()).collect()
}

/// One value as JSON, written by the encoder of JSON exports.
fn value_json(v: &Value) -> Result<Json> {
    let mut out = Vec::new();
    json_value(&mut out, v)?;
    serde_json::from_slice(&out).map_err(Error::internal)
}

fn rows_json(rows: &[Vec<Value>]) -> Result<Vec<Json>> {
    rows.iter()
        .map(|r| {
            Ok(Json::Array(
                r.iter().map(value_json).collect::<Result<_>>()?,
            ))
        })
        .collect()
}

fn summary_json(c: ColumnSummary) -> Result<Json> {
    let optional = |v: &Option<Value>| v.as_ref().map(value_json).transpose();
    let top = c
        .top_values
        .iter()
        .map(|(v, n)| Ok(json!([value_json(v)?, n])))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "name": c.name, "count": c.count, "nulls": c.nulls,
        "distinct": c.distinct, "distinct_exact": c.distinct_exact,
        "min": optional(&c.min)?, "max": optional(&c.max)?,
        "top_values": top, "top_values_exact": c.top_values_exact,
    }))
}

fn preview_json(p: StatementPreview) -> Result<Json> {
    let error = p.error.map(|e| {
        let status = Status::from(e.error);
        json!({"code": code_name(status.code()), "message": status.message()})
    });
    Ok(json!({
        "kind": p.kind.as_str(), "rows_affected": p.rows_affected,
        "columns": names(&p.columns),
        "before": rows_json(&p.before)?, "after": rows_json(&p.after)?,
        "sample_note": p.sample_note,
        "full_scans": p.plan.map(|pl| pl.full_scans()).unwrap_or_default(),
        "error": error, "skipped": p.skipped,
    }))
}

/// A row as a JSON array, its cells written by the encoder of JSON exports.
fn row_json(row: &[Value]) -> Result<Vec<u8>> {
    let mut out = vec![b'['];
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_value(&mut out, v)?;
    }
    out.push(b']');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_description_taken_from_the_proto_exists_there() {
        assert_eq!(tools::missing_docs(&DOCS), Vec::<String>::new());
        let create = tools::spec("create_database").map(|t| t.tool(&DOCS));
        assert_eq!(
            create.and_then(|t| t.description).as_deref(),
            Some("Spawns a new, empty, isolated database.")
        );
    }
}
