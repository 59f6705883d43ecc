//! The HTTP side of `connect`: one keep-alive client for every request (TCP or a Unix socket,
//! TLS by rustls, proxies from the environment, same-origin redirects only), sending with retries
//! while the remote is unreachable, and one log line per change of reachability.

use super::Config;
use super::lean::{Answer, LeanError};
use crate::jsonrpc;
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Builds the client shared by every request of this process.
pub fn build_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    let origin = config.url.origin();
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if attempt.url().origin() != origin {
            // A redirect may not carry messages (and headers with tokens) to another origin.
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!("refused a redirect to another origin: {to}"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .default_headers(config.headers.clone())
        .redirect(redirect)
        .referer(false)
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        // No getaddrinfo: a static binary resolves without NSS modules (see crate::resolve).
        .dns_resolver(Arc::new(crate::resolve::Resolver::default()))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("mcp-bridge/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.unix {
        builder = builder.unix_socket(path.as_path());
    }
    if config.url.scheme() == "http" && config.ca_certs.is_empty() && !https_proxy_configured() {
        // Nothing will be verified: skip loading the system's CA store, which costs a few
        // milliseconds of every sandbox's startup.
        builder = builder.tls_certs_only(Vec::new());
    }
    for cert in &config.ca_certs {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder.build()
}

/// Whether a proxy for plain HTTP is itself reached over TLS.
fn https_proxy_configured() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| v.trim().to_ascii_lowercase().starts_with("https://"))
}

const UP: u8 = 0;
const DOWN: u8 = 1;

/// Whether the remote answered last time; a change is logged once, not every attempt.
#[derive(Clone, Default)]
pub struct Link(Arc<AtomicU8>);

impl Link {
    /// The remote answered (logged if it had not before).
    pub fn up(&self, target: &str) {
        if self.0.swap(UP, Ordering::Relaxed) == DOWN {
            tracing::info!("remote {target} is reachable again");
        }
    }

    /// The remote could not be reached (logged if it could before).
    pub fn down(&self, target: &str, err: &(dyn std::error::Error + 'static)) {
        if self.0.swap(DOWN, Ordering::Relaxed) == UP {
            tracing::warn!(
                "remote {target} is unreachable ({}); retrying",
                error_chain(err)
            );
        }
    }
}

/// A reqwest error with its causes, e.g. `error sending request: connection refused`; the URL
/// reqwest names loses its userinfo and query.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.downcast_ref::<reqwest::Error>().and_then(|e| e.url()) {
        text = text.replace(url.as_str(), &super::config::redact_url(url.as_str()));
    }
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// Capped exponential backoff with jitter: 50 ms doubling to `cap`, each delay scaled by a random
/// factor in [0.5, 1.0] so that many bridges do not retry in step.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(50)
        .saturating_mul(1u32 << attempt.min(16))
        .min(cap);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let frac = 0.5 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 2.0;
    base.mul_f64(frac)
}

/// A request about to be sent: through reqwest, or through the lean client where that sends the
/// same bytes.
pub enum Outgoing {
    /// Through the reqwest client.
    Full(reqwest::RequestBuilder),
    /// Through [`super::lean::Lean`].
    Lean(Arc<super::lean::Lean>, hyper::Request<Bytes>, url::Url),
}

impl From<reqwest::RequestBuilder> for Outgoing {
    fn from(req: reqwest::RequestBuilder) -> Self {
        Outgoing::Full(req)
    }
}

impl Outgoing {
    /// Adds a header (this code never adds one name twice, so it replaces a default of that name,
    /// as reqwest does).
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        match self {
            Outgoing::Full(req) => Outgoing::Full(req.header(name, value)),
            Outgoing::Lean(lean, mut req, url) => {
                req.headers_mut().insert(name, value);
                Outgoing::Lean(lean, req, url)
            }
        }
    }
}

/// Why a request failed, by what it means for sending it again.
enum Failed {
    /// Never sent: repeating it is safe.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// A redirect reqwest's policy refused.
    Redirect(reqwest::Error),
    /// Sent, or partly sent: the server may have it.
    Sent(Box<dyn std::error::Error + Send + Sync>),
}

