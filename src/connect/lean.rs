//! The lean client: the hot path's POSTs straight on hyper's HTTP/1.1 connections, with a
//! pre-built header template and a small pool of idle connections, skipping reqwest's per-request
//! work (default-header merging, URL re-parsing in its redirect layer, timeouts, boxing).
//!
//! It is used only where it sends exactly what reqwest would: a plain `http://` remote (TCP or
//! `--unix-socket`) with no userinfo in the URL and no proxy variable set at all. Everything else
//! (TLS, proxies) stays on reqwest. A redirect answer (3xx with `Location`) switches this process
//! back to reqwest for good and sends the request again there, where the same-origin redirect
//! policy applies: a server that redirects did not act on the request it redirected.

use super::Config;
use super::http::Outgoing;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use reqwest::ResponseBuilderExt;
use reqwest::header::{ACCEPT, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Idle connections kept for reuse (as reqwest's `pool_max_idle_per_host`).
const MAX_IDLE: usize = 64;

/// Proxy variables reqwest (hyper-util's matcher) reads; any of them set keeps reqwest in charge.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

type Sender = SendRequest<Full<Bytes>>;

/// Where the connections go.
enum Dest {
    /// Host name or IP literal (resolved as reqwest's resolver does) and port.
    Tcp(String, u16),
    Unix(PathBuf),
}

/// The lean client of one `connect` process.
pub struct Lean {
    dest: Dest,
    /// The remote's host and port: only requests to this origin take the lean path.
    host: String,
    port: u16,
    /// What reqwest adds to every request: `accept: */*`, `--header`s, `user-agent`, and `host`.
    template: HeaderMap,
    connect_timeout: Duration,
    resolver: crate::resolve::Resolver,
    idle: Mutex<Vec<Sender>>,
    /// Set once the remote has redirected: from then on reqwest sends everything.
    off: AtomicBool,
}

/// Why a request on the lean client failed.
#[derive(Debug, thiserror::Error)]
pub enum LeanError {
    /// No connection could be made: nothing was sent, trying again is safe.
    #[error("connecting failed: {0}")]
    Connect(String),
    /// The request was (perhaps partly) sent.
    #[error("error sending request: {0}")]
    Send(#[source] hyper::Error),
}

/// What a lean request came back with.
pub enum Answer {
    /// The server's response.
    Response(reqwest::Response),
    /// A redirect: the request is to be made again, through reqwest.
    Redirect,
}

impl Lean {
    /// The lean client for `config`, if it would send exactly what reqwest sends.
    pub fn for_config(config: &Config) -> Option<Arc<Lean>> {
        let url = &config.url;
        if url.scheme() != "http"
            || !url.username().is_empty()
            || url.password().is_some()
            || PROXY_VARS
                .iter()
                .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
        {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        // The same steps, in the same order, as the reqwest client's default headers.
        let mut template = HeaderMap::new();
        template.insert(ACCEPT, HeaderValue::from_static("*/*"));
        for (k, v) in config.headers.iter() {
            template.insert(k, v.clone());
        }
        template.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("mcp-bridge/", env!("CARGO_PKG_VERSION"))),
        );
        template.insert(HOST, HeaderValue::try_from(host_header).ok()?);
        let dest = match &config.unix {
            Some(path) => Dest::Unix(path.clone()),
            None => Dest::Tcp(host.to_owned(), port),
        };
        Some(Arc::new(Lean {
            dest,
            host: host.to_owned(),
            port,
            template,
            connect_timeout: config.connect_timeout,
            resolver: crate::resolve::Resolver::default(),
            idle: Mutex::default(),
            off: AtomicBool::new(false),
        }))
    }

    /// Whether requests may still take the lean path.
    pub fn on(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// A POST of `body` to `url` with the default headers and `extra` ones (which replace a
    /// default of the same name, as reqwest's do). `None` if the lean path is off, or `url` is
    /// not on the remote's origin.
    pub fn post(
        self: &Arc<Self>,
        url: &url::Url,
        extra: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Option<Outgoing> {
        if !self.on()
            || url.scheme() != "http"
            || url.host_str() != Some(&self.host)
            || url.port_or_known_default() != Some(self.port)
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let uri = hyper::Uri::try_from(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .ok()?;
        let mut req = hyper::Request::new(body);
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = uri;
        let mut headers = self.template.clone();
        for (name, value) in extra {
            headers.insert(name, value);
        }
        *req.headers_mut() = headers;
        Some(Outgoing::Lean(self.clone(), req, url.clone()))
    }

    /// Sends `req`, a request to `url`, on an idle connection, or a new one.
    pub async fn send(
        self: &Arc<Self>,
        req: hyper::Request<Bytes>,
        url: url::Url,
    ) -> Result<Answer, LeanError> {
        let mut req = req.map(Full::new);
        loop {
            let (mut sender, reused) = match self.checkout().await {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.answer(resp, sender, url)),
                Err(mut e) => match e.take_message() {
                    // Not sent: a reused connection the server had just closed. Try a new one.
                    Some(back) if reused => req = back,
                    _ => return Err(LeanError::Send(e.into_error())),
                },
            }
        }
    }

    fn answer(
        self: &Arc<Self>,
        mut resp: hyper::Response<Incoming>,
        sender: Sender,
        url: url::Url,
    ) -> Answer {
        if matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308)
            && resp.headers().contains_key(hyper::header::LOCATION)
        {
            self.off.store(true, Ordering::Relaxed);
            tracing::debug!("the remote redirects: requests take the full client from now on");
            return Answer::Redirect;
        }
        let mut sender = Some(sender);
        if resp.body().is_end_stream()
            && let Some(s) = sender.take()
        {
            self.checkin(s);
        }
        // reqwest's conversion parses a placeholder URL (a few thousand instructions per
        // response) unless the response names its URL, as one from its own client does.
        if let Some(named) = hyper::http::response::Builder::new()
            .url(url)
            .extensions_mut()
        {
            resp.extensions_mut().extend(std::mem::take(named));
        }
        let lean = self.clone();
        Answer::Response(reqwest::Response::from(resp.map(|inner| {
            reqwest::Body::wrap(Pooled {
                inner,
                sender,
                lean,
            })
        })))
    }

    /// An idle connection that is still open.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<Sender, LeanError> {
        let connecting = async {
            match &self.dest {
                Dest::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| LeanError::Connect(e.to_string()))?;
                    handshake(stream).await
                }
                Dest::Tcp(host, port) => {
                    let ips = self
                        .resolver
                        .lookup(host)
                        .await
                        .map_err(|e| LeanError::Connect(e.to_string()))?;
                    let mut last = LeanError::Connect(format!("no address for {host}"));
                    for ip in ips {
                        match tokio::net::TcpStream::connect((ip, *port)).await {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                return handshake(stream).await;
                            }
                            Err(e) => last = LeanError::Connect(format!("tcp connect error: {e}")),
                        }
                    }
                    Err(last)
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(r) => r,
            Err(_) => Err(LeanError::Connect("tcp connect error: timed out".into())),
        }
    }
}

async fn handshake<S>(stream: S) -> Result<Sender, LeanError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| LeanError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("a connection to the remote ended: {e}");
        }
    });
    Ok(sender)
}

/// A response body that gives its connection back to the pool once read to the end (dropped
/// before that, the connection closes with it).
struct Pooled {
    inner: Incoming,
    sender: Option<Sender>,
    lean: Arc<Lean>,
}

impl Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(s) = this.sender.take()
        {
            this.lean.checkin(s);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
