//! JSON-RPC messages as the bridge sees them: the bytes are kept as they came, and only
//! `id`, `method` and whether the message is a request, notification or response are looked at.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::wire::{BRIDGE_ERROR, INVALID_REQUEST, PARSE_ERROR};
pub use envelope::{Named, Text};
pub use scan::{scan_request_id, scan_response_id};

mod envelope;
mod scan;

/// A request id, kept as its JSON text (`1`, `"abc"`) so it can be a map key and be written back
/// exactly as the agent sent it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(pub Box<str>);

impl Id {
    /// The id as JSON text, e.g. `1` or `"abc"`.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// What a single JSON-RPC message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request: answered under its `id`.
    Request {
        /// The request id.
        id: Id,
        /// The method.
        method: String,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: String,
    },
    /// A response (result or error) to the request with `id`.
    Response {
        /// The id of the request it answers (`null` for an unparseable one).
        id: Id,
    },
}

/// One message, or a batch (2025-03-26 allowed JSON arrays), as parsed from a line or body.
#[derive(Clone, Debug)]
pub struct Message {
    /// The message text, without a trailing newline, byte for byte as received
    /// (multi-line JSON from SSE is folded to one line before it gets here).
    pub raw: Bytes,
    /// One entry for a single message; one per element for a batch.
    pub parts: Vec<Kind>,
    /// Whether the message is a JSON array (a batch).
    pub batch: bool,
    /// Where a single message's `params.name` and `params.uri` are (all `Absent` for a batch
    /// and for a message the bridge made itself).
    pub named: Named,
}

/// Why a line or body could not be taken as a JSON-RPC message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON (or not UTF-8): -32700.
    #[error("parse error: {0}")]
    NotJson(String),
    /// JSON, but not a JSON-RPC message: -32600.
    #[error("invalid request: {0}")]
    NotJsonRpc(String),
}

impl ParseError {
    /// The JSON-RPC error code for this error.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::NotJson(_) => PARSE_ERROR,
            ParseError::NotJsonRpc(_) => INVALID_REQUEST,
        }
    }
}

fn classify(value: &RawValue) -> Result<Kind, ParseError> {
    if !value.get().trim_start().starts_with('{') {
        return Err(ParseError::NotJsonRpc(
            "a JSON-RPC message must be an object".into(),
        ));
    }
    classify_text(value.get()).map(|(kind, _)| kind)
}

/// Classifies one JSON object. Syntax errors are parse errors; a well-formed object that does
/// not have the shape of a JSON-RPC message is an invalid request. Also says where its
/// `params.name` and `params.uri` are in `text`.
fn classify_text(text: &str) -> Result<(Kind, Named), ParseError> {
    let env = envelope::read(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ParseError::NotJsonRpc(format!("malformed message: {e}"))
        }
        _ => ParseError::NotJson(e.to_string()),
    })?;
    // `"id": null` in a response (the answer to an unparseable request) is a response without an id.
    let id = env.id.map(|raw| Id(raw.get().trim().into()));
    if let Some(id) = &id {
        let first = id.0.as_bytes().first().copied().unwrap_or(b' ');
        let valid = first == b'"' || first == b'-' || first.is_ascii_digit();
        if !valid {
            return Err(ParseError::NotJsonRpc(
                "id must be a string or a number".into(),
            ));
        }
    }
    let kind = match (env.method, id) {
        (Some(method), Some(id)) => Kind::Request { id, method },
        (Some(method), None) => Kind::Notification { method },
        (None, Some(id)) if env.result || env.error => Kind::Response { id },
        // serde reads `"id": null` as no id: an error answering an unparseable request.
        (None, None) if env.error => Kind::Response {
            id: Id("null".into()),
        },
        _ => {
            return Err(ParseError::NotJsonRpc(
                "neither a request (method), nor a response (id with result or error)".into(),
            ));
        }
    };
    Ok((kind, env.named))
}