/// Sends `req` once; `None` if it is to be made again (a redirect on the lean path).
async fn send_once(req: Outgoing) -> Option<Result<reqwest::Response, Failed>> {
    Some(match req {
        Outgoing::Full(req) => req.send().await.map_err(|e| {
            if e.is_connect() {
                Failed::Connect(Box::new(e))
            } else if e.is_redirect() {
                Failed::Redirect(e)
            } else {
                Failed::Sent(Box::new(e))
            }
        }),
        Outgoing::Lean(lean, req, url) => match lean.send(req, url).await {
            Ok(Answer::Response(resp)) => Ok(resp),
            // Made again for reqwest, whose redirect policy applies.
            Ok(Answer::Redirect) => return None,
            Err(e @ LeanError::Connect(_)) => Err(Failed::Connect(Box::new(e))),
            Err(e) => Err(Failed::Sent(Box::new(e))),
        },
    })
}

/// Sends a request built by `make`, trying again while the remote cannot be connected to (the
/// request was never sent, so repeating it is safe) until `deadline`.
pub async fn send(
    link: &Link,
    target: &str,
    deadline: Instant,
    make: impl Fn() -> Outgoing,
) -> Result<reqwest::Response, BridgeError> {
    let mut attempt = 0;
    loop {
        let Some(sent) = send_once(make()).await else {
            continue;
        };
        if !matches!(&sent, Err(Failed::Connect(_))) {
            super::Unsent::mark_sent();
        }
        match sent {
            Ok(resp) => {
                link.up(target);
                return Ok(resp);
            }
            Err(Failed::Connect(e)) => {
                let e: &(dyn std::error::Error + 'static) = &*e;
                link.down(target, e);
                let now = Instant::now();
                if now >= deadline {
                    return Err(BridgeError::new(
                        Reason::Unreachable,
                        false,
                        format!("cannot reach {target}: {}", error_chain(e)),
                    ));
                }
                let wait = backoff(attempt, Duration::from_secs(1)).min(deadline - now);
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            Err(Failed::Redirect(e)) => {
                return Err(BridgeError::new(
                    Reason::RedirectRefused,
                    false,
                    error_chain(&e),
                ));
            }
            Err(Failed::Sent(e)) => {
                let e: &(dyn std::error::Error + 'static) = &*e;
                return Err(BridgeError::new(
                    Reason::SendFailed,
                    true,
                    format!("request to {target} failed: {}", error_chain(e)),
                ));
            }
        }
    }
}

/// Reads a whole body, refusing one over `max` bytes.
pub async fn read_body(resp: reqwest::Response, max: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("response body is larger than the {max}-byte limit"));
    }
    let mut stream = resp.bytes_stream();
    let mut body = crate::chunks::Pieces::default();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| format!("reading the response failed: {}", error_chain(&e)))?;
        if body.len() + chunk.len() > max {
            return Err(format!("response body is larger than the {max}-byte limit"));
        }
        body.push(chunk);
    }
    Ok(body.take())
}

/// Whether a response's content type is `text/event-stream`.
pub fn is_event_stream(resp: &reqwest::Response) -> bool {
    content_type(resp).is_some_and(|ct| ct.eq_ignore_ascii_case("text/event-stream"))
}

/// The media type of a response, without parameters.
pub fn content_type(resp: &reqwest::Response) -> Option<&str> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
}

/// The failure for a non-2xx answer that carried no JSON-RPC answer of its own.
pub fn status_failure(resp: &reqwest::Response, target: &str) -> BridgeError {
    let status = resp.status();
    let mut f = BridgeError::new(
        Reason::HttpStatus,
        status.is_server_error(),
        format!("{target} answered HTTP {status}"),
    );
    f.http_status = Some(status.as_u16());
    if matches!(status.as_u16(), 401 | 403) {
        f.reason = Reason::Unauthorized;
        f.www_authenticate = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    f
}

/// Shortest and longest wait a server's `retry:` may ask for: a hostile `retry: 0` must not
/// make a reconnect loop, nor a huge one park the bridge for ever.
pub const RETRY_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));

