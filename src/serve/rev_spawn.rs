//! Starting the stateless child and finding out its era, as the stdio transport's backward
//! compatibility rules say: `server/discover` first; a `DiscoverResult` (or a -32022 that names
//! 2026-07-28) means a 2026-07-28 child, anything else or silence means a handshake-era child,
//! which the bridge then initializes itself. The verdict is kept, so a restart skips the probe.

use super::app::App;
use super::child::Child;
use super::rev_child::{Era, RevChild};
use super::rev_tools::own_envelope;
use super::translate::LegacyInfo;
use crate::wire::{STATELESS_VERSION, UNSUPPORTED_VERSION};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the probe waits (the SDK's own discovery timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `initialize` of a handshake-era child may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a `server/discover` answer shows a 2026-07-28 server.
fn is_modern_answer(answer: &Value) -> bool {
    let names_us = |list: Option<&Value>| {
        list.and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|v| v == STATELESS_VERSION))
    };
    if let Some(result) = answer.get("result") {
        return names_us(result.get("supportedVersions"));
    }
    let err = &answer["error"];
    err["code"].as_i64() == Some(UNSUPPORTED_VERSION) && names_us(err["data"].get("supported"))
}

impl App {
    /// The stateless child, started (and probed) on first use.
    pub async fn rev_child(self: &Arc<Self>) -> std::io::Result<Arc<RevChild>> {
        let mut slot = self.rev.lock().await;
        if let Some(rc) = slot.as_ref().filter(|rc| !rc.is_gone()) {
            return Ok(rc.clone());
        }
        if self.shutdown.is_cancelled() {
            return Err(std::io::Error::other("the gateway is shutting down"));
        }
        let known = *self.rev_modern.lock().unwrap_or_else(|p| p.into_inner());
        let mut rc = self.spawn_rev()?;
        let modern = match known {
            Some(m) => m,
            None => {
                let req = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
                    "params": {"_meta": own_envelope()}});
                let answer = rc.ask(req, PROBE_TIMEOUT, false).await;
                let modern = answer.as_ref().is_some_and(is_modern_answer);
                if answer.is_none() && rc.is_gone() {
                    tracing::info!(
                        "the child exited on the server/discover probe; starting it again"
                    );
                    rc = self.spawn_rev()?;
                }
                *self.rev_modern.lock().unwrap_or_else(|p| p.into_inner()) = Some(modern);
                modern
            }
        };
        if modern {
            tracing::info!("the stateless child speaks 2026-07-28: requests pass through");
            let _ = rc.era.set(Era::Modern);
        } else {
            let info = match self.initialize(&rc).await {
                Ok(info) => info,
                Err(e) => {
                    if let Some(c) = rc.child.get() {
                        c.stop();
                    }
                    return Err(e);
                }
            };
            tracing::info!(
                protocol = info.protocol,
                "the stateless child speaks the handshake era: the bridge initialized it and \
                 translates its answers for 2026-07-28 clients"
            );
            let _ = rc.era.set(Era::Legacy(info));
        }
        *slot = Some(rc.clone());
        Ok(rc)
    }

    async fn initialize(&self, rc: &Arc<RevChild>) -> std::io::Result<LegacyInfo> {
        let req = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
        }});
        let answer = rc.ask(req, INIT_TIMEOUT, false).await;
        let Some(result) = answer.as_ref().and_then(|a| a.get("result")) else {
            let why = match answer.and_then(|a| a.get("error").cloned()) {
                Some(err) => format!("the MCP server refused initialize: {err}"),
                None => "the MCP server did not answer initialize".to_owned(),
            };
            return Err(std::io::Error::other(why));
        };
        let info = LegacyInfo::from_result(result);
        rc.notify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        Ok(info)
    }

    fn spawn_rev(self: &Arc<Self>) -> std::io::Result<Arc<RevChild>> {
        let rc = Arc::new(RevChild::new(self.metrics.clone()));
        let span = tracing::info_span!("stateless");
        let on_line = Child::messages_to(Arc::downgrade(&rc), RevChild::dispatch);
        let app = Arc::downgrade(self);
        let weak = Arc::downgrade(&rc);
        let on_exit = move |reason: String| {
            if let Some(rc) = weak.upgrade() {
                rc.exited(&reason);
            }
            let Some(app) = app.upgrade() else { return };
            app.metrics.children.dec();
            if !app.shutdown.is_cancelled() {
                app.metrics.child_crashes.inc();
            }
        };
        let child = {
            let _enter = span.enter();
            Child::spawn(&self.cfg, &self.tasks, on_line, on_exit)?
        };
        self.metrics.children.inc();
        self.metrics.children_total.inc();
        let _ = rc.child.set(child);
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_are_classified() {
        let ok = json!({"result": {"supportedVersions": ["2026-07-28"], "capabilities": {}}});
        assert!(is_modern_answer(&ok));
        let other = json!({"error": {"code": -32022, "data": {"supported": ["2026-07-28"]}}});
        assert!(is_modern_answer(&other));
        let legacy = json!({"error": {"code": -32601, "message": "Method not found"}});
        assert!(!is_modern_answer(&legacy));
        let invalid = json!({"error": {"code": -32602, "message": "Invalid request parameters"}});
        assert!(!is_modern_answer(&invalid));
    }
}
