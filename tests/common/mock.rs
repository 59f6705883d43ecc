//! A scriptable remote MCP server for connect's tests: Streamable HTTP on `/mcp` and legacy
//! HTTP+SSE on `/sse` + `/messages`, on a real socket, that records what it receives and can be
//! stopped and started again on the same port.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    /// Serve legacy HTTP+SSE on /sse and refuse POST /mcp with 405 (an old server).
    pub legacy_only: bool,
    /// Legacy: name an endpoint on another origin.
    pub foreign_endpoint: bool,
    /// Speak only 2026-07-28: refuse anything without its version header, 404 unknown methods.
    pub modern_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sse: false,
            sessions: true,
            get_stream: true,
            legacy_only: false,
            foreign_endpoint: false,
            modern_only: false,
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

#[derive(Default)]
pub struct MockState {
    pub opts: Mutex<Options>,
    sessions: Mutex<HashSet<String>>,
    pub seen: Mutex<Vec<Seen>>,
    /// Messages to send on the GET stream.
    push: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    /// Answers the client owes to the mock's own requests, by id.
    client_answers: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Legacy sessions' event streams.
    legacy: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    /// Ends every legacy event stream when sent to.
    legacy_kill: Mutex<Option<tokio::sync::broadcast::Sender<()>>>,
    /// Cut response streams: event id to resume from -> the answer still owed.
    cut: Mutex<HashMap<String, String>>,
    next: AtomicU64,
    /// How many `slow` tool calls have finished sleeping and are being answered.
    pub slow_done: AtomicU64,
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

    pub fn get_streams(&self) -> usize {
        let mut streams = self.push.lock().unwrap();
        streams.retain(|s| !s.is_closed());
        streams.len()
    }

