//! Wiring: backends, the Forge, the gRPC services (plus grpc-web, health and reflection) on one
//! port, and graceful shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{http::HeaderValue, response::Response};
use futures::StreamExt;
use tokio::net::TcpListener;
use tonic::{
    server::NamedService,
    service::interceptor::InterceptedService,
    service::{Routes, RoutesBuilder},
    transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};

use crate::{
    api::{
        access::AccessApi,
        auth::Authenticator,
        backup::BackupApi,
        control::ControlApi,
        data::QueryApi,
        limits::KeyLimits,
        operations::OperationsApi,
        schema::SchemaApi,
        semantic::SemanticApi,
        table::TableApi,
        telemetry::{CountedIo, install as install_telemetry, telemetry},
        transfer::TransferApi,
    },
    backend::{
        Backend, mysql::MysqlBackend, postgres::PostgresBackend, redis::RedisBackend,
        sqlite::SqliteBackend,
    },
    config::Config,
    core::{
        access::Keyring,
        catalog::KEYS_CHANNEL,
        forge::{Forge, ForgeConfig},
        health::{self, AvailabilityWatch},
        semantic::{
            Semantic,
            model::{ChatModel, OpenAiModel},
        },
    },
    pb::{
        self, access_service_server::AccessServiceServer,
        backup_service_server::BackupServiceServer, database_service_server::DatabaseServiceServer,
        operations_service_server::OperationsServiceServer,
        query_service_server::QueryServiceServer, schema_service_server::SchemaServiceServer,
        semantic_service_server::SemanticServiceServer, table_service_server::TableServiceServer,
        transfer_service_server::TransferServiceServer,
    },
};