/// Parses one message (or batch). `raw` must hold the whole message and nothing else.
pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
    let text = std::str::from_utf8(&raw)
        .map_err(|e| ParseError::NotJson(format!("invalid UTF-8: {e}")))?;
    let first = text.trim_start().as_bytes().first().copied();
    if first == Some(b'{') {
        // One pass: the envelope parse also checks that the whole text is JSON.
        let (kind, named) = classify_text(text)?;
        return Ok(Message {
            raw,
            parts: vec![kind],
            batch: false,
            named,
        });
    }
    let value: &RawValue =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if first == Some(b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(value.get()).map_err(|e| ParseError::NotJson(e.to_string()))?;
        if items.is_empty() {
            return Err(ParseError::NotJsonRpc("empty batch".into()));
        }
        let parts = items
            .into_iter()
            .map(classify)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Message {
            raw,
            parts,
            batch: true,
            named: Named::default(),
        });
    }
    Err(ParseError::NotJsonRpc(
        "a JSON-RPC message must be an object".into(),
    ))
}

impl Message {
    /// The single message's kind (the first element's for a batch).
    pub fn kind(&self) -> &Kind {
        &self.parts[0]
    }

    /// The method, if this is a single request or notification.
    pub fn method(&self) -> Option<&str> {
        match self.kind() {
            Kind::Request { method, .. } | Kind::Notification { method } if !self.batch => {
                Some(method)
            }
            _ => None,
        }
    }

    /// Ids of the requests in this message (one, or several for a batch).
    pub fn request_ids(&self) -> impl Iterator<Item = &Id> {
        self.parts.iter().filter_map(|k| match k {
            Kind::Request { id, .. } => Some(id),
            _ => None,
        })
    }

    /// Ids of the responses in this message.
    pub fn response_ids(&self) -> impl Iterator<Item = &Id> {
        self.parts.iter().filter_map(|k| match k {
            Kind::Response { id } => Some(id),
            _ => None,
        })
    }

    /// `params.name` of a single message, as the envelope's pass found it; `None` when it is
    /// absent or not one readable string.
    pub fn param_name(&self) -> Option<&str> {
        self.text(&self.named.name)
    }

    /// `params.uri` of a single message, read like [`param_name`](Self::param_name).
    pub fn param_uri(&self) -> Option<&str> {
        self.text(&self.named.uri)
    }

    fn text<'a>(&'a self, text: &'a Text) -> Option<&'a str> {
        match text {
            Text::At(start, end) => std::str::from_utf8(self.raw.get(*start..*end)?).ok(),
            Text::Decoded(s) => Some(s),
            Text::Absent | Text::Unreadable => None,
        }
    }

    /// Whether the message holds at least one request.
    pub fn has_requests(&self) -> bool {
        self.request_ids().next().is_some()
    }
}

/// Makes a JSON text that spans several lines one line. When it holds a raw CR or LF, the
/// whitespace between tokens is dropped (JSON strings cannot hold raw line breaks, so no string
/// changes); every other byte is kept, numbers keep their digits. A text without line breaks is
/// returned as it is.
pub fn fold_lines(data: &[u8]) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', data).is_none() {
        return Bytes::copy_from_slice(data);
    }
    let mut out = Vec::with_capacity(data.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in data {
        if in_string {
            // A raw line break inside a string is invalid JSON; it still may not split the line.
            out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    Bytes::from(out)
}

/// Builds an error response line (without the newline). `id` is `None` for `id: null`.
pub fn error_response(
    id: Option<&Id>,
    code: i64,
    message: &str,
    data: Option<serde_json::Value>,
) -> Bytes {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    let id_text = id.map(Id::as_json).unwrap_or("null");
    let error_text = serde_json::to_string(&error).expect("a JSON value serialises");
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id_text},"error":{error_text}}}"#
    ))
}

/// Replaces the `id` of a single request with `new_id` (JSON text), keeping every other member.
/// Used where the bridge sends a message under its own id (replayed `initialize`) or must keep
/// several clients' ids apart (a shared child).
pub fn with_id(raw: &[u8], new_id: &str) -> Result<Bytes, ParseError> {
    let mut value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(raw).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let id: serde_json::Value =
        serde_json::from_str(new_id).map_err(|e| ParseError::NotJson(e.to_string()))?;
    value.insert("id".into(), id);
    Ok(Bytes::from(
        serde_json::to_vec(&value).expect("a JSON value serialises"),
    ))
}

