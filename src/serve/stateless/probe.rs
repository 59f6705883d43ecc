//! Starting the stateless child and finding out its era, as the stdio transport's backward
//! compatibility rules say: `server/discover` first; a `DiscoverResult` (or a -32022 that names
//! 2026-07-28) means a 2026-07-28 child, anything else or silence means a handshake-era child,
//! which the bridge then initializes itself. The verdict is kept, so a restart skips the probe.

use crate::serve::app::App;
use crate::serve::child::Child;
use crate::serve::stateless::child::{Era, StatelessChild};
use crate::serve::stateless::tools::own_envelope;
use crate::serve::stateless::translate::HandshakeInfo;
use crate::wire::{STATELESS_VERSION, UNSUPPORTED_VERSION};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// How long the probe waits (the SDK's own discovery timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `initialize` of a handshake-era child may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a `server/discover` answer shows a 2026-07-28 server.
fn is_stateless_answer(answer: &Value) -> bool {
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

/// What the probe found the command to be, kept so that a restart skips it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Verdict {
    Stateless,
    Handshake,
}

/// One stateless child: started and probed on first use (unless `verdict` already knows the
/// command's era), started again (without the probe) after it exits.
#[derive(Debug, Default)]
pub struct Slot {
    pub(super) current: tokio::sync::Mutex<Option<Arc<StatelessChild>>>,
}

impl Slot {
    /// The running stateless child, started (and probed) if there is none.
    pub(super) async fn get(
        &self,
        app: &App,
        verdict: &Mutex<Option<Verdict>>,
    ) -> std::io::Result<Arc<StatelessChild>> {
        let mut current = self.current.lock().await;
        if let Some(rc) = current.as_ref().filter(|rc| !rc.is_gone()) {
            return Ok(rc.clone());
        }
        if app.shutdown.is_cancelled() {
            return Err(std::io::Error::other("the gateway is shutting down"));
        }
        let known = *verdict.lock().unwrap_or_else(|p| p.into_inner());
        let (rc, verdict_now) = match known {
            Some(v) => (spawn(app)?, v),
            None => probe(app).await?,
        };
        *verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict_now);
        let era = match verdict_now {
            Verdict::Stateless => {
                tracing::info!("the stateless child speaks 2026-07-28: requests pass through");
                Era::Stateless
            }
            Verdict::Handshake => Era::Handshake(initialize(&rc).await.inspect_err(|_| {
                if let Some(c) = rc.child.get() {
                    c.stop();
                }
            })?),
        };
        let _ = rc.era.set(era);
        *current = Some(rc.clone());
        Ok(rc)
    }
}

/// Starts the child and asks it `server/discover`. A child that exited on the probe (a
/// handshake-era server may refuse an unknown first message that way) is started again.
async fn probe(app: &App) -> std::io::Result<(Arc<StatelessChild>, Verdict)> {
    let rc = spawn(app)?;
    let req = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
        "params": {"_meta": own_envelope()}});
    let answer = rc.ask(req, PROBE_TIMEOUT, false).await;
    let verdict = if answer.as_ref().is_some_and(is_stateless_answer) {
        Verdict::Stateless
    } else {
        Verdict::Handshake
    };
    if answer.is_none() && rc.is_gone() {
        tracing::info!("the child exited on the server/discover probe; starting it again");
        return Ok((spawn(app)?, verdict));
    }
    Ok((rc, verdict))
}

/// The bridge's own handshake with a handshake-era child.
async fn initialize(rc: &Arc<StatelessChild>) -> std::io::Result<HandshakeInfo> {
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
    let info = HandshakeInfo::from_result(result);
    rc.notify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    tracing::info!(
        protocol = info.protocol,
        "the stateless child speaks the handshake era: the bridge initialized it and \
         translates its answers for 2026-07-28 clients"
    );
    Ok(info)
}

fn spawn(app: &App) -> std::io::Result<Arc<StatelessChild>> {
    let rc = Arc::new(StatelessChild::new(app.metrics.clone()));
    let span = tracing::info_span!("stateless");
    let on_line = Child::messages_to(Arc::downgrade(&rc), StatelessChild::dispatch);
    let weak = Arc::downgrade(&rc);
    let (metrics, shutdown) = (app.metrics.clone(), app.shutdown.clone());
    let on_exit = move |reason: String| {
        if let Some(rc) = weak.upgrade() {
            rc.exited(&reason);
        }
        metrics.children.dec();
        if !shutdown.is_cancelled() {
            metrics.child_crashes.inc();
        }
    };
    let child = {
        let _enter = span.enter();
        Child::spawn(&app.cfg, &app.tasks, on_line, on_exit)?
    };
    app.metrics.children.inc();
    app.metrics.children_total.inc();
    let _ = rc.child.set(child);
    Ok(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_are_classified() {
        let ok = json!({"result": {"supportedVersions": ["2026-07-28"], "capabilities": {}}});
        assert!(is_stateless_answer(&ok));
        let other = json!({"error": {"code": -32022, "data": {"supported": ["2026-07-28"]}}});
        assert!(is_stateless_answer(&other));
        let handshake = json!({"error": {"code": -32601, "message": "Method not found"}});
        assert!(!is_stateless_answer(&handshake));
        let invalid = json!({"error": {"code": -32602, "message": "Invalid request parameters"}});
        assert!(!is_stateless_answer(&invalid));
    }
}
