//! `dbforge mcp`: an MCP server on stdin/stdout (for agent hosts that start their servers as
//! processes) that talks to a gateway through the Rust SDK, with the endpoint and key of every
//! other command. Its tools are the gateway's `/mcp` tools: the catalogue, the descriptions
//! (from the proto's comments in the SDK's descriptor set), the modes and the shape of results
//! come from the `dbforge-mcp` crate both share; only the calls differ, here RPCs.
//!
//! `query` is read-only whatever the key's role, as on `/mcp`: it runs as a resumable Query with
//! `read_only` (the database's read-only login), so its audit records say Query, and a cut
//! result's `resume_token` continues the same result on the gateway.

use std::sync::Arc;

use dbforge::{Backend, Client, CreateOptions, ExportOptions, ListFilter, QueryOptions, Value};
use dbforge_mcp::{
    INSTRUCTIONS, Mode,
    args::{ArgError, Args, Param},
    docs::Docs,
    render::{Csv, Cut, Rows},
    resources,
    tools::{self, ToolSpec},
};
use futures::StreamExt;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
};
use serde_json::{Value as Json, json};

use super::App;
use crate::{
    cli::{McpArgs, McpToolsArg},
    error::{CliError, Result},
    output::render::json as value_json,
};

/// Serves MCP on stdio until the client closes stdin.
pub fn run(app: &App, args: McpArgs) -> Result<()> {
    let mode = match args.tools {
        McpToolsArg::Full => Mode::Full,
        McpToolsArg::Minimal => Mode::Minimal,
    };
    let endpoint = app.resolved()?.options.endpoint.clone();
    app.runtime().block_on(async {
        let client = app.connect().await?;
        // Which tools to list depends on what the key may do; each call is still decided by
        // the gateway.
        let key = client
            .who_am_i()
            .await
            .map_err(|e| CliError::sdk(e, &endpoint))?;
        let may_write = key.admin
            || key.can_create
            || key.grants.iter().any(|g| g.role >= dbforge::Role::Write);
        let server = StdioMcp {
            client,
            mode,
            may_write,
            docs: Arc::new(Docs::new(dbforge::pb::FILE_DESCRIPTOR_SET)),
        };
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| CliError::Io(std::io::Error::other(format!("MCP on stdio: {e}"))))?;
        running
            .waiting()
            .await
            .map_err(|e| CliError::Io(std::io::Error::other(format!("MCP on stdio: {e}"))))?;
        Ok(())
    })
}

#[derive(Debug, Clone)]
struct StdioMcp {
    client: Client,
    mode: Mode,
    may_write: bool,
    docs: Arc<Docs>,
}

/// A tool's failure, worded as the gateway words it (`CODE: message`).
enum Failure {
    Sdk(dbforge::Error),
    Arg(ArgError),
}

impl From<dbforge::Error> for Failure {
    fn from(e: dbforge::Error) -> Self {
        Failure::Sdk(e)
    }
}

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Self {
        Failure::Arg(e)
    }
}

impl Failure {
    fn text(&self) -> String {
        match self {
            Failure::Sdk(e) => e.to_string(),
            Failure::Arg(e) => format!("INVALID_ARGUMENT: {e}"),
        }
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Postgres => "postgres",
        Backend::Mysql => "mysql",
        Backend::Redis => "redis",
        Backend::Graph => "graph",
        _ => "sqlite",
    }
}

fn params(list: Vec<Param>) -> Vec<Value> {
    list.into_iter()
        .map(|p| match p {
            Param::Null => Value::Null,
            Param::Bool(b) => Value::Bool(b),
            Param::Int(i) => Value::Int(i),
            Param::Float(f) => Value::Float(f),
            Param::Text(t) => Value::Text(t),
        })
        .collect()
}

fn text(s: String) -> Vec<ContentBlock> {
    vec![ContentBlock::text(s)]
}

