//! HTTP plumbing every route shares: the [`Refusal`] a handler returns for a bad request (a
//! status, usually a JSON-RPC error body, and the headers that go with it), JSON and event-stream
//! responses, the Accept and Content-Type checks, and reading a bounded body as JSON-RPC.

use crate::jsonrpc::{self, Message};
use crate::serve::app::CreateError;
use crate::wire::{self, SESSION_ID};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A request the gateway will not serve, as the response that says so.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    /// A JSON body (usually a JSON-RPC error); `None` for a bare status.
    body: Option<Bytes>,
    /// Extra headers (`Allow`, `Retry-After`, `WWW-Authenticate`).
    headers: Vec<(header::HeaderName, &'static str)>,
}

impl Refusal {
    /// A JSON-RPC error with `id: null` made by the bridge.
    pub fn rpc(status: StatusCode, code: i64, message: &str) -> Refusal {
        let data = wire::source_only();
        Refusal::json(
            status,
            jsonrpc::error_response(None, code, message, Some(data)),
        )
    }

    /// A finished JSON body.
    pub fn json(status: StatusCode, body: Bytes) -> Refusal {
        Refusal {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    /// A status with no body.
    pub fn status(status: StatusCode) -> Refusal {
        Refusal {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header with a fixed value.
    pub fn with(mut self, name: header::HeaderName, value: &'static str) -> Refusal {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = match self.body {
            Some(body) => json(self.status, body),
            None => self.status.into_response(),
        };
        for (name, value) in self.headers {
            resp.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        resp
    }
}

impl From<CreateError> for Refusal {
    fn from(e: CreateError) -> Refusal {
        match e {
            CreateError::Full(_) | CreateError::ShuttingDown => Refusal::rpc(
                StatusCode::SERVICE_UNAVAILABLE,
                jsonrpc::BRIDGE_ERROR,
                &e.to_string(),
            )
            .with(header::RETRY_AFTER, "5"),
            CreateError::Spawn(_) => Refusal::rpc(
                StatusCode::BAD_GATEWAY,
                jsonrpc::BRIDGE_ERROR,
                &e.to_string(),
            ),
        }
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `text/event-stream` response, naming the session when it was just created.
pub fn sse(body: Body, session_id: Option<&str>) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    name_session(&mut resp, session_id);
    resp
}

/// Adds the session header to a response that created the session.
pub fn name_session(resp: &mut Response, session_id: Option<&str>) {
    if let Some(id) = session_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        resp.headers_mut().insert(SESSION_ID, id);
    }
}

/// Whether the request's Content-Type is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// What a request's Accept header allows. No header allows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    /// `application/json`.
    pub json: bool,
    /// `text/event-stream`.
    pub sse: bool,
}

impl Accepts {
    /// Reads the Accept header.
    pub fn of(headers: &HeaderMap) -> Accepts {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Accepts {
                json: true,
                sse: true,
            };
        };
        let mut out = Accepts {
            json: false,
            sse: false,
        };
        for item in accept.split(',') {
            let mime = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match mime.as_str() {
                "*/*" => (out.json, out.sse) = (true, true),
                "application/*" | "application/json" => out.json = true,
                "text/*" | "text/event-stream" => out.sse = true,
                _ => {}
            }
        }
        out
    }

    /// Whether neither answer form is allowed.
    pub fn neither(&self) -> bool {
        !self.json && !self.sse
    }
}

/// Bytes held in request bodies across every request at once, bounded by `--max-body-total`.
#[derive(Debug)]
pub struct BodyBudget {
    held: AtomicUsize,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            held: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Bytes one body holds against the [`BodyBudget`], given back when the last reference to the
/// body's buffer is dropped (the buffer owns it, see [`read_body`]).
#[derive(Debug)]
struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Takes `more` bytes from the budget; `false` (nothing taken) when they do not fit.
    fn grow(&mut self, more: usize) -> bool {
        let b = &self.budget;
        let taken = b
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|&n| n <= b.max)
            });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }

    /// Gives back what is held beyond `bytes`.
    fn shrink_to(&mut self, bytes: usize) {
        if let Some(extra) = self.bytes.checked_sub(bytes) {
            self.budget.held.fetch_sub(extra, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A body's buffer and the budget it holds, as one owner for [`Bytes::from_owner`].
struct Held {
    buf: Vec<u8>,
    _reservation: Option<Reservation>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

/// Reads a body up to `limit` bytes into one buffer, enforcing the limit while reading (413
/// past it) and the global budget the guard put in the request's extensions (503 past it).
/// Chunk boundaries do not matter: each chunk is copied and released at once.
async fn read_body(
    limit: usize,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::rpc(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            &format!("request body larger than --max-body ({limit} bytes)"),
        )
    };
    let busy = || {
        Refusal::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::BRIDGE_ERROR,
            "too many request bytes in flight (--max-body-total); try again later",
        )
        .with(header::RETRY_AFTER, "1")
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut reservation = parts
        .extensions
        .get::<Arc<BodyBudget>>()
        .map(|budget| Reservation {
            budget: budget.clone(),
            bytes: 0,
        });
    // A declared length is reserved (and allocated) up front; a chunked body grows.
    let first = declared.map_or(0, |n| n as usize);
    if let Some(r) = reservation.as_mut()
        && !r.grow(first)
    {
        return Err(busy());
    }
    let mut buf: Vec<u8> = Vec::with_capacity(first);
    let mut body = body.into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::rpc(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                &format!("cannot read the request body: {e}"),
            )
        })?;
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(too_large());
        }
        if len > buf.capacity() {
            // Grow by doubling (bounded by the limit) and reserve what the buffer will hold.
            let cap = len.max(buf.capacity() * 2).max(8 * 1024).min(limit);
            if let Some(r) = reservation.as_mut()
                && !r.grow(cap.saturating_sub(r.bytes))
            {
                return Err(busy());
            }
            buf.reserve_exact(cap - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.capacity() - buf.len() > 64 * 1024 {
        // Large buffers are mapped pages: shrinking them gives memory back without a copy.
        buf.shrink_to_fit();
    }
    if let Some(r) = reservation.as_mut() {
        r.shrink_to(buf.capacity());
    }
    Ok(Bytes::from_owner(Held {
        buf,
        _reservation: reservation,
    }))
}

/// Reads the body (up to `limit`, the `--max-body`) and parses it as a JSON-RPC message: 413 or
/// 400 (-32700, -32600) otherwise.
pub async fn read_message(limit: usize, req: Request) -> Result<Message, Refusal> {
    let (parts, body) = req.into_parts();
    read_message_parts(limit, &parts, body).await
}

/// [`read_message`] for a request already split, so that its headers need no copy.
pub async fn read_message_parts(
    limit: usize,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Message, Refusal> {
    let body = read_body(limit, parts, body).await?;
    jsonrpc::parse(body)
        .map_err(|e| Refusal::rpc(StatusCode::BAD_REQUEST, e.code(), &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        let both = Accepts {
            json: true,
            sse: true,
        };
        let mut h = HeaderMap::new();
        assert_eq!(Accepts::of(&h), both);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert_eq!(Accepts::of(&h), both);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9"),
        );
        let json_only = Accepts::of(&h);
        assert!(json_only.json && !json_only.sse);
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert!(Accepts::of(&h).neither());
    }

    #[test]
    fn a_refusal_carries_its_status_body_and_headers() {
        let resp = Refusal::rpc(StatusCode::SERVICE_UNAVAILABLE, -32000, "full")
            .with(header::RETRY_AFTER, "5")
            .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let bare = Refusal::status(StatusCode::NOT_ACCEPTABLE).into_response();
        assert!(bare.headers().get(header::CONTENT_TYPE).is_none());
    }
}
