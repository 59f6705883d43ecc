//! `mcp-bridge example-server`: a small stdio MCP server built into the binary, so that a quick
//! start, a demo or `doctor`'s self-test needs nothing else. Newline-delimited JSON-RPC on stdin
//! and stdout (written through [`crate::stdio`]), the handshake-era protocol (2024-11-05 to
//! 2025-11-25). Tools: `echo`, `add`, `slow` (progress notifications, cancellable) and `counter`
//! (per-process state); one resource and one prompt.

use crate::jsonrpc::{self, Id};
use crate::stdio::{self, Line, Stdout};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Protocol revisions this server speaks, oldest first.
pub const VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The name in `serverInfo`.
pub const SERVER_NAME: &str = "mcp-bridge-example";
/// URI of the one resource.
pub const RESOURCE_URI: &str = "example://readme";
/// Largest message read from stdin.
const MAX_LINE: usize = 4 << 20;
/// JSON-RPC: method not found.
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid params.
const INVALID_PARAMS: i64 = -32602;
/// Most steps and longest step of the `slow` tool, so a caller cannot pin the server forever.
const MAX_STEPS: u64 = 100;
const MAX_STEP_MS: u64 = 10_000;

/// State shared by every request of the process.
#[derive(Default)]
struct Server {
    counter: AtomicU64,
    /// Requests still running (only `slow` takes long), by id, for `notifications/cancelled`.
    running: Mutex<HashMap<Id, CancellationToken>>,
}

/// Serves stdin/stdout until stdin ends, stdout closes, or `shutdown` is cancelled.
pub async fn run(shutdown: CancellationToken) -> anyhow::Result<()> {
    let closed = shutdown.child_token();
    let io = stdio::Stdio::process();
    let (out, writer) = Stdout::spawn(io.output, closed.clone());
    let mut lines = stdio::spawn_reader(io.input, MAX_LINE);
    let server = Arc::new(Server::default());
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let line = tokio::select! {
            _ = closed.cancelled() => break,
            line = lines.recv() => line,
        };
        let reply = match line {
            None => break,
            Some(Line::TooLong { len, .. }) => Some(jsonrpc::error_response(
                None,
                jsonrpc::INVALID_REQUEST,
                &format!("message of {len} bytes is over the {MAX_LINE}-byte limit"),
                None,
            )),
            Some(Line::Text(text)) if text.iter().all(u8::is_ascii_whitespace) => None,
            Some(Line::Text(text)) => handle_line(&server, &out, &tasks, &text),
        };
        if let Some(reply) = reply
            && !out.send(reply).await
        {
            break;
        }
    }
    // Let running calls finish (a client that closes stdin still wants its answers).
    tasks.close();
    tokio::select! {
        _ = tasks.wait() => {}
        _ = closed.cancelled() => {}
    }
    drop(out);
    writer.finish(Duration::from_secs(2)).await;
    Ok(())
}

/// Answers one line at once, or starts a task that answers it later (`slow`).
fn handle_line(
    server: &Arc<Server>,
    out: &Stdout,
    tasks: &tokio_util::task::TaskTracker,
    text: &[u8],
) -> Option<Bytes> {
    let msg: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(jsonrpc::error_response(
                None,
                jsonrpc::PARSE_ERROR,
                &format!("parse error: {e}"),
                None,
            ));
        }
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A response (we send no requests) or junk without a method.
        return match msg.get("id") {
            Some(_) if msg.get("result").is_some() || msg.get("error").is_some() => None,
            _ => Some(jsonrpc::error_response(
                None,
                jsonrpc::INVALID_REQUEST,
                "not a JSON-RPC request",
                None,
            )),
        };
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let Some(id) = msg.get("id").filter(|id| id.is_string() || id.is_number()) else {
        if method == "notifications/cancelled"
            && let Some(req) = params.get("requestId")
            && let Some(token) = server.running.lock().ok()?.get(&id_of(req))
        {
            token.cancel();
        }
        return None;
    };
    let id = id_of(id);
    if method == "tools/call" && params.get("name").and_then(Value::as_str) == Some("slow") {
        let token = CancellationToken::new();
        server
            .running
            .lock()
            .ok()?
            .insert(id.clone(), token.clone());
        let (server, out) = (server.clone(), out.clone());
        tasks.spawn(async move {
            let reply = slow(&out, &params, &token).await;
            server.running.lock().map(|mut m| m.remove(&id)).ok();
            // A cancelled request gets no answer (the client has forgotten it).
            if !token.is_cancelled() {
                out.send(answer(&id, reply)).await;
            }
        });
        return None;
    }
    Some(answer(&id, dispatch(server, method, &params)))
}