impl StdioMcp {
    async fn run(
        &self,
        spec: &ToolSpec,
        args: &Args,
    ) -> std::result::Result<Vec<ContentBlock>, Failure> {
        let c = &self.client;
        match spec.name {
            "list_databases" => {
                let token = args.text("page_token")?.unwrap_or_default();
                let (page, next) = c
                    .list_databases_page(&ListFilter::default(), token, 0)
                    .await?;
                let databases: Vec<Json> = page
                    .iter()
                    .map(|d| json!({"name": d.name, "backend": backend_name(d.backend), "labels": d.labels}))
                    .collect();
                let mut out = json!({ "databases": databases });
                if let Some(token) = next.filter(|t| !t.is_empty()) {
                    out["next_page_token"] = Json::String(token);
                }
                Ok(text(out.to_string()))
            }
            "describe_schema" => {
                let db = args.required("database")?;
                let table = args.text("table")?.filter(|t| !t.is_empty());
                let schema = c.get_schema(db, table).await?;
                Ok(text(if schema.text.is_empty() {
                    "-- no tables".into()
                } else {
                    schema.text
                }))
            }
            "query" if args.flag("summarize")? => {
                let db = args.required("database")?;
                let max_rows = args.count("max_rows")?.unwrap_or(0);
                let (sql, list) = args.statement()?;
                let got = c.summarize(db, &sql, &params(list), max_rows, true).await?;
                let summaries: Vec<Json> = got
                    .summaries
                    .iter()
                    .map(|s| {
                        let top: Vec<Json> = s
                            .top_values
                            .iter()
                            .map(|(v, n)| json!([value_json(v), n]))
                            .collect();
                        json!({
                            "name": s.name, "count": s.count, "nulls": s.nulls,
                            "distinct": s.distinct, "distinct_exact": s.distinct_exact,
                            "min": s.min.as_ref().map(value_json),
                            "max": s.max.as_ref().map(value_json),
                            "top_values": top, "top_values_exact": s.top_values_exact,
                        })
                    })
                    .collect();
                Ok(text(
                    json!({
                        "columns": got.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                        "summaries": summaries,
                        "rows_read": got.summary.row_count,
                        "truncated": got.summary.truncation != dbforge::Truncation::Unspecified,
                    })
                    .to_string(),
                ))
            }
            "preview" => {
                let db = args.required("database")?;
                let sample = args.count("sample_rows")?.unwrap_or(0);
                let (sql, list) = args.statement()?;
                let stmt = dbforge::Statement::new(sql, params(list));
                let previews = c
                    .preview_sampled(db, vec![stmt], u32::try_from(sample).unwrap_or(u32::MAX))
                    .await?;
                let rows = |rows: &[dbforge::Row]| -> Vec<Json> {
                    rows.iter()
                        .map(|r| Json::Array(r.values().iter().map(value_json).collect()))
                        .collect()
                };
                let statements: Vec<Json> = previews
                    .iter()
                    .map(|p| {
                        json!({
                            "kind": p.kind, "rows_affected": p.rows_affected,
                            "columns": p.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                            "before": rows(&p.before), "after": rows(&p.after),
                            "sample_note": p.sample_note,
                            "full_scans": p.plan.as_ref().map(|pl| pl.full_scans.clone()).unwrap_or_default(),
                            "error": p.error.as_ref().map(|e| json!({
                                "code": crate::error::code_name(e.code), "message": e.message,
                            })),
                            "skipped": p.skipped,
                        })
                    })
                    .collect();
                Ok(text(
                    json!({ "statements": statements, "committed": false }).to_string(),
                ))
            }
            "query" => {
                let (max_rows, max_bytes) = args.budgets()?;
                // A resumable, read-only Query paged by max_rows (its audit record says Query):
                // a cut result's resume_token continues the same result on the gateway.
                let opts = QueryOptions {
                    max_rows,
                    read_only: true,
                    resumable: true,
                    ..QueryOptions::default()
                };
                let mut rows = match args.text("resume_token")? {
                    Some(token) if !token.is_empty() => {
                        if args.text("sql")?.is_some_and(|s| !s.is_empty()) {
                            return Err(Failure::Arg(ArgError {
                                field: "sql",
                                reason: "resume_token continues a result: leave sql out".into(),
                            }));
                        }
                        c.resume_query(token, opts).await?
                    }
                    _ => {
                        let db = args.required("database")?;
                        let (sql, list) = args.statement()?;
                        c.query_with(db, &sql, &params(list), opts).await?
                    }
                };
                let mut out = Rows::new(max_rows, max_bytes);
                out.columns(rows.columns().iter().map(|c| c.name.clone()).collect());
                let mut resume = None;
                loop {
                    // The token of the row about to be read: where the next page starts if it
                    // does not fit.
                    let here = rows.resume_token();
                    let Some(row) = rows.next().await else {
                        break;
                    };
                    let cells = Json::Array(row?.values().iter().map(value_json).collect());
                    if !out.wants_more() || !out.push(cells.to_string().as_bytes()) {
                        // Dropping the rows parks the stream on the gateway for the resume.
                        resume = here;
                        break;
                    }
                }
                if let Some(summary) = rows.summary() {
                    if let Some(token) = &summary.resume_token {
                        out.cut_by(Cut::MaxRows);
                        resume = Some(token.clone());
                    } else if summary.truncation != dbforge::Truncation::Unspecified {
                        out.cut_by(Cut::ServerLimit);
                    }
                }
                let extra: Vec<(&str, Json)> = resume
                    .map(|t| ("resume_token", Json::String(t)))
                    .into_iter()
                    .collect();
                Ok(text(out.finish(&extra)))
            }
            "execute" => {
                let db = args.required("database")?;
                let (max_rows, max_bytes) = args.budgets()?;
                let (sql, list) = args.statement()?;
                let result = c.execute(db, &sql, &params(list)).await?;
                let mut out = Rows::new(max_rows, max_bytes);
                out.columns(result.columns.iter().map(|c| c.name.clone()).collect());
                for row in &result.rows {
                    let cells = Json::Array(row.values().iter().map(value_json).collect());
                    if !out.wants_more() || !out.push(cells.to_string().as_bytes()) {
                        break;
                    }
                }
                let extra = [
                    ("rows_affected", json!(result.rows_affected)),
                    ("last_insert_id", json!(result.last_insert_id)),
                ];
                Ok(text(out.finish(&extra)))
            }
            "create_database" => {
                let name = args.required("name")?;
                let backend = match args.text("backend")? {
                    None | Some("") | Some("sqlite") => Backend::Sqlite,
                    Some("postgres") => Backend::Postgres,
                    Some("mysql") => Backend::Mysql,
                    Some("redis") => Backend::Redis,
                    Some(other) => {
                        return Err(Failure::Arg(ArgError {
                            field: "backend",
                            reason: format!("{other:?} is not sqlite, postgres, mysql or redis"),
                        }));
                    }
                };
                let mut opts = CreateOptions {
                    backend,
                    if_not_exists: args.flag("if_not_exists")?,
                    ..Default::default()
                };
                if let Some(s) = args.count("ttl")? {
                    opts = opts.ttl(std::time::Duration::from_secs(s));
                }
                if let Some(s) = args.count("idle_ttl")? {
                    opts = opts.idle_ttl(std::time::Duration::from_secs(s));
                }
                let created = c.create_database(name, opts).await?;
                Ok(text(
                    json!({"name": created.database.name, "backend": backend_name(created.database.backend),
                           "created": created.created})
                    .to_string(),
                ))
            }
            "delete_database" => {
                let name = args.required("name")?;
                let deleted = if args.flag("allow_missing")? {
                    c.delete_database_if_exists(name).await?
                } else {
                    c.delete_database(name).await?;
                    true
                };
                Ok(text(json!({ "deleted": deleted }).to_string()))
            }
            "ask" => {
                // Through the gateway's model (the SDK's Ask); this stdio server asks its
                // client for no sampling.
                let db = args.required("database")?;
                let question = args.required("question")?;
                let run = args.flag("run")?;
                let max_rows = args
                    .count("max_rows")?
                    .unwrap_or(dbforge_mcp::tools::DEFAULT_MAX_ROWS);
                let asked = c
                    .ask(
                        db,
                        question,
                        dbforge::AskOptions {
                            run,
                            max_rows,
                            timeout: None,
                        },
                    )
                    .await?;
                let a = &asked.answer;
                let answered = a.status == dbforge::AskStatus::Answered;
                let mut out = json!({
                    "status": if answered { "answered" } else { "gave_up" },
                    "sql": a.sql,
                    "rationale": a.rationale,
                    "valid": a.valid,
                    "full_scans": a.full_scans,
                    "cached": a.cached,
                    "model": a.model,
                });
                if !answered {
                    out["message"] = Json::String(a.message.clone());
                }
                if run && answered {
                    out["columns"] = json!(
                        asked
                            .columns
                            .iter()
                            .map(|c| c.name.clone())
                            .collect::<Vec<_>>()
                    );
                    out["rows"] = Json::Array(
                        asked
                            .rows
                            .iter()
                            .map(|r| {
                                Json::Array(
                                    r.values().iter().map(crate::output::render::json).collect(),
                                )
                            })
                            .collect(),
                    );
                    out["truncated"] = Json::Bool(
                        asked
                            .summary
                            .as_ref()
                            .is_some_and(|s| s.truncation != dbforge::Truncation::Unspecified),
                    );
                }
                Ok(text(out.to_string()))
            }
            "explain" => {
                let db = args.required("database")?;
                let (sql, list) = args.statement()?;
                let plan = c
                    .explain(db, &sql, &params(list), args.flag("analyze")?)
                    .await?;
                Ok(text(
                    json!({"plan": plan.raw, "full_scans": plan.full_scans}).to_string(),
                ))
            }
            "export_query_csv" => {
                let db = args.required("database")?;
                let (_, max_bytes) = args.budgets()?;
                let (sql, list) = args.statement()?;
                let mut export = c
                    .export_query(db, &sql, &params(list), ExportOptions::csv())
                    .await?;
                let mut csv = Csv::new(max_bytes);
                let mut seen = 0;
                while let Some(chunk) = export.next().await {
                    let chunk = chunk?;
                    // The SDK counts rows so far; the budget wants this chunk's.
                    let rows = chunk.rows.saturating_sub(seen);
                    seen = chunk.rows;
                    if !csv.push(&chunk.data, rows) {
                        break;
                    }
                }
                let (csv, summary) = csv.finish();
                Ok(vec![ContentBlock::text(csv), ContentBlock::text(summary)])
            }
            other => Err(Failure::Arg(ArgError {
                field: "name",
                reason: format!("tool {other} has no implementation"),
            })),
        }
    }
}

