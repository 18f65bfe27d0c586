//! The separate `/metrics` listener (`HALLPASS_METRICS_BIND`).
//!
//! Prometheus counters say how busy the server is and how often clients fail; they need not
//! be on the internet. When `HALLPASS_METRICS_BIND` is set, [`spawn`] serves `/metrics` on
//! its own listener at that address (a private interface, say) and [`on_main_port`] is false,
//! so the main app leaves the route out.

use std::net::SocketAddr;

use poem::{
    EndpointExt, Route, Server, get,
    listener::{Acceptor, Listener, TcpListener},
};

use crate::{config::Config, startup::StartupError, state::AppState};

/// Whether `/metrics` is served on the main port (no separate address configured).
pub fn on_main_port(config: &Config) -> bool {
    config.metrics_bind.is_none()
}

/// Binds `HALLPASS_METRICS_BIND`, if set, and serves `/metrics` there on a task of its own
/// until the process ends. Returns the bound address (the real port when the setting asks for
/// port 0), or `None` when no separate address is configured.
pub async fn spawn(state: &AppState) -> Result<Option<SocketAddr>, StartupError> {
    let Some(addr) = state.config.metrics_bind else {
        return Ok(None);
    };
    let acceptor = TcpListener::bind(addr).into_acceptor().await.map_err(|e| {
        StartupError::Io(format!(
            "cannot listen on {addr} for /metrics: {e}; set HALLPASS_METRICS_BIND / --metrics-bind to a free address"
        ))
    })?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    let app = Route::new()
        .at("/metrics", get(crate::metrics::metrics))
        .data(state.clone());
    tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "the /metrics listener stopped");
        }
    });
    tracing::info!(%bound, "/metrics listening on its own address");
    Ok(Some(bound))
}
