//! Streamable HTTP sessions on `/mcp` (POST, GET, DELETE), with the status codes the spec gives
//! for each kind of bad request. Requests of the stateless revision never reach these handlers:
//! the router sends them to `stateless`.

use crate::jsonrpc::{self, Kind, Message};
use crate::net::Peer;
use crate::serve::app::App;
use crate::serve::http::{Accepts, Refusal, is_json, json, name_session, read_message_parts, sse};
use crate::serve::policy::{self, Requester};
use crate::serve::scope::Caller;
use crate::serve::session::log::{GET_STREAM, parse_event_id};
use crate::serve::session::stream;
use crate::serve::session::{Plan, Session, Transport};
use crate::wire::{self, HANDSHAKE_VERSIONS, SESSION_ID, SESSION_NOT_FOUND};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

fn no_session_header() -> Refusal {
    Refusal::rpc(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        "missing Mcp-Session-Id header (initialize first)",
    )
}

/// The session a request names: 400 without the header, 404 (naming why) when it is gone or
/// another client's.
fn existing_session(
    app: &App,
    headers: &HeaderMap,
    requester: &Requester,
) -> Result<Arc<Session>, Refusal> {
    let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return Err(no_session_header());
    };
    match app.session(id) {
        Ok(s) if s.transport == Transport::Streamable => {
            policy::check_owner(&s, requester)?;
            check_version(headers, &s)?;
            s.touch();
            Ok(s)
        }
        Ok(_) => Err(Refusal::rpc(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "session not found (it is a legacy SSE session)",
        )),
        Err(why) => Err(Refusal::rpc(StatusCode::NOT_FOUND, SESSION_NOT_FOUND, &why)),
    }
}

fn check_version(headers: &HeaderMap, session: &Session) -> Result<(), Refusal> {
    let Some(v) = headers.get(wire::PROTOCOL_VERSION) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if HANDSHAKE_VERSIONS.contains(&v) || session.protocol().as_deref() == Some(v) {
        return Ok(());
    }
    Err(Refusal::rpc(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        &format!(
            "unsupported MCP-Protocol-Version `{v}` (supported: {})",
            HANDSHAKE_VERSIONS.join(", ")
        ),
    ))
}

/// The answer forms a POST allows: 406 for neither, 415 for a body that is not JSON.
fn check_post_headers(headers: &HeaderMap) -> Result<Accepts, Refusal> {
    let accepts = Accepts::of(headers);
    if accepts.neither() {
        return Err(Refusal::rpc(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "the Accept header must allow application/json or text/event-stream",
        ));
    }
    if !is_json(headers) {
        return Err(Refusal::rpc(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            jsonrpc::INVALID_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    Ok(accepts)
}

/// The session a POST belongs to, and whether this POST created it (an `initialize`).
async fn session_for(
    app: &Arc<App>,
    headers: &HeaderMap,
    msg: &Message,
    peer: &Peer,
    requester: &Requester,
    caller: &Caller,
) -> Result<(Arc<Session>, bool), Refusal> {
    if headers.contains_key(SESSION_ID) {
        return Ok((existing_session(app, headers, requester)?, false));
    }
    if !msg.batch && Session::is_initialize(msg.kind()) {
        let session = app
            .create(Transport::Streamable, &peer.to_string(), caller)
            .await?;
        policy::claim(&session, requester);
        return Ok((session, true));
    }
    Err(no_session_header())
}

/// POST /mcp: one client message (or a batch).
pub async fn post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Result<Response, Refusal> {
    let accepts = check_post_headers(req.headers())?;
    let (parts, body) = req.into_parts();
    let requester: Requester = parts.extensions.get().cloned().unwrap_or_default();
    let msg = read_message_parts(app.cfg.max_body, &parts, body).await?;
    let anonymous = Caller::default();
    let caller = parts.extensions.get().unwrap_or(&anonymous);
    let (session, created) =
        session_for(&app, &parts.headers, &msg, &peer, &requester, caller).await?;
    if let Kind::Notification { method } = msg.kind()
        && method == "notifications/cancelled"
        && let Some(id) = wire::cancelled_id(&msg.raw)
    {
        session.cancel(&id);
    }
    let plan = session
        .plan(&msg, accepts.sse)
        .map_err(|body| Refusal::json(StatusCode::BAD_REQUEST, body))?;
    let batch = msg.batch;
    policy::forward(&app, &session, &requester, msg).await;
    let sid = created.then_some(&*session.id);
    match plan {
        Plan::Accepted => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            name_session(&mut resp, sid);
            Ok(resp)
        }
        Plan::Stream(n) => Ok(sse(stream::answer(&app, session.clone(), n).await, sid)),
        Plan::Json(n, rx) => {
            let body = collect_json(&app, &session, n, rx, batch).await?;
            let mut resp = json(StatusCode::OK, body);
            name_session(&mut resp, sid);
            Ok(resp)
        }
    }
}

/// Waits for `n` answers (the session counts as attached meanwhile) and joins them into one
/// body: a JSON array for a batch.
async fn collect_json(
    app: &App,
    session: &Arc<Session>,
    n: usize,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    batch: bool,
) -> Result<Bytes, Refusal> {
    struct Detach<'a>(&'a Session);
    impl Drop for Detach<'_> {
        fn drop(&mut self) {
            self.0.detach();
        }
    }
    session.attach();
    let guard = Detach(session);
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
        return Err(Refusal::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::BRIDGE_ERROR,
            "the gateway is shutting down",
        ));
    }
    if !batch {
        return Ok(answers.swap_remove(0));
    }
    let mut out = Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1);
    out.push(b'[');
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(a);
    }
    out.push(b']');
    Ok(Bytes::from(out))
}

/// GET /mcp: the stream of server-initiated messages, or the resumption of any stream.
pub async fn get(State(app): State<Arc<App>>, req: Request) -> Result<Response, Refusal> {
    let headers = req.headers();
    if !Accepts::of(headers).sse || !headers.contains_key(header::ACCEPT) {
        return Err(Refusal::rpc(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "GET needs Accept: text/event-stream",
        ));
    }
    let session = existing_session(&app, headers, &Requester::of(&req))?;
    let last = match headers
        .get(wire::LAST_EVENT_ID)
        .map(|v| v.to_str().ok().and_then(parse_event_id))
    {
        None => None,
        Some(Some(pair)) => Some(pair),
        Some(None) => {
            return Err(Refusal::rpc(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "Last-Event-ID is not an id this gateway sent",
            ));
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
    Ok(sse(body, None))
}

/// DELETE /mcp: the client ends its session.
pub async fn delete(State(app): State<Arc<App>>, req: Request) -> Result<Response, Refusal> {
    let session = existing_session(&app, req.headers(), &Requester::of(&req))?;
    app.end(&session, "the client ended the session");
    Ok(StatusCode::OK.into_response())
}