fn id_of(id: &Value) -> Id {
    Id(id.to_string().into())
}

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

fn answer(id: &Id, reply: Result<Value, RpcError>) -> Bytes {
    match reply {
        Ok(result) => {
            let result = serde_json::to_string(&result).expect("a JSON value serialises");
            Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                id.as_json()
            ))
        }
        Err((code, message)) => jsonrpc::error_response(Some(id), code, &message, None),
    }
}

fn dispatch(server: &Server, method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "initialize" => Ok(initialize(params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => call_tool(server, params),
        "resources/list" => Ok(json!({ "resources": [{
            "uri": RESOURCE_URI,
            "name": "readme",
            "title": "About this example server",
            "mimeType": "text/plain",
        }]})),
        "resources/templates/list" => Ok(json!({ "resourceTemplates": [] })),
        "resources/read" => match params.get("uri").and_then(Value::as_str) {
            Some(RESOURCE_URI) => Ok(json!({ "contents": [{
                "uri": RESOURCE_URI,
                "mimeType": "text/plain",
                "text": README,
            }]})),
            Some(other) => Err((INVALID_PARAMS, format!("unknown resource `{other}`"))),
            None => Err((INVALID_PARAMS, "resources/read needs `uri`".into())),
        },
        "prompts/list" => Ok(json!({ "prompts": [{
            "name": "greet",
            "title": "Greet someone",
            "description": "A friendly greeting for NAME.",
            "arguments": [{"name": "name", "description": "Who to greet", "required": true}],
        }]})),
        "prompts/get" => get_prompt(params),
        other => Err((METHOD_NOT_FOUND, format!("method not found: {other}"))),
    }
}

const README: &str = "This is mcp-bridge's built-in example MCP server. Tools: echo, add, \
slow (sends progress), counter (per-process state). If you can read this through a bridge, the \
bridge works.";

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = match asked {
        Some(v) if VERSIONS.contains(&v) => v,
        _ => VERSIONS[VERSIONS.len() - 1],
    };
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": {}, "resources": {}, "prompts": {} },
        "serverInfo": {
            "name": SERVER_NAME,
            "title": "mcp-bridge example server",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": "A demo server: try the `add` tool, or call `counter` twice.",
    })
}

fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "description": "Returns the text it is given.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                            "required": ["text"]},
        },
        {
            "name": "add",
            "description": "Adds two numbers.",
            "inputSchema": {"type": "object", "properties": {
                "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
        },
        {
            "name": "slow",
            "description": "Takes `steps` × `delayMs` milliseconds, sending progress after each \
                            step when the request has a progressToken. Cancellable.",
            "inputSchema": {"type": "object", "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS},
                "delayMs": {"type": "integer", "minimum": 0, "maximum": MAX_STEP_MS}}},
        },
        {
            "name": "counter",
            "description": "Adds one to a counter kept by this server process and returns it: \
                            shows whether calls reach the same process.",
            "inputSchema": {"type": "object", "properties": {}},
        },
    ])
}

/// A tool result holding one text.
fn text_result(text: String, is_error: bool) -> Value {
    json!({ "content": [{"type": "text", "text": text}], "isError": is_error })
}

