//! `dbforge-server`: load config, init tracing, serve until SIGINT or SIGTERM.

use std::io::IsTerminal;

use clap::Parser;
use dbforge_server::{
    config::{Config, LogFormat},
    server::{self, BoxError},
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cfg = Config::parse();
    let filter = EnvFilter::try_new(cfg.log.as_deref().unwrap_or("info"))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match cfg.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen_addr()).await?;
    server::run(cfg, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight calls");
}
