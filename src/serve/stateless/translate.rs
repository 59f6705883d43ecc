//! Serving a 2026-07-28 client from a child of the handshake era: what the bridge adds to or
//! takes from each message so that both sides get what their revision promises. Requests lose
//! the `io.modelcontextprotocol/*` envelope (such a child refuses or ignores it); results gain
//! `resultType`, the cache fields and the server's identity; error codes the stateless revision
//! retired or reserved are mapped; and `server/discover` is answered from the `initialize` result.

use crate::wire::stateless::SERVER_INFO_KEY;
use crate::wire::{INTERNAL_ERROR, INVALID_PARAMS, SOURCE, STATELESS_VERSION};
use serde_json::{Map, Value, json};

/// What the bridge learned from initializing a handshake-era child.
#[derive(Debug, Clone)]
pub struct HandshakeInfo {
    /// The revision the child agreed to.
    pub protocol: String,
    /// Its `capabilities`.
    pub capabilities: Value,
    /// Its `serverInfo`.
    pub server_info: Value,
    /// Its `instructions`, if any.
    pub instructions: Option<Value>,
}

impl HandshakeInfo {
    /// Reads the `result` of an `initialize` answer.
    pub fn from_result(result: &Value) -> HandshakeInfo {
        HandshakeInfo {
            protocol: result
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
            server_info: result.get("serverInfo").cloned().unwrap_or(json!({})),
            instructions: result.get("instructions").cloned(),
        }
    }
}

/// Methods of the stateless revision whose results are cacheable (`ttlMs`, `cacheScope`).
const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// Methods the handshake revisions have and 2026-07-28 does not: a 2026-07-28 client asking for
/// one gets 404/-32601 from the bridge, whatever the child would say.
pub const REMOVED: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Completes a handshake-era child's answer to `method` as a 2026-07-28 answer.
pub fn answer(msg: &mut Value, method: &str, info: &HandshakeInfo) {
    if let Some(result) = msg.get_mut("result").and_then(Value::as_object_mut) {
        complete_result(result, method, info);
    } else if let Some(err) = msg.get_mut("error").and_then(Value::as_object_mut) {
        map_error(err);
    }
}

fn complete_result(result: &mut Map<String, Value>, method: &str, info: &HandshakeInfo) {
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
    let meta = result.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry(SERVER_INFO_KEY)
            .or_insert_with(|| info.server_info.clone());
    }
}

/// -32002 (resource not found) became -32602; codes of the range 2026-07-28 reserves for the
/// spec (-32020 to -32099) cannot be passed on with a meaning they do not have there.
fn map_error(err: &mut Map<String, Value>) {
    let Some(code) = err.get("code").and_then(Value::as_i64) else {
        return;
    };
    let new = match code {
        -32002 => INVALID_PARAMS,
        -32099..=-32020 => INTERNAL_ERROR,
        _ => return,
    };
    err.insert("code".into(), json!(new));
    if new == INTERNAL_ERROR {
        let original = err.remove("data");
        err.insert(
            "data".into(),
            json!({"source": SOURCE, "childCode": code, "childData": original}),
        );
    }
}

/// The `server/discover` result the bridge gives for a handshake-era child.
pub fn discover_result(info: &HandshakeInfo) -> Value {
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": [STATELESS_VERSION],
        "capabilities": info.capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {SERVER_INFO_KEY: info.server_info},
    });
    if let Some(instr) = &info.instructions {
        result["instructions"] = instr.clone();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HandshakeInfo {
        HandshakeInfo::from_result(&json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "old", "version": "1"},
        }))
    }

    #[test]
    fn results_gain_the_fields_a_2026_client_needs() {
        let mut m = json!({"id": 1, "result": {"tools": []}});
        answer(&mut m, "tools/list", &info());
        assert_eq!(m["result"]["resultType"], "complete");
        assert_eq!(m["result"]["ttlMs"], 0);
        assert_eq!(m["result"]["cacheScope"], "private");
        assert_eq!(m["result"]["_meta"][SERVER_INFO_KEY]["name"], "old");
        let mut m = json!({"id": 1, "result": {"content": []}});
        answer(&mut m, "tools/call", &info());
        assert_eq!(m["result"]["resultType"], "complete");
        assert!(m["result"].get("ttlMs").is_none());
    }

    #[test]
    fn retired_and_reserved_codes_are_mapped() {
        let mut m = json!({"id": 1, "error": {"code": -32002, "message": "no such resource"}});
        answer(&mut m, "resources/read", &info());
        assert_eq!(m["error"]["code"], INVALID_PARAMS);
        let mut m = json!({"id": 1, "error": {"code": -32042, "message": "url", "data": 5}});
        answer(&mut m, "tools/call", &info());
        assert_eq!(m["error"]["code"], INTERNAL_ERROR);
        assert_eq!(m["error"]["data"]["childCode"], -32042);
        let mut m = json!({"id": 1, "error": {"code": -32601, "message": "nope"}});
        answer(&mut m, "foo", &info());
        assert_eq!(m["error"]["code"], -32601);
    }

    #[test]
    fn discover_is_built_from_initialize() {
        let d = discover_result(&info());
        assert_eq!(d["supportedVersions"], json!([STATELESS_VERSION]));
        assert_eq!(d["capabilities"], json!({"tools": {}}));
        assert_eq!(d["_meta"][SERVER_INFO_KEY]["version"], "1");
    }
}
