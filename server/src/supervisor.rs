//! Telling a service manager how the gateway is doing: systemd's readiness protocol
//! (`Type=notify`, see `deploy/dbforge.service`) and the container health check.
//!
//! - **READY=1** is sent once the catalog is loaded, interrupted work is finished, damaged
//!   databases are dealt with and the port serves calls: a unit ordered `After=dbforge.service`
//!   starts only then, and `systemctl start` returns only then.
//! - **STOPPING=1** is sent when a shutdown signal arrives, before in-flight calls finish.
//! - Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent. A failure to send is
//!   logged and does not stop the gateway: a wrong socket must not take the service down.
//!
//! [`probe`] is `dbforge-server --health-check`: one `grpc.health.v1.Health/Check` call to the
//! gateway on this machine, for Docker's `HEALTHCHECK` and compose's `healthcheck` (the image
//! has no other gRPC client).

use std::{net::SocketAddr, time::Duration};

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// Tells the service manager that the gateway serves on `addr`.
pub fn ready(addr: SocketAddr) {
    let status = format!("serving on {addr}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager that the gateway is shutting down.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("finishing in-flight calls"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(states) {
        Ok(()) => debug!("notified the service manager"),
        Err(e) => warn!(error = %e, "could not notify the service manager (NOTIFY_SOCKET)"),
    }
}

/// Asks the gateway listening on `listen` whether it serves (`grpc.health.v1.Health/Check`
/// of the whole server, over plaintext on loopback when `listen` is a wildcard address).
/// `Ok` when it answers SERVING within `timeout`; otherwise why not.
pub async fn probe(listen: SocketAddr, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| format!("{addr} answered {:?}: {}", s.code(), s.message()))?
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(format!("{addr} is not serving (status {status})"))
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("{addr} did not answer within {timeout:?}")))
}
