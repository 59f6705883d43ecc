//! Finding out the command's era, once, as the stdio transport's backward compatibility rules
//! say: a process is started and asked `server/discover`; a `DiscoverResult` (or a -32022 that
//! names 2026-07-28) means a 2026-07-28 command, anything else or silence a handshake-era one.
//! The probing process is then stopped: 2026-07-28 requests go to a child of the routing rule's
//! name, a [`Slot`] here for a 2026-07-28 command, the named child its sessions share otherwise
//! (`crate::serve::keyed`), which nothing but `initialize` may reach first.

use crate::serve::app::App;
use crate::serve::child::Child;
use crate::serve::stateless::child::{Era, StatelessChild};
use crate::serve::stateless::tools::own_envelope;
use crate::wire::{STATELESS_VERSION, UNSUPPORTED_VERSION};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the probe waits (the SDK's own discovery timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Stateless,
    Handshake,
}

/// One child of a 2026-07-28 command: started on first use, and again after it exits.
#[derive(Debug, Default)]
pub struct Slot {
    pub(super) current: tokio::sync::Mutex<Option<Arc<StatelessChild>>>,
}

impl Slot {
    /// The running child, started if there is none.
    pub(super) async fn get(&self, app: &App) -> std::io::Result<Arc<StatelessChild>> {
        let mut current = self.current.lock().await;
        if let Some(rc) = current.as_ref().filter(|rc| !rc.is_gone()) {
            return Ok(rc.clone());
        }
        if app.shutdown.is_cancelled() {
            return Err(std::io::Error::other("the gateway is shutting down"));
        }
        let rc = spawn(app)?;
        let _ = rc.era.set(Era::Stateless);
        *current = Some(rc.clone());
        Ok(rc)
    }
}

/// Starts the command and asks it `server/discover`, then stops it. A child that exited on the
/// probe (a handshake-era server may refuse an unknown first message that way) is one of the
/// handshake era.
pub(super) async fn probe(app: &App) -> std::io::Result<Verdict> {
    let rc = spawn(app)?;
    let req = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
        "params": {"_meta": own_envelope()}});
    let answer = rc.ask(req, PROBE_TIMEOUT, false).await;
    let verdict = if answer.as_ref().is_some_and(is_stateless_answer) {
        tracing::info!("the command speaks 2026-07-28: its requests pass through");
        Verdict::Stateless
    } else {
        tracing::info!(
            "the command speaks the handshake era: 2026-07-28 requests are translated onto the \
             child the routing rule picks"
        );
        Verdict::Handshake
    };
    if let Some(c) = rc.child.get() {
        c.stop();
    }
    Ok(verdict)
}

fn spawn(app: &App) -> std::io::Result<Arc<StatelessChild>> {
    let rc = Arc::new(StatelessChild::new(app.metrics.clone()));
    let span = tracing::info_span!("stateless");
    let on_line = Child::messages_to(Arc::downgrade(&rc), StatelessChild::dispatch);
    let weak = Arc::downgrade(&rc);
    let (metrics, shutdown) = (app.metrics.clone(), app.shutdown.clone());
    let on_exit = move |reason: String| {
        metrics.children.dec();
        // A child nobody holds any more was stopped on purpose (the probe, an expired one).
        if let Some(rc) = weak.upgrade() {
            rc.exited(&reason);
            if !shutdown.is_cancelled() {
                metrics.child_crashes.inc();
            }
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
