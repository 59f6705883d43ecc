//! The mock's Streamable HTTP endpoint, `/mcp`: sessions, JSON or SSE answers, scripted tools,
//! server-to-client requests, cut streams resumed on GET, and the stateless-only refusals.

use super::{MockState, json_response, result, sse_event, sse_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The refusal for a request without a live session, when the mock hands out sessions.
pub(super) fn check_session(state: &MockState, headers: &HeaderMap) -> Option<Response> {
    if !state.opts.lock().unwrap().sessions {
        return None;
    }
    let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
        return Some((StatusCode::BAD_REQUEST, "missing session").into_response());
    };
    if !state.sessions.lock().unwrap().contains(id) {
        let body = json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}});
        return Some(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response(),
        );
    }
    None
}

/// POST /mcp: `initialize` opens a session; tools named `status`, `slow`, `progress`, `ask`,
/// `cut`, `multiline` and `big` script the reply (see [`answer_for`]).
pub(super) async fn post(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let opts = state.opts.lock().unwrap().clone();
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad json").into_response(),
    };
    state.record("POST", "/mcp", &headers, msg.clone());
    if opts.sse_only {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if opts.stateless_only {
        let refuse = |status: StatusCode, code: i64, message: &str| {
            let body = json!({"jsonrpc":"2.0","id": null,"error":{"code": code,"message": message,"data":{"supported":["2026-07-28"]}}});
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        };
        if headers
            .get("mcp-protocol-version")
            .is_none_or(|v| v != "2026-07-28")
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                -32022,
                "Unsupported protocol version",
            );
        }
        if msg["method"] != "ping" {
            return refuse(StatusCode::NOT_FOUND, -32601, "Method not found");
        }
    }
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    if method == "initialize" {
        let session = opts.sessions.then(|| format!("sess-{}", state.next()));
        if let Some(s) = &session {
            state.sessions.lock().unwrap().insert(s.clone());
        }
        let answer = result(
            &msg["id"],
            json!({
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mock", "version": "1"}
            }),
        );
        if opts.sse {
            let (tx, rx) = mpsc::unbounded_channel();
            tx.send(sse_event(Some("init-1"), &answer.to_string()))
                .unwrap();
            let mut resp = sse_response(rx);
            if let Some(s) = &session {
                resp.headers_mut()
                    .insert("mcp-session-id", s.parse().unwrap());
            }
            return resp;
        }
        return json_response(&answer, session.as_deref());
    }
    if let Some(resp) = check_session(&state, &headers) {
        return resp;
    }
    if msg.get("method").is_none() {
        // The client's answer to one of the mock's requests.
        let key = msg["id"].to_string();
        if let Some(tx) = state.client_answers.lock().unwrap().remove(&key) {
            let _ = tx.send(msg.clone());
        }
        return StatusCode::ACCEPTED.into_response();
    }
    if msg.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    let id = msg["id"].clone();
    let tool = msg["params"]["name"].as_str().unwrap_or("").to_owned();
    let args = msg["params"]["arguments"].clone();
    match (method.as_str(), tool.as_str()) {
        ("tools/call", "status") => {
            let code = args["code"].as_u64().unwrap_or(500) as u16;
            let mut resp = (StatusCode::from_u16(code).unwrap(), "no").into_response();
            if code == 401 {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer resource_metadata=\"http://x/.well-known\""
                        .parse()
                        .unwrap(),
                );
            }
            return resp;
        }
        ("tools/call", "pretty_error") => {
            // A refusal whose body is a pretty-printed JSON-RPC error (status from `code`).
            let code = args["code"].as_u64().unwrap_or(400) as u16;
            let body = json!({"jsonrpc":"2.0","id": id,"error":{"code":-32602,"message":"bad\nargs","data":{"why":["a","b"]}}});
            return (
                StatusCode::from_u16(code).unwrap(),
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string_pretty(&body).unwrap(),
            )
                .into_response();
        }
        ("tools/call", "pretty") if !opts.sse => {
            // A 2xx JSON answer, pretty-printed.
            let body = answer_for(&msg, &method, &tool, &args);
            return (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string_pretty(&body).unwrap(),
            )
                .into_response();
        }
        ("tools/call", "slow") => {
            tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(500))).await;
            state.slow_done.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    if !opts.sse {
        return json_response(&answer_for(&msg, &method, &tool, &args), None);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let st = state.clone();
    tokio::spawn(async move {
        let n = st.next();
        match tool.as_str() {
            "progress" => {
                let token = msg["params"]["_meta"]["progressToken"].clone();
                for i in 1..=3 {
                    let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": token, "progress": i, "total": 3}});
                    let _ = tx.send(sse_event(Some(&format!("{n}-{i}")), &note.to_string()));
                }
            }
            "ask" => {
                let ask_id = format!("srv-{n}");
                let (atx, arx) = oneshot::channel();
                st.client_answers
                    .lock()
                    .unwrap()
                    .insert(json!(ask_id).to_string(), atx);
                let ask = json!({"jsonrpc":"2.0","id": ask_id,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}});
                let _ = tx.send(sse_event(Some(&format!("{n}-0")), &ask.to_string()));
                let answer = tokio::time::timeout(Duration::from_secs(5), arx).await;
                let said = answer.ok().and_then(|a| a.ok()).unwrap_or(Value::Null);
                let done = result(&id, json!({"clientSaid": said["result"]}));
                let _ = tx.send(sse_event(Some(&format!("{n}-1")), &done.to_string()));
                return;
            }
            "cut" => {
                // Priming event, then close after `retry`: the answer comes on GET + Last-Event-ID.
                let prime = format!("{n}-0");
                st.cut.lock().unwrap().insert(
                    prime.clone(),
                    answer_for(&msg, &method, &tool, &args).to_string(),
                );
                let retry = args["retry"].as_u64().unwrap_or(100);
                let _ = tx.send(format!("id: {prime}\nretry: {retry}\ndata:\n\n"));
                return;
            }
            "multiline" => {
                let pretty =
                    serde_json::to_string_pretty(&answer_for(&msg, &method, &tool, &args)).unwrap();
                let _ = tx.send(sse_event(Some(&format!("{n}-1")), &pretty));
                return;
            }
            _ => {}
        }
        let done = answer_for(&msg, &method, &tool, &args);
        let _ = tx.send(sse_event(Some(&format!("{n}-9")), &done.to_string()));
    });
    sse_response(rx)
}