impl ServerHandler for StdioMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("dbforge", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, McpError> {
        let tools = tools::offered(self.mode, self.may_write)
            .map(|t| t.tool(&self.docs))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, McpError> {
        let Some(spec) = tools::offered(self.mode, true).find(|t| t.name == request.name) else {
            return Err(McpError::invalid_params(
                format!("no tool named {:?} here", request.name),
                None,
            ));
        };
        let args = Args(request.arguments.unwrap_or_default());
        let outcome = tokio::select! {
            outcome = self.run(spec, &args) => outcome,
            // Dropping the call cancels it on the gateway, and with it the statement.
            () = ctx.ct.cancelled() => return Err(McpError::internal_error("cancelled", None)),
        };
        let result = match outcome {
            Ok(content) => CallToolResult::success(content),
            Err(failure) => {
                let mut message = failure.text();
                if spec.name == "query"
                    && (message.starts_with("PERMISSION_DENIED")
                        || message.contains("refused this one as a write"))
                {
                    message.push_str(" (query runs read-only; writes go through execute)");
                }
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourcesResult, McpError> {
        let (page, _) = self
            .client
            .list_databases_page(&ListFilter::default(), "", 1000)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let resources = page
            .iter()
            .map(|db| {
                Resource::new(resources::uri(&db.name), format!("{} schema", db.name))
                    .with_description(format!(
                        "The schema of the {} database {}",
                        backend_name(db.backend),
                        db.name
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
    ) -> std::result::Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(resources::TEMPLATE, "database schema")
                .with_description("A database's schema in the compact form of describe_schema")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let Some(name) = resources::database(&uri) else {
            return Err(McpError::resource_not_found(resources::unknown(&uri), None));
        };
        let schema = self
            .client
            .get_schema(name, None)
            .await
            .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(schema.text, uri.clone()).with_mime_type("text/plain"),
        ])
        .into())
    }
}
