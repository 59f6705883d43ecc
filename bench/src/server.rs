//! The fixed remote MCP server every figure is measured against: Streamable HTTP with JSON
//! answers on `/mcp`, legacy HTTP+SSE on `/sse` + `/messages`, and `/bench/mark`, which tells the
//! driver when the first MCP request arrived after a mark (the startup figure),
//! `/bench/bare`, a fixed small JSON answer with no MCP processing (the bare HTTP round trip),
//! and `/bench/relay`, the least an HTTP gateway to a stdio server can do (see [`relay`]).

use crate::mcp::{self, Reply};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

#[derive(Default)]
struct Server {
    next_session: AtomicU64,
    /// Legacy SSE sessions: where to send each one's `message` events.
    streams: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    /// Microseconds since the epoch of the first MCP request after the last mark (0: none yet).
    first_request: AtomicU64,
    /// The stdio server behind `/bench/relay`, started with the first request there.
    relay: tokio::sync::OnceCell<Relay>,
}

impl Server {
    fn seen(&self) {
        let _ = self.first_request.compare_exchange(
            0,
            unix_micros(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// Microseconds since the Unix epoch: the one clock the driver and this process share.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Serves on 127.0.0.1 (port 0 unless given), prints `listening ADDR` on stdout, and exits when
/// stdin closes, so the server never outlives the driver.
pub async fn run(port: u16) -> anyhow::Result<()> {
    let _ = mcp::pattern(mcp::MAX_PAYLOAD);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?);
    let app = Router::new()
        .route("/mcp", post(streamable).get(no_stream).delete(end_session))
        .route("/sse", get(sse_open))
        .route("/messages", post(sse_message))
        .route("/bench/mark", get(mark_read).post(mark_reset))
        .route("/bench/bare", post(bare))
        .route("/bench/relay", post(relay))
        .layer(DefaultBodyLimit::max(mcp::MAX_PAYLOAD * 2))
        .with_state(Arc::new(Server::default()));
    let stdin_closed = async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    };
    // As Node's and Python's asyncio servers do by default (and mcp-bridge serve does): without
    // it, Nagle holds each small event on the one SSE stream until the previous one is ACKed.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed)
        .await?;
    Ok(())
}

async fn streamable(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    s.seen();
    match mcp::handle(&body) {
        Reply::Nothing => StatusCode::ACCEPTED.into_response(),
        Reply::Answer { body, initialize } => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if initialize {
                let n = s.next_session.fetch_add(1, Ordering::Relaxed);
                if let Ok(v) = HeaderValue::from_str(&format!("bench-{n}")) {
                    headers.insert("mcp-session-id", v);
                }
            }
            (headers, body).into_response()
        }
    }
}

/// No server-initiated messages: the spec's answer for "no GET stream" is 405.
async fn no_stream() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn end_session() -> StatusCode {
    StatusCode::OK
}

async fn sse_open(State(s): State<Arc<Server>>) -> Response {
    s.seen();
    let id = format!("s{}", s.next_session.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: /messages?sessionId={id}\n\n"
    ));
    let _ = tx.try_send(endpoint);
    s.streams.lock().expect("streams lock").insert(id, tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn sse_message(
    State(s): State<Arc<Server>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    s.seen();
    let tx = q
        .get("sessionId")
        .and_then(|id| s.streams.lock().expect("streams lock").get(id).cloned());
    let Some(tx) = tx else {
        return StatusCode::NOT_FOUND;
    };
    if let Reply::Answer { body, .. } = mcp::handle(&body) {
        let mut event = Vec::with_capacity(body.len() + 24);
        event.extend_from_slice(b"event: message\ndata: ");
        event.extend_from_slice(&body);
        event.extend_from_slice(b"\n\n");
        if tx.send(Bytes::from(event)).await.is_err() {
            return StatusCode::GONE;
        }
    }
    StatusCode::ACCEPTED
}

/// The answer `/bench/bare` gives whatever it is sent: the size of a small `echo` result.
const BARE_ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}}"#;

/// A bare HTTP round trip: the body is read (as any server would) and not looked at.
async fn bare(_body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        BARE_ANSWER,
    )
        .into_response()
}

/// The stdio server (this program's `stdio-server`) behind `/bench/relay`.
struct Relay {
    /// Its stdin, held while a request is written and its place in `waiting` taken.
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    /// Who waits for each answer still to come, in the order the requests were written: the
    /// stdio server answers in order, so no id is read.
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<Bytes>>>>,
    _child: tokio::process::Child,
}

impl Relay {
    fn start() -> std::io::Result<Relay> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("stdio-server")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the stdio server has no pipes"));
        };
        let waiting: Arc<Mutex<VecDeque<oneshot::Sender<Bytes>>>> = Arc::default();
        let answers = waiting.clone();
        tokio::spawn(async move {
            let mut out = tokio::io::BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match out.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => {
                        // The stdio server is gone: whoever still waits gets 502, not a hang.
                        answers.lock().expect("relay queue").clear();
                        break;
                    }
                    Ok(_) => {}
                }
                line.pop();
                let next = answers.lock().expect("relay queue").pop_front();
                if let Some(tx) = next {
                    let _ = tx.send(Bytes::copy_from_slice(&line));
                }
            }
        });
        Ok(Relay {
            stdin: tokio::sync::Mutex::new(stdin),
            waiting,
            _child: child,
        })
    }
}

/// The least any HTTP gateway to a stdio MCP server does: the body goes to the one stdio server
/// as a line (one write) and its answer line comes back as the response, with nothing read,
/// checked, routed or recorded. Its distance from the bare round trip is what a pipe hop and a
/// second process cost on this machine. The benchmark's requests carry `"id":` and its
/// notifications do not; a notification gets 202 without waiting, as the server answers none.
async fn relay(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let Ok(relay) = s.relay.get_or_try_init(|| async { Relay::start() }).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut line = Vec::with_capacity(body.len() + 1);
    line.extend_from_slice(&body);
    line.push(b'\n');
    let request = body.windows(5).any(|w| w == b"\"id\":");
    let (tx, rx) = oneshot::channel();
    {
        let mut stdin = relay.stdin.lock().await;
        if request {
            relay.waiting.lock().expect("relay queue").push_back(tx);
        }
        if stdin.write_all(&line).await.is_err() {
            if request {
                // Ours is the last place taken: places are taken only under this lock.
                relay.waiting.lock().expect("relay queue").pop_back();
            }
            return StatusCode::BAD_GATEWAY.into_response();
        }
    }
    if !request {
        return StatusCode::ACCEPTED.into_response();
    }
    match rx.await {
        Ok(answer) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            answer,
        )
            .into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn mark_reset(State(s): State<Arc<Server>>) -> StatusCode {
    s.first_request.store(0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn mark_read(State(s): State<Arc<Server>>) -> String {
    s.first_request.load(Ordering::Relaxed).to_string()
}

/// The same server over stdio, for measuring `serve`: one message per line in, one answer per
/// line out, flushed whenever no more input is waiting.
pub fn run_stdio() -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let mut input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Reply::Answer { body, .. } = mcp::handle(&line) {
            output.write_all(&body)?;
            output.write_all(b"\n")?;
        }
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
    output.flush()?;
    Ok(())
}
