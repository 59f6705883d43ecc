//! The wire vocabulary both modes share: header names, protocol revisions, JSON-RPC error codes,
//! the bridge's own error object ([`BridgeError`]), and the few fields of a message the bridge
//! reads beyond `id` and `method`. Neither mode spells a header or an error code by hand.

mod error;
pub mod stateless;

pub use error::{BridgeError, Reason, SOURCE, source_only};

use crate::jsonrpc::Id;

/// Names a Streamable HTTP session (handshake revisions).
pub const SESSION_ID: &str = "mcp-session-id";
/// The protocol revision of a request: negotiated, or (2026-07-28) the request's own.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// 2026-07-28: the request's method, mirrored from the body.
pub const METHOD: &str = "mcp-method";
/// 2026-07-28: the tool, prompt or resource a request names, mirrored from the body.
pub const NAME: &str = "mcp-name";
/// 2026-07-28: prefix of the headers that mirror a tool's `x-mcp-header` arguments.
pub const PARAM_PREFIX: &str = "mcp-param-";
/// The bridge's own: the session key `connect --session-key` sends with every request, which
/// picks the child of a `serve --scope per-key` (scoped to the client's identity; not a secret).
pub const SESSION_KEY: &str = "mcp-bridge-session-key";
/// Resumes an SSE stream after the event with this id.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The stateless revision this bridge implements.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Revisions that open with the `initialize` handshake, oldest first.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// -32700: the text is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// -32600: JSON that is not a JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;
/// -32601: unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// -32602: invalid params (also a missing or malformed 2026-07-28 `_meta` envelope).
pub const INVALID_PARAMS: i64 = -32602;
/// -32603: internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// -32000, of the implementation-defined range: errors the bridge itself makes (the transport
/// could not deliver a request or could not get its answer).
pub const BRIDGE_ERROR: i64 = -32000;
/// -32001: the Streamable HTTP session is unknown.
pub const SESSION_NOT_FOUND: i64 = -32001;
/// -32020 (2026-07-28): a request header is missing, malformed or disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// -32021 (2026-07-28): the request needs a client capability it did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// -32022 (2026-07-28): the protocol version is not supported.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// The codes by which a 2026-07-28 server shows it understood the request's revision.
pub const STATELESS_ERRORS: [i64; 3] = [HEADER_MISMATCH, MISSING_CAPABILITY, UNSUPPORTED_VERSION];

/// The `result.protocolVersion` of an answer to `initialize`.
pub fn initialize_version(answer: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: Option<InitResult>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InitResult {
        protocol_version: Option<String>,
    }
    serde_json::from_slice::<Answer>(answer)
        .ok()?
        .result?
        .protocol_version
}

/// Longest session key accepted.
pub const SESSION_KEY_MAX: usize = 128;

/// Whether `key` is a session key both sides accept: 1 to [`SESSION_KEY_MAX`] characters of
/// letters, digits and `-._:@+=/`.
pub fn valid_session_key(key: &str) -> bool {
    (1..=SESSION_KEY_MAX).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:@+=/".contains(&b))
}

/// The `params.requestId` of a `notifications/cancelled`.
pub fn cancelled_id(raw: &[u8]) -> Option<Id> {
    #[derive(serde::Deserialize)]
    struct Note<'a> {
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params<'a> {
        #[serde(borrow)]
        request_id: Option<&'a serde_json::value::RawValue>,
    }
    let note: Note<'_> = serde_json::from_slice(raw).ok()?;
    Some(Id(note.params?.request_id?.get().trim().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_initialize_version() {
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#;
        assert_eq!(initialize_version(answer).as_deref(), Some("2025-06-18"));
        assert_eq!(initialize_version(br#"{"id":1,"error":{}}"#), None);
        assert_eq!(initialize_version(b"not json"), None);
    }

    #[test]
    fn session_keys() {
        assert!(valid_session_key("sandbox-7.a:b@c+d=e/f"));
        assert!(!valid_session_key(""));
        assert!(!valid_session_key("with space"));
        assert!(!valid_session_key("ümlaut"));
        assert!(!valid_session_key(&"k".repeat(SESSION_KEY_MAX + 1)));
    }

    #[test]
    fn reads_the_cancelled_id() {
        let note =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": "a"}}"#;
        assert_eq!(cancelled_id(note), Some(Id(r#""a""#.into())));
        assert_eq!(cancelled_id(br#"{"method":"x","params":{}}"#), None);
    }
}