/// Any error that stops the server from starting or serving.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves on `listener` until `shutdown` resolves, then lets in-flight calls finish, stores the
/// catalog's last-access times and closes every database.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BoxError> {
    cfg.validate()?;
    // tonic's TLS uses rustls' process-wide provider; object_store links aws-lc-rs beside the
    // ring that tonic's `tls-ring` brings, and with two compiled in, rustls will not choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let limits = cfg.limits();
    let mut backends: Vec<Arc<dyn Backend>> = vec![Arc::new(SqliteBackend::new(cfg.sqlite())?)];
    // Embedded like SQLite: present whenever the server is built with it.
    #[cfg(feature = "graph")]
    backends.push(Arc::new(crate::backend::graph::GraphBackend::new(
        cfg.graph(),
    )?));
    if let Some(url) = &cfg.postgres_url {
        backends.push(Arc::new(
            PostgresBackend::new(cfg.server_backend(url)).await?,
        ));
    }
    if let Some(url) = &cfg.mysql_url {
        backends.push(Arc::new(MysqlBackend::new(cfg.server_backend(url)).await?));
    }
    if let Some(url) = &cfg.redis_url {
        backends.push(Arc::new(RedisBackend::new(cfg.server_backend(url)).await?));
    }
    let addr = listener.local_addr()?;
    if cfg.insecure_no_auth && !addr.ip().is_loopback() {
        return Err(format!(
            "--insecure-no-auth is refused on the non-loopback address {addr}: anyone who can reach \
             it could use every database"
        )
        .into());
    }
    // Other gateways dial the advertised address; without one, the address bound (the port
    // the OS picked for port 0 included).
    let advertised = cfg
        .advertise_address
        .clone()
        .unwrap_or_else(|| addr.to_string());
    if cfg.advertise_address.is_none() && cfg.catalog_url.is_some() && addr.ip().is_unspecified() {
        warn!(
            %addr,
            "listening on all interfaces without --advertise-address: other gateways sharing \
             the catalog cannot forward calls on this one's SQLite databases to {addr}"
        );
    }
    let forge_cfg = ForgeConfig {
        address: advertised,
        ..cfg.forge()
    };
    let (forge, housekeeping) = Forge::open(forge_cfg, backends).await?;
    let keyring = if cfg.insecure_no_auth {
        warn!("authentication is DISABLED (--insecure-no-auth): every caller may do everything");
        None
    } else {
        let (cat, dir, admin) = (forge.catalog(), cfg.data_dir.clone(), cfg.admin_key.clone());
        let (keyring, wrote) = crate::core::registry::blocking(move || {
            let keyring = Keyring::load(cat)?;
            let wrote = keyring.bootstrap(&dir, admin.as_deref())?;
            Ok((keyring, wrote))
        })
        .await?;
        if let Some(path) = wrote {
            info!(path = %path.display(), "no API keys existed: wrote a new admin key to this file");
        }
        Some(Arc::new(keyring))
    };
    // Gateways sharing a PostgreSQL catalog: keys created or revoked through another one take
    // effect here when it commits.
    let key_watch = keyring.as_ref().and_then(|keyring| {
        let weak = Arc::downgrade(keyring);
        forge.catalog().watch(KEYS_CHANNEL, move || {
            let Some(keyring) = weak.upgrade() else {
                return false;
            };
            tokio::task::spawn_blocking(move || {
                if let Err(e) = keyring.reload() {
                    warn!(error = %e, "could not reload the API keys from the catalog");
                }
            });
            true
        })
    });
    let key_limits = Arc::new(KeyLimits::new(
        cfg.rate_limit,
        cfg.rate_burst.unwrap_or(0),
        cfg.max_streams_per_key,
    ));
    let auth = Authenticator::new(keyring.clone(), Arc::clone(&key_limits));

    let max = limits.max_message_bytes;
    let control = InterceptedService::new(
        DatabaseServiceServer::new(ControlApi::new(forge.clone(), Arc::clone(&key_limits)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        auth.clone(),
    );
    // Calls on another gateway's SQLite database go to that gateway: as they came (the
    // middleware below), or message by message for sessions (QueryService).
    let forwarder = crate::api::forward::Forwarder::new(forge.clone(), max, peer_transport(&cfg)?);
    let query = InterceptedService::new(
        QueryServiceServer::new(QueryApi::new(
            forge.clone(),
            Arc::clone(&key_limits),
            Arc::clone(&forwarder),
        ))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max),
        auth.clone(),
    );
    let table = InterceptedService::new(
        TableServiceServer::new(TableApi::new(forge.clone(), Arc::clone(&key_limits)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        auth.clone(),
    );
    // Imports arrive in chunks of any size up to the message limit; exports send 64 KiB chunks.
    let transfer = InterceptedService::new(
        TransferServiceServer::new(TransferApi::new(forge.clone(), Arc::clone(&key_limits)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        auth.clone(),
    );
    let schema = InterceptedService::new(
        SchemaServiceServer::new(SchemaApi::new(forge.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        auth.clone(),
    );
    let model: Option<Arc<dyn ChatModel>> = match cfg.llm() {
        Some(llm) => {
            info!(url = %llm.url, model = %llm.model, "Ask uses this language model");
            Some(Arc::new(OpenAiModel::new(&llm)?))
        }
        None => None,
    };
    let semantic = Semantic::new(forge.clone(), model);
    let semantic_svc = InterceptedService::new(
        SemanticServiceServer::new(SemanticApi::new(semantic.clone(), Arc::clone(&key_limits)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        auth.clone(),
    );
    let access = InterceptedService::new(
        AccessServiceServer::new(AccessApi::new(keyring, forge.audit().clone())),
        auth.clone(),
    );
    let operations = InterceptedService::new(
        OperationsServiceServer::new(OperationsApi::new(forge.clone())),
        auth.clone(),
    );
    let backup = InterceptedService::new(
        BackupServiceServer::new(BackupApi::new(forge.clone())),
        auth.clone(),
    );
    // Install the metrics recorder before the first call records anything.
    install_telemetry(!cfg.disable_metrics);

    let (reporter, health) = tonic_health::server::health_reporter();
    serving(&reporter, &control).await;
    serving(&reporter, &query).await;
    serving(&reporter, &table).await;
    serving(&reporter, &transfer).await;
    serving(&reporter, &schema).await;
    serving(&reporter, &semantic_svc).await;
    serving(&reporter, &access).await;
    serving(&reporter, &operations).await;
    serving(&reporter, &backup).await;

    // One health entry per backend (`dbforge.backend.<name>`), NOT_SERVING while it is down.
    let mut health_state = Vec::new();
    update_backend_health(&reporter, &forge, &mut health_state).await;
    // The same look publishes `unavailable` / `recovered` events (core/health.rs).
    let mut availability = AvailabilityWatch::new();
    availability.tick(&forge).await;
    let health_task = tokio::spawn({
        let (reporter, forge) = (reporter.clone(), forge.clone());
        async move {
            loop {
                tokio::time::sleep(health::WATCH_EVERY).await;
                update_backend_health(&reporter, &forge, &mut health_state).await;
                availability.tick(&forge).await;
            }
        }
    });

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc.ErrorInfo, so reflection clients can decode error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl 1.8 only speaks v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(control)
        .add_service(query)
        .add_service(table)
        .add_service(transfer)
        .add_service(schema)
        .add_service(semantic_svc)
        .add_service(access)
        .add_service(operations)
        .add_service(backup);
    // Innermost: a call on another gateway's SQLite database goes to that gateway as it came
    // (plain gRPC by now: the grpc-web layer outside has translated browser calls).
    let grpc = routes
        .routes()
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            forwarder,
            crate::api::forward::forward,
        ))
        .layer(axum::middleware::map_response(remap_oversize))
        .layer(GrpcWebLayer::new())
        .layer(axum::middleware::map_request(client_cancel_is_an_error))
        .layer(axum::middleware::map_request(read_small_http1_bodies));
    // Plain HTTP routes share the port; grpc-web applies to the gRPC routes only, or it would
    // answer 400 to every plain request.
    let mut app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async { telemetry().render() }),
        )
        .merge(grpc);
    // MCP (streamable HTTP) at /mcp: the same keys, grants, audit and metrics as gRPC.
    let mcp_stop = tokio_util::sync::CancellationToken::new();
    if cfg.mcp_tools != crate::config::McpTools::Off {
        app = app.merge(crate::mcp::router(
            semantic,
            auth,
            Arc::clone(&key_limits),
            cfg.mcp_tools,
            cfg.insecure_no_auth,
            mcp_stop.clone(),
        ));
    }
    // The dashboard takes every path no route above has (its own files, its app routes, and
    // gRPC calls to unknown services, which it answers UNIMPLEMENTED); without it, `/` is a
    // short page about the API and other paths keep tonic's answers.
    app = if cfg.no_dashboard {
        app.route("/", axum::routing::get(index))
    } else {
        app.fallback(crate::dashboard::serve)
    };
    if let Some(cors) = cors(&cfg.cors_origins)? {
        app = app.layer(cors);
    }
    // Outermost: a refused origin is answered (and logged) before CORS sees it.
    let app = app.layer(axum::middleware::from_fn_with_state(
        ForeignOrigins::new(&cfg.cors_origins),
        refuse_foreign_origins,
    ));

    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|conn| conn.map(CountedIo::new));
    info!(%addr, "dbforge-server listening");
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = Arc::clone(&stopping);
    let mut builder = Server::builder();
    if let Some(tls) = tls_config(&cfg)? {
        info!(mutual = cfg.tls_client_ca.is_some(), "serving TLS");
        builder = builder.tls_config(tls)?;
    }
    let serve = builder
        .accept_http1(true)
        .trace_fn(|req| tracing::info_span!("rpc", method = %req.uri().path()))
        .add_routes(Routes::from(app))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            crate::supervisor::stopping();
            // Open MCP event streams would otherwise hold the graceful shutdown until the grace.
            mcp_stop.cancel();
            signalled.notify_one();
        });
    // Graceful shutdown waits for clients to finish their calls and close; one that never does
    // must not keep the server (and its databases) open forever.
    let grace = cfg.shutdown_grace;
    // The listener is bound and the routes are built: calls are served from here on.
    crate::supervisor::ready(addr);
    let served = tokio::select! {
        served = serve => served,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(grace).await;
        } => {
            warn!(grace = %humantime::format_duration(grace), "clients still connected after the grace period; closing");
            Ok(())
        }
    };
    info!("stopped accepting calls; closing databases");
    health_task.abort();
    if let Some(watch) = key_watch {
        watch.abort();
    }
    forge.shutdown().await;
    let _ = housekeeping.await;
    served?;
    Ok(())
}

