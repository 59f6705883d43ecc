//! A child with more than one session: the one child of `--scope shared` and the child of a
//! session key. Client request ids and progress tokens are replaced by the bridge's own numbers
//! on the way in and restored on the way out (spliced into the raw bytes, matched by value: see
//! `crate::rewrite`). What the child starts goes only where it is known to belong: a request or a
//! notification that names no request reaches the one session with a request in flight, and
//! otherwise is refused (requests) or dropped (notifications); `resources/updated` reaches the
//! sessions subscribed to that URI, list_changed every session. `initialize` runs once and later
//! sessions get its result; their `notifications/initialized` is not forwarded again.
//! 2026-07-28 requests the routing rule sends here go through its 2026-07-28 side (`stateless`),
//! whose ids and tokens come from the same counter: what the child says about them goes there.

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::rewrite::{self, value_key};
use crate::serve::child::Child;
use crate::serve::session::Session;
use crate::serve::stateless::StatelessChild;
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

mod stateless;

/// Prefix of the progress tokens the bridge gives the child (then the request's number).
const TOKEN_PREFIX: &str = "mcp-bridge-p";

/// The one child and its routing tables.
#[derive(Debug, Default)]
pub struct SharedChild {
    /// The process, set once spawned.
    pub child: OnceLock<Child>,
    state: Mutex<State>,
    gone: std::sync::atomic::AtomicBool,
    /// The bridge's request numbers, for sessions and the 2026-07-28 side alike.
    numbers: Arc<AtomicU64>,
    /// The 2026-07-28 side, once such a request came.
    adapter: OnceLock<Arc<StatelessChild>>,
    /// Set once the 2026-07-28 side knows the child's initialize result.
    adapter_ready: tokio::sync::OnceCell<()>,
    /// Woken when the first `initialize` finishes (or fails).
    init_changed: tokio::sync::Notify,
}

/// A client request at the child, under the bridge's number.
#[derive(Debug)]
struct Outbound {
    session: Weak<Session>,
    /// The client's id, as it spelled it.
    client_id: Id,
    /// The client's progress token, as it spelled it.
    client_token: Option<Box<str>>,
    /// The first `initialize`: its answer also serves the sessions waiting for it.
    first_init: bool,
}

#[derive(Debug, Default)]
struct State {
    outbound: HashMap<u64, Outbound>,
    /// Ids of requests the child sent (by value) -> the session asked to answer.
    inbound: HashMap<Box<str>, Weak<Session>>,
    sessions: Vec<Weak<Session>>,
    /// Resource URI -> sessions that subscribed to it.
    subscribed: HashMap<String, Vec<Weak<Session>>>,
    init: Init,
    initialized_sent: bool,
}

impl State {
    /// The live sessions with a request in flight: none, exactly one, or several.
    fn asking(&self) -> Asking {
        let mut found: Option<Arc<Session>> = None;
        for o in self.outbound.values() {
            let Some(s) = o.session.upgrade().filter(|s| s.closed().is_none()) else {
                continue;
            };
            match &found {
                Some(f) if !Arc::ptr_eq(f, &s) => return Asking::Several,
                _ => found = Some(s),
            }
        }
        found.map_or(Asking::Nobody, Asking::One)
    }

    /// The one live session with a request in flight, if exactly one has.
    fn only_asking(&self) -> Option<Arc<Session>> {
        match self.asking() {
            Asking::One(s) => Some(s),
            Asking::Nobody | Asking::Several => None,
        }
    }
}

/// Which sessions have requests in flight at the child.
enum Asking {
    Nobody,
    One(Arc<Session>),
    Several,
}

#[derive(Debug, Default)]
enum Init {
    #[default]
    NotYet,
    /// The first initialize is at the child; these sessions wait for its result too.
    Running(Vec<(Weak<Session>, Id)>),
    /// The result member of the first initialize's answer.
    Done(Box<RawValue>),
}

impl Init {
    /// Records the outcome of the first initialize (`None`: it failed, and the next session
    /// tries again) and returns the replies for the sessions that waited for it.
    fn finish(&mut self, result: Option<Box<RawValue>>) -> Vec<(Weak<Session>, Bytes)> {
        let waiters = match std::mem::take(self) {
            Init::Running(waiters) => waiters,
            _ => Vec::new(),
        };
        let replies = waiters
            .into_iter()
            .map(|(s, id)| {
                let reply = match &result {
                    Some(result) => answer(&id, result),
                    None => BridgeError::new(
                        Reason::InitFailed,
                        false,
                        "the shared MCP server failed to initialize",
                    )
                    .response(Some(&id)),
                };
                (s, reply)
            })
            .collect();
        if let Some(result) = result {
            *self = Init::Done(result);
        }
        replies
    }
}