/// The progress token of a request (`params._meta.progressToken`) or of a progress notification
/// (`params.progressToken`), as JSON text: what ties progress to the request that asked for it.
pub fn progress_token(raw: &[u8]) -> Option<Box<str>> {
    // Most requests carry no token: skip the parse when the key cannot be there. JSON can
    // spell a key's letters only literally or as `\u` escapes, so without either it is absent.
    if memchr::memmem::find(raw, b"progressToken").is_none()
        && memchr::memmem::find(raw, b"\\u").is_none()
    {
        return None;
    }
    #[derive(Deserialize)]
    struct Msg<'a> {
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "progressToken")]
        token: Option<&'a RawValue>,
        #[serde(borrow, rename = "_meta")]
        meta: Option<Meta<'a>>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "progressToken")]
        token: Option<&'a RawValue>,
    }
    let params = serde_json::from_slice::<Msg<'_>>(raw).ok()?.params?;
    let token = params.token.or(params.meta.and_then(|m| m.token))?;
    Some(token.get().trim().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Result<Kind, ParseError> {
        parse(Bytes::from(s.to_owned())).map(|m| m.parts[0].clone())
    }

    #[test]
    fn classifies_the_three_kinds() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap(),
            Kind::Request {
                id: Id("7".into()),
                method: "tools/list".into()
            }
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Kind::Notification {
                method: "notifications/initialized".into()
            }
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a b","result":{}}"#).unwrap(),
            Kind::Response {
                id: Id(r#""a b""#.into())
            }
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#).unwrap(),
            Kind::Response {
                id: Id("null".into())
            }
        );
    }

    #[test]
    fn unknown_members_and_methods_pass() {
        let m = parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"x/new","params":{"deep":[1,{"a":null}]},"extra":true}"#,
        ))
        .unwrap();
        assert_eq!(m.method(), Some("x/new"));
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        assert_eq!(kind("not json").unwrap_err().code(), PARSE_ERROR);
        assert_eq!(kind("{\"id\":1").unwrap_err().code(), PARSE_ERROR);
        assert_eq!(kind("42").unwrap_err().code(), INVALID_REQUEST);
        assert_eq!(kind(r#"{"id":1}"#).unwrap_err().code(), INVALID_REQUEST);
        assert_eq!(
            kind(r#"{"id":{},"method":"a"}"#).unwrap_err().code(),
            INVALID_REQUEST
        );
        assert_eq!(kind("[]").unwrap_err().code(), INVALID_REQUEST);
        let bad_utf8 = parse(Bytes::from_static(b"{\"a\":\"\xff\"}")).unwrap_err();
        assert!(bad_utf8.to_string().contains("UTF-8"));
    }

    #[test]
    fn batches_list_every_part() {
        let m = parse(Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        ))
        .unwrap();
        assert!(m.batch);
        assert_eq!(m.request_ids().count(), 1);
        assert_eq!(m.method(), None);
    }

    #[test]
    fn error_response_keeps_the_id_text() {
        let line = error_response(Some(&Id(r#""x""#.into())), -32000, "boom", None);
        assert_eq!(
            &line[..],
            br#"{"jsonrpc":"2.0","id":"x","error":{"code":-32000,"message":"boom"}}"#
        );
        let line = error_response(None, PARSE_ERROR, "p", None);
        assert!(line.starts_with(br#"{"jsonrpc":"2.0","id":null"#));
    }

    #[test]
    fn progress_tokens_of_requests_and_notifications_match() {
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"t-1"}}}"#;
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t-1","progress":1}}"#;
        assert_eq!(progress_token(req), progress_token(note));
        // A key spelt with escapes is the same key.
        let escaped =
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progress\u0054oken":7}}}"#;
        assert_eq!(progress_token(escaped).as_deref(), Some("7"));
        assert_eq!(progress_token(req).as_deref(), Some(r#""t-1""#));
        assert_eq!(
            progress_token(br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#),
            None
        );
    }

    #[test]
    fn fold_lines_makes_one_line() {
        assert_eq!(&fold_lines(b"{\n\"a\":\r\n1}")[..], b"{\"a\":1}");
        assert_eq!(
            &fold_lines(b"{\n  \"a b\\\" \": 1e400,\n  \"c\": 1.0\n}")[..],
            b"{\"a b\\\" \":1e400,\"c\":1.0}"
        );
        let kept = br#"{ "a" : 1 }"#;
        assert_eq!(&fold_lines(kept)[..], kept);
    }

    #[test]
    fn with_id_replaces_only_the_id() {
        let out = with_id(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            r#""b-1""#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "b-1");
        assert_eq!(v["method"], "initialize");
    }
}
