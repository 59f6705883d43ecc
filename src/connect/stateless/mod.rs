//! Streamable HTTP for the stateless 2026-07-28 revision. A request whose `_meta` names its
//! protocol version is sent in that era's shape: no session, headers derived from the message
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), one POST per request, and
//! cancellation by closing that POST. The only state is the `x-mcp-header` map from `tools/list`.

mod request;

pub(crate) use request::{stateless_refusal, stateless_version};

use super::Shared;
use super::http::{self, Data};
use crate::jsonrpc::{Id, Kind, Message};
use crate::wire::stateless::{ParamMap, header_params};
use crate::wire::{BridgeError, HEADER_MISMATCH, Reason};
use bytes::Bytes;
use request::{Fields, err_code, is_stateless_error, rpc_error};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The 2026-07-28 requests in flight, and what the bridge learned of the server's tools.
pub(crate) struct Stateless {
    shared: Shared,
    /// Tool name -> its `x-mcp-header` arguments, from the latest `tools/list` answers.
    params: Mutex<HashMap<String, ParamMap>>,
    /// Requests in flight, by id: cancelling one closes its POST, which is how this revision
    /// cancels.
    inflight: Mutex<HashMap<Id, CancellationToken>>,
}

impl Stateless {
    /// Nothing in flight, no tools known.
    pub fn new(shared: Shared) -> Arc<Self> {
        Arc::new(Stateless {
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
                Err(f) => return self.shared.out.fail_message(msg, &f).await,
            };
            let resp = match self.post(msg.raw.clone(), &headers).await {
                Ok(resp) => resp,
                Err(f) => return self.shared.out.fail_message(msg, &f).await,
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
                Some(err) if is_stateless_error(status, &err) => {
                    return self.reply(id, err).await;
                }
                Some(err) if status.is_client_error() => {
                    return self.era_mismatch(id, status, Some(err)).await;
                }
                Some(err) => return self.reply(id, err).await,
                None if matches!(status.as_u16(), 400 | 404 | 405) => {
                    return self.era_mismatch(id, status, None).await;
                }
                None => return self.shared.out.fail_message(msg, &failure).await,
            }
        }
    }

    fn headers(&self, fields: &Fields, version: &str) -> Result<HeaderMap, BridgeError> {
        let params = self.params.lock().expect("params lock");
        fields.headers(
            version,
            fields.name.as_ref().and_then(|tool| params.get(tool)),
        )
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
                .into()
        };
        self.shared.send(self.shared.deadline(), make).await
    }

    /// Carries a 2xx answer to the agent: a JSON body, or an SSE stream read to the response.
    async fn answer(&self, msg: &Message, id: &Id, fields: &Fields, resp: reqwest::Response) {
        if http::is_event_stream(&resp) {
            self.answer_stream(msg, id, fields, resp).await
        } else {
            self.answer_json(msg, id, fields, resp).await
        }
    }

    /// Forwards the messages of an SSE answer until the one that answers `id`.
    async fn answer_stream(
        &self,
        msg: &Message,
        id: &Id,
        fields: &Fields,
        resp: reqwest::Response,
    ) {
        let mut events = http::EventStream::new(resp, self.shared.config.max_message_size);
        while let Some(data) = events.next_message().await {
            let Data::Message(data) = data else { continue };
            let data = self.learn(fields, data);
            if !self.shared.out.forward(data).await || !self.shared.out.is_pending(id) {
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
        self.shared.out.fail_message(msg, &f).await;
    }

    /// Forwards a JSON answer, which must answer `id`.
    async fn answer_json(&self, msg: &Message, id: &Id, fields: &Fields, resp: reqwest::Response) {
        match http::read_body(resp, self.shared.config.max_message_size).await {
            Ok(body) if !body.iter().all(u8::is_ascii_whitespace) => {
                let body = self.learn(fields, body);
                self.shared.out.forward(body).await;
                if self.shared.out.is_pending(id) {
                    let f = BridgeError::new(
                        Reason::NoAnswer,
                        true,
                        "the server's reply did not answer the request",
                    );
                    self.shared.out.fail_message(msg, &f).await;
                }
            }
            Ok(_) => {
                let f = BridgeError::new(
                    Reason::NoAnswer,
                    true,
                    "the server accepted the request but sent no answer",
                );
                self.shared.out.fail_message(msg, &f).await;
            }
            Err(e) => {
                self.shared
                    .out
                    .fail_message(msg, &BridgeError::new(Reason::BadResponse, true, e))
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
                loop {
                    match events.next_message().await {
                        Some(Data::Message(data)) => break Some(data),
                        Some(Data::Endpoint(_)) => continue,
                        None => break None,
                    }
                }
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