fn answer(id: &Id, result: &RawValue) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.as_json(),
        result.get()
    ))
}

impl SharedChild {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process has exited: no session may attach to it any more.
    pub fn mark_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the process has exited.
    pub fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a session to the fan-out list.
    pub fn join(&self, session: &Arc<Session>) {
        let mut st = self.lock();
        st.sessions.retain(|w| w.strong_count() > 0);
        st.sessions.push(Arc::downgrade(session));
    }

    /// Every session still alive.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.lock()
            .sessions
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Sends a client message from `session`. Returns false if the child is gone.
    pub async fn send(&self, session: &Arc<Session>, msg: Message) -> bool {
        let Some(child) = self.child.get() else {
            return false;
        };
        if msg.batch {
            for id in msg.request_ids() {
                session.deliver_raw(jsonrpc::error_response(
                    Some(id),
                    jsonrpc::INVALID_REQUEST,
                    "batches are not supported by a child several sessions share",
                    None,
                ));
            }
            return true;
        }
        let line = match self.rewrite_in(session, &msg) {
            Ok(Some(line)) => line,
            Ok(None) => return true,
            Err(err) => {
                session.deliver_raw(err);
                return true;
            }
        };
        child.send(line).await.is_ok()
    }

    /// The line to send to the child for `msg`, or `None` when the bridge answers it itself
    /// (or drops it). `Err`: the answer for the client, the message could not be rewritten.
    fn rewrite_in(&self, session: &Arc<Session>, msg: &Message) -> Result<Option<Bytes>, Bytes> {
        let mut st = self.lock();
        match msg.kind() {
            Kind::Request { id, method } => {
                let first_init = method == "initialize";
                if first_init {
                    match &mut st.init {
                        Init::Done(result) => {
                            let reply = answer(id, result);
                            drop(st);
                            session.deliver_raw(reply);
                            return Ok(None);
                        }
                        Init::Running(waiters) => {
                            waiters.push((Arc::downgrade(session), id.clone()));
                            return Ok(None);
                        }
                        Init::NotYet => st.init = Init::Running(Vec::new()),
                    }
                }
                let unwritable = |e: rewrite::RewriteError| {
                    jsonrpc::error_response(
                        Some(id),
                        jsonrpc::INVALID_REQUEST,
                        &format!("the request cannot be relayed to a shared child: {e}"),
                        None,
                    )
                };
                let rewritten = (|| {
                    let n = self.numbers.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut line = rewrite::splice(&msg.raw, &["id"], &n.to_string())?;
                    const TOKEN: [&str; 3] = ["params", "_meta", "progressToken"];
                    let client_token = rewrite::get(&line, &TOKEN)?.map(Box::<str>::from);
                    if client_token.is_some() {
                        line = rewrite::splice(&line, &TOKEN, &format!("\"{TOKEN_PREFIX}{n}\""))?;
                    }
                    Ok((n, line, client_token))
                })();
                let (n, line, client_token) = match rewritten {
                    Ok(r) => r,
                    Err(e) => {
                        if first_init {
                            st.init = Init::NotYet;
                            self.init_changed.notify_waiters();
                        }
                        return Err(unwritable(e));
                    }
                };
                if let Some(uri) = subscription(method, &msg.raw) {
                    let subs = st.subscribed.entry(uri).or_default();
                    subs.retain(|w| w.strong_count() > 0 && w.as_ptr() != Arc::as_ptr(session));
                    if method == "resources/subscribe" {
                        subs.push(Arc::downgrade(session));
                    }
                }
                st.outbound.insert(
                    n,
                    Outbound {
                        session: Arc::downgrade(session),
                        client_id: id.clone(),
                        client_token,
                        first_init,
                    },
                );
                Ok(Some(jsonrpc::fold_lines(&line)))
            }
            Kind::Response { id } => {
                let key = value_key(id.as_json());
                match st.inbound.get(&key).and_then(Weak::upgrade) {
                    Some(asked) if Arc::ptr_eq(&asked, session) => {
                        st.inbound.remove(&key);
                        Ok(Some(jsonrpc::fold_lines(&msg.raw)))
                    }
                    _ => {
                        tracing::warn!(
                            id = id.as_json(),
                            "dropping an answer to a request this session was not sent"
                        );
                        Ok(None)
                    }
                }
            }
            Kind::Notification { method } if method == "notifications/initialized" => {
                if std::mem::replace(&mut st.initialized_sent, true) {
                    Ok(None)
                } else {
                    Ok(Some(jsonrpc::fold_lines(&msg.raw)))
                }
            }
            Kind::Notification { method } if method == "notifications/cancelled" => {
                let Some(theirs) = crate::wire::cancelled_id(&msg.raw) else {
                    return Ok(None);
                };
                let theirs = value_key(theirs.as_json());
                let ours = st.outbound.iter().find_map(|(n, o)| {
                    (value_key(o.client_id.as_json()) == theirs
                        && o.session.as_ptr() == Arc::as_ptr(session)
                        && !o.first_init)
                        .then_some(*n)
                });
                let Some(n) = ours else { return Ok(None) };
                // The client gave up: nothing is kept for an answer that may still come.
                st.outbound.remove(&n);
                Ok(
                    rewrite::splice(&msg.raw, &["params", "requestId"], &n.to_string())
                        .ok()
                        .map(|l| jsonrpc::fold_lines(&l)),
                )
            }
            Kind::Notification { .. } => Ok(Some(jsonrpc::fold_lines(&msg.raw))),
        }
    }

