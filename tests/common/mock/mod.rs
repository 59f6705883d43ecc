//! A scriptable remote MCP server for connect's tests: Streamable HTTP on `/mcp` (streamable.rs)
//! and the HTTP+SSE transport on `/sse` + `/messages` (sse.rs), on a real socket, that records what
//! it receives and can be stopped and started again on the same port.

mod sse;
mod streamable;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// How the mock behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Answer requests with SSE streams (true) or JSON bodies (false).
    pub sse: bool,
    /// Hand out `Mcp-Session-Id` and insist on it.
    pub sessions: bool,
    /// Offer the GET stream (false: 405).
    pub get_stream: bool,
    /// Serve HTTP+SSE on /sse and refuse POST /mcp with 405 (an old server).
    pub sse_only: bool,
    /// HTTP+SSE: name an endpoint on another origin.
    pub foreign_endpoint: bool,
    /// Speak only the stateless 2026-07-28 revision: refuse anything without its version header,
    /// 404 unknown methods.
    pub stateless_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sse: false,
            sessions: true,
            get_stream: true,
            sse_only: false,
            foreign_endpoint: false,
            stateless_only: false,
        }
    }
}

/// One HTTP request the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// What the mock knows and has seen; tests read it through `Mock::state`.
#[derive(Default)]
pub struct MockState {
    pub opts: Mutex<Options>,
    sessions: Mutex<HashSet<String>>,
    pub seen: Mutex<Vec<Seen>>,
    /// Messages to send on the GET stream.
    push: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    /// Answers the client owes to the mock's own requests, by id.
    client_answers: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// HTTP+SSE sessions' event streams.
    sse_streams: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    /// Ends every HTTP+SSE event stream when sent to.
    sse_kill: Mutex<Option<tokio::sync::broadcast::Sender<()>>>,
    /// Cut response streams: event id to resume from -> the answer still owed.
    cut: Mutex<HashMap<String, String>>,
    next: AtomicU64,
    /// How many `slow` tool calls have finished sleeping and are being answered.
    pub slow_done: AtomicU64,
    /// HTTP+SSE: how many more `initialize` POSTs to refuse with 500 (a failing handshake replay).
    pub refuse_initialize: AtomicU64,
}

impl MockState {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Requests received with this JSON-RPC method.
    pub fn requests(&self, method: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.body["method"] == method)
            .cloned()
            .collect()
    }

    /// HTTP requests received with this HTTP method.
    pub fn http(&self, method: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method)
            .cloned()
            .collect()
    }

    /// Forgets every session, as a restarted or expiring server would.
    pub fn expire_sessions(&self) {
        self.sessions.lock().unwrap().clear();
    }

    /// Sends a message on every open GET stream; returns how many streams got it.
    pub fn push(&self, msg: Value) -> usize {
        let text = sse_event(Some(&format!("g-{}", self.next())), &msg.to_string());
        let mut streams = self.push.lock().unwrap();
        streams.retain(|s| s.send(text.clone()).is_ok());
        streams.len()
    }

    /// How many GET streams are open.
    pub fn get_streams(&self) -> usize {
        let mut streams = self.push.lock().unwrap();
        streams.retain(|s| !s.is_closed());
        streams.len()
    }

    /// Closes every HTTP+SSE event stream (the server "drops" them).
    pub fn drop_sse_streams(&self) {
        self.sse_streams.lock().unwrap().clear();
        if let Some(kill) = self.sse_kill.lock().unwrap().as_ref() {
            let _ = kill.send(());
        }
    }

    fn record(&self, method: &str, path: &str, headers: &HeaderMap, body: Value) {
        self.seen.lock().unwrap().push(Seen {
            method: method.into(),
            path: path.into(),
            headers: headers.clone(),
            body,
        });
    }
}

/// A running mock. Dropping it stops it.
pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    tasks: Server,
}

