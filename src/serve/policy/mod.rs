//! Least privilege in serve: the one place serve's three request paths (Streamable HTTP and sse
//! sessions, stateless 2026-07-28 requests) ask whether a request may go on. In: who the client
//! is ([`identify`], run by guard's middleware), then its rate limit and the server's rules ([`Gate::inbound`]);
//! a refused request is answered here and never reaches the child. Out: a [`Ticket`] filters the
//! answer to a list request and writes the audit record. The rules live in `crate::policy`.

mod ticket;
mod wiring;

pub use ticket::Ticket;
pub use wiring::{admit, check_owner, claim, forward, gate_of, identify, may_reach, policy_of};

use crate::jsonrpc::{Id, Kind, Message};
use crate::policy::Policy;
use crate::policy::audit::{AuditConfig, AuditLog, Name, Outcome, Record};
use crate::policy::check::{Asked, ToolCatalog};
use crate::policy::clients::Client;
use crate::policy::ratelimit::RateLimiter;
use crate::serve::metrics::Counter;
use crate::wire;
use axum::extract::Request;
use bytes::Bytes;
use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

/// Who sent a request: put in its extensions by [`identify`] on every route.
#[derive(Clone, Debug, Default)]
pub struct Requester {
    /// The named client; `None` when `mcpBridge.clients` is not configured.
    pub client: Option<Arc<Client>>,
    /// The Unix socket peer's uid (SO_PEERCRED), for the audit log.
    pub peer_uid: Option<u32>,
    /// The Unix socket peer's pid.
    pub peer_pid: Option<u32>,
    /// The session key it presented (`Mcp-Bridge-Session-Key`), for the audit log.
    pub key: Option<Arc<str>>,
}

impl Requester {
    /// The client's name; `""` for the one anonymous client of a gateway without named clients
    /// (its rules are the server's, its rate limit `mcpBridge.rateLimit`).
    pub fn name(&self) -> &str {
        self.client.as_deref().map_or("", |c| &c.name)
    }

    /// The requester of a request `identify` did not see (unit tests, internal requests).
    pub fn of(req: &Request) -> Requester {
        req.extensions()
            .get::<Requester>()
            .cloned()
            .unwrap_or_default()
    }
}

/// The policy of a running gateway: swapped whole on reload; the rate limiter's buckets and the
/// audit writer outlive a swap.
pub struct Gate {
    policy: RwLock<Arc<Policy>>,
    limiter: RateLimiter,
    audit: RwLock<Option<(AuditConfig, Arc<AuditLog>)>>,
    /// Requests the rules refused.
    denied: Counter,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            policy: RwLock::new(Arc::new(Policy::default())),
            limiter: RateLimiter::default(),
            audit: RwLock::new(None),
            denied: Counter::default(),
        }
    }
}

/// What serve does with a client's message.
#[derive(Debug)]
pub enum Verdict {
    /// Send it to the child; the ticket (if any) watches its answer.
    Forward(Option<Ticket>),
    /// Do not send it: these are the answers to its requests.
    Answer(Vec<Bytes>),
}

/// Where a request is going, for its rules and its audit record.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    /// Who sent it.
    pub requester: &'a Requester,
    /// The server's name (`None` for the one server of `serve -- CMD`).
    pub server: Option<&'a Arc<str>>,
    /// The session id, for handshake-era sessions.
    pub session: Option<&'a Arc<str>>,
    /// The session key the client presented, if any.
    pub key: Option<&'a Arc<str>>,
}

impl Gate {
    /// A gate for `policy`; opens the audit log (failing, naming the file, if it cannot).
    pub fn new(policy: Policy) -> std::io::Result<Gate> {
        let gate = Gate::default();
        gate.reload(policy)?;
        Ok(gate)
    }