/// A server's `retry:` (milliseconds) within [`RETRY_BOUNDS`].
pub fn clamp_retry(ms: u64) -> Duration {
    Duration::from_millis(ms).clamp(RETRY_BOUNDS.0, RETRY_BOUNDS.1)
}

/// Where a stream got to, for resuming it with `Last-Event-ID`.
#[derive(Clone, Debug, Default)]
pub struct Cursor {
    /// The id of the last event that carried one.
    pub last_id: Option<String>,
    /// How long the server asked the bridge to wait before reconnecting.
    pub retry: Option<Duration>,
}

/// What an SSE stream carries that the bridge acts on.
pub enum Data {
    /// A `message` event: one JSON-RPC message, folded to one line.
    Message(Bytes),
    /// An `endpoint` event (HTTP+SSE): where to POST messages.
    Endpoint(Bytes),
}

/// The messages of an SSE response, one at a time, keeping the [`Cursor`] up to date.
pub struct EventStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    parser: crate::sse::Parser,
    queue: std::collections::VecDeque<crate::sse::Event>,
    batch: Vec<crate::sse::Event>,
    cursor: Cursor,
    seen_any: bool,
}

impl EventStream {
    /// Reads `resp`, refusing events over `max_event` bytes.
    pub fn new(resp: reqwest::Response, max_event: usize) -> Self {
        Self::resuming(resp, max_event, Cursor::default())
    }

    /// As [`EventStream::new`], for a stream that continues where `cursor` left off.
    pub fn resuming(resp: reqwest::Response, max_event: usize, cursor: Cursor) -> Self {
        EventStream {
            body: resp.bytes_stream().boxed(),
            parser: crate::sse::Parser::new(max_event),
            queue: Default::default(),
            batch: Vec::new(),
            cursor,
            seen_any: false,
        }
    }

    /// Where the stream has got to.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Whether any event (even one without data) has arrived.
    pub fn seen_any(&self) -> bool {
        self.seen_any
    }

    /// The next message or endpoint; events of other types and without data are skipped (their
    /// id and retry still move the cursor). `None` when the stream ends or breaks (the reason is
    /// logged). Cancel-safe: an event not yet returned stays queued, unread bytes stay in the body.
    pub async fn next_message(&mut self) -> Option<Data> {
        loop {
            let mut ev = self.next_event().await?;
            self.seen_any = true;
            if let Some(id) = ev.id.take() {
                self.cursor.last_id = Some(id);
            }
            if let Some(ms) = ev.retry {
                self.cursor.retry = Some(clamp_retry(ms));
            }
            if ev.data.is_empty() {
                continue;
            }
            if ev.is_message() {
                // Most events are one line already: those pass without a copy.
                return Some(Data::Message(
                    match memchr::memchr2(b'\n', b'\r', &ev.data) {
                        Some(_) => jsonrpc::fold_lines(&ev.data),
                        None => ev.data,
                    },
                ));
            }
            if ev.event == "endpoint" {
                return Some(Data::Endpoint(ev.data));
            }
        }
    }

    async fn next_event(&mut self) -> Option<crate::sse::Event> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            match self.body.next().await? {
                Ok(chunk) => {
                    if let Err(e) = self.parser.feed(chunk, &mut self.batch) {
                        tracing::warn!("closing a stream from the server: {e}");
                        return None;
                    }
                    self.queue.extend(self.batch.drain(..));
                }
                Err(e) => {
                    tracing::debug!("stream broke: {}", error_chain(&e));
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_is_clamped() {
        assert_eq!(clamp_retry(0), Duration::from_millis(100));
        assert_eq!(clamp_retry(u64::MAX), Duration::from_secs(60));
        assert_eq!(clamp_retry(2500), Duration::from_millis(2500));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 0..40 {
            let d = backoff(attempt, Duration::from_secs(2));
            assert!(d <= Duration::from_secs(2));
            assert!(d >= Duration::from_millis(25));
        }
    }
}