/// CORS for grpc-web calls from the configured origins: preflights are answered, and the
/// grpc-status/grpc-message trailers (sent as headers by grpc-web) are exposed to scripts.
fn cors(origins: &[String]) -> Result<Option<CorsLayer>, BoxError> {
    use axum::http::{HeaderName, Method};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim()).map_err(|_| format!("bad --cors-origin {o:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
            .allow_headers(names(&[
                "content-type",
                "authorization",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "connect-protocol-version",
                "connect-timeout-ms",
            ]))
            .expose_headers(names(&[
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
            ]))
            .max_age(Duration::from_secs(3600)),
    ))
}

/// What `GET /` shows with `--no-dashboard`: what this port is, for someone who opened it in a
/// browser.
async fn index() -> axum::response::Html<String> {
    axum::response::Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>DB-Forge gateway</title></head>
<body>
<h1>DB-Forge gateway</h1>
<p>This port serves the DB-Forge API (version {version}) to programs; this page is all it shows
to a browser.</p>
<ul>
<li><b>gRPC</b> over HTTP/2: <code>dbforge.v1.DatabaseService</code>, <code>QueryService</code>,
<code>TableService</code>, <code>TransferService</code>, <code>SchemaService</code>,
<code>AccessService</code> and <code>OperationsService</code>, with server reflection
(<code>grpcurl -plaintext &lt;host:port&gt; list</code>). Calls carry
<code>authorization: Bearer &lt;API key&gt;</code>.</li>
<li><b>grpc-web</b> over HTTP/1.1 and HTTP/2, for browsers. A page served from another origin
must be allowed with <code>--cors-origin &lt;origin&gt;</code>.</li>
<li><b>Health</b>: <code>grpc.health.v1.Health</code>, one entry per service and per backend
(<code>dbforge.backend.&lt;name&gt;</code>).</li>
<li><b>Metrics</b>: <a href="/metrics">/metrics</a>, Prometheus text.</li>
</ul>
<p>Documentation: the README at <a href="{docs}">{docs}</a>; every RPC is documented in
<code>proto/dbforge/v1/*.proto</code>, also readable here through reflection
(<code>grpcurl -plaintext &lt;host:port&gt; describe dbforge.v1.QueryService</code>). Clients:
the Rust, Python and TypeScript SDKs and the <code>dbforge</code> CLI.</p>
</body>
</html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        docs = env!("CARGO_PKG_REPOSITORY"),
    ))
}

/// How often one refused origin is logged at most.
const ORIGIN_LOG_EVERY: Duration = Duration::from_secs(60);
/// Refused origins remembered for rate-limiting their log lines; beyond this many within
/// [`ORIGIN_LOG_EVERY`], new ones are not logged (a flood of made-up origins cannot flood the
/// log either).
const ORIGIN_LOG_MAX: usize = 1024;

/// Browser calls from origins `--cors-origin` does not allow. Without this, their preflight got
/// an empty 400 (no CORS layer) or an empty 200 without CORS headers, the page saw only
/// "Failed to fetch", and the gateway logged nothing.
#[derive(Clone)]
struct ForeignOrigins {
    allowed: Arc<[String]>,
    any: bool,
    logged: Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>>,
}

impl ForeignOrigins {
    fn new(origins: &[String]) -> Self {
        Self {
            allowed: origins.iter().map(|o| o.trim().to_owned()).collect(),
            any: origins.iter().any(|o| o.trim() == "*"),
            logged: Arc::default(),
        }
    }

    /// Whether a request with this `Origin` may go on: an allowed origin, or the gateway's own
    /// (a page it served; browsers send `Origin` on same-origin POSTs too).
    fn allows(&self, origin: &str, req: &axum::extract::Request) -> bool {
        if self.any || self.allowed.iter().any(|o| o == origin) {
            return true;
        }
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let own = origin.split_once("://").map(|(_, authority)| authority);
        host.is_some() && own == host
    }

    /// Whether to log a refusal of `origin` now.
    fn should_log(&self, origin: &str) -> bool {
        let Ok(mut logged) = self.logged.lock() else {
            return false;
        };
        let now = tokio::time::Instant::now();
        if let Some(at) = logged.get(origin) {
            if now.duration_since(*at) < ORIGIN_LOG_EVERY {
                return false;
            }
        } else if logged.len() >= ORIGIN_LOG_MAX {
            logged.retain(|_, at| now.duration_since(*at) < ORIGIN_LOG_EVERY);
            if logged.len() >= ORIGIN_LOG_MAX {
                return false;
            }
        }
        logged.insert(origin.to_owned(), now);
        true
    }
}

/// Answers a CORS preflight from a refused origin with 403 and a body that says how to allow it,
/// and logs the origin (WARN, at most once a minute per origin). Other requests from it go on
/// (non-browser clients may send any `Origin`; a browser does not send a grpc-web call whose
/// preflight failed).
async fn refuse_foreign_origins(
    axum::extract::State(origins): axum::extract::State<ForeignOrigins>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::response::IntoResponse;
    let Some(origin) = req
        .headers()
        .get(http::header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
    else {
        return next.run(req).await;
    };
    if origins.allows(&origin, &req) {
        return next.run(req).await;
    }
    let preflight = req.method() == http::Method::OPTIONS
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    if origins.should_log(&origin) {
        warn!(
            %origin,
            path = %req.uri().path(),
            preflight,
            "refused a browser call from an origin this gateway does not allow; allow it with \
             --cors-origin <origin> (or DBFORGE_CORS_ORIGINS); logged once a minute per origin"
        );
    }
    if !preflight {
        return next.run(req).await;
    }
    let body = format!(
        "DB-Forge refused this cross-origin call: the origin {origin} is not allowed to call this \
         gateway from a browser.\nTo allow it, start the gateway with --cors-origin {origin} (or \
         set DBFORGE_CORS_ORIGINS={origin}); a page served from the gateway's own address needs \
         nothing.\n"
    );
    (
        http::StatusCode::FORBIDDEN,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A PEM file's bytes, or an error naming the file.
fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// TLS from the configured PEM files; with a client CA, clients must present a certificate it
/// signed (mutual TLS).
fn tls_config(cfg: &Config) -> Result<Option<ServerTlsConfig>, BoxError> {
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
        return Ok(None);
    };
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
    if let Some(ca) = &cfg.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca)?));
    }
    Ok(Some(tls))
}

/// How this gateway reaches the others to forward calls (`api/forward.rs`): plain when it
/// serves plain; TLS trusting `--tls-peer-ca` (else `--tls-client-ca`) and presenting its own
/// certificate when it serves TLS.
fn peer_transport(cfg: &Config) -> Result<crate::api::forward::PeerTransport, BoxError> {
    use crate::api::forward::PeerTransport;
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
        return Ok(PeerTransport::Plain);
    };
    let Some(ca) = cfg.tls_peer_ca.as_ref().or(cfg.tls_client_ca.as_ref()) else {
        return Ok(PeerTransport::Untrusted);
    };
    Ok(PeerTransport::Tls(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read_pem(ca)?))
            .identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?)),
    ))
}

/// Sets each backend's health entry when its availability changed since `last`.
async fn update_backend_health(
    reporter: &HealthReporter,
    forge: &Forge,
    last: &mut Vec<(crate::backend::BackendKind, bool)>,
) {
    use tonic_health::ServingStatus;
    let now = forge.backend_availability();
    if now == *last {
        return;
    }
    for (kind, up) in &now {
        let status = if *up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter
            .set_service_status(format!("dbforge.backend.{kind}"), status)
            .await;
    }
    *last = now;
}

async fn serving<S: NamedService>(reporter: &HealthReporter, _svc: &S) {
    reporter.set_serving::<S>().await;
}

/// tonic reads a client's RST_STREAM(CANCEL) on a request stream as the end of that stream, so a
/// client-streaming handler could not tell a cancelled import from a complete one and would commit
/// what had arrived. The request body is wrapped so a cancel reaches handlers as an error (ABORTED)
/// and what it interrupted is rolled back.
async fn client_cancel_is_an_error(req: axum::extract::Request) -> axum::extract::Request {
    use http_body_util::BodyExt;
    req.map(|body| {
        axum::body::Body::new(body.map_err(|e| {
            let status = tonic::Status::from_error(e.into_inner());
            if status.code() == tonic::Code::Cancelled {
                tonic::Status::aborted("the client cancelled the call before its stream ended")
            } else {
                status
            }
        }))
    })
}

/// Request bodies of HTTP/1.1 calls read ahead, at most, before the call is dispatched.
const HTTP1_READ_AHEAD: usize = 64 << 10;

/// An HTTP/1.1 connection can only serve its next request once the current request's body has
/// been read, so a call refused before its body was read (no API key, an unknown database)
/// would close the connection and a client that was still sending would see a broken pipe
/// instead of the error. grpc-web bodies are small (one message, requests cannot stream), so
/// up to [`HTTP1_READ_AHEAD`] is read before dispatch; a larger body is handed on unread
/// beyond that and the connection closes as before when such a call is refused.
async fn read_small_http1_bodies(req: axum::extract::Request) -> axum::extract::Request {
    use http_body_util::BodyExt;
    if req.version() > http::Version::HTTP_11 {
        return req;
    }
    let (parts, mut body) = req.into_parts();
    let mut read = Vec::new();
    let mut size = 0;
    let rest = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    size += data.len();
                }
                read.push(Ok(frame));
                if size >= HTTP1_READ_AHEAD {
                    break Some(body);
                }
            }
            Some(Err(e)) => {
                read.push(Err(e));
                break None;
            }
            None => break None,
        }
    };
    let head = futures::stream::iter(read);
    let body = match rest {
        None => axum::body::Body::new(http_body_util::StreamBody::new(head)),
        Some(rest) => axum::body::Body::new(http_body_util::StreamBody::new(
            head.chain(http_body_util::BodyStream::new(rest)),
        )),
    };
    axum::extract::Request::from_parts(parts, body)
}

/// tonic answers a request above the size limit with OUT_OF_RANGE; the gRPC spec says
/// RESOURCE_EXHAUSTED, which is what clients retry-classify on.
async fn remap_oversize(mut res: Response) -> Response {
    let headers = res.headers();
    let oversize = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if oversize {
        let transport = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .map(|m| m.replace("%20", " "))
            .unwrap_or_default();
        let status = crate::api::status::oversize(&transport);
        if status.add_header(res.headers_mut()).is_err() {
            res.headers_mut()
                .insert("grpc-status", HeaderValue::from_static("8"));
        }
    }
    res
}