fn call_tool(server: &Server, params: &Value) -> Result<Value, RpcError> {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    match params.get("name").and_then(Value::as_str) {
        Some("echo") => Ok(match args.get("text").and_then(Value::as_str) {
            Some(text) => text_result(text.to_owned(), false),
            None => text_result("echo needs a string `text`".into(), true),
        }),
        Some("add") => {
            let a = args.get("a").and_then(Value::as_f64);
            let b = args.get("b").and_then(Value::as_f64);
            Ok(match (a, b) {
                (Some(a), Some(b)) => {
                    let sum = a + b;
                    let mut result = text_result(format!("{sum}"), false);
                    result["structuredContent"] = json!({ "sum": sum });
                    result
                }
                _ => text_result("add needs numbers `a` and `b`".into(), true),
            })
        }
        Some("counter") => {
            let n = server.counter.fetch_add(1, Ordering::Relaxed) + 1;
            let mut result = text_result(format!("{n}"), false);
            result["structuredContent"] = json!({ "count": n });
            Ok(result)
        }
        Some(other) => Err((INVALID_PARAMS, format!("unknown tool `{other}`"))),
        None => Err((INVALID_PARAMS, "tools/call needs `name`".into())),
    }
}

/// The `slow` tool: sleeps step by step, reporting progress, until done or cancelled.
async fn slow(out: &Stdout, params: &Value, cancel: &CancellationToken) -> Result<Value, RpcError> {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    // Absent means the default; present but not a whole number in range is refused.
    let number = |key: &str, default: u64| match args.get(key) {
        None | Some(Value::Null) => Some(default),
        Some(v) => v.as_u64(),
    };
    let (Some(steps), Some(delay)) = (number("steps", 5), number("delayMs", 100)) else {
        return Ok(text_result(
            "slow: steps and delayMs must be whole numbers".into(),
            true,
        ));
    };
    if !(1..=MAX_STEPS).contains(&steps) || delay > MAX_STEP_MS {
        return Ok(text_result(
            format!("slow takes 1..={MAX_STEPS} steps of at most {MAX_STEP_MS} ms"),
            true,
        ));
    }
    let token = params.pointer("/_meta/progressToken").cloned();
    for step in 1..=steps {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(text_result("cancelled".into(), true)),
            _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
        }
        if let Some(token) = &token {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                "progressToken": token, "progress": step, "total": steps,
                "message": format!("step {step} of {steps}")}});
            out.send(Bytes::from(note.to_string())).await;
        }
    }
    Ok(text_result(format!("done after {steps} steps"), false))
}

fn get_prompt(params: &Value) -> Result<Value, RpcError> {
    if params.get("name").and_then(Value::as_str) != Some("greet") {
        return Err((
            INVALID_PARAMS,
            "unknown prompt (there is one: `greet`)".into(),
        ));
    }
    let Some(name) = params.pointer("/arguments/name").and_then(Value::as_str) else {
        return Err((
            INVALID_PARAMS,
            "prompt `greet` needs the argument `name`".into(),
        ));
    };
    Ok(json!({
        "description": "A friendly greeting",
        "messages": [{"role": "user", "content": {"type": "text",
            "text": format!("Please say hello to {name}.")}}],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        for v in VERSIONS {
            assert_eq!(
                initialize(&json!({"protocolVersion": v}))["protocolVersion"],
                *v
            );
        }
        let newest = VERSIONS[VERSIONS.len() - 1];
        assert_eq!(
            initialize(&json!({"protocolVersion": "1999-01-01"}))["protocolVersion"],
            newest
        );
        assert_eq!(initialize(&json!({}))["protocolVersion"], newest);
    }

    #[test]
    fn tools_answer_and_refuse() {
        let s = Server::default();
        let r = call_tool(&s, &json!({"name": "add", "arguments": {"a": 2, "b": 3.5}})).unwrap();
        assert_eq!(r["structuredContent"]["sum"], 5.5);
        let r = call_tool(&s, &json!({"name": "add", "arguments": {"a": "x"}})).unwrap();
        assert_eq!(r["isError"], true);
        assert_eq!(
            call_tool(&s, &json!({"name": "nope"})).unwrap_err().0,
            INVALID_PARAMS
        );
        let c1 = call_tool(&s, &json!({"name": "counter"})).unwrap();
        let c2 = call_tool(&s, &json!({"name": "counter"})).unwrap();
        assert_eq!(
            (
                c1["structuredContent"]["count"].as_u64(),
                c2["structuredContent"]["count"].as_u64()
            ),
            (Some(1), Some(2))
        );
        assert_eq!(
            dispatch(&s, "nope/nope", &json!({})).unwrap_err().0,
            METHOD_NOT_FOUND
        );
    }
}
