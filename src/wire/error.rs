//! The bridge's own error object: what a client or agent gets when the bridge, not the MCP
//! server, answers a request. `error.data` says so (`"source": "mcp-bridge"`), names a
//! machine-readable [`Reason`], and whether the server may have run the request (`mayHaveRun`),
//! so that a caller knows whether sending it again is safe.

use super::BRIDGE_ERROR;
use crate::jsonrpc::{self, Id};
use bytes::Bytes;
use serde_json::{Value, json};

/// `error.data.source` of every error the bridge makes.
pub const SOURCE: &str = "mcp-bridge";

/// `{"source":"mcp-bridge"}`: the `error.data` of a protocol refusal that needs no reason (the
/// JSON-RPC code says it all).
pub fn source_only() -> Value {
    json!({ "source": SOURCE })
}

/// Why the bridge answered a request itself: `error.data.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A message over `--max-message-size`.
    TooLarge,
    /// A message that is not JSON-RPC, or cannot be sent as the transport needs.
    InvalidMessage,
    /// The remote could not be connected to before the connect timeout.
    Unreachable,
    /// The remote answered with an HTTP error status and no JSON-RPC answer.
    HttpStatus,
    /// The remote answered 401 or 403.
    Unauthorized,
    /// A response stream ended before the answer.
    StreamEnded,
    /// The SSE session's stream dropped before the answer.
    StreamDropped,
    /// The remote took the request but its reply did not answer it.
    NoAnswer,
    /// The remote's reply could not be read.
    BadResponse,
    /// The request may have left, but the exchange failed.
    SendFailed,
    /// A redirect to another origin (or too many redirects).
    RedirectRefused,
    /// The SSE server named a message endpoint the bridge will not use.
    EndpointRefused,
    /// The URL speaks neither Streamable HTTP nor HTTP+SSE.
    NoMcpEndpoint,
    /// The two sides speak revisions of different eras (handshake versus 2026-07-28).
    EraMismatch,
    /// The remote lost the session and it could not be re-established.
    SessionLost,
    /// Replaying the handshake on a new session failed.
    ReinitializeFailed,
    /// A broken response stream could not be resumed.
    ResumeFailed,
    /// serve: the session was closed (expired, deleted, or its server process ended).
    SessionClosed,
    /// serve: the MCP server process is gone or not taking messages.
    ChildGone,
    /// serve: the MCP server process could not be started.
    ChildStart,
    /// serve: a shared MCP server failed to initialize.
    InitFailed,
    /// The gateway has no usable OAuth token for the server: a login on the host is needed.
    LoginRequired,
    /// The gateway could not get an OAuth token just now (authorization server unreachable).
    TokenUnavailable,
}

impl Reason {
    /// The reason as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too-large",
            Reason::InvalidMessage => "invalid-message",
            Reason::Unreachable => "unreachable",
            Reason::HttpStatus => "http-status",
            Reason::Unauthorized => "unauthorized",
            Reason::StreamEnded => "stream-ended",
            Reason::StreamDropped => "stream-dropped",
            Reason::NoAnswer => "no-answer",
            Reason::BadResponse => "bad-response",
            Reason::SendFailed => "send-failed",
            Reason::RedirectRefused => "redirect-refused",
            Reason::EndpointRefused => "endpoint-refused",
            Reason::NoMcpEndpoint => "no-mcp-endpoint",
            Reason::EraMismatch => "era-mismatch",
            Reason::SessionLost => "session-lost",
            Reason::ReinitializeFailed => "reinitialize-failed",
            Reason::ResumeFailed => "resume-failed",
            Reason::SessionClosed => "session-closed",
            Reason::ChildGone => "child-gone",
            Reason::ChildStart => "child-start",
            Reason::InitFailed => "init-failed",
            Reason::LoginRequired => "login-required",
            Reason::TokenUnavailable => "token-unavailable",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error the bridge answers with in place of the server.
#[derive(Clone, Debug)]
pub struct BridgeError {
    /// `error.data.reason`.
    pub reason: Reason,
    /// Short description for `error.message`.
    pub message: String,
    /// Whether the server may have received (and run) the request; `None` for a line that was
    /// no request at all (nothing to run, so `mayHaveRun` is left out).
    pub may_have_run: Option<bool>,
    /// `error.code`: [`BRIDGE_ERROR`] unless the refusal is a JSON-RPC one (parse errors).
    pub code: i64,
    /// The HTTP status received, where one was.
    pub http_status: Option<u16>,
    /// The `WWW-Authenticate` header of a 401/403, so the agent can see how to authenticate.
    pub www_authenticate: Option<String>,
    /// The server's own JSON-RPC error, where it sent one that explains the failure.
    pub remote_error: Option<Value>,
    /// The era the remote speaks, where it is not the request's.
    pub remote_era: Option<&'static str>,
}

impl BridgeError {
    /// An error answering a request, [`BRIDGE_ERROR`] code.
    pub fn new(reason: Reason, may_have_run: bool, message: impl Into<String>) -> Self {
        BridgeError {
            reason,
            message: message.into(),
            may_have_run: Some(may_have_run),
            code: BRIDGE_ERROR,
            http_status: None,
            www_authenticate: None,
            remote_error: None,
            remote_era: None,
        }
    }

    /// The refusal of a line that is no request (too large, not JSON-RPC), with its JSON-RPC code.
    pub fn refusal(reason: Reason, code: i64, message: impl Into<String>) -> Self {
        BridgeError {
            may_have_run: None,
            code,
            ..BridgeError::new(reason, false, message)
        }
    }

    /// The `error.data` object.
    pub fn data(&self) -> Value {
        let mut data = json!({ "source": SOURCE, "reason": self.reason.as_str() });
        if let Some(may_have_run) = self.may_have_run {
            data["mayHaveRun"] = json!(may_have_run);
        }
        if let Some(status) = self.http_status {
            data["httpStatus"] = json!(status);
        }
        if let Some(value) = &self.www_authenticate {
            data["wwwAuthenticate"] = json!(value);
        }
        if let Some(err) = &self.remote_error {
            data["remoteError"] = err.clone();
        }
        if let Some(era) = self.remote_era {
            data["remoteEra"] = json!(era);
        }
        data
    }

    /// The JSON-RPC error response answering `id` (`null` for none), the message as it is.
    pub fn response(&self, id: Option<&Id>) -> Bytes {
        jsonrpc::error_response(id, self.code, &self.message, Some(self.data()))
    }

    /// The response with the message prefixed `mcp-bridge: `, as `connect` writes it: an agent
    /// sees the errors of many servers in one place and must tell the bridge's apart.
    pub fn named_response(&self, id: Option<&Id>) -> Bytes {
        let message = format!("{SOURCE}: {}", self.message);
        jsonrpc::error_response(id, self.code, &message, Some(self.data()))
    }
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BridgeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_object_is_what_clients_parse() {
        let mut e = BridgeError::new(Reason::Unauthorized, false, "no");
        e.http_status = Some(401);
        e.www_authenticate = Some("Bearer".into());
        let line = e.named_response(Some(&Id("7".into())));
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"data":{"httpStatus":401,"mayHaveRun":false,"reason":"unauthorized","source":"mcp-bridge","wwwAuthenticate":"Bearer"},"message":"mcp-bridge: no"}}"#
        );
        let r = BridgeError::refusal(Reason::TooLarge, -32600, "big").response(None);
        assert_eq!(
            std::str::from_utf8(&r).unwrap(),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"data":{"reason":"too-large","source":"mcp-bridge"},"message":"big"}}"#
        );
    }
}
