//! Host side: serve a stdio MCP server over Streamable HTTP (`/mcp`, `streamable`) and HTTP+SSE
//! (`/sse`, `/messages`, `sse`), one child per session (or one shared child), with resumable
//! streams, sessions that outlive a client's disconnect, and loopback-first security. Requests of
//! the stateless 2026-07-28 revision, on the same `/mcp`, go to `stateless` (the router tells
//! them apart by `MCP-Protocol-Version`) and its one child of either era. The caller validates
//! a [`Config`], [`bind`]s the listeners, and hands both to [`run`] with a shutdown token.

mod app;
mod child;
mod config;
mod conn;
mod guard;
mod http;
mod hub;
mod keyed;
mod metrics;
mod policy;
mod relay;
mod scope;
mod session;
mod shared;
mod sse;
mod stateless;
mod streamable;

pub use config::{Config, ConfigError, DEFAULT_PASS_ENV, ListenError};
pub use hub::{
    PrintError, client_config_text, gateway_config, relay_config, run as run_gateway, server_config,
};

use crate::net::Listener;
use app::App;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Binds every `--listen` address, refusing a non-loopback TCP address when no token guards it.
pub async fn bind(cfg: &Config) -> Result<Vec<Listener>, ListenError> {
    let mut listeners = Vec::new();
    for addr in &cfg.listen {
        listeners.extend(Listener::bind(addr, cfg.socket_mode).await?);
    }
    for l in &listeners {
        if let Listener::Tcp(t) = l {
            let ip = t.local_addr().map_err(ListenError::LocalAddr)?.ip();
            let authenticated = cfg.token.is_some() || cfg.gate.names_clients();
            if !ip.is_loopback() && !authenticated && !cfg.allow_unauthenticated {
                return Err(ListenError::Unauthenticated(ip));
            }
        }
    }
    Ok(listeners)
}

/// Serves on `listeners` until `shutdown` is cancelled, then ends every session and stops every
/// child.
pub async fn run(cfg: Config, listeners: Vec<Listener>, shutdown: CancellationToken) {
    log_summary(&cfg, &listeners);
    let cfg_limits = cfg.clone();
    let app = App::new(cfg, shutdown.clone());
    let router = router(app.clone());
    let mut servers = Vec::new();
    let limits = conn::Limits::of(&cfg_limits);
    for l in listeners {
        tracing::info!("listening on {}", l.url());
        servers.push(tokio::spawn(conn::serve(
            l,
            router.clone(),
            limits,
            shutdown.clone(),
        )));
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
}

/// One line that says what this gateway serves, how, and within which limits.
fn log_summary(cfg: &Config, listeners: &[Listener]) {
    let urls: Vec<String> = listeners.iter().map(Listener::url).collect();
    let auth = match (&cfg.token, cfg.allow_unauthenticated) {
        (Some(_), _) => "bearer token",
        (None, true) => "none (--allow-unauthenticated)",
        (None, false) => "none (loopback and Unix sockets only)",
    };
    tracing::info!(
        listeners = %urls.join(", "),
        // The program's arguments are left out: they may hold what a log should not.
        program = %cfg.program,
        args = cfg.args.len(),
        auth,
        scope = ?cfg.scope,
        keep_alive = ?cfg.keep_alive(),
        max_sessions = cfg.max_sessions,
        max_body = cfg.max_body,
        session_ttl = ?cfg.session_ttl,
        replay_buffer = cfg.replay_buffer,
        "serve starting"
    );
}

fn router(app: Arc<App>) -> Router {
    mcp_routes()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::check,
        ))
        .with_state(app)
}

/// The MCP routes of one server (`/mcp`, `/sse`, `/messages`), without the guard.
fn mcp_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/mcp", axum::routing::any(mcp))
        .route("/sse", get(sse::open))
        .route("/messages", post(sse::message))
}

/// `/mcp`: a request of the stateless revision goes to its handler, a session's to Streamable
/// HTTP's (POST, GET, DELETE). One handler rather than a method router behind a middleware:
/// each axum layer boxes every request's future.
async fn mcp(
    State(app): State<Arc<App>>,
    peer: axum::extract::ConnectInfo<crate::net::Peer>,
    req: axum::extract::Request,
) -> axum::response::Response {
    mcp_request(app, peer, req).await
}

/// [`mcp`] for a caller that has routed the request itself (the gateway's `/servers/NAME/mcp`).
pub(crate) async fn mcp_request(
    app: Arc<App>,
    peer: axum::extract::ConnectInfo<crate::net::Peer>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::Method;
    let method = req.method().clone();
    if ![Method::POST, Method::GET, Method::HEAD, Method::DELETE].contains(&method) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(axum::http::header::ALLOW, "GET,HEAD,POST,DELETE")],
        )
            .into_response();
    }
    if stateless::is_stateless(req.headers()) {
        return stateless::handle(app, req).await.into_response();
    }
    let state = State(app);
    match method {
        Method::POST => streamable::post(state, peer, req).await.into_response(),
        Method::DELETE => streamable::delete(state, req).await.into_response(),
        _ => streamable::get(state, req).await.into_response(),
    }
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
        app.metrics_text(None).await + &app.cfg.gate.render_metrics(),
    )
}