    /// Applies a reloaded policy to the next request. The audit log is reopened only when its
    /// settings changed; a bad new audit file leaves everything as it was.
    pub fn reload(&self, policy: Policy) -> std::io::Result<()> {
        {
            let mut audit = self.audit.write().unwrap_or_else(|e| e.into_inner());
            let same = audit.as_ref().map(|(c, _)| c) == policy.audit.as_ref();
            if !same {
                *audit = match &policy.audit {
                    Some(cfg) => Some((cfg.clone(), Arc::new(AuditLog::start(cfg)?))),
                    None => None,
                };
            }
        }
        self.limiter
            .reconfigure(policy.default_rate, &policy.clients);
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
        Ok(())
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn audit(&self) -> Option<Arc<AuditLog>> {
        let audit = self.audit.read().unwrap_or_else(|e| e.into_inner());
        audit.as_ref().map(|(_, log)| log.clone())
    }

    /// Reopens the audit file (SIGHUP, after logrotate moved it).
    pub fn reopen_audit(&self) {
        if let Some(log) = self.audit() {
            log.reopen();
        }
    }

    /// Waits until every audit record queued so far is written (at shutdown).
    pub async fn flush_audit(&self) {
        if let Some(log) = self.audit() {
            log.flush().await;
        }
    }

    /// Whether `mcpBridge.clients` names clients (the single `--auth-token` is then unused).
    pub fn names_clients(&self) -> bool {
        !self.policy().clients.is_empty()
    }

    /// Decides on one client message before it is forwarded: the rate limit, then the rules.
    /// Notifications and responses pass unchecked and unrecorded. A batch passes only where
    /// nothing applies; otherwise each request in it is refused (batches are of 2025-03-26
    /// only, and a policy checks one request at a time).
    pub fn inbound(&self, at: Place<'_>, msg: &Message, catalog: &ToolCatalog) -> Verdict {
        if !msg.has_requests() {
            return Verdict::Forward(None);
        }
        let policy = self.policy();
        let client = at.requester.name();
        let server: &str = at.server.map_or("", |s| s);
        let rules = policy.rules_for(server, client);
        let audit = self.audit();
        let limited = policy.default_rate.is_some()
            || at
                .requester
                .client
                .as_ref()
                .is_some_and(|c| c.rate_limit.is_some());
        if rules.is_none() && audit.is_none() && !limited {
            return Verdict::Forward(None);
        }
        let (id, method) = match msg.kind() {
            Kind::Request { id, method } if !msg.batch => (id, method.as_str()),
            _ => {
                let refuse = |id: &Id| {
                    crate::jsonrpc::error_response(
                        Some(id),
                        crate::jsonrpc::INVALID_REQUEST,
                        "batches are not accepted where the gateway applies a policy, a rate limit or an audit log; send one request per message",
                        Some(wire::source_only()),
                    )
                };
                return Verdict::Answer(msg.request_ids().map(refuse).collect());
            }
        };
        // What the request names, read once for the rules and the audit record.
        let checks = rules.as_ref().is_some_and(|r| !r.passes_unread(method));
        let asked = if checks || audit.is_some() {
            Asked::of(method, msg)
        } else {
            None
        };
        let mut ticket = Ticket {
            rules,
            id: id.clone(),
            method: crate::policy::audit::method_name(method),
            audit: None,
            record: None,
            started: Instant::now(),
        };
        if let Some(log) = audit {
            ticket.record = Some(Box::new(Record {
                time: SystemTime::now(),
                client: at.requester.client.as_ref().map(|c| c.name.clone()),
                peer_uid: at.requester.peer_uid,
                peer_pid: at.requester.peer_pid,
                session: at.session.cloned(),
                key: at.key.cloned(),
                server: at.server.cloned(),
                method: ticket.method.clone(),
                name: asked
                    .as_ref()
                    .and_then(|a| a.name.as_deref().map(Name::from)),
                duration: Default::default(),
                outcome: Outcome::Ok,
                bytes_in: msg.raw.len() as u64,
                bytes_out: 0,
                request: log.wants_arguments().then(|| msg.raw.clone()),
                answer: None,
            }));
            ticket.audit = Some(log);
        }
        if limited && let Err(l) = self.limiter.check(client) {
            let answer = l.response(id.as_json());
            ticket.finish_as(
                &answer,
                Outcome::Denied {
                    reason: "rate-limited",
                },
            );
            return Verdict::Answer(vec![answer]);
        }
        if let (Some(rules), Some(asked)) = (&ticket.rules, &asked)
            && checks
            && let Err(denied) = rules.check_asked(asked, catalog)
        {
            self.denied.inc();
            tracing::info!(
                client,
                server,
                method,
                rule = denied.refusal.as_str(),
                "refused by policy"
            );
            let answer = denied.response(id.as_json());
            ticket.finish_as(
                &answer,
                Outcome::Denied {
                    reason: "policy-denied",
                },
            );
            return Verdict::Answer(vec![answer]);
        }
        let filters = ticket.rules.is_some() && method.ends_with("/list");
        if !filters && ticket.audit.is_none() {
            ticket.record = None;
            return Verdict::Forward(None);
        }
        if !filters {
            ticket.rules = None;
        }
        Verdict::Forward(Some(ticket))
    }

    /// The gate's lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP mcp_bridge_policy_denied_total Requests refused by the gateway's tool policy.\n\
             # TYPE mcp_bridge_policy_denied_total counter\nmcp_bridge_policy_denied_total {}",
            self.denied.get()
        );
        let _ = writeln!(
            s,
            "# HELP mcp_bridge_rate_limited_total Requests refused by a client's rate limit.\n\
             # TYPE mcp_bridge_rate_limited_total counter\nmcp_bridge_rate_limited_total {}",
            self.limiter.limited_total()
        );
        for (client, n) in self.limiter.limited_by_client() {
            let _ = writeln!(
                s,
                "mcp_bridge_rate_limited_total{{client=\"{}\"}} {n}",
                client.escape_default()
            );
        }
        let _ = writeln!(
            s,
            "# HELP mcp_bridge_audit_dropped_total Audit records dropped because the writer fell behind.\n\
             # TYPE mcp_bridge_audit_dropped_total counter\nmcp_bridge_audit_dropped_total {}",
            self.audit().map_or(0, |a| a.dropped())
        );
        s
    }
}

#[cfg(test)]
mod tests;
