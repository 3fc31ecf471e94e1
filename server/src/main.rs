//! `dbforge-server`: load config, init tracing, serve until SIGINT or SIGTERM.

use std::{io::IsTerminal, time::Duration};

use dbforge_server::{
    config::{CatalogCommand, Command, Config, LogFormat},
    server::{self, BoxError},
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors that stop the server are shown as sentences (Display), not as Debug structures.
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "dbforge-server stopped");
            eprintln!("dbforge-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), BoxError> {
    let cfg = Config::load();
    if cfg.health_check {
        // A health probe prints one line and says nothing else (no logs).
        return match dbforge_server::supervisor::probe(cfg.listen, Duration::from_secs(3)).await {
            Ok(()) => {
                println!("SERVING");
                Ok(())
            }
            Err(why) => Err(why.into()),
        };
    }
    if let Some(Command::Catalog(CatalogCommand::Migrate { to })) = &cfg.command {
        let copied =
            dbforge_server::core::catalog::migrate(cfg.catalog_url.as_deref(), &cfg.data_dir, to)
                .await?;
        for (table, rows) in copied {
            println!("{table:<20} {rows:>10} rows");
        }
        println!("catalog copied to {}", redact(to));
        return Ok(());
    }
    let filter = EnvFilter::try_new(&cfg.log)?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match cfg.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let addr = cfg.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| cannot_listen(addr, &e))?;
    server::run(cfg, listener, shutdown_signal()).await
}

/// A catalog URL without its password, for printing.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Why the server cannot listen on `addr`, and what to do about it.
fn cannot_listen(addr: std::net::SocketAddr, e: &std::io::Error) -> BoxError {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process (perhaps another dbforge-server) is using that port: stop it, or \
             choose another address with --listen or DBFORGE_LISTEN"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose a higher port with --listen"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "; no network interface of this machine has that IP address: use 127.0.0.1, 0.0.0.0 \
             or one of this machine's addresses with --listen"
        }
        _ => "",
    };
    format!("cannot listen on {addr}: {e}{hint}").into()
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
