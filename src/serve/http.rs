//! The Streamable HTTP endpoint `/mcp` (POST, GET, DELETE) with the status codes the spec gives
//! for each kind of bad request, plus the small helpers every route shares.

// Helpers return the finished error response as their `Err`: it is built once per refused
// request and returned straight away, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use super::app::{App, CreateError};
use super::replay::{GET_STREAM, parse_event_id};
use super::session::{Plan, Session};
use super::stateless;
use super::stream;
use crate::jsonrpc::{self, Kind, Message};
use crate::net::Peer;
use crate::wire::{self, HANDSHAKE_VERSIONS, SESSION_ID, SESSION_NOT_FOUND, cancelled_id};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;

/// A response with a JSON-RPC error body (`id: null`).
pub fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = jsonrpc::error_response(None, code, message, Some(wire::source_only()));
    json(status, body)
}

pub fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `text/event-stream` response.
pub fn sse(body: Body, session_id: Option<&str>) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = session_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        h.insert(SESSION_ID, id);
    }
    resp
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

/// What the Accept header allows: (JSON, event stream). No header allows both.
pub fn accepts(headers: &HeaderMap) -> (bool, bool) {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return (true, true);
    };
    let mut out = (false, false);
    for item in accept.split(',') {
        let mime = item
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "*/*" => out = (true, true),
            "application/*" | "application/json" => out.0 = true,
            "text/*" | "text/event-stream" => out.1 = true,
            _ => {}
        }
    }
    out
}

/// Reads a body up to the limit: 413 past it.
async fn read_body(app: &App, req: Request) -> Result<Bytes, Response> {
    let limit = app.cfg.max_body;
    let too_large = || {
        rpc_error(
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
    match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = src {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                src = err.source();
            }
            Err(rpc_error(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                &format!("cannot read the request body: {e}"),
            ))
        }
    }
}

/// Parses a body as JSON-RPC: 400 with -32700 or -32600 otherwise.
/// Reads the body (up to `--max-body`) and parses it as a JSON-RPC message: 413 or 400 otherwise.
pub async fn read_message(app: &App, req: Request) -> Result<Message, Response> {
    let body = read_body(app, req).await?;
    jsonrpc::parse(body).map_err(|e| rpc_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()))
}

/// The session a request names: 400 without the header, 404 (naming why) when it is gone.
fn existing_session(app: &App, headers: &HeaderMap) -> Result<Arc<Session>, Response> {
    let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "missing Mcp-Session-Id header (initialize first)",
        ));
    };
    match app.session(id) {
        Ok(s) if !s.legacy => {
            check_version(headers, &s)?;
            s.touch();
            Ok(s)
        }
        Ok(_) => Err(rpc_error(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "session not found (it is a legacy SSE session)",
        )),
        Err(why) => Err(rpc_error(StatusCode::NOT_FOUND, SESSION_NOT_FOUND, &why)),
    }
}

fn check_version(headers: &HeaderMap, session: &Session) -> Result<(), Response> {
    let Some(v) = headers.get(wire::PROTOCOL_VERSION) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if HANDSHAKE_VERSIONS.contains(&v) || session.protocol().as_deref() == Some(v) {
        return Ok(());
    }
    Err(rpc_error(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        &format!(
            "unsupported MCP-Protocol-Version `{v}` (supported: {})",
            HANDSHAKE_VERSIONS.join(", ")
        ),
    ))
}

