//! Requests of the stateless 2026-07-28 revision as a client sends them to serve: the `_meta`
//! envelope, the headers a client derives from the body, and the status and error code of the
//! reply.

use super::http::{client, read_answer};
use serde_json::{Value, json};

/// The stateless revision.
pub const V: &str = "2026-07-28";

/// The `_meta` envelope every request of the revision carries.
pub fn envelope() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "serve-2026-test", "version": "0"}})
}

/// A request with the envelope.
pub fn req(id: Value, method: &str, mut params: Value) -> Value {
    params["_meta"] = envelope();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A POST with the headers a 2026-07-28 client derives, plus `extra` (which replace them).
pub async fn post(url: &str, body: &Value, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut headers = vec![
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("mcp-protocol-version", V.to_owned()),
    ];
    if let Some(m) = body["method"].as_str() {
        headers.push(("mcp-method", m.to_owned()));
    }
    let name = body["params"]["name"]
        .as_str()
        .or(body["params"]["uri"].as_str());
    if let Some(n) = name {
        headers.push(("mcp-name", n.to_owned()));
    }
    let mut rb = client().post(url).body(body.to_string());
    for (k, v) in &headers {
        if !extra.iter().any(|(ek, _)| ek.eq_ignore_ascii_case(k)) {
            rb = rb.header(*k, v);
        }
    }
    for (k, v) in extra {
        if !v.is_empty() {
            rb = rb.header(*k, *v);
        }
    }
    rb.send().await.unwrap()
}

/// Status, and the JSON-RPC error code of the body (0 when it is a result).
pub async fn status_code(resp: reqwest::Response) -> (u16, i64, Value) {
    let status = resp.status().as_u16();
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "no session ids on the stateless path"
    );
    let body = read_answer(resp).await.unwrap();
    (status, body["error"]["code"].as_i64().unwrap_or(0), body)
}

/// A tools/call request with the envelope.
pub fn call(id: i64, tool: &str, args: Value) -> Value {
    req(
        json!(id),
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
}