    /// Closes every legacy event stream (the server "drops" them).
    pub fn drop_legacy_streams(&self) {
        self.legacy.lock().unwrap().clear();
        if let Some(kill) = self.legacy_kill.lock().unwrap().as_ref() {
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
    tasks: JoinSet<()>,
}

impl Mock {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and every connection, like a crashed process.
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

/// Serves `app` on every connection `accept` yields, until it yields `None`. Connections are
/// served inside the returned set, so that dropping or shutting it down cuts them all, as a
/// crashed server would.
fn spawn_server<S, F, A>(app: Router, mut accept: F) -> JoinSet<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> A + Send + 'static,
    A: std::future::Future<Output = Option<Handshake<S>>> + Send,
{
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Some(handshake) = accept().await {
            let app = app.clone();
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
    tasks
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/mcp", post(mcp_post).get(mcp_get).delete(mcp_delete))
        .route("/sse", get(legacy_get).post(legacy_refuse))
        .route("/old", get(legacy_get).post(legacy_refuse))
        .route(
            "/moved-away",
            post(|| async { redirect("http://127.0.0.2:9/mcp") }),
        )
        .route("/moved-here", post(|| async { redirect("/mcp") }))
        .route("/messages", post(legacy_post))
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

#[allow(clippy::result_large_err)]
fn check_session(state: &MockState, headers: &HeaderMap) -> Result<(), Response> {
    if !state.opts.lock().unwrap().sessions {
        return Ok(());
    }
    let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
        return Err((StatusCode::BAD_REQUEST, "missing session").into_response());
    };
    if !state.sessions.lock().unwrap().contains(id) {
        let body = json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}});
        return Err((
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response());
    }
    Ok(())
}

async fn mcp_post(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let opts = state.opts.lock().unwrap().clone();
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad json").into_response(),
    };
    state.record("POST", "/mcp", &headers, msg.clone());
    if opts.legacy_only {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if opts.modern_only {
        let refuse = |status: StatusCode, code: i64, message: &str| {
            let body = json!({"jsonrpc":"2.0","id": null,"error":{"code": code,"message": message,"data":{"supported":["2026-07-28"]}}});
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        };
        if headers
            .get("mcp-protocol-version")
            .is_none_or(|v| v != "2026-07-28")
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                -32022,
                "Unsupported protocol version",
            );
        }
        if msg["method"] != "ping" {
            return refuse(StatusCode::NOT_FOUND, -32601, "Method not found");
        }
    }
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    if method == "initialize" {
        let session = opts.sessions.then(|| format!("sess-{}", state.next()));
        if let Some(s) = &session {
            state.sessions.lock().unwrap().insert(s.clone());
        }
        let answer = result(
            &msg["id"],
            json!({
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mock", "version": "1"}
            }),
        );
        if opts.sse {
            let (tx, rx) = mpsc::unbounded_channel();
            tx.send(sse_event(Some("init-1"), &answer.to_string()))
                .unwrap();
            let mut resp = sse_response(rx);
            if let Some(s) = &session {
                resp.headers_mut()
                    .insert("mcp-session-id", s.parse().unwrap());
            }
            return resp;
        }
        return json_response(&answer, session.as_deref());
    }
    if let Err(resp) = check_session(&state, &headers) {
        return resp;
    }
    if msg.get("method").is_none() {
        // The client's answer to one of the mock's requests.
        let key = msg["id"].to_string();
        if let Some(tx) = state.client_answers.lock().unwrap().remove(&key) {
            let _ = tx.send(msg.clone());
        }
        return StatusCode::ACCEPTED.into_response();
    }
    if msg.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    let id = msg["id"].clone();
    let tool = msg["params"]["name"].as_str().unwrap_or("").to_owned();
    let args = msg["params"]["arguments"].clone();
    match (method.as_str(), tool.as_str()) {
        ("tools/call", "status") => {
            let code = args["code"].as_u64().unwrap_or(500) as u16;
            let mut resp = (StatusCode::from_u16(code).unwrap(), "no").into_response();
            if code == 401 {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer resource_metadata=\"http://x/.well-known\""
                        .parse()
                        .unwrap(),
                );
            }
            return resp;
        }
        ("tools/call", "slow") => {
            tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(500))).await;
            state.slow_done.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    if !opts.sse {
        return json_response(&answer_for(&msg, &method, &tool, &args), None);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let st = state.clone();
    tokio::spawn(async move {
        let n = st.next();
        match tool.as_str() {
            "progress" => {
                let token = msg["params"]["_meta"]["progressToken"].clone();
                for i in 1..=3 {
                    let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": token, "progress": i, "total": 3}});
                    let _ = tx.send(sse_event(Some(&format!("{n}-{i}")), &note.to_string()));
                }
            }
            "ask" => {
                let ask_id = format!("srv-{n}");
                let (atx, arx) = oneshot::channel();
                st.client_answers
                    .lock()
                    .unwrap()
                    .insert(json!(ask_id).to_string(), atx);
                let ask = json!({"jsonrpc":"2.0","id": ask_id,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}});
                let _ = tx.send(sse_event(Some(&format!("{n}-0")), &ask.to_string()));
                let answer = tokio::time::timeout(Duration::from_secs(5), arx).await;
                let said = answer.ok().and_then(|a| a.ok()).unwrap_or(Value::Null);
                let done = result(&id, json!({"clientSaid": said["result"]}));
                let _ = tx.send(sse_event(Some(&format!("{n}-1")), &done.to_string()));
                return;
            }
            "cut" => {
                // Priming event, then close after `retry`: the answer comes on GET + Last-Event-ID.
                let prime = format!("{n}-0");
                st.cut.lock().unwrap().insert(
                    prime.clone(),
                    answer_for(&msg, &method, &tool, &args).to_string(),
                );
                let _ = tx.send(format!("id: {prime}\nretry: 100\ndata:\n\n"));
                return;
            }
            "multiline" => {
                let pretty =
                    serde_json::to_string_pretty(&answer_for(&msg, &method, &tool, &args)).unwrap();
                let _ = tx.send(sse_event(Some(&format!("{n}-1")), &pretty));
                return;
            }
            _ => {}
        }
        let done = answer_for(&msg, &method, &tool, &args);
        let _ = tx.send(sse_event(Some(&format!("{n}-9")), &done.to_string()));
    });
    sse_response(rx)
}

