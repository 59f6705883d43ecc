//! What the stateless child sends, routed: an answer to the request waiting for it (id and
//! progress token restored, translated for a handshake-era child), a notification to the request
//! it names or to the listen streams, and its own requests refused (a 2026-07-28 client cannot
//! be asked over this bridge).

use super::*;

impl StatelessChild {
    /// Routes one message from the child.
    pub fn dispatch(&self, msg: Message) {
        self.metrics.from_child.inc();
        match msg.kind().clone() {
            Kind::Response { id } => self.answered(&id, &msg.raw),
            Kind::Request { id, method } => {
                tracing::warn!(
                    method,
                    "the child asked the client something; a 2026-07-28 client cannot be asked \
                     over this bridge, so the child gets an error"
                );
                let err = jsonrpc::error_response(
                    Some(&id),
                    METHOD_NOT_FOUND,
                    &format!(
                        "`{method}` is not available through mcp-bridge serve to a 2026-07-28 client"
                    ),
                    Some(wire::source_only()),
                );
                if let Some(c) = self.child.get() {
                    let _ = c.try_send(err);
                }
            }
            Kind::Notification { method } => self.notification(&method, &msg.raw),
        }
    }

    pub(super) fn answered(&self, id: &Id, raw: &[u8]) {
        let Some(w) = parse_n(id).and_then(|n| self.lock().pending.remove(&n)) else {
            tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
            return;
        };
        if w.client_id.is_some() {
            self.metrics.latency.observe(w.since.elapsed());
        }
        let Some(client_id) = &w.client_id else {
            let _ = w.tx.send(Out::Answer(Bytes::copy_from_slice(raw)));
            return;
        };
        let ticket = w.ticket;
        let out = match self.handshake() {
            Some(info) => match serde_json::from_slice::<Value>(raw) {
                Ok(mut v) => {
                    translate::answer(&mut v, &w.method, info);
                    v["id"] = serde_json::from_str(client_id.as_json()).unwrap_or(Value::Null);
                    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
                }
                Err(e) => BridgeError::new(
                    Reason::ChildGone,
                    false,
                    format!("the MCP server's answer cannot be relayed: {e}"),
                )
                .response(Some(client_id)),
            },
            None => match crate::rewrite::splice(raw, &["id"], client_id.as_json()) {
                Ok(b) => b,
                Err(e) => BridgeError::new(
                    Reason::ChildGone,
                    false,
                    format!("the MCP server's answer cannot be relayed: {e}"),
                )
                .response(Some(client_id)),
            },
        };
        let out = match ticket {
            Some(t) => t.finish(out, &self.catalog),
            None => out,
        };
        let _ = w.tx.send(Out::Answer(out));
    }

    pub(super) fn notification(&self, method: &str, raw: &[u8]) {
        use crate::rewrite;
        const TOKEN: &[&str] = &["params", "progressToken"];
        const SUBSCRIPTION: &[&str] =
            &["params", "_meta", "io.modelcontextprotocol/subscriptionId"];
        if method == "notifications/tools/list_changed" {
            self.tools.invalidate();
            self.catalog.clear();
        }
        let got = |path: &[&str]| rewrite::get(raw, path).ok().flatten();
        // Progress names its request by token; a listen stream's notifications by id.
        let (n, path) = if let Some(t) = got(TOKEN) {
            let n = serde_json::from_str::<String>(t)
                .ok()
                .and_then(|t| t.strip_prefix(TOKEN_PREFIX)?.parse().ok());
            (n, TOKEN)
        } else if let Some(sub) = got(SUBSCRIPTION) {
            (crate::rewrite::as_number(sub), SUBSCRIPTION)
        } else if method == "notifications/cancelled" {
            // A child ending a listen stream: the stream ends without an answer. (Any other
            // cancel names one of the child's own requests, none of which reach a client.)
            if let Some(n) = got(&["params", "requestId"]).and_then(crate::rewrite::as_number) {
                let mut st = self.lock();
                if st
                    .pending
                    .get(&n)
                    .is_some_and(|w| w.method == "subscriptions/listen" && w.listen.is_none())
                {
                    st.pending.remove(&n);
                }
            }
            return;
        } else {
            if let Ok(v) = serde_json::from_slice::<Value>(raw) {
                self.unaddressed(method, v);
            }
            return;
        };
        let st = self.lock();
        let Some(w) = n.and_then(|n| st.pending.get(&n)) else {
            tracing::debug!(method, "dropping a notification for a request that is over");
            return;
        };
        let client = if path == TOKEN {
            w.client_token.as_deref()
        } else {
            w.client_id.as_ref().map(Id::as_json)
        };
        if let Ok(out) = rewrite::splice(raw, path, client.unwrap_or("null")) {
            let _ = w.tx.send(Out::Note(out));
        }
    }
}
