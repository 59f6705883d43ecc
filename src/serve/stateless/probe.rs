//! Finding out the command's era, as the stdio transport's backward compatibility rules say:
//! the first 2026-07-28 request to reach a fresh child asks it `server/discover` first; a
//! `DiscoverResult` (or a -32022 that names 2026-07-28) means a 2026-07-28 command, whose
//! requests pass through, anything else or silence a handshake-era one, which the bridge then
//! initializes (`crate::serve::shared`). An answered verdict ([`Verdict`]) is kept for the
//! command, so later children skip the probe.

use crate::serve::stateless::child::StatelessChild;
use crate::serve::stateless::tools::own_envelope;
use crate::wire::{STATELESS_VERSION, UNSUPPORTED_VERSION};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the probe waits. It is the child's first message, so the wait includes the
/// command's start-up (an `npx` or `uvx` server fetching its package, a Python SDK importing):
/// as long as `initialize` may take, not the SDK's 10 s discovery timeout for a running server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// What the command speaks, once a probe found out.
#[derive(Debug, Default)]
pub struct Verdict(Mutex<Option<bool>>);

impl Verdict {
    /// What a probe found, if one ran.
    pub fn known(&self) -> Option<bool> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the command speaks 2026-07-28 itself, asking `rc` (a fresh child that nothing
    /// but this has spoken to) unless a probe already found out. An error: the child exited
    /// on the probe (a handshake-era server may refuse an unknown first message that way).
    pub async fn speaks_stateless(&self, rc: &Arc<StatelessChild>) -> std::io::Result<bool> {
        if let Some(known) = *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(known);
        }
        let req = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
            "params": {"_meta": own_envelope()}});
        let answer = rc.ask(req, PROBE_TIMEOUT, false).await;
        let stateless = answer.as_ref().is_some_and(is_stateless_answer);
        // Silence is taken for the handshake era, but only an answer settles it: a child slow
        // to start is asked again by the next request.
        if answer.is_some() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(stateless);
        }
        if stateless {
            tracing::info!("the command speaks 2026-07-28: its requests pass through");
        } else {
            tracing::info!(
                "the command speaks the handshake era: the bridge initializes it and translates \
                 for 2026-07-28 clients"
            );
        }
        if answer.is_none() && rc.is_gone() {
            return Err(std::io::Error::other(
                "the MCP server exited on the server/discover probe",
            ));
        }
        Ok(stateless)
    }
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