/// The answer to any request: tools echo their arguments, `big` returns `n` bytes of text, any
/// other method is echoed back so unknown methods can be seen to pass.
pub(super) fn answer_for(msg: &Value, method: &str, tool: &str, args: &Value) -> Value {
    let id = &msg["id"];
    match (method, tool) {
        ("tools/call", "big") => {
            let n = args["n"].as_u64().unwrap_or(0) as usize;
            result(
                id,
                json!({"content":[{"type":"text","text": "x".repeat(n)}]}),
            )
        }
        ("tools/call", _) => result(
            id,
            json!({"content":[{"type":"text","text": tool}], "arguments": args}),
        ),
        ("ping", _) => result(id, json!({})),
        _ => result(id, json!({"method": method, "params": msg["params"]})),
    }
}

/// GET /mcp: the server's stream, or the rest of a cut response after `Last-Event-ID`.
pub(super) async fn get(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("GET", "/mcp", &headers, Value::Null);
    let opts = state.opts.lock().unwrap().clone();
    if !opts.get_stream || opts.sse_only {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if let Some(resp) = check_session(&state, &headers) {
        return resp;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    if let Some(answer) = last.and_then(|l| state.cut.lock().unwrap().remove(l)) {
        let last = last.unwrap_or_default();
        let _ = tx.send(sse_event(Some(&format!("{last}-r")), &answer));
        drop(tx);
        return sse_response(rx);
    }
    state.push.lock().unwrap().push(tx);
    sse_response(rx)
}

/// DELETE /mcp: ends the session.
pub(super) async fn delete(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.record("DELETE", "/mcp", &headers, Value::Null);
    if let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        state.sessions.lock().unwrap().remove(id);
    }
    StatusCode::OK.into_response()
}
