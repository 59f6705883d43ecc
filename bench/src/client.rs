//! The driver's MCP clients: a stdio child process (a bridge, or the stdio server itself), and
//! the direct connections over Streamable HTTP and legacy SSE. Each sends a request and waits for
//! the response with its id; many callers may wait at once.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// How long any one request may take before the run calls the target broken.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// One connection to the server, by whichever path is being measured.
pub enum Client {
    Stdio(StdioClient),
    Http(HttpClient),
    Sse(SseClient),
}

impl Client {
    /// Sends a request (params given as JSON text) and returns the raw response.
    pub async fn request(&self, method: &str, params: &str) -> anyhow::Result<Bytes> {
        let id = next_id();
        let msg = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let fut = async {
            match self {
                Client::Stdio(c) => c.request(id, msg).await,
                Client::Http(c) => c.post(msg, method == "initialize").await,
                Client::Sse(c) => c.request(id, msg).await,
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("{method}: no answer within {REQUEST_TIMEOUT:?}"))?
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str) -> anyhow::Result<()> {
        let msg = format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#);
        match self {
            Client::Stdio(c) => c.send(msg.into_bytes()).await,
            Client::Http(c) => c.post(msg, false).await.map(drop),
            Client::Sse(c) => c.post(msg).await,
        }
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
    method: Option<String>,
}

/// Hands a message from the server to the request waiting for it. Requests from the server get
/// the answer returned here (an empty result for `ping`, "method not found" otherwise).
fn route(pending: &Pending, line: Bytes) -> Option<Vec<u8>> {
    let env: Envelope = serde_json::from_slice(&line).ok()?;
    match (env.id, env.method) {
        (Some(id), Some(method)) => {
            let answer = if method == "ping" {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)
            } else {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"not supported by the benchmark client"}}}}"#
                )
            };
            Some(answer.into_bytes())
        }
        (Some(id), None) => {
            let waiter = id
                .as_u64()
                .and_then(|id| pending.lock().expect("pending lock").remove(&id));
            if let Some(tx) = waiter {
                let _ = tx.send(line);
            }
            None
        }
        _ => None,
    }
}

fn register(pending: &Pending, id: u64) -> oneshot::Receiver<Bytes> {
    let (tx, rx) = oneshot::channel();
    pending.lock().expect("pending lock").insert(id, tx);
    rx
}

/// A child process spoken to over its stdin and stdout, one JSON message per line.
pub struct StdioClient {
    child: Child,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    pending: Pending,
}

impl StdioClient {
    /// Starts `program args`, with its stderr going to `stderr_log`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        stderr_log: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(stderr_log)
            .with_context(|| format!("cannot create {}", stderr_log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stdin = Arc::new(tokio::sync::Mutex::new(child.stdin.take()));
        let pending: Pending = Arc::default();
        let (p, w) = (pending.clone(), stdin.clone());
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(1 << 20, stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some(mut answer) = route(&p, Bytes::from(line)) {
                    answer.push(b'\n');
                    if let Some(w) = w.lock().await.as_mut() {
                        let _ = w.write_all(&answer).await;
                    }
                }
            }
            // The process closed stdout: nobody will answer the requests still waiting.
            p.lock().expect("pending lock").clear();
        });
        Ok(StdioClient {
            child,
            stdin,
            pending,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn send(&self, mut msg: Vec<u8>) -> anyhow::Result<()> {
        msg.push(b'\n');
        let mut w = self.stdin.lock().await;
        let w = w.as_mut().context("stdin already closed")?;
        w.write_all(&msg).await.context("the process's stdin")?;
        Ok(())
    }

    async fn request(&self, id: u64, msg: String) -> anyhow::Result<Bytes> {
        let rx = register(&self.pending, id);
        self.send(msg.into_bytes()).await?;
        rx.await
            .map_err(|_| anyhow!("the process closed stdout without answering"))
    }

    /// Closes stdin, waits up to `grace` for the process to exit, then kills it.
    pub async fn close(mut self, grace: Duration) {
        self.stdin.lock().await.take();
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The driver's HTTP client: no proxy, no Nagle delay, keep-alive.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .build()?)
}

/// Streamable HTTP straight to the server: one POST per message, JSON answers.
pub struct HttpClient {
    http: reqwest::Client,
    url: String,
    session: Mutex<Option<String>>,
    /// Sent with every request (a session key, say).
    headers: Vec<(String, String)>,
}

impl HttpClient {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self::on(http_client()?, url, &[]))
    }

    /// A session over an existing client's connections (many sessions, few connections).
    pub fn on(http: reqwest::Client, url: &str, headers: &[(String, String)]) -> Self {
        HttpClient {
            http,
            url: url.to_owned(),
            session: Mutex::default(),
            headers: headers.to_vec(),
        }
    }

    async fn post(&self, msg: String, initialize: bool) -> anyhow::Result<Bytes> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(msg);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(s) = self.session.lock().expect("session lock").as_deref() {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("POST {}: {}", self.url, resp.status());
        }
        if initialize && let Some(s) = resp.headers().get("mcp-session-id") {
            *self.session.lock().expect("session lock") = Some(s.to_str()?.to_owned());
        }
        let sse = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !sse {
            return Ok(resp.bytes().await?);
        }
        // Some gateways answer every POST with an event stream: the response is its first
        // event that carries a result or an error.
        let mut body = resp.bytes_stream();
        let mut events = Events::default();
        while let Some(chunk) = body.next().await {
            events.feed(&chunk?);
            while let Some((event, data)) = events.next() {
                let env: Option<Envelope> = serde_json::from_slice(&data).ok();
                if event == "message" && env.is_some_and(|e| e.id.is_some() && e.method.is_none()) {
                    return Ok(Bytes::from(data));
                }
            }
        }
        Ok(Bytes::new())
    }
}

