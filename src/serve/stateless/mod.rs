//! `/mcp` for the stateless 2026-07-28 revision: a request whose `MCP-Protocol-Version` is not
//! a handshake revision comes here. No sessions: each POST is checked on its own (the order and
//! codes of the spec's server rules, as the reference SDK applies them), answered by the
//! stateless child, and sent back as JSON or, once progress arrives or the answer is slow, as an
//! event stream. A client that closes the stream before the answer cancels the request.

mod child;
mod listen;
mod outgoing;
mod probe;

pub use child::{Era as ChildEra, StatelessChild};
pub use probe::Verdict;
pub use translate::HandshakeInfo;
mod stream;
mod tools;
mod translate;

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::serve::app::App;
use crate::serve::http::{Accepts, Refusal, is_json, json, read_message, sse};
use crate::serve::policy::{self, Requester, Ticket};
use crate::serve::scope::{Caller, ChildKey, Era, Route, route};
use crate::serve::stateless::child::Out;
use crate::serve::stateless::tools::check_params;
use crate::wire::stateless::{CAPABILITIES_KEY, VERSION_KEY, decode_header_value};
use crate::wire::{
    self, BridgeError, HANDSHAKE_VERSIONS, HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND,
    Reason, STATELESS_VERSION, UNSUPPORTED_VERSION,
};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use translate::REMOVED;

/// How long an answer may take before the reply commits to an event stream.
const JSON_WINDOW: Duration = Duration::from_secs(15);

/// Whether a request belongs to the stateless revision: it names a protocol version, and not one
/// of the handshake revisions (unknown versions come here too and are refused with -32022).
pub fn is_stateless(headers: &HeaderMap) -> bool {
    headers
        .get_all(wire::PROTOCOL_VERSION)
        .iter()
        .any(|v| !HANDSHAKE_VERSIONS.contains(&v.to_str().unwrap_or("")))
}

/// A JSON-RPC error response whose HTTP status follows the revision's table.
fn fail(id: Option<&Id>, code: i64, message: &str, data: Option<Value>) -> Refusal {
    let body = jsonrpc::error_response(id, code, message, data);
    Refusal::json(status_of_code(code), body)
}

fn status_of_code(code: i64) -> StatusCode {
    match code {
        -32700 | -32600 | -32602 | -32020 | -32021 | -32022 => StatusCode::BAD_REQUEST,
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// The HTTP status for a final answer: 200 for results, the table's status for errors.
fn status_of(raw: &[u8]) -> StatusCode {
    serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|v| v["error"]["code"].as_i64())
        .map_or(StatusCode::OK, status_of_code)
}

/// A header that must appear at most once: its value, or the -32020 answer.
fn single<'a>(headers: &'a HeaderMap, name: &str, id: &Id) -> Result<Option<&'a str>, Refusal> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(fail(
            Some(id),
            HEADER_MISMATCH,
            &format!("{name} header is given more than once"),
            None,
        ));
    }
    match first.map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(_)) => Err(fail(
            Some(id),
            HEADER_MISMATCH,
            &format!("{name} header holds characters a header value may not"),
            None,
        )),
    }
}

