//! The HTTP side of `connect`: one keep-alive client for every request (TCP or a Unix socket,
//! TLS by rustls, proxies from the environment, same-origin redirects only), sending with retries
//! while the remote is unreachable, and one log line per change of reachability.

use super::Config;
use super::outbox::Failure;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Builds the client shared by every request of this process.
pub fn build_client(config: &Config) -> anyhow::Result<reqwest::Client> {
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
    if config.url.scheme() == "http" && config.ca_cert.is_none() && !https_proxy_configured() {
        // Nothing will be verified: skip loading the system's CA store, which costs a few
        // milliseconds of every sandbox's startup.
        builder = builder.tls_certs_only(Vec::new());
    }
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!("--ca-cert {}: not a PEM certificate: {e}", path.display())
        })?;
        if certs.is_empty() {
            anyhow::bail!("--ca-cert {}: no certificate found", path.display());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

/// Whether a proxy for plain HTTP is itself reached over TLS.
fn https_proxy_configured() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| v.trim().to_ascii_lowercase().starts_with("https://"))
}

/// Parses `Name: value` header flags, expanding `${VAR}` in values from the environment.
pub fn parse_headers(specs: &[String]) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (name, value) = spec.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("--header `{}` is not `Name: value`", header_name_only(spec))
        })?;
        let name = HeaderName::try_from(name.trim()).map_err(|_| {
            anyhow::anyhow!("--header: `{}` is not a valid header name", name.trim())
        })?;
        let value = expand_env(value.trim(), |var| std::env::var(var).ok()).map_err(|var| {
            anyhow::anyhow!("--header {name}: environment variable {var} is not set")
        })?;
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            anyhow::anyhow!("--header {name}: the value has characters a header cannot carry")
        })?;
        // Keeps the value out of any Debug output (and so out of logs).
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn header_name_only(spec: &str) -> &str {
    // Never echo a whole header spec: its value may be a secret.
    spec.split_whitespace().next().unwrap_or("")
}

/// Replaces `${NAME}` with `lookup(NAME)`; `Err(NAME)` for the first unset one. `$$` is a `$`.
pub fn expand_env(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("(unclosed `${{` in `{s}`)"))?;
            let name = &body[..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

const UP: u8 = 0;
const DOWN: u8 = 1;

/// Whether the remote answered last time; a change is logged once, not every attempt.
#[derive(Clone, Default)]
pub struct Link(Arc<AtomicU8>);

impl Link {
    pub fn up(&self, target: &str) {
        if self.0.swap(UP, Ordering::Relaxed) == DOWN {
            tracing::info!("remote {target} is reachable again");
        }
    }

    pub fn down(&self, target: &str, err: &reqwest::Error) {
        if self.0.swap(DOWN, Ordering::Relaxed) == UP {
            tracing::warn!(
                "remote {target} is unreachable ({}); retrying",
                error_chain(err)
            );
        }
    }
}

/// A reqwest error with its causes, e.g. `error sending request: connection refused`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
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

/// Sends a request built by `make`, trying again while the remote cannot be connected to (the
/// request was never sent, so repeating it is safe) until `deadline`.
pub async fn send(
    link: &Link,
    target: &str,
    deadline: Instant,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, Failure> {
    let mut attempt = 0;
    loop {
        match make().send().await {
            Ok(resp) => {
                link.up(target);
                return Ok(resp);
            }
            Err(e) if e.is_connect() => {
                link.down(target, &e);
                let now = Instant::now();
                if now >= deadline {
                    return Err(Failure::new(
                        "unreachable",
                        false,
                        format!("cannot reach {target}: {}", error_chain(&e)),
                    ));
                }
                let wait = backoff(attempt, Duration::from_secs(1)).min(deadline - now);
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            Err(e) if e.is_redirect() => {
                return Err(Failure::new("redirect-refused", false, error_chain(&e)));
            }
            Err(e) => {
                // Sent, or partly sent: the server may have it.
                return Err(Failure::new(
                    "send-failed",
                    true,
                    format!("request to {target} failed: {}", error_chain(&e)),
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
pub fn status_failure(resp: &reqwest::Response, target: &str) -> Failure {
    let status = resp.status();
    let mut f = Failure::new(
        "http-status",
        status.is_server_error(),
        format!("{target} answered HTTP {status}"),
    );
    f.status = Some(status.as_u16());
    if matches!(status.as_u16(), 401 | 403) {
        f.reason = "unauthorized";
        f.www_authenticate = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    f
}

/// The events of an SSE response, one at a time. `next` is cancel-safe: an event not yet
/// returned stays queued, and unread bytes stay in the body.
pub struct EventStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    parser: crate::sse::Parser,
    queue: std::collections::VecDeque<crate::sse::Event>,
    batch: Vec<crate::sse::Event>,
}

impl EventStream {
    pub fn new(resp: reqwest::Response, max_event: usize) -> Self {
        EventStream {
            body: resp.bytes_stream().boxed(),
            parser: crate::sse::Parser::new(max_event),
            queue: Default::default(),
            batch: Vec::new(),
        }
    }

    /// The next event; `None` when the stream ends or breaks (the reason is logged at debug).
    pub async fn next(&mut self) -> Option<crate::sse::Event> {
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
    fn expands_variables() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_env("$$5 and $x", env).unwrap(), "$5 and $x");
        assert_eq!(expand_env("${MISSING}", env).unwrap_err(), "MISSING");
    }

    #[test]
    fn header_errors_name_the_header_not_the_value() {
        let err = parse_headers(&["X-Key: ${MCP_BRIDGE_TEST_UNSET_VAR}".into()]).unwrap_err();
        assert!(err.to_string().contains("MCP_BRIDGE_TEST_UNSET_VAR"));
        let err = parse_headers(&["Authorization Bearer abc".into()]).unwrap_err();
        assert!(!err.to_string().contains("abc"));
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
