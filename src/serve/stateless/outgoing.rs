//! The line a 2026-07-28 request becomes at its child, spliced into the request's raw bytes (the
//! one rewriting implementation, `crate::rewrite`; a large argument is never parsed): the
//! bridge's number as its id and progress token, and for a handshake-era child the
//! `io.modelcontextprotocol/*` envelope taken out of `params._meta` (the only member re-written,
//! and it is small).

use crate::rewrite::{self, RewriteError};
use bytes::Bytes;
use serde_json::{Map, Value};

/// Prefix of the progress tokens the bridge gives a stateless request (then its number).
pub(super) const TOKEN_PREFIX: &str = "mcp-bridge-";

const TOKEN: [&str; 3] = ["params", "_meta", "progressToken"];
const META: [&str; 2] = ["params", "_meta"];
const LOG_LEVEL: [&str; 3] = ["params", "_meta", "io.modelcontextprotocol/logLevel"];

/// A request ready for the child.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The line to send.
    pub line: Bytes,
    /// The client's progress token, as it spelled it.
    pub client_token: Option<Box<str>>,
    /// The request opted in to log messages.
    pub logs: bool,
}

/// `raw` under the bridge's number `n`; `handshake`: the child is of the handshake era.
pub(super) fn outgoing(raw: &[u8], n: u64, handshake: bool) -> Result<Outgoing, RewriteError> {
    let mut line = rewrite::splice(raw, &["id"], &n.to_string())?;
    let client_token = rewrite::get(&line, &TOKEN)?.map(Box::<str>::from);
    if client_token.is_some() {
        line = rewrite::splice(&line, &TOKEN, &format!("\"{TOKEN_PREFIX}{n}\""))?;
    }
    let logs = rewrite::get(&line, &LOG_LEVEL)?.is_some();
    if handshake
        && let Some(meta) = rewrite::get(&line, &META)?
        && let Ok(mut meta) = serde_json::from_str::<Map<String, Value>>(meta)
    {
        strip_envelope(&mut meta);
        let meta = serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into());
        line = rewrite::splice(&line, &META, &meta)?;
    }
    Ok(Outgoing {
        line,
        client_token,
        logs,
    })
}

/// Takes the 2026-07-28 envelope out of a request's `_meta` (a handshake-era child refuses or
/// ignores it), keeping `progressToken` and anything else.
pub fn strip_envelope(meta: &mut Map<String, Value>) {
    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn the_id_and_token_are_spliced_and_every_other_byte_stays() {
        let raw = br#"{"jsonrpc":"2.0", "id":"c\u0031","method":"tools/call","params":{"name":"t","arguments":{"n":1e400,"x":1.0},"_meta":{"progressToken":7,"io.modelcontextprotocol/logLevel":"info"}}}"#;
        let out = outgoing(raw, 42, false).unwrap();
        assert_eq!(
            text(&out.line),
            r#"{"jsonrpc":"2.0", "id":42,"method":"tools/call","params":{"name":"t","arguments":{"n":1e400,"x":1.0},"_meta":{"progressToken":"mcp-bridge-42","io.modelcontextprotocol/logLevel":"info"}}}"#
        );
        assert_eq!(out.client_token.as_deref(), Some("7"));
        assert!(out.logs);
    }

    #[test]
    fn a_handshake_child_gets_the_envelope_stripped_and_nothing_else_changed() {
        let raw = br#"{"id":1,"method":"tools/list","params":{"cursor":"c","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"progressToken":"p"}}}"#;
        let out = outgoing(raw, 3, true).unwrap();
        assert_eq!(
            text(&out.line),
            r#"{"id":3,"method":"tools/list","params":{"cursor":"c","_meta":{"progressToken":"mcp-bridge-3"}}}"#
        );
        assert!(!out.logs);
        let bare = outgoing(br#"{"id":1,"method":"ping"}"#, 4, true).unwrap();
        assert_eq!(text(&bare.line), r#"{"id":4,"method":"ping"}"#);
        assert_eq!(bare.client_token, None);
    }

    #[test]
    fn a_duplicate_id_or_token_is_refused_not_guessed() {
        assert!(outgoing(br#"{"id":1,"id":2,"method":"m"}"#, 1, false).is_err());
        let two_tokens =
            br#"{"id":1,"method":"m","params":{"_meta":{"progressToken":1,"progressToken":2}}}"#;
        assert!(outgoing(two_tokens, 1, false).is_err());
    }

    #[test]
    fn a_ten_mebibyte_argument_passes_untouched() {
        let big = "a".repeat(10 << 20);
        let raw = format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"t","arguments":{{"blob":"{big}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        );
        let out = outgoing(raw.as_bytes(), 1, true).unwrap();
        assert_eq!(out.line.len(), raw.len() - 102);
        assert!(text(&out.line).starts_with(r#"{"jsonrpc":"2.0","id":1,"#));
        assert!(text(&out.line).ends_with(r#""},"_meta":{}}}"#));
    }
}
