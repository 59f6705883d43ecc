//! Host side: serve a stdio MCP server over Streamable HTTP (`/mcp`) and legacy HTTP+SSE
//! (`/sse`, `/messages`), one child per session (or one shared child), with resumable streams,
//! sessions that outlive a client's disconnect, and loopback-first security.

mod app;
mod child;
mod config;
mod guard;
mod http;
mod legacy;
mod metrics;
mod replay;
mod session;
mod shared;
mod stream;

pub use config::{Config, ConfigError, DEFAULT_PASS_ENV, ServeArgs};

use crate::net::{ListenAddr, Listener, Peer};
use app::App;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the gateway until `shutdown` is cancelled, then ends every session and stops every child.
pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = Config::try_from(args)?;
    let mut listeners = Vec::new();
    for addr in &cfg.listen {
        listeners.extend(Listener::bind(addr, cfg.socket_mode).await?);
    }
    for l in &listeners {
        if let Listener::Tcp(t) = l {
            let ip = t.local_addr()?.ip();
            if !ip.is_loopback() && cfg.token.is_none() && !cfg.allow_unauthenticated {
                anyhow::bail!(
                    "refusing to listen on {ip} (not loopback) without a token: set \
                     --auth-token-file or MCP_BRIDGE_AUTH_TOKEN, or pass --allow-unauthenticated"
                );
            }
        }
    }
    // Clients reach an explicit listen address by that name: accept it as a Host.
    for addr in &cfg.listen {
        if let ListenAddr::Tcp(a) = addr
            && let Some((host, _)) = a.rsplit_once(':')
            && !matches!(host, "0.0.0.0" | "[::]")
        {
            cfg.allow_hosts.push(host.to_owned());
        }
    }
    let app = App::new(cfg, shutdown.clone());
    let router = router(app.clone());
    let mut servers = Vec::new();
    for l in listeners {
        tracing::info!("listening on {}", l.url());
        let svc = router.clone().into_make_service_with_connect_info::<Peer>();
        let stop = shutdown.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(l, svc)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }));
    }
    let reaper = tokio::spawn(app.clone().reap());
    shutdown.cancelled().await;
    tracing::info!("shutting down: ending streams and stopping children");
    app.stop_all().await;
    for s in servers {
        let abort = s.abort_handle();
        if tokio::time::timeout(Duration::from_secs(3), s)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    reaper.abort();
    app.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), app.tasks.wait()).await;
    tracing::info!("stopped");
    Ok(())
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mcp", post(http::post).get(http::get).delete(http::delete))
        .route("/sse", get(legacy::open))
        .route("/messages", post(legacy::message))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::check,
        ))
        .with_state(app)
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    if app.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}
