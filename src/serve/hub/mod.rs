//! `serve --config FILE`: every server of a gateway file behind one set of listeners. Each
//! server is a [`Unit`]: its own [`App`] (sessions, children, metrics) made from a per-server
//! [`Config`], reached at `/servers/NAME/mcp`, `/servers/NAME/sse` and
//! `/servers/NAME/messages`; `/mcp`, `/sse` and `/messages` reach the only server while the file
//! has exactly one. A reload (`reload`) swaps units; a replaced unit keeps the sessions it has
//! until they end or the drain timeout passes. `list` answers `GET /servers` and `/metrics`.

mod list;
mod reload;
mod start;

pub use start::{PrintError, client_config_text, gateway_config};

use crate::gateway::{self, Definition, File, Scope};
use crate::net::Listener;
use crate::serve::app::App;
use crate::serve::config::Config;
use crate::serve::http::Refusal;
use crate::wire::SESSION_ID;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

/// One server of the file, served.
#[derive(Debug)]
pub struct Unit {
    /// The server as the file defines it (definition and options at the time it started).
    pub server: gateway::Server,
    /// Its sessions and children.
    pub app: Arc<App>,
    /// `/mcp`, `/sse` and `/messages` of this server alone.
    router: Router,
    /// What its requests, sessions and children log under: the server's name.
    span: tracing::Span,
}

/// Which units serve which names.
#[derive(Debug, Default)]
struct Routes {
    /// The unit new sessions of each name go to.
    current: BTreeMap<String, Arc<Unit>>,
    /// Units a reload removed or replaced, still serving the sessions they have.
    draining: Vec<Arc<Unit>>,
}

/// The state of `serve --config`.
#[derive(Debug)]
pub struct Gateway {
    /// Flags merged with the file's `mcpBridge` settings; each unit's config starts from it.
    base: Config,
    /// Guards every route and counts gateway-wide errors; it never has sessions.
    root: Arc<App>,
    routes: RwLock<Routes>,
    /// The running configuration, for the next reload's diff.
    file: Mutex<File>,
    /// Cancelled when serve stops.
    shutdown: CancellationToken,
}