/// The answer to any request: tools echo their arguments, `big` returns `n` bytes of text, any
/// other method is echoed back so unknown methods can be seen to pass.
fn answer_for(msg: &Value, method: &str, tool: &str, args: &Value) -> Value {
    let id = &msg["id"];
    match (method, tool) {
        ("tools/call", "big") => {
            let n = args["n"].as_u64().unwrap_or(0) as usize;
            result(
                id,
                json!({"content":[{"type":"text","text": "x".repeat(n)}]}),
            )
        }
        ("tools/call", _) => result(
            id,
            json!({"content":[{"type":"text","text": tool}], "arguments": args}),
        ),
        ("ping", _) => result(id, json!({})),
        _ => result(id, json!({"method": method, "params": msg["params"]})),
    }
}

async fn mcp_get(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("GET", "/mcp", &headers, Value::Null);
    let opts = state.opts.lock().unwrap().clone();
    if !opts.get_stream || opts.legacy_only {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if let Err(resp) = check_session(&state, &headers) {
        return resp;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    if let Some(answer) = last.and_then(|l| state.cut.lock().unwrap().remove(l)) {
        let last = last.unwrap_or_default();
        let _ = tx.send(sse_event(Some(&format!("{last}-r")), &answer));
        drop(tx);
        return sse_response(rx);
    }
    state.push.lock().unwrap().push(tx);
    sse_response(rx)
}

async fn mcp_delete(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("DELETE", "/mcp", &headers, Value::Null);
    if let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        state.sessions.lock().unwrap().remove(id);
    }
    StatusCode::OK.into_response()
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, to.to_owned())],
    )
        .into_response()
}

async fn legacy_refuse(
    State(state): State<Arc<MockState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    state.record("POST", uri.path(), &headers, Value::Null);
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

async fn legacy_get(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("GET", "/sse", &headers, Value::Null);
    let id = format!("legacy-{}", state.next());
    let (tx, rx) = mpsc::unbounded_channel();
    let endpoint = if state.opts.lock().unwrap().foreign_endpoint {
        format!("http://127.0.0.2:9/messages?sessionId={id}")
    } else {
        format!("/messages?sessionId={id}")
    };
    tx.send(format!("event: endpoint\ndata: {endpoint}\n\n"))
        .unwrap();
    state.legacy.lock().unwrap().insert(id, tx);
    let mut kill = state
        .legacy_kill
        .lock()
        .unwrap()
        .get_or_insert_with(|| tokio::sync::broadcast::channel(4).0)
        .subscribe();
    let stream = tokio_stream_from(rx)
        .take_until(async move {
            let _ = kill.recv().await;
        })
        .map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn legacy_post(
    State(state): State<Arc<MockState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad json").into_response(),
    };
    state.record("POST", "/messages", &headers, msg.clone());
    let session = q.get("sessionId").cloned().unwrap_or_default();
    let Some(tx) = state.legacy.lock().unwrap().get(&session).cloned() else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    if msg.get("method").is_some() && msg.get("id").is_some() {
        let method = msg["method"].as_str().unwrap_or("").to_owned();
        let answer = if method == "initialize" {
            result(
                &msg["id"],
                json!({"protocolVersion": "2024-11-05", "capabilities": {}, "serverInfo": {"name": "legacy-mock", "version": "1"}}),
            )
        } else {
            let tool = msg["params"]["name"].as_str().unwrap_or("").to_owned();
            answer_for(&msg, &method, &tool, &msg["params"]["arguments"])
        };
        let event = format!("event: message\n{}", sse_event(None, &answer.to_string()));
        let delay = msg["params"]["arguments"]["ms"].as_u64().unwrap_or(0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = tx.send(event);
        });
    }
    StatusCode::ACCEPTED.into_response()
}
