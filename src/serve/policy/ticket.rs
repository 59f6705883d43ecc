//! A [`Ticket`] follows one forwarded request to its answer: the list filter on the way out,
//! then the audit record.

use crate::jsonrpc::Id;
use crate::policy::audit::{AuditLog, Outcome, Record};
use crate::policy::check::ToolCatalog;
use crate::policy::filter::filter_list;
use crate::policy::rules::Rules;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Follows one forwarded request to its answer: filters a list answer by the client's rules and
/// writes the audit record. Dropped without an answer (cancelled, session or child gone before
/// it answered) it records `bridge-error`, reason `no-answer`.
pub struct Ticket {
    /// The client's rules, kept only for list requests.
    pub(super) rules: Option<Arc<Rules>>,
    /// The request's id as the client sent it.
    pub(super) id: Id,
    pub(super) method: std::borrow::Cow<'static, str>,
    pub(super) audit: Option<Arc<AuditLog>>,
    pub(super) record: Option<Box<Record>>,
    pub(super) started: Instant,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({})", self.id.as_json())
    }
}

impl Ticket {
    /// The answer to send in place of the child's (`answer`, with the client's id): filtered
    /// when it lists what the rules hide. `catalog` learns which tools are read-only.
    pub fn finish(mut self, answer: Bytes, catalog: &ToolCatalog) -> Bytes {
        let mut out = answer;
        if let Some(rules) = self.rules.take() {
            match filter_list(&rules, catalog, &self.method, &out) {
                Ok(None) => {}
                Ok(Some(filtered)) => out = filtered,
                Err(e) => {
                    tracing::warn!("{e}");
                    out = e.response(self.id.as_json());
                }
            }
        }
        if self.record.is_some() {
            let outcome = Outcome::deferred(&out);
            self.finish_as(&out, outcome);
        }
        out
    }

    /// Writes the record with this outcome (once).
    pub(super) fn finish_as(&mut self, answer: &[u8], outcome: Outcome) {
        let (Some(mut record), Some(log)) = (self.record.take(), self.audit.as_ref()) else {
            return;
        };
        record.duration = self.started.elapsed();
        record.bytes_out = answer.len() as u64;
        record.outcome = outcome;
        if log.wants_arguments() {
            record.answer = Some(Bytes::copy_from_slice(answer));
        }
        log.log(*record);
    }
}

impl Ticket {
    /// Records a request answered by a stream the gateway opened itself (a subscription).
    pub fn opened(mut self) {
        self.finish_as(b"", Outcome::Ok);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.record.is_some() {
            self.finish_as(
                b"",
                Outcome::BridgeError {
                    reason: "no-answer".into(),
                },
            );
        }
    }
}
