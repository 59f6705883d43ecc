//! HTTP+SSE (spec 2024-11-05, `--transport sse` on the connect side): `GET /sse` opens a session
//! whose first event is `endpoint` (where to POST), then carries every message from the child;
//! `POST /messages?sessionId=…` delivers client messages (202). Closing the stream ends the
//! session and its child.

use crate::jsonrpc;
use crate::net::Peer;
use crate::serve::app::App;
use crate::serve::http::{Refusal, read_message, sse};
use crate::serve::session::Transport;
use crate::serve::session::log::GET_STREAM;
use crate::serve::session::stream;
use axum::extract::{ConnectInfo, OriginalUri, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;

/// GET /sse.
pub async fn open(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, Refusal> {
    let session = app.create(Transport::Sse, &peer.to_string()).await?;
    let mut endpoint = Vec::new();
    // The messages endpoint sits next to this stream's route: `/messages` for `/sse`,
    // `/servers/NAME/messages` for `/servers/NAME/sse`.
    let prefix = uri.path().strip_suffix("/sse").unwrap_or("");
    let url = format!("{prefix}/messages?sessionId={}", session.id);
    crate::sse::write_event(&mut endpoint, Some("endpoint"), None, url.as_bytes());
    let (generation, cursor) = session.open_get(None);
    let body = stream::body(
        &app,
        session,
        GET_STREAM,
        generation,
        cursor,
        Some(Bytes::from(endpoint)),
    );
    Ok(sse(body, None))
}

/// The query of `POST /messages`.
#[derive(serde::Deserialize)]
pub struct Target {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// POST /messages?sessionId=….
pub async fn message(
    State(app): State<Arc<App>>,
    Query(target): Query<Target>,
    req: Request,
) -> Result<Response, Refusal> {
    let not_found = |why: &str| Refusal::rpc(StatusCode::NOT_FOUND, jsonrpc::INVALID_REQUEST, why);
    let Some(id) = target.session_id else {
        return Err(Refusal::rpc(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "missing sessionId query parameter",
        ));
    };
    let session = match app.session(&id) {
        Ok(s) if s.transport == Transport::Sse => s,
        Ok(_) => return Err(not_found("not a legacy SSE session")),
        Err(why) => return Err(not_found(&why)),
    };
    let msg = read_message(app.cfg.max_body, req).await?;
    match session.plan(&msg, true) {
        Ok(_) => session.send(msg).await,
        // Deliver the refusal where the client reads answers: on its stream.
        Err(err) => session.push_get(&err),
    }
    Ok((StatusCode::ACCEPTED, "Accepted").into_response())
}