impl Mock {
    /// Starts the mock on a free 127.0.0.1 port.
    pub async fn start(opts: Options) -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(MockState {
            opts: Mutex::new(opts),
            ..Default::default()
        });
        Self::serve(listener, state)
    }

    fn serve(listener: tokio::net::TcpListener, state: Arc<MockState>) -> Mock {
        let addr = listener.local_addr().unwrap();
        let listener = Arc::new(listener);
        let tasks = spawn_server(router(state.clone()), move || {
            let l = listener.clone();
            async move {
                let (stream, _) = l.accept().await.ok()?;
                Some(Box::pin(async move { Some(stream) }) as Handshake<_>)
            }
        });
        Mock { addr, state, tasks }
    }

    /// The same server on a Unix domain socket (its `addr` is meaningless).
    pub async fn start_unix(path: &std::path::Path, opts: Options) -> Mock {
        let listener = Arc::new(tokio::net::UnixListener::bind(path).unwrap());
        let state = Arc::new(MockState {
            opts: Mutex::new(opts),
            ..Default::default()
        });
        let tasks = spawn_server(router(state.clone()), move || {
            let l = listener.clone();
            async move {
                let (stream, _) = l.accept().await.ok()?;
                Some(Box::pin(async move { Some(stream) }) as Handshake<_>)
            }
        });
        Mock {
            addr: "127.0.0.1:9".parse().unwrap(),
            state,
            tasks,
        }
    }

    /// The same server over TLS with the given certificate chain and key (DER).
    pub async fn start_tls(
        opts: Options,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Mock {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(MockState {
            opts: Mutex::new(opts),
            ..Default::default()
        });
        let tasks = spawn_server(router(state.clone()), move || {
            let (l, acceptor) = (listener.clone(), acceptor.clone());
            async move {
                let (stream, _) = l.accept().await.ok()?;
                Some(Box::pin(async move { acceptor.accept(stream).await.ok() }) as Handshake<_>)
            }
        });
        Mock { addr, state, tasks }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and every connection, like a crashed process: when it returns, every
    /// socket of the server is closed, as it is once a process has exited.
    pub async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }

    /// Starts a fresh server (no sessions) on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let opts = self.state.opts.lock().unwrap().clone();
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let state = Arc::new(MockState {
            opts: Mutex::new(opts),
            ..Default::default()
        });
        let fresh = Self::serve(listener, state);
        self.state = fresh.state;
        self.tasks = fresh.tasks;
    }
}

/// Turns an accepted connection into a stream to speak HTTP on (a TLS handshake, or nothing).
type Handshake<S> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<S>> + Send>>;

/// A running server: its accept loop and the connections it took. Dropping it aborts them all;
/// [`Server::shutdown`] also waits until they are gone.
struct Server {
    accept: JoinSet<()>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Server {
    /// Stops accepting, then cuts every connection and waits until each socket is closed. An
    /// aborted task drops its socket only when the runtime gets to it: without the wait, a
    /// client could still send on a connection of a "stopped" server and see it reset (the
    /// flaky restart test), which no real server restart does.
    async fn shutdown(&mut self) {
        self.accept.shutdown().await;
        let mut conns = std::mem::take(&mut *self.conns.lock().unwrap());
        conns.shutdown().await;
    }
}

/// Serves `app` on every connection `accept` yields, until it yields `None`. Connections are
/// served inside the returned set, so that dropping or shutting it down cuts them all, as a
/// crashed server would.
fn spawn_server<S, F, A>(app: Router, mut accept: F) -> Server
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> A + Send + 'static,
    A: std::future::Future<Output = Option<Handshake<S>>> + Send,
{
    let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let all = conns.clone();
    tasks.spawn(async move {
        while let Some(handshake) = accept().await {
            let app = app.clone();
            let mut conns = all.lock().unwrap();
            while conns.try_join_next().is_some() {}
            conns.spawn(async move {
                let Some(io) = handshake.await else { return };
                let io = hyper_util::rt::TokioIo::new(io);
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Server {
        accept: tasks,
        conns,
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(streamable::post)
                .get(streamable::get)
                .delete(streamable::delete),
        )
        .route("/sse", get(sse::get).post(sse::refuse))
        .route("/old", get(sse::get).post(sse::refuse))
        .route(
            "/moved-away",
            post(|| async { redirect("http://127.0.0.2:9/mcp") }),
        )
        .route("/moved-here", post(|| async { redirect("/mcp") }))
        .route("/messages", post(sse::post))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn sse_event(id: Option<&str>, data: &str) -> String {
    let mut s = String::new();
    if let Some(id) = id {
        s.push_str(&format!("id: {id}\n"));
    }
    for line in data.split('\n') {
        s.push_str(&format!("data: {line}\n"));
    }
    s.push('\n');
    s
}

fn sse_response(rx: mpsc::UnboundedReceiver<String>) -> Response {
    let stream = tokio_stream_from(rx).map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn tokio_stream_from(
    mut rx: mpsc::UnboundedReceiver<String>,
) -> impl futures_util::Stream<Item = String> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn json_response(body: &Value, session: Option<&str>) -> Response {
    let mut resp = (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(s) = session {
        resp.headers_mut()
            .insert("mcp-session-id", s.parse().unwrap());
    }
    resp
}

fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, to.to_owned())],
    )
        .into_response()
}
