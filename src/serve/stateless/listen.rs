//! Notifications of the stateless child that answer no request: list changes for the
//! `subscriptions/listen` streams the bridge serves itself in front of a handshake-era child
//! (which has no such method, only `*/list_changed` notifications), and log messages, which go
//! to the one request that opted in to them (stdio gives them no request to belong to).

use crate::jsonrpc::Id;
use crate::serve::stateless::child::{InFlight, Out, StatelessChild, Waiter};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which list changes a listen stream receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Topics {
    tools: bool,
    prompts: bool,
    resources: bool,
}

impl Topics {
    /// The topics a `subscriptions/listen` asks for that `capabilities` can deliver.
    fn honoured(asked: &Value, capabilities: &Value) -> Topics {
        let wants = |key: &str| asked.get(key).and_then(Value::as_bool) == Some(true);
        let offers = |cap: &str| capabilities[cap]["listChanged"].as_bool() == Some(true);
        Topics {
            tools: wants("toolsListChanged") && offers("tools"),
            prompts: wants("promptsListChanged") && offers("prompts"),
            resources: wants("resourcesListChanged") && offers("resources"),
        }
    }

    /// Whether a list-change notification is one of these topics.
    pub(super) fn covers(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        }
    }

    /// The acknowledged subset, as the client asked for it.
    fn as_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (on, key) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                out.insert(key.into(), json!(true));
            }
        }
        Value::Object(out)
    }
}

/// A notification for a listen stream, naming the stream's request as its subscription.
pub(super) fn with_subscription(mut msg: Value, id: &Id) -> Bytes {
    let id: Value = serde_json::from_str(id.as_json()).unwrap_or(Value::Null);
    if !msg["params"].is_object() {
        msg["params"] = json!({});
    }
    if !msg["params"]["_meta"].is_object() {
        msg["params"]["_meta"] = json!({});
    }
    msg["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] = id;
    Bytes::from(serde_json::to_vec(&msg).unwrap_or_default())
}

/// Serves a `subscriptions/listen` for a handshake-era child: acknowledges what its
/// capabilities can deliver (resource subscriptions never), then relays its list changes.
pub fn serve_locally(
    child: &Arc<StatelessChild>,
    asked: &Value,
    client_id: Id,
) -> (mpsc::UnboundedReceiver<Out>, InFlight) {
    let caps = child
        .handshake()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    let topics = Topics::honoured(asked, &caps);
    let (tx, rx) = mpsc::unbounded_channel();
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": topics.as_json()}});
    let _ = tx.send(Out::Note(with_subscription(ack, &client_id)));
    let waiter = Waiter {
        tx,
        client_id: Some(client_id),
        client_token: None,
        method: "subscriptions/listen".into(),
        since: std::time::Instant::now(),
        logs: false,
        listen: Some(topics),
        ticket: None,
    };
    let guard = child.register(waiter);
    (rx, guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_child_offers_is_acknowledged() {
        let asked = json!({"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["x://y"]});
        let caps = json!({"tools": {"listChanged": true}, "prompts": {}});
        let t = Topics::honoured(&asked, &caps);
        assert_eq!(t.as_json(), json!({"toolsListChanged": true}));
        assert!(t.covers("notifications/tools/list_changed"));
        assert!(!t.covers("notifications/prompts/list_changed"));
    }
}
