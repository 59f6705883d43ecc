//! Legacy HTTP+SSE (spec 2024-11-05): `GET /sse` opens a session whose first event is `endpoint`
//! (where to POST), then carries every message from the child; `POST /messages?sessionId=…`
//! delivers client messages (202). Closing the stream ends the session and its child.

use super::app::App;
use super::http::{create_error, read_message, rpc_error, sse};
use super::replay::GET_STREAM;
use super::stream;
use crate::jsonrpc;
use crate::net::Peer;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;

/// GET /sse.
pub async fn open(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>) -> Response {
    let session = match app.create(true, &peer.to_string()).await {
        Ok(s) => s,
        Err(e) => return create_error(e),
    };
    let mut endpoint = Vec::new();
    let url = format!("/messages?sessionId={}", session.id);
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
    sse(body, None)
}

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
) -> Response {
    let Some(id) = target.session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "missing sessionId query parameter",
        );
    };
    let session = match app.session(&id) {
        Ok(s) if s.legacy => s,
        Ok(_) => {
            return rpc_error(
                StatusCode::NOT_FOUND,
                jsonrpc::INVALID_REQUEST,
                "not a legacy SSE session",
            );
        }
        Err(why) => return rpc_error(StatusCode::NOT_FOUND, jsonrpc::INVALID_REQUEST, &why),
    };
    let msg = match read_message(&app, req).await {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    if let Err(err) = session.plan(&msg, true) {
        // Deliver the refusal where the client reads answers: on its stream.
        session.push_get(&err);
        return (StatusCode::ACCEPTED, "Accepted").into_response();
    }
    session.send(msg).await;
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