impl Gateway {
    fn new(base: Config, file: File, shutdown: CancellationToken) -> Arc<Gateway> {
        let root = App::new(base.clone(), shutdown.child_token());
        let gw = Arc::new(Gateway {
            base,
            root,
            routes: RwLock::default(),
            file: Mutex::new(file.clone()),
            shutdown,
        });
        {
            let mut routes = gw.routes_mut();
            for server in file.servers.values() {
                routes.current.insert(server.name.clone(), gw.unit(server));
            }
        }
        gw
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts serving one server: its App, its reaper, its routes.
    fn unit(&self, server: &gateway::Server) -> Arc<Unit> {
        let cfg = server_config(&self.base, server);
        let span = tracing::info_span!(parent: None, "server", name = %server.name);
        let app = App::new_in(cfg, self.shutdown.child_token(), span.clone());
        tokio::spawn(app.clone().reap());
        let router = crate::serve::mcp_routes().with_state(app.clone());
        Arc::new(Unit {
            server: server.clone(),
            app,
            router,
            span,
        })
    }

    /// The unit a request for `name` goes to: the one holding its session if it names one,
    /// else the current one.
    fn pick(&self, name: &str, session: Option<&str>) -> Result<Arc<Unit>, Refusal> {
        let routes = self.routes();
        if let Some(id) = session {
            let holder = routes
                .current
                .get(name)
                .into_iter()
                .chain(routes.draining.iter().filter(|u| u.server.name == name))
                .find(|u| u.app.session(id).is_ok());
            if let Some(u) = holder {
                return Ok(u.clone());
            }
        }
        if let Some(u) = routes.current.get(name) {
            return Ok(u.clone());
        }
        if routes.draining.iter().any(|u| u.server.name == name) {
            return Err(not_found(&format!(
                "server `{name}` was removed from the configuration: it takes no new sessions"
            )));
        }
        Err(no_such_server(name))
    }

    /// Every unit, current and draining.
    fn all_units(&self) -> Vec<Arc<Unit>> {
        let routes = self.routes();
        routes
            .current
            .values()
            .chain(routes.draining.iter())
            .cloned()
            .collect()
    }
}

/// The 404 of a name that is not served (also what a client gets for a server not granted).
fn no_such_server(name: &str) -> Refusal {
    not_found(&format!(
        "no server named `{name}` (GET /servers lists them)"
    ))
}

fn not_found(why: &str) -> Refusal {
    Refusal::rpc(StatusCode::NOT_FOUND, crate::jsonrpc::INVALID_REQUEST, why)
}

/// The settings of one server: the gateway's, with the server's command or remote, its
/// environment and working directory, and its `mcpBridge.servers.NAME` options.
pub fn server_config(base: &Config, server: &gateway::Server) -> Config {
    let mut cfg = base.clone();
    cfg.server_name = Some(server.name.as_str().into());
    cfg.options = server.options.clone();
    if let Some(ttl) = server.options.session_ttl {
        cfg.session_ttl = ttl;
    }
    // The file's scope, unless the command line made everything shared.
    cfg.scope = match (base.scope, server.options.scope) {
        (crate::cli::Scope::Shared, _) | (_, Scope::Shared) => crate::cli::Scope::Shared,
        (_, Scope::PerKey) => crate::cli::Scope::PerKey,
        (_, Scope::PerSession) => crate::cli::Scope::PerSession,
    };
    // The file's keepAlive; else the command line's; else (at use) the server's session TTL.
    cfg.keep_alive = server.options.keep_alive.or(base.keep_alive);
    match &server.definition {
        Definition::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            cfg.program = command.clone();
            cfg.args = args.clone();
            for (k, v) in env {
                cfg.child_env.retain(|(name, _)| name != k);
                cfg.child_env.push((k.clone(), v.clone()));
            }
            cfg.cwd = cwd.clone();
        }
        Definition::Remote {
            url,
            headers,
            transport,
        } => {
            // What logs show as the "program": never the path or query, which may hold a key.
            cfg.program = url.origin().ascii_serialization();
            cfg.args = Vec::new();
            let mut relay = relay_config(base, url, headers, *transport);
            // One token provider per server, shared by all its sessions (single-flight refresh).
            relay.auth = crate::oauth::relay::for_gateway(server, base.config_file.as_deref());
            cfg.relay = Some(Arc::new(relay));
        }
    }
    cfg
}

/// The `connect` settings of the in-process relay to a remote server: its URL, transport and
/// headers (expanded on the host; nothing of the client's request is forwarded). The one place
/// a relay's settings are made.
pub fn relay_config(
    base: &Config,
    url: &url::Url,
    headers: &reqwest::header::HeaderMap,
    transport: crate::cli::TransportChoice,
) -> crate::connect::Config {
    crate::connect::Config {
        url: url.clone(),
        transport,
        headers: headers.clone(),
        unix: None,
        connect_timeout: Duration::from_secs(10),
        max_message_size: base.max_message_size,
        ca_certs: Vec::new(),
        auth: None,
    }
}

/// `/servers/NAME/REST`: the server's own routes.
async fn by_name(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/servers/") else {
        return not_found("not found").into_response();
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    // Only a well-formed name is looked up: `..`, `%2F` and the like are not names.
    if gateway::check_name(name).is_err() {
        return not_found("no such server (GET /servers lists them)").into_response();
    }
    let (name, tail) = (name.to_owned(), format!("/{tail}"));
    forward(&gw, &name, &tail, req).await
}

