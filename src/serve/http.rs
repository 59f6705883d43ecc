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

/// Reads a body up to `limit` bytes: 413 past it.
async fn read_body(limit: usize, req: Request) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::rpc(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            &format!("request body larger than --max-body ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = src {
                if err.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                src = err.source();
            }
            Refusal::rpc(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                &format!("cannot read the request body: {e}"),
            )
        })
}

/// Reads the body (up to `limit`, the `--max-body`) and parses it as a JSON-RPC message: 413 or
/// 400 (-32700, -32600) otherwise.
pub async fn read_message(limit: usize, req: Request) -> Result<Message, Refusal> {
    let body = read_body(limit, req).await?;
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
