//! The mock's HTTP+SSE transport (2024-11-05): an event stream on `/sse` (and `/old`) that names
//! its `/messages` endpoint, and answers sent as `message` events on that stream.

use super::streamable::answer_for;
use super::{MockState, result, sse_event, tokio_stream_from};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// POST on the event-stream path: an old server's 405.
pub(super) async fn refuse(
    State(state): State<Arc<MockState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    state.record("POST", uri.path(), &headers, Value::Null);
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

/// GET /sse: the event stream, opened by an `endpoint` event naming where to POST.
pub(super) async fn get(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("GET", "/sse", &headers, Value::Null);
    let id = format!("sse-{}", state.next());
    let (tx, rx) = mpsc::unbounded_channel();
    let endpoint = if state.opts.lock().unwrap().foreign_endpoint {
        format!("http://127.0.0.2:9/messages?sessionId={id}")
    } else {
        format!("/messages?sessionId={id}")
    };
    tx.send(format!("event: endpoint\ndata: {endpoint}\n\n"))
        .unwrap();
    state.sse_streams.lock().unwrap().insert(id, tx);
    let mut kill = state
        .sse_kill
        .lock()
        .unwrap()
        .get_or_insert_with(|| tokio::sync::broadcast::channel(4).0)
        .subscribe();
    let stream = tokio_stream_from(rx)
        .take_until(async move {
            let _ = kill.recv().await;
        })
        .map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// POST /messages?sessionId=…: answers arrive on the session's event stream.
pub(super) async fn post(
    State(state): State<Arc<MockState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad json").into_response(),
    };
    state.record("POST", "/messages", &headers, msg.clone());
    let session = q.get("sessionId").cloned().unwrap_or_default();
    let Some(tx) = state.sse_streams.lock().unwrap().get(&session).cloned() else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    if msg["method"] == "initialize"
        && state
            .refuse_initialize
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "not now").into_response();
    }
    if msg.get("method").is_some() && msg.get("id").is_some() {
        let method = msg["method"].as_str().unwrap_or("").to_owned();
        let answer = if method == "initialize" {
            result(
                &msg["id"],
                json!({"protocolVersion": "2024-11-05", "capabilities": {}, "serverInfo": {"name": "sse-mock", "version": "1"}}),
            )
        } else {
            let tool = msg["params"]["name"].as_str().unwrap_or("").to_owned();
            answer_for(&msg, &method, &tool, &msg["params"]["arguments"])
        };
        let event = format!("event: message\n{}", sse_event(None, &answer.to_string()));
        let delay = msg["params"]["arguments"]["ms"].as_u64().unwrap_or(0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = tx.send(event);
        });
    }
    StatusCode::ACCEPTED.into_response()
}