/// `/mcp`, `/sse`, `/messages`: the only server, while there is exactly one.
async fn single(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let only = {
        let routes = gw.routes();
        let mut names = routes.current.keys();
        match (names.next(), names.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    };
    let Some(name) = only else {
        return not_found(
            "this gateway serves several servers: use /servers/NAME/mcp (GET /servers lists them)",
        )
        .into_response();
    };
    let tail = req.uri().path().to_owned();
    forward(&gw, &name, &tail, req).await
}

async fn forward(gw: &Gateway, name: &str, tail: &str, mut req: Request) -> Response {
    let session = session_of(&req);
    // A server not granted to the client answers as one that does not exist.
    if !crate::serve::policy::may_reach(&req, name) {
        return no_such_server(name).into_response();
    }
    let unit = match gw.pick(name, session.as_deref()) {
        Ok(u) => u,
        Err(refusal) => return refusal.into_response(),
    };
    // The server's MCP endpoint is called straight away: no URI to rebuild, no second router.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::net::Peer>>()
        .cloned();
    let resp = match peer {
        Some(peer) if tail == "/mcp" => {
            let call = crate::serve::mcp_request(unit.app.clone(), peer, req);
            // A request of a session needs no span of its own (entering one on every poll
            // costs more than the rest of the routing): the session and its children log under
            // the server's name already, and a child started later enters that span itself.
            match session {
                Some(_) => call.await,
                None => call.instrument(unit.span.clone()).await,
            }
        }
        _ => {
            let uri = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_owned(),
            };
            match uri.parse::<Uri>() {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => return not_found("not found").into_response(),
            }
            // Sessions and children started by this request log under the server's name.
            match unit
                .router
                .clone()
                .oneshot(req)
                .instrument(unit.span.clone())
                .await
            {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        unit.app.metrics.http_errors.inc();
    }
    resp
}

/// The session a request names: `Mcp-Session-Id`, or legacy SSE's `sessionId` query.
fn session_of(req: &Request) -> Option<String> {
    if let Some(id) = req.headers().get(SESSION_ID).and_then(|v| v.to_str().ok()) {
        return Some(id.to_owned());
    }
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    })
}

fn router(gw: Arc<Gateway>) -> Router {
    let root = gw.root.clone();
    Router::new()
        .route("/servers", get(list::servers))
        .route("/servers/{*rest}", any(by_name))
        .route("/mcp", any(single))
        .route("/sse", any(single))
        .route("/messages", any(single))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(list::metrics))
        .layer(axum::middleware::from_fn_with_state(
            root,
            crate::serve::guard::check,
        ))
        .with_state(gw)
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    if gw.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Serves every server of `file` on `listeners` until `shutdown`, reloading the file (at
/// `cfg.config_file`) when it changes and on SIGHUP.
pub async fn run(cfg: Config, file: File, listeners: Vec<Listener>, shutdown: CancellationToken) {
    let urls: Vec<String> = listeners.iter().map(Listener::url).collect();
    tracing::info!(
        listeners = %urls.join(", "),
        auth = if cfg.token.is_some() { "bearer token" } else { "none" },
        drain_timeout = ?cfg.drain_timeout,
        "serve starting: {}",
        file.summary()
    );
    let path = cfg.config_file.clone();
    let gw = Gateway::new(cfg, file, shutdown.clone());
    let app = router(gw.clone());
    let mut servers = Vec::new();
    // The same connection handling as `serve -- CMD`: the connection cap and the header timeout
    // hold for the gateway too.
    let limits = crate::serve::conn::Limits::of(&gw.base);
    for l in listeners {
        tracing::info!("listening on {}", l.url());
        servers.push(tokio::spawn(crate::serve::conn::serve(
            l,
            app.clone(),
            limits,
            shutdown.clone(),
        )));
    }
    let watcher = path.map(|p| tokio::spawn(reload::watch(gw.clone(), p)));
    shutdown.cancelled().await;
    tracing::info!("shutting down: ending streams and stopping children");
    let units = gw.all_units();
    futures_util::future::join_all(units.iter().map(|u| u.app.stop_all())).await;
    for s in servers {
        let abort = s.abort_handle();
        if tokio::time::timeout(Duration::from_secs(3), s)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    if let Some(w) = watcher {
        w.abort();
    }
    for u in &units {
        u.app.tasks.close();
    }
    let wait = futures_util::future::join_all(units.iter().map(|u| u.app.tasks.wait()));
    let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    // An audit sink that stopped taking lines (a FIFO nobody reads, a hung mount) must not
    // keep the gateway from stopping: its last records are then lost, and said so.
    if tokio::time::timeout(Duration::from_secs(2), gw.base.gate.flush_audit())
        .await
        .is_err()
    {
        tracing::warn!(
            "the audit log did not take its last records within 2s; stopping without them"
        );
    }
    tracing::info!("stopped");
}
