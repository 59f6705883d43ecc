//! Streamable HTTP for the stateless 2026-07-28 revision. A request whose `_meta` names its
//! protocol version is sent in that era's shape: no session, headers derived from the message
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), one POST per request, and
//! cancellation by closing that POST. The only state is the `x-mcp-header` map from `tools/list`.

use super::http;
use super::{Shared, fail, forward};
use crate::jsonrpc::{self, Id, Kind, Message};
use crate::wire::stateless::{
    ParamMap, VERSION_KEY, encode_header_value, header_params, param_text,
};
use crate::wire::{self, BridgeError, Reason};
use crate::wire::{HEADER_MISMATCH, METHOD_NOT_FOUND, STATELESS_ERRORS};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The protocol version a request of the 2026-07-28 era carries in `params._meta`; `None` for
/// earlier eras (which use the `initialize` handshake, itself never a modern request).
pub fn modern_version(msg: &Message) -> Option<String> {
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
struct Fields {
    version: Option<String>,
    method: String,
    name: Option<String>,
    arguments: Option<Value>,
    /// The `io.modelcontextprotocol/*` part of `_meta`, for requests the bridge makes itself.
    envelope: serde_json::Map<String, Value>,
}

impl Fields {
    fn parse(raw: &[u8]) -> Option<Fields> {
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
}

pub(crate) struct Modern {
    shared: Shared,
    /// Tool name -> its `x-mcp-header` arguments, from the latest `tools/list` answers.
    params: Mutex<HashMap<String, ParamMap>>,
    /// Requests in flight, by id: cancelling one closes its POST, which is how this revision
    /// cancels.
    inflight: Mutex<HashMap<Id, CancellationToken>>,
}

impl Modern {
    pub fn new(shared: Shared) -> Arc<Self> {
        Arc::new(Modern {
            shared,
            params: Mutex::default(),
            inflight: Mutex::default(),
        })
    }

    /// Sends a 2026-07-28 request on its own task.
    pub fn send(self: &Arc<Self>, msg: Message, version: String) {
        let Kind::Request { id, .. } = msg.kind().clone() else {
            return;
        };
        let stop = self.shared.shutdown.child_token();
        self.inflight
            .lock()
            .expect("inflight lock")
            .insert(id.clone(), stop.clone());
        let this = self.clone();
        self.shared.tasks.spawn(async move {
            // Cancel-safe: dropping the request future closes its connection, which is the cancellation.
            tokio::select! {
                _ = stop.cancelled() => tracing::debug!(id = id.as_json(), "closed the POST of a cancelled request"),
                _ = this.run(&msg, &version) => {}
            }
            this.inflight.lock().expect("inflight lock").remove(&id);
        });
    }

    /// The agent cancelled `id`. Returns whether it was a request of this era (its POST is now
    /// closed, and the notification must not be sent on).
    pub fn cancel(&self, id: &Id) -> bool {
        match self.inflight.lock().expect("inflight lock").remove(id) {
            Some(stop) => {
                stop.cancel();
                true
            }
            None => false,
        }
    }

    async fn run(&self, msg: &Message, version: &str) {
        let Some(fields) = Fields::parse(&msg.raw) else {
            return;
        };
        let Kind::Request { id, .. } = msg.kind() else {
            return;
        };
        let mut relisted = false;
        loop {
            let headers = match self.headers(&fields, version) {
                Ok(h) => h,
                Err(f) => return fail(&self.shared, msg, &f).await,
            };
            let resp = match self.post(msg.raw.clone(), &headers).await {
                Ok(resp) => resp,
                Err(f) => return fail(&self.shared, msg, &f).await,
            };
            let status = resp.status();
            if status.is_success() {
                return self.answer(msg, id, &fields, resp).await;
            }
            let failure = http::status_failure(&resp, &self.shared.target);
            let error = http::read_body(resp, 64 * 1024)
                .await
                .ok()
                .and_then(|b| rpc_error(&b));
            match error {
                Some(err)
                    if err_code(&err) == Some(HEADER_MISMATCH)
                        && fields.method == "tools/call"
                        && !relisted =>
                {
                    // The tool's header arguments are unknown or stale: list the tools, then try once more.
                    relisted = true;
                    tracing::debug!("header mismatch: listing tools and sending again");
                    self.relist(&fields, version).await;
                }
                Some(err) if is_modern_error(status, &err) => {
                    return self.reply(id, err).await;
                }
                Some(err) if status.is_client_error() => {
                    return self.era_mismatch(id, status, Some(err)).await;
                }
                Some(err) => return self.reply(id, err).await,
                None if matches!(status.as_u16(), 400 | 404 | 405) => {
                    return self.era_mismatch(id, status, None).await;
                }
                None => return fail(&self.shared, msg, &failure).await,
            }
        }
    }

    fn headers(&self, fields: &Fields, version: &str) -> Result<HeaderMap, BridgeError> {
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
        if let (Some(tool), Some(args)) = (&fields.name, &fields.arguments)
            && fields.method == "tools/call"
        {
            let params = self.params.lock().expect("params lock");
            for (path, token) in params.get(tool).into_iter().flatten() {
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

    async fn post(
        &self,
        body: Bytes,
        headers: &HeaderMap,
    ) -> Result<reqwest::Response, BridgeError> {
        let make = || {
            self.shared
                .client
                .post(self.shared.config.url.clone())
                .headers(headers.clone())
                .body(body.clone())
        };
        http::send(
            &self.shared.link,
            &self.shared.target,
            self.shared.deadline(),
            make,
        )
        .await
    }

    /// Carries a 2xx answer to the agent: a JSON body, or an SSE stream read to the response.
    async fn answer(&self, msg: &Message, id: &Id, fields: &Fields, resp: reqwest::Response) {
        let max = self.shared.config.max_message_size;
        if http::is_event_stream(&resp) {
            let mut events = http::EventStream::new(resp, max);
            while let Some(ev) = events.next().await {
                if ev.data.is_empty() || !ev.is_message() {
                    continue;
                }
                let data = self.learn(fields, jsonrpc::fold_lines(&ev.data));
                if !forward(&self.shared, data).await || !self.shared.out.is_pending(id) {
                    return;
                }
            }
            if fields.method == "subscriptions/listen" {
                // How a stdio server ends a subscription: tell the agent the stream is gone.
                let note = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": serde_json::from_str::<Value>(id.as_json()).unwrap_or(Value::Null),"reason":"the server closed the subscription stream"}});
                self.shared.out.forget(id);
                self.shared.out.raw(Bytes::from(note.to_string())).await;
                return;
            }
            let f = BridgeError::new(
                Reason::StreamEnded,
                true,
                "the response stream ended before the answer; send the request again with a new id",
            );
            return fail(&self.shared, msg, &f).await;
        }
        match http::read_body(resp, max).await {
            Ok(body) if !body.iter().all(u8::is_ascii_whitespace) => {
                let body = self.learn(fields, body);
                forward(&self.shared, body).await;
                if self.shared.out.is_pending(id) {
                    let f = BridgeError::new(
                        Reason::NoAnswer,
                        true,
                        "the server's reply did not answer the request",
                    );
                    fail(&self.shared, msg, &f).await;
                }
            }
            Ok(_) => {
                let f = BridgeError::new(
                    Reason::NoAnswer,
                    true,
                    "the server accepted the request but sent no answer",
                );
                fail(&self.shared, msg, &f).await;
            }
            Err(e) => {
                fail(
                    &self.shared,
                    msg,
                    &BridgeError::new(Reason::BadResponse, true, e),
                )
                .await
            }
        }
    }

    /// Learns the `x-mcp-header` map from a `tools/list` answer. Tools whose annotations are
    /// invalid are removed from the answer, as the spec requires of an HTTP client, with a warning.
    fn learn(&self, fields: &Fields, data: Bytes) -> Bytes {
        if fields.method != "tools/list" {
            return data;
        }
        let Ok(mut answer) = serde_json::from_slice::<Value>(&data) else {
            return data;
        };
        let Some(tools) = answer
            .pointer_mut("/result/tools")
            .and_then(Value::as_array_mut)
        else {
            return data;
        };
        let mut params = self.params.lock().expect("params lock");
        let before = tools.len();
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            match header_params(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(map) => {
                    params.insert(name.to_owned(), map);
                    true
                }
                Err(why) => {
                    tracing::warn!(
                        tool = name,
                        "left out a tool with invalid header annotations: {why}"
                    );
                    params.remove(name);
                    false
                }
            }
        });
        if tools.len() == before {
            return data;
        }
        Bytes::from(serde_json::to_vec(&answer).expect("a JSON value serialises"))
    }

    /// Lists the tools under the bridge's own id (following pages) to learn their header arguments.
    async fn relist(&self, fields: &Fields, version: &str) {
        let mut cursor: Option<Value> = None;
        for _ in 0..50 {
            let id = self.shared.bridge_id();
            let mut params = json!({"_meta": Value::Object(fields.envelope.clone())});
            if let Some(c) = &cursor {
                params["cursor"] = c.clone();
            }
            let body = json!({"jsonrpc":"2.0","id": serde_json::from_str::<Value>(&id).unwrap_or(Value::Null),"method":"tools/list","params": params});
            let list = Fields {
                version: None,
                method: "tools/list".into(),
                name: None,
                arguments: None,
                envelope: Default::default(),
            };
            let Ok(headers) = self.headers(&list, version) else {
                return;
            };
            let Ok(resp) = self.post(Bytes::from(body.to_string()), &headers).await else {
                return;
            };
            if !resp.status().is_success() {
                return;
            }
            let answer = if http::is_event_stream(&resp) {
                let mut events = http::EventStream::new(resp, self.shared.config.max_message_size);
                let mut found = None;
                while let Some(ev) = events.next().await {
                    if ev.is_message() && !ev.data.is_empty() {
                        found = Some(ev.data);
                        break;
                    }
                }
                found
            } else {
                http::read_body(resp, self.shared.config.max_message_size)
                    .await
                    .ok()
            };
            let Some(answer) = answer else { return };
            let learned = self.learn(&list, answer);
            cursor = serde_json::from_slice::<Value>(&learned)
                .ok()
                .and_then(|v| v.pointer("/result/nextCursor").cloned());
            if cursor.as_ref().is_none_or(Value::is_null) {
                return;
            }
        }
    }

    /// Answers `id` with the server's own error object (the server may have used another id).
    async fn reply(&self, id: &Id, error: Value) {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#,
            id.as_json(),
            error
        );
        self.shared.out.reply(id, Bytes::from(line)).await;
    }

    /// The server refused a 2026-07-28 request without a 2026-07-28 error: it speaks an earlier
    /// revision. The agent is told so, rather than the message being turned into that era's.
    async fn era_mismatch(&self, id: &Id, status: StatusCode, remote: Option<Value>) {
        tracing::info!(%status, "the remote refused a 2026-07-28 request: it speaks an earlier revision");
        let mut e = BridgeError::new(
            Reason::EraMismatch,
            false,
            format!(
                "the remote MCP server does not speak the 2026-07-28 revision this request uses \
                 (it answered HTTP {}); it needs the initialize handshake of an earlier revision",
                status.as_u16()
            ),
        );
        e.http_status = Some(status.as_u16());
        e.remote_era = Some("pre-2026-07-28");
        e.remote_error = remote;
        self.shared.out.fail(id, &e).await;
    }
}

/// The `error` object of a JSON-RPC error response body.
fn rpc_error(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    err.get("code")?.as_i64()?;
    Some(err.clone())
}

fn err_code(err: &Value) -> Option<i64> {
    err.get("code").and_then(Value::as_i64)
}

/// If a refused `initialize` (or other pre-2026 message) was refused with a 2026-07-28 error,
/// that error: the server speaks only the stateless revision.
pub fn modern_refusal(status: StatusCode, body: &[u8]) -> Option<Value> {
    let err = rpc_error(body)?;
    let code = err_code(&err)?;
    (STATELESS_ERRORS.contains(&code)
        || (status == StatusCode::NOT_FOUND && code == METHOD_NOT_FOUND))
        .then_some(err)
}

/// Whether an error shows the server understood the request's era.
fn is_modern_error(status: StatusCode, err: &Value) -> bool {
    let code = err_code(err).unwrap_or(0);
    STATELESS_ERRORS.contains(&code)
        || (status == StatusCode::NOT_FOUND && code == METHOD_NOT_FOUND)
        || !status.is_client_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_modern_requests() {
        let m = |s: &str| jsonrpc::parse(Bytes::from(s.to_owned())).unwrap();
        let modern = m(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        assert_eq!(modern_version(&modern).as_deref(), Some("2026-07-28"));
        let init = m(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(modern_version(&init), None);
        let legacy = m(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
        assert_eq!(modern_version(&legacy), None);
    }
}