/// A request of the stateless revision, as far as the checks read it: the small members of
/// `params` parsed, `arguments` (which may be large) kept as text, the rest skipped.
struct Call {
    id: Id,
    method: String,
    params: Params,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Params {
    #[serde(rename = "_meta")]
    meta: Value,
    name: Option<Value>,
    uri: Option<Value>,
    notifications: Value,
    arguments: Option<Box<serde_json::value::RawValue>>,
}

#[derive(serde::Deserialize)]
struct Body {
    method: Option<String>,
    params: Option<Params>,
}

/// The method, Accept and Content-Type checks, before the body is read.
fn check_transport(req: &Request) -> Result<Accepts, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::status(StatusCode::METHOD_NOT_ALLOWED).with(header::ALLOW, "POST"));
    }
    let accepts = Accepts::of(req.headers());
    if accepts.neither() {
        return Err(Refusal::status(StatusCode::NOT_ACCEPTABLE));
    }
    if !is_json(req.headers()) {
        return Err(Refusal::status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    Ok(accepts)
}

/// The request in `msg`, or `None` for a notification the revision takes with 202.
fn call_of(msg: &Message, header_version: &str) -> Result<Option<Call>, Refusal> {
    let id = match msg.kind() {
        _ if msg.batch => {
            return Err(fail(
                None,
                jsonrpc::INVALID_REQUEST,
                "the body must be a single JSON-RPC request or notification (no batches in 2026-07-28)",
                None,
            ));
        }
        // Nothing is defined for a client to notify over HTTP in this revision; cancelling is
        // closing the request's stream.
        Kind::Notification { .. } if header_version == STATELESS_VERSION => return Ok(None),
        Kind::Notification { .. } => return Err(unsupported(None, header_version)),
        Kind::Response { .. } => {
            return Err(fail(
                None,
                jsonrpc::INVALID_REQUEST,
                "a 2026-07-28 server sends no requests, so it takes no responses",
                None,
            ));
        }
        Kind::Request { id, .. } => id.clone(),
    };
    let Ok(body) = serde_json::from_slice::<Body>(&msg.raw) else {
        return Err(fail(
            Some(&id),
            jsonrpc::INVALID_REQUEST,
            "malformed request",
            None,
        ));
    };
    Ok(Some(Call {
        id,
        method: body.method.unwrap_or_default(),
        params: body.params.unwrap_or_default(),
    }))
}

/// Every request to the stateless revision (after the Host/Origin/token checks).
pub async fn handle(app: Arc<App>, req: Request) -> Result<Response, Refusal> {
    let accepts = check_transport(&req)?;
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let headers = req.headers().clone();
    let requester = Requester::of(&req);
    let msg = read_message(app.cfg.max_body, req).await?;
    let header_version = headers
        .get(wire::PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(call) = call_of(&msg, header_version)? else {
        return Ok(StatusCode::ACCEPTED.into_response());
    };
    let listen = call.method == "subscriptions/listen";
    if listen && !accepts.sse {
        return Err(Refusal::status(StatusCode::NOT_ACCEPTABLE));
    }
    check_envelope(&headers, &call.params, &call.method, &call.id)?;
    if REMOVED.contains(&call.method.as_str()) {
        let method = json!(call.method);
        return Err(fail(
            Some(&call.id),
            METHOD_NOT_FOUND,
            "Method not found",
            Some(method),
        ));
    }
    let key = match route(app.cfg.scope, &caller, Era::Stateless) {
        Route::Child(key) => key,
        // The rule gives a stateless request no child of its own (it has no session).
        Route::OwnChild => ChildKey::Of(caller.identity, caller.key),
    };
    let rc = app.keyed.stateless(&app, key).await.map_err(|e| {
        let body = BridgeError::new(
            Reason::ChildStart,
            false,
            format!("the MCP server could not be started: {e}"),
        )
        .response(Some(&call.id));
        Refusal::json(StatusCode::BAD_GATEWAY, body)
    })?;
    let ticket = match policy::admit(&app, &requester, &msg, &rc.catalog) {
        Ok(ticket) => ticket,
        Err(refusal) => return Ok(json(status_of(&refusal), refusal)),
    };
    if call.method == "tools/call" {
        check_tool_headers(&rc, &headers, &call.params, &call.id).await?;
    }
    if let Some(info) = rc.handshake() {
        match call.method.as_str() {
            "server/discover" => {
                let result = translate::discover_result(info);
                let id: Value = serde_json::from_str(call.id.as_json()).unwrap_or(Value::Null);
                let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
                let mut body = serde_json::to_vec(&body).unwrap_or_default().into();
                if let Some(t) = ticket {
                    body = t.finish(body, &rc.catalog);
                }
                return Ok(json(StatusCode::OK, body));
            }
            "subscriptions/listen" => {
                if let Some(t) = ticket {
                    t.opened();
                }
                let (rx, guard) = listen::serve_locally(&rc, &call.params.notifications, call.id);
                return Ok(sse(
                    crate::serve::stateless::stream::body(&app, rx, guard, None),
                    None,
                ));
            }
            _ => {}
        }
    }
    answer(&app, &rc, (&msg.raw, call), accepts, listen, ticket).await
}

/// -32022, naming what is supported.
fn unsupported(id: Option<&Id>, requested: &str) -> Refusal {
    fail(
        id,
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        Some(json!({"supported": [STATELESS_VERSION], "requested": requested})),
    )
}

/// The envelope and the headers that mirror it (ladder steps: duplicates, envelope, version,
/// method, name, supported version).
fn check_envelope(
    headers: &HeaderMap,
    params: &Params,
    method: &str,
    id: &Id,
) -> Result<(), Refusal> {
    let version_h = single(headers, wire::PROTOCOL_VERSION, id)?;
    let method_h = single(headers, wire::METHOD, id)?;
    let name_h = single(headers, wire::NAME, id)?;
    let meta = &params.meta;
    let Some(version) = meta
        .get(VERSION_KEY)
        .filter(|_| meta.get(CAPABILITIES_KEY).is_some())
    else {
        return Err(fail(
            Some(id),
            INVALID_PARAMS,
            &format!(
                "params._meta must be an object carrying the required '{VERSION_KEY}' and \
                 '{CAPABILITIES_KEY}' envelope keys"
            ),
            None,
        ));
    };
    let mismatch = |what: &str| {
        Err(fail(
            Some(id),
            HEADER_MISMATCH,
            &format!("{what} header does not match the request body"),
            None,
        ))
    };
    if version.is_string() && version.as_str() != version_h {
        return mismatch("MCP-Protocol-Version");
    }
    if method_h != Some(method) {
        return mismatch("Mcp-Method");
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => params.name.as_ref(),
        "resources/read" => params.uri.as_ref(),
        _ => None,
    };
    if let Some(name) = name_field.and_then(Value::as_str)
        && name_h.and_then(decode_header_value).as_deref() != Some(name)
    {
        return mismatch("Mcp-Name");
    }
    let Some(version) = version.as_str() else {
        return Err(fail(
            Some(id),
            INVALID_PARAMS,
            &format!("'{VERSION_KEY}' must be a string"),
            None,
        ));
    };
    if version != STATELESS_VERSION {
        return Err(unsupported(Some(id), version));
    }
    Ok(())
}

async fn check_tool_headers(
    rc: &Arc<StatelessChild>,
    headers: &HeaderMap,
    params: &Params,
    id: &Id,
) -> Result<(), Refusal> {
    let Some(tool) = params.name.as_ref().and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(map) = rc.tools.params_for(rc, tool).await else {
        return Ok(());
    };
    // Only a tool that maps arguments to headers has its arguments parsed.
    let args = params
        .arguments
        .as_ref()
        .and_then(|a| serde_json::from_str(a.get()).ok())
        .unwrap_or(Value::Null);
    check_params(headers, &map, &args).map_err(|why| fail(Some(id), HEADER_MISMATCH, &why, None))
}

/// Sends the request to the child and replies with what comes back.
async fn answer(
    app: &Arc<App>,
    rc: &Arc<StatelessChild>,
    (raw, call): (&[u8], Call),
    accepts: Accepts,
    always_sse: bool,
    ticket: Option<Ticket>,
) -> Result<Response, Refusal> {
    let (mut rx, mut guard) = rc.start_watched(raw, &call.method, Some(call.id), ticket);
    if !accepts.sse {
        // Only JSON is accepted: progress has nowhere to go and is dropped.
        loop {
            let next = tokio::select! {
                m = rx.recv() => m,
                _ = app.shutdown.cancelled() => None,
            };
            match next {
                Some(Out::Answer(raw)) => {
                    guard.disarm();
                    return Ok(json(status_of(&raw), raw));
                }
                Some(_) => {}
                None => return Err(gone()),
            }
        }
    }
    let first = if always_sse || !accepts.json {
        None
    } else {
        tokio::select! {
            m = tokio::time::timeout(JSON_WINDOW, rx.recv()) => match m {
                Ok(Some(out)) => Some(out),
                Ok(None) => return Err(gone()),
                Err(_) => None,
            },
            _ = app.shutdown.cancelled() => return Err(gone()),
        }
    };
    if let Some(Out::Answer(raw)) = &first {
        guard.disarm();
        return Ok(json(status_of(raw), raw.clone()));
    }
    Ok(sse(
        crate::serve::stateless::stream::body(app, rx, guard, first),
        None,
    ))
}

fn gone() -> Refusal {
    Refusal::rpc(
        StatusCode::SERVICE_UNAVAILABLE,
        jsonrpc::BRIDGE_ERROR,
        "the gateway is shutting down or the MCP server went away",
    )
}