/// Legacy HTTP+SSE straight to the server: answers come on the GET stream.
pub struct SseClient {
    http: reqwest::Client,
    endpoint: String,
    pending: Pending,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SseClient {
    /// Opens the stream at `url` and waits for its `endpoint` event.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let http = http_client()?;
        let resp = http
            .get(url)
            .header("accept", "text/event-stream")
            .send()
            .await?
            .error_for_status()?;
        let mut body = resp.bytes_stream();
        let pending: Pending = Arc::default();
        let mut events = Events::default();
        let endpoint = 'found: loop {
            let chunk = body
                .next()
                .await
                .context("stream ended before `endpoint`")??;
            events.feed(&chunk);
            while let Some((event, data)) = events.next() {
                if event == "endpoint" {
                    break 'found String::from_utf8(data)?;
                }
            }
        };
        let base = url.split("/sse").next().unwrap_or(url);
        let endpoint = format!("{base}{endpoint}");
        let p = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(chunk)) = body.next().await {
                events.feed(&chunk);
                while let Some((event, data)) = events.next() {
                    if event == "message" {
                        route(&p, Bytes::from(data));
                    }
                }
            }
            p.lock().expect("pending lock").clear();
        });
        Ok(SseClient {
            http,
            endpoint,
            pending,
            reader,
        })
    }

    async fn post(&self, msg: String) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(msg)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("POST {}: {}", self.endpoint, resp.status());
        }
        Ok(())
    }

    async fn request(&self, id: u64, msg: String) -> anyhow::Result<Bytes> {
        let rx = register(&self.pending, id);
        self.post(msg).await?;
        rx.await.map_err(|_| anyhow!("the SSE stream ended"))
    }
}

/// Events from an SSE body. The benchmark server writes single-line data with LF line ends.
#[derive(Default)]
struct Events {
    buf: Vec<u8>,
    /// How far `buf` has been searched for the blank line, so a 10 MiB event costs one pass.
    scanned: usize,
}

impl Events {
    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Takes one complete event off the front: (event type, data).
    fn next(&mut self) -> Option<(String, Vec<u8>)> {
        let from = self.scanned.saturating_sub(1);
        let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\n\n") else {
            self.scanned = self.buf.len();
            return None;
        };
        let end = from + at;
        let rest = self.buf.split_off(end + 2);
        let block = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        let mut event = String::from("message");
        let mut data = Vec::new();
        for line in block[..end].split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"event:") {
                event = String::from_utf8_lossy(v).trim().to_owned();
            } else if let Some(v) = line.strip_prefix(b"data:") {
                data.extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
            }
        }
        Some((event, data))
    }
}
