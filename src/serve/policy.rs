//! Least privilege in serve: the one place serve's three request paths (Streamable HTTP and sse
//! sessions, stateless 2026-07-28 requests) ask whether a request may go on. In: who the client
//! is ([`identify`], a middleware), then its rate limit and the server's rules ([`Gate::inbound`]);
//! a refused request is answered here and never reaches the child. Out: a [`Ticket`] filters the
//! answer to a list request and writes the audit record. The rules live in `crate::policy`.

use crate::jsonrpc::{Id, Kind, Message};
use crate::net::Peer;
use crate::policy::Policy;
use crate::policy::audit::{AuditConfig, AuditLog, Outcome, Record};
use crate::policy::check::{ToolCatalog, named};
use crate::policy::clients::Client;
use crate::policy::filter::filter_list;
use crate::policy::ratelimit::RateLimiter;
use crate::policy::rules::Rules;
use crate::serve::app::App;
use crate::serve::http::Refusal;
use crate::serve::metrics::Counter;
use crate::serve::session::Session;
use crate::wire::{self, SESSION_NOT_FOUND};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
    /// The server's name (`""` for the one server of `serve -- CMD`).
    pub server: &'a str,
    /// The session id, for handshake-era sessions.
    pub session: Option<&'a str>,
    /// The session key the client presented, if any.
    pub key: Option<&'a str>,
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
        let rules = policy.rules_for(at.server, client);
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
        let mut ticket = Ticket {
            rules,
            id: id.clone(),
            method: method.to_owned(),
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
                session: at.session.map(Arc::from),
                key: at.key.map(Arc::from),
                server: (!at.server.is_empty()).then(|| Arc::from(at.server)),
                method: method.to_owned(),
                name: named(method, &msg.raw),
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
        if let Some(rules) = &ticket.rules
            && let Err(denied) = rules.check_call(method, &msg.raw, catalog)
        {
            self.denied.inc();
            tracing::info!(
                client,
                server = at.server,
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

/// Follows one forwarded request to its answer: filters a list answer by the client's rules and
/// writes the audit record. Dropped without an answer (cancelled, session or child gone before
/// it answered) it records `bridge-error`, reason `no-answer`.
pub struct Ticket {
    /// The client's rules, kept only for list requests.
    rules: Option<Arc<Rules>>,
    /// The request's id as the client sent it.
    id: Id,
    method: String,
    audit: Option<Arc<AuditLog>>,
    record: Option<Box<Record>>,
    started: Instant,
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
            let outcome = Outcome::of_answer(&out);
            self.finish_as(&out, outcome);
        }
        out
    }

    /// Writes the record with this outcome (once).
    fn finish_as(&mut self, answer: &[u8], outcome: Outcome) {
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

/// Middleware inside guard's Host, Origin and token checks: names the client of every request
/// (a [`Requester`] in its extensions). With `mcpBridge.clients`, a missing or unknown
/// credential gets 401 (`/healthz` excepted).
pub async fn identify(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let (peer_uid, peer_pid) = match req.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(Peer::Unix { uid, pid })) => {
            (*uid, pid.and_then(|p| u32::try_from(p).ok()))
        }
        _ => (None, None),
    };
    let mut requester = Requester {
        client: None,
        peer_uid,
        peer_pid,
    };
    let policy = app.cfg.gate.policy();
    if !policy.clients.is_empty() && req.uri().path() != "/healthz" {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match policy.clients.identify(auth, peer_uid) {
            Some(client) => requester.client = Some(client),
            None => {
                return Refusal::rpc(
                    StatusCode::UNAUTHORIZED,
                    crate::jsonrpc::INVALID_REQUEST,
                    "missing or unknown client credential",
                )
                .with(header::WWW_AUTHENTICATE, "Bearer")
                .into_response();
            }
        }
    }
    req.extensions_mut().insert(requester);
    next.run(req).await
}

/// Middleware on one server's routes: a named client asking for a server not granted to it
/// gets 404, exactly as for a server that does not exist, so it cannot probe which servers
/// the gateway has.
pub async fn reach(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let server = server_name(&app);
    if let Some(client) = req
        .extensions()
        .get::<Requester>()
        .and_then(|r| r.client.as_ref())
        && !server.is_empty()
        && !client.may_reach(server)
    {
        tracing::info!(client = %client.name, server, "refused: server not granted to this client");
        return not_found().into_response();
    }
    next.run(req).await
}

fn not_found() -> Refusal {
    Refusal::rpc(
        StatusCode::NOT_FOUND,
        crate::jsonrpc::INVALID_REQUEST,
        "not found",
    )
}

/// The name the policy knows this gateway's server by.
pub fn server_name(app: &App) -> &str {
    let _ = app;
    ""
}

/// Records which client opened a session: only that client may use it afterwards.
pub fn claim(session: &Session, requester: &Requester) {
    if let Some(c) = &requester.client {
        let _ = session.owner.set(c.name.clone());
    }
}

/// Refuses (404, as for a session that does not exist) a request naming another client's
/// session.
pub fn check_owner(session: &Session, requester: &Requester) -> Result<(), Refusal> {
    match session.owner.get() {
        Some(owner) if **owner != *requester.name() => Err(Refusal::rpc(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "unknown or expired session",
        )),
        _ => Ok(()),
    }
}

/// Sends a client message on to its session's child, or answers it here when the gate refuses
/// it. Streamable HTTP and sse call this once the session has planned where answers go.
pub async fn forward(app: &App, session: &Arc<Session>, requester: &Requester, msg: Message) {
    let at = Place {
        requester,
        server: server_name(app),
        session: Some(&session.id),
        key: None,
    };
    match app.cfg.gate.inbound(at, &msg, &session.catalog) {
        Verdict::Forward(ticket) => {
            if let (Some(ticket), Kind::Request { id, .. }) = (ticket, msg.kind()) {
                session.watch(id, ticket);
            }
            session.send(msg).await;
        }
        Verdict::Answer(answers) => {
            for answer in answers {
                session.deliver_raw(answer);
            }
        }
    }
}

/// The gate for a stateless (2026-07-28) request: the ticket that follows it to its answer, or
/// the answer that refuses it.
pub fn admit(
    app: &App,
    requester: &Requester,
    msg: &Message,
    catalog: &ToolCatalog,
) -> Result<Option<Ticket>, Bytes> {
    let at = Place {
        requester,
        server: server_name(app),
        session: None,
        key: None,
    };
    match app.cfg.gate.inbound(at, msg, catalog) {
        Verdict::Forward(ticket) => Ok(ticket),
        Verdict::Answer(mut answers) => Err(answers.pop().unwrap_or_default()),
    }
}

/// The policy a gateway file asks for: `mcpBridge.clients`, `rateLimit`, `audit` and every
/// server's `policy`, checked against each other. `env` reads `tokenEnv` variables.
pub fn policy_of(
    file: &crate::gateway::File,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, crate::policy::ConfigError> {
    let servers: Vec<(&str, Option<crate::policy::Setting<'_>>)> = file
        .servers
        .values()
        .map(|s| (s.name.as_str(), setting(&s.options.policy)))
        .collect();
    Policy::parse(
        setting(&file.bridge.clients),
        setting(&file.bridge.rate_limit),
        setting(&file.bridge.audit),
        &servers,
        env,
    )
}

fn setting(raw: &Option<crate::gateway::Raw>) -> Option<crate::policy::Setting<'_>> {
    raw.as_ref().map(|r| (&r.value, r.path.as_str()))
}
