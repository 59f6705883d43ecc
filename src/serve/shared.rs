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

mod from_child;
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
    pub async fn send(&self, session: &Arc<Session>, msg: &Message) -> bool {
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
        let line = match self.rewrite_in(session, msg) {
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
                    let mut line = rewrite::splice_id(&msg.raw, itoa::Buffer::new().format(n))?;
                    const TOKEN: [&str; 3] = ["params", "_meta", "progressToken"];
                    // Most requests name no token: a look for the word spares the walk.
                    let client_token = if rewrite::may_name_progress_token(&line) {
                        rewrite::get(&line, &TOKEN)?.map(Box::<str>::from)
                    } else {
                        None
                    };
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
                Ok(Some(one_line(line)))
            }
            Kind::Response { id } => {
                let key = value_key(id.as_json());
                match st.inbound.get(&key).and_then(Weak::upgrade) {
                    Some(asked) if Arc::ptr_eq(&asked, session) => {
                        st.inbound.remove(&key);
                        Ok(Some(one_line(msg.raw.clone())))
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
                    Ok(Some(one_line(msg.raw.clone())))
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
                        .map(one_line),
                )
            }
            Kind::Notification { .. } => Ok(Some(one_line(msg.raw.clone()))),
        }
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

/// `line` as one line: the bytes themselves (no copy) unless they hold a line break.
fn one_line(line: Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', &line).is_some() {
        jsonrpc::fold_lines(&line)
    } else {
        line
    }
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