    /// Routes one message from the child.
    pub fn dispatch(&self, msg: Message) {
        let adapter = self.adapter.get();
        match msg.kind().clone() {
            Kind::Response { id } => {
                if !self.answered(&id, &msg.raw)
                    && let Some(a) = adapter
                {
                    a.dispatch(msg);
                }
            }
            Kind::Request { id, method } => {
                // A 2026-07-28 request in flight may be the one it is about: nobody is sure.
                let others = adapter.map_or(0, |a| a.asking());
                let mut st = self.lock();
                let target = match (st.asking(), adapter) {
                    (Asking::One(s), _) if others == 0 => s,
                    // Only the 2026-07-28 side asks: it answers that it cannot be asked.
                    (Asking::Nobody, Some(a)) if others > 0 => {
                        drop(st);
                        a.dispatch(msg);
                        return;
                    }
                    _ => {
                        drop(st);
                        tracing::warn!(
                            method,
                            "the shared child sent a request while no single session has one \
                             in flight: answering it with an error"
                        );
                        self.refuse(&id, &method);
                        return;
                    }
                };
                st.inbound
                    .insert(value_key(id.as_json()), Arc::downgrade(&target));
                drop(st);
                target.deliver(msg);
            }
            Kind::Notification { method } => self.notification(&method, msg),
        }
    }

    /// Answers a request of the child that no session can be asked.
    fn refuse(&self, id: &Id, method: &str) {
        let err = BridgeError::new(
            Reason::ChildGone,
            false,
            format!(
                "`{method}` cannot be routed: the child is shared and no single session has a \
                 request in flight"
            ),
        )
        .response(Some(id));
        if let Some(c) = self.child.get() {
            let _ = c.try_send(err);
        }
    }

