//! The parts of a 2026-07-28 request the bridge reads (its version, method, name and tool
//! arguments), the HTTP headers they become, and how to tell a 2026-07-28 server's refusals.

use crate::jsonrpc::{Kind, Message};
use crate::wire::stateless::{ParamMap, VERSION_KEY, encode_header_value, param_text};
use crate::wire::{self, BridgeError, METHOD_NOT_FOUND, Reason, STATELESS_ERRORS};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The protocol version a request of the 2026-07-28 era carries in `params._meta`; `None` for
/// earlier eras (which use the `initialize` handshake, itself never a stateless one).
pub fn stateless_version(msg: &Message) -> Option<String> {
    let Kind::Request { method, .. } = msg.kind() else {
        return None;
    };
    if msg.batch || method == "initialize" {
        return None;
    }
    // Cheap test first: most traffic of the earlier eras never mentions the key.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(VERSION_KEY));
    FINDER.find(&msg.raw)?;
    let fields = Fields::parse(&msg.raw)?;
    fields.version
}

/// What headers are derived from: the parts of a request that 2026-07-28 mirrors in HTTP.
pub(super) struct Fields {
    /// `_meta`'s protocol version.
    pub(super) version: Option<String>,
    /// For `Mcp-Method`.
    pub(super) method: String,
    /// For `Mcp-Name`: the tool or prompt name, or the resource URI.
    pub(super) name: Option<String>,
    /// A tool call's arguments, for `Mcp-Param-*`.
    pub(super) arguments: Option<Value>,
    /// The `io.modelcontextprotocol/*` part of `_meta`, for requests the bridge makes itself.
    pub(super) envelope: serde_json::Map<String, Value>,
}

impl Fields {
    /// The fields of a request, `None` if it is not one.
    pub(super) fn parse(raw: &[u8]) -> Option<Fields> {
        #[derive(serde::Deserialize)]
        struct Req<'a> {
            method: String,
            #[serde(borrow)]
            params: Option<Params<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(rename = "_meta")]
            meta: Option<serde_json::Map<String, Value>>,
            name: Option<Value>,
            uri: Option<Value>,
            #[serde(borrow)]
            arguments: Option<&'a serde_json::value::RawValue>,
        }
        let req: Req<'_> = serde_json::from_slice(raw).ok()?;
        let params = req.params?;
        let meta = params.meta.unwrap_or_default();
        let version = meta
            .get(VERSION_KEY)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let envelope = meta
            .into_iter()
            .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
            .collect();
        let name = match req.method.as_str() {
            "tools/call" | "prompts/get" => params.name,
            "resources/read" => params.uri,
            _ => None,
        };
        let arguments = match req.method.as_str() {
            "tools/call" => params
                .arguments
                .and_then(|a| serde_json::from_str(a.get()).ok()),
            _ => None,
        };
        Some(Fields {
            version,
            method: req.method,
            name: name.and_then(|n| n.as_str().map(str::to_owned)),
            arguments,
            envelope,
        })
    }

    /// The headers of the request's POST; `params` are the tool's `x-mcp-header` arguments.
    pub(super) fn headers(
        &self,
        version: &str,
        params: Option<&ParamMap>,
    ) -> Result<HeaderMap, BridgeError> {
        let fields = self;
        let bad = |what: &str| {
            BridgeError::new(
                Reason::InvalidMessage,
                false,
                format!("{what} cannot be sent as an HTTP header"),
            )
        };
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            wire::PROTOCOL_VERSION,
            HeaderValue::try_from(version).map_err(|_| bad("the protocol version"))?,
        );
        h.insert(
            wire::METHOD,
            HeaderValue::try_from(encode_header_value(&fields.method))
                .map_err(|_| bad("the method"))?,
        );
        if let Some(name) = &fields.name {
            h.insert(
                wire::NAME,
                HeaderValue::try_from(encode_header_value(name)).map_err(|_| bad("the name"))?,
            );
        }
        if let Some(args) = &fields.arguments
            && fields.method == "tools/call"
        {
            for (path, token) in params.into_iter().flatten() {
                let value = path.iter().try_fold(args, |v, key| v.get(key));
                let Some(text) = value.and_then(param_text) else {
                    continue;
                };
                let name = HeaderName::try_from(format!("{}{token}", wire::PARAM_PREFIX))
                    .map_err(|_| bad("a parameter name"))?;
                h.insert(
                    name,
                    HeaderValue::try_from(encode_header_value(&text))
                        .map_err(|_| bad("a parameter"))?,
                );
            }
        }
        Ok(h)
    }
}

/// The `error` object of a JSON-RPC error response body.
pub(super) fn rpc_error(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    err.get("code")?.as_i64()?;
    Some(err.clone())
}

/// The `code` of an error object.
pub(super) fn err_code(err: &Value) -> Option<i64> {
    err.get("code").and_then(Value::as_i64)
}

/// If a refused `initialize` (or other pre-2026 message) was refused with a 2026-07-28 error,
/// that error: the server speaks only the stateless revision.
pub fn stateless_refusal(status: StatusCode, body: &[u8]) -> Option<Value> {
    let err = rpc_error(body)?;
    let code = err_code(&err)?;
    (STATELESS_ERRORS.contains(&code)
        || (status == StatusCode::NOT_FOUND && code == METHOD_NOT_FOUND))
        .then_some(err)
}

/// Whether an error shows the server understood the request's era.
pub(super) fn is_stateless_error(status: StatusCode, err: &Value) -> bool {
    let code = err_code(err).unwrap_or(0);
    STATELESS_ERRORS.contains(&code)
        || (status == StatusCode::NOT_FOUND && code == METHOD_NOT_FOUND)
        || !status.is_client_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_stateless_requests() {
        let m = |s: &str| crate::jsonrpc::parse(bytes::Bytes::from(s.to_owned())).unwrap();
        let stateless = m(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        assert_eq!(stateless_version(&stateless).as_deref(), Some("2026-07-28"));
        let init = m(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(stateless_version(&init), None);
        let handshake = m(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
        assert_eq!(stateless_version(&handshake), None);
    }
}
