//! Where serve's request paths meet the gate: the identity middleware (401), the per-server
//! grant (404), session ownership, the session path's [`forward`], the stateless path's
//! [`admit`], and the policy of a gateway file.

use super::{Place, Requester, Ticket, Verdict};
use crate::jsonrpc::{Kind, Message};
use crate::net::Peer;
use crate::policy::Policy;
use crate::policy::check::ToolCatalog;
use crate::serve::app::App;
use crate::serve::http::Refusal;
use crate::serve::scope::{Caller, Identity};
use crate::serve::session::Session;
use crate::wire::SESSION_NOT_FOUND;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use std::sync::Arc;

/// Run by guard's middleware after its Host, Origin and token checks: names the client of every
/// request (a [`Requester`] in its extensions). With `mcpBridge.clients`, a missing or unknown
/// credential gets 401 (`/healthz` excepted).
pub fn identify(app: &App, req: &mut Request) -> Result<(), Refusal> {
    let (peer_uid, peer_pid) = match req.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(Peer::Unix { uid, pid })) => {
            (*uid, pid.and_then(|p| u32::try_from(p).ok()))
        }
        _ => (None, None),
    };
    let key = req
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.key.as_deref())
        .map(Arc::from);
    let mut requester = Requester {
        client: None,
        peer_uid,
        peer_pid,
        key,
    };
    let policy = app.cfg.gate.policy();
    if !policy.clients.is_empty() && req.uri().path() != "/healthz" {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match policy.clients.identify(auth, peer_uid) {
            Some(client) => {
                // The client's name is its identity: its session keys and children are its own.
                if let Some(caller) = req.extensions_mut().get_mut::<Caller>() {
                    caller.identity = Identity::Named(client.name.to_string());
                }
                requester.client = Some(client);
            }
            None => {
                return Err(Refusal::rpc(
                    StatusCode::UNAUTHORIZED,
                    crate::jsonrpc::INVALID_REQUEST,
                    "missing or unknown client credential",
                )
                .with(header::WWW_AUTHENTICATE, "Bearer"));
            }
        }
    }
    req.extensions_mut().insert(requester);
    Ok(())
}

/// Whether the client of `req` may reach server `name` (always, without named clients). A
/// refused client gets the answer of a server that does not exist, so it cannot probe which
/// servers the gateway has.
pub fn may_reach(req: &Request, name: &str) -> bool {
    let client = req
        .extensions()
        .get::<Requester>()
        .and_then(|r| r.client.as_ref());
    match client {
        Some(c) if !c.may_reach(name) => {
            tracing::info!(client = %c.name, server = name, "refused: server not granted to this client");
            false
        }
        _ => true,
    }
}

/// The name the policy knows this gateway's server by (`None` for `serve -- CMD`).
fn server_name(app: &App) -> Option<&Arc<str>> {
    app.cfg.server_name.as_ref()
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
        key: requester.key.as_ref(),
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
        key: requester.key.as_ref(),
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

/// The gate of a gateway file, its audit log open. `token`: the gateway's single token is set,
/// which named clients replace (both given is refused).
pub fn gate_of(
    file: &crate::gateway::File,
    token: bool,
) -> Result<Arc<super::Gate>, crate::serve::ConfigError> {
    let policy = policy_of(file, &|k| std::env::var(k).ok())?;
    if token && !policy.clients.is_empty() {
        return Err(crate::serve::ConfigError::TokenWithClients);
    }
    super::Gate::new(policy)
        .map(Arc::new)
        .map_err(crate::serve::ConfigError::Audit)
}