pub fn create_error(e: CreateError) -> Response {
    let status = match e {
        CreateError::Full(_) | CreateError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        CreateError::Spawn(_) => StatusCode::BAD_GATEWAY,
    };
    let mut resp = rpc_error(status, jsonrpc::BRIDGE_ERROR, &e.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

/// POST /mcp: one client message (or a batch).
pub async fn post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    if stateless::is_stateless(req.headers()) {
        return stateless::handle(app, req).await;
    }
    let (json_ok, sse_ok) = accepts(req.headers());
    if !json_ok && !sse_ok {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "the Accept header must allow application/json or text/event-stream",
        );
    }
    if !is_json(req.headers()) {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            jsonrpc::INVALID_REQUEST,
            "Content-Type must be application/json",
        );
    }
    let headers = req.headers().clone();
    let msg = match read_message(&app, req).await {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let (session, created) = if headers.contains_key(SESSION_ID) {
        match existing_session(&app, &headers) {
            Ok(s) => (s, false),
            Err(resp) => return resp,
        }
    } else if !msg.batch && Session::is_initialize(msg.kind()) {
        match app.create(false, &peer.to_string()).await {
            Ok(s) => (s, true),
            Err(e) => return create_error(e),
        }
    } else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "missing Mcp-Session-Id header (initialize first)",
        );
    };
    if let Kind::Notification { method } = msg.kind()
        && method == "notifications/cancelled"
        && let Some(id) = cancelled_id(&msg.raw)
    {
        session.cancel(&id);
    }
    let plan = match session.plan(&msg, sse_ok) {
        Ok(p) => p,
        Err(body) => return json(StatusCode::BAD_REQUEST, body),
    };
    let batch = msg.batch;
    session.send(msg).await;
    let sid = created.then_some(session.id.as_str());
    match plan {
        Plan::Accepted => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            if let Some(id) = sid.and_then(|id| HeaderValue::from_str(id).ok()) {
                resp.headers_mut().insert(SESSION_ID, id);
            }
            resp
        }
        Plan::Stream(n) => {
            let sid = sid.map(str::to_owned);
            sse(stream::body(&app, session, n, 0, 0, None), sid.as_deref())
        }
        Plan::Json(n, mut rx) => {
            session.attach();
            struct Detach(Arc<Session>);
            impl Drop for Detach {
                fn drop(&mut self) {
                    self.0.detach();
                }
            }
            let guard = Detach(session.clone());
            let mut answers = Vec::with_capacity(n);
            while answers.len() < n {
                // Cancel-safe: this future is the request; dropping it drops the receiver.
                let next = tokio::select! {
                    a = rx.recv() => a,
                    _ = app.shutdown.cancelled() => None,
                };
                match next {
                    Some(a) => answers.push(a),
                    None => break,
                }
            }
            drop(guard);
            if answers.len() < n {
                return rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    jsonrpc::BRIDGE_ERROR,
                    "the gateway is shutting down",
                );
            }
            let body = if batch {
                let mut out = Vec::new();
                out.push(b'[');
                for (i, a) in answers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(a);
                }
                out.push(b']');
                Bytes::from(out)
            } else {
                answers.swap_remove(0)
            };
            let mut resp = json(StatusCode::OK, body);
            if let Some(id) = sid.and_then(|id| HeaderValue::from_str(id).ok()) {
                resp.headers_mut().insert(SESSION_ID, id);
            }
            resp
        }
    }
}

/// GET /mcp: the stream of server-initiated messages, or the resumption of any stream.
pub async fn get(State(app): State<Arc<App>>, req: Request) -> Response {
    if stateless::is_stateless(req.headers()) {
        return stateless::handle(app, req).await;
    }
    let headers = req.headers().clone();
    if !accepts(&headers).1 || !headers.contains_key(header::ACCEPT) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "GET needs Accept: text/event-stream",
        );
    }
    let session = match existing_session(&app, &headers) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let last = match headers
        .get(wire::LAST_EVENT_ID)
        .map(|v| v.to_str().ok().and_then(parse_event_id))
    {
        None => None,
        Some(Some(pair)) => Some(pair),
        Some(None) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "Last-Event-ID is not an id this gateway sent",
            );
        }
    };
    let body = match last {
        Some((stream, seq)) if stream != GET_STREAM => {
            stream::body(&app, session, stream, 0, seq, None)
        }
        other => {
            let (generation, cursor) = session.open_get(other.map(|(_, seq)| seq));
            stream::body(&app, session, GET_STREAM, generation, cursor, None)
        }
    };
    sse(body, None)
}

/// DELETE /mcp: the client ends its session.
pub async fn delete(State(app): State<Arc<App>>, req: Request) -> Response {
    if stateless::is_stateless(req.headers()) {
        return stateless::handle(app, req).await;
    }
    let headers = req.headers();
    match existing_session(&app, headers) {
        Ok(s) => {
            app.end(&s, "the client ended the session");
            StatusCode::OK.into_response()
        }
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        let mut h = HeaderMap::new();
        assert_eq!(accepts(&h), (true, true));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert_eq!(accepts(&h), (true, true));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9"),
        );
        assert_eq!(accepts(&h), (true, false));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(accepts(&h), (false, false));
    }
}