    fn notification(&self, method: &str, msg: Message) {
        let adapter = self.adapter.get();
        let others = adapter.map_or(0, |a| a.asking());
        if method.ends_with("/list_changed")
            && let Some(a) = adapter
        {
            a.dispatch(msg.clone());
        }
        let mut st = self.lock();
        let (targets, raw): (Vec<Arc<Session>>, Bytes) = if method.ends_with("/list_changed") {
            (
                st.sessions.iter().filter_map(Weak::upgrade).collect(),
                msg.raw,
            )
        } else if method == "notifications/resources/updated" {
            let uri = rewrite::get(&msg.raw, &["params", "uri"])
                .ok()
                .flatten()
                .and_then(|u| serde_json::from_str::<String>(u).ok())
                .unwrap_or_default();
            let subs = st.subscribed.get(&uri).map(Vec::as_slice).unwrap_or(&[]);
            (subs.iter().filter_map(Weak::upgrade).collect(), msg.raw)
        } else if let Ok(Some(token)) = rewrite::get(&msg.raw, &["params", "progressToken"]) {
            let n = serde_json::from_str::<String>(token)
                .ok()
                .and_then(|t| t.strip_prefix(TOKEN_PREFIX)?.parse::<u64>().ok());
            let Some(o) = n.and_then(|n| st.outbound.get(&n)) else {
                drop(st);
                match adapter {
                    // Not a session's token: the 2026-07-28 side's, or over.
                    Some(a) if n.is_none() => a.dispatch(msg),
                    _ => tracing::debug!("dropping progress for a request that is over"),
                }
                return;
            };
            let restored = o
                .client_token
                .as_deref()
                .and_then(|t| rewrite::splice(&msg.raw, &["params", "progressToken"], t).ok());
            match (o.session.upgrade(), restored) {
                (Some(s), Some(raw)) => (vec![s], raw),
                _ => return,
            }
        } else if method == "notifications/cancelled" {
            // The child gives up one of its own requests: only the session asked hears of it.
            let key = crate::wire::cancelled_id(&msg.raw).map(|id| value_key(id.as_json()));
            let asked = key
                .and_then(|k| st.inbound.remove(&k))
                .and_then(|w| w.upgrade());
            if asked.is_none()
                && let Some(a) = adapter
            {
                // Perhaps a listen stream of the 2026-07-28 side ending.
                drop(st);
                a.dispatch(msg);
                return;
            }
            (asked.into_iter().collect(), msg.raw)
        } else {
            match st.only_asking().filter(|_| others == 0) {
                Some(s) => (vec![s], msg.raw),
                None if adapter.is_some() => {
                    drop(st);
                    if let Some(a) = adapter {
                        a.dispatch(msg);
                    }
                    return;
                }
                None => {
                    tracing::info!(
                        method,
                        "dropping a notification of the shared child: no single session has a \
                         request in flight"
                    );
                    return;
                }
            }
        };
        drop(st);
        for t in targets {
            t.deliver_raw(raw.clone());
        }
    }

    /// An answer of the child: back to the session that asked, under the client's own id. The
    /// first `initialize`'s answer also goes to the sessions that waited for it, even when the
    /// session that sent it is gone.
    fn answered(&self, id: &Id, raw: &[u8]) -> bool {
        let mut st = self.lock();
        let Some(o) = rewrite::as_number(id.as_json()).and_then(|n| st.outbound.remove(&n)) else {
            drop(st);
            if self.adapter.get().is_none() {
                tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
            }
            return false;
        };
        let answer = rewrite::splice(raw, &["id"], o.client_id.as_json()).unwrap_or_else(|e| {
            BridgeError::new(
                Reason::ChildGone,
                false,
                format!("the MCP server's answer cannot be relayed: {e}"),
            )
            .response(Some(&o.client_id))
        });
        let waiters = if o.first_init {
            st.init.finish(result_of(raw))
        } else {
            Vec::new()
        };
        drop(st);
        if o.first_init {
            self.init_changed.notify_waiters();
        }
        if let Some(s) = o.session.upgrade() {
            s.deliver_raw(jsonrpc::fold_lines(&answer));
        }
        for (s, reply) in waiters {
            if let Some(s) = s.upgrade() {
                s.deliver_raw(reply);
            }
        }
        true
    }

    /// Forgets a session's entries when it ends (the first `initialize` stays: the sessions
    /// waiting for it still need its answer).
    pub fn leave(&self, session: &Arc<Session>) {
        let mut st = self.lock();
        let me = Arc::as_ptr(session);
        st.outbound
            .retain(|_, o| o.first_init || o.session.as_ptr() != me);
        st.inbound.retain(|_, s| s.as_ptr() != me);
        st.sessions
            .retain(|s| s.as_ptr() != me && s.strong_count() > 0);
        for subs in st.subscribed.values_mut() {
            subs.retain(|s| s.as_ptr() != me && s.strong_count() > 0);
        }
        st.subscribed.retain(|_, subs| !subs.is_empty());
    }

    /// Entries kept for requests in flight (for tests: nothing may be left behind).
    #[cfg(test)]
    fn entries(&self) -> usize {
        let st = self.lock();
        st.outbound.len() + st.inbound.len()
    }
}

/// The URI of a `resources/subscribe` or `resources/unsubscribe`.
fn subscription(method: &str, raw: &[u8]) -> Option<String> {
    if !matches!(method, "resources/subscribe" | "resources/unsubscribe") {
        return None;
    }
    let uri = rewrite::get(raw, &["params", "uri"]).ok()??;
    serde_json::from_str(uri).ok()
}

fn result_of(raw: &[u8]) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Resp {
        result: Option<Box<RawValue>>,
    }
    serde_json::from_slice::<Resp>(raw).ok()?.result
}

#[cfg(test)]
mod tests;
