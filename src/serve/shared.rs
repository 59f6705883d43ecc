//! `--shared`: one child serves every session. Client request ids are rewritten to the bridge's
//! own numbers on the way in and restored on the way out; requests the child starts are routed
//! to one session and only that session may answer them; `initialize` runs once and later
//! sessions get its result; list_changed notifications reach every session.

use super::child::Child;
use super::session::Session;
use crate::jsonrpc::{self, Id, Kind, Message};
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// The one child and its routing tables.
#[derive(Debug, Default)]
pub struct SharedChild {
    pub child: OnceLock<Child>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Bridge id -> (session, the client's own id, whether it is the first initialize).
    outbound: HashMap<Id, (Weak<Session>, Id, bool)>,
    /// Ids of requests the child sent -> the session asked to answer.
    inbound: HashMap<Id, Weak<Session>>,
    sessions: Vec<Weak<Session>>,
    /// The session that most recently sent a request: the likely cause of what the child starts.
    last_active: Weak<Session>,
    init: Init,
    initialized_sent: bool,
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
                    "batches are not supported with --shared",
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

    /// The line to send to the child for `msg`, or `None` when the bridge answers it itself.
    fn rewrite_in(&self, session: &Arc<Session>, msg: &Message) -> Result<Option<Bytes>, Bytes> {
        let mut st = self.lock();
        match msg.kind() {
            Kind::Request { id, method } => {
                st.last_active = Arc::downgrade(session);
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
                st.next_id += 1;
                let new_id = Id(st.next_id.to_string().into());
                let line = jsonrpc::with_id(&msg.raw, new_id.as_json()).map_err(|e| {
                    jsonrpc::error_response(Some(id), e.code(), &e.to_string(), None)
                })?;
                st.outbound
                    .insert(new_id, (Arc::downgrade(session), id.clone(), first_init));
                Ok(Some(line))
            }
            Kind::Response { id } => match st.inbound.get(id).and_then(Weak::upgrade) {
                Some(asked) if Arc::ptr_eq(&asked, session) => {
                    st.inbound.remove(id);
                    Ok(Some(jsonrpc::fold_lines(&msg.raw)))
                }
                _ => {
                    tracing::warn!(
                        id = id.as_json(),
                        "dropping an answer to a request this session was not sent"
                    );
                    Ok(None)
                }
            },
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
                let ours = st.outbound.iter().find_map(|(ours, (s, orig, _))| {
                    (orig == &theirs && s.as_ptr() == Arc::as_ptr(session)).then(|| ours.clone())
                });
                match ours {
                    Some(ours) => Ok(Some(rewrite_cancel(&msg.raw, &ours))),
                    None => Ok(None),
                }
            }
            Kind::Notification { .. } => Ok(Some(jsonrpc::fold_lines(&msg.raw))),
        }
    }

    /// Routes one message from the child.
    pub fn dispatch(&self, msg: Message) {
        let mut st = self.lock();
        match msg.kind().clone() {
            Kind::Response { id } => {
                let Some((session, orig, first_init)) = st.outbound.remove(&id) else {
                    tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
                    return;
                };
                let Ok(raw) = jsonrpc::with_id(&msg.raw, orig.as_json()) else {
                    return;
                };
                let mut also = Vec::new();
                if first_init {
                    match result_of(&msg.raw) {
                        Some(result) => {
                            if let Init::Running(waiters) = &mut st.init {
                                for (s, id) in waiters.drain(..) {
                                    also.push((s, answer(&id, &result)));
                                }
                            }
                            st.init = Init::Done(result);
                        }
                        // A failed initialize: let the next session try again.
                        None => {
                            if let Init::Running(waiters) = &mut st.init {
                                for (s, id) in waiters.drain(..) {
                                    let err = BridgeError::new(
                                        Reason::InitFailed,
                                        false,
                                        "the shared MCP server failed to initialize",
                                    )
                                    .response(Some(&id));
                                    also.push((s, err));
                                }
                            }
                            st.init = Init::NotYet;
                        }
                    }
                }
                drop(st);
                if let Some(s) = session.upgrade() {
                    s.deliver_raw(raw);
                }
                for (s, reply) in also {
                    if let Some(s) = s.upgrade() {
                        s.deliver_raw(reply);
                    }
                }
            }
            Kind::Request { id, .. } => {
                let target = st
                    .last_active
                    .upgrade()
                    .filter(|s| s.closed().is_none())
                    .or_else(|| st.sessions.iter().rev().find_map(Weak::upgrade));
                let Some(target) = target else {
                    tracing::warn!("the shared child sent a request but no session is open");
                    return;
                };
                st.inbound.insert(id, Arc::downgrade(&target));
                drop(st);
                target.deliver(msg);
            }
            Kind::Notification { method } => {
                let targets: Vec<Arc<Session>> = if method.ends_with("/list_changed") {
                    st.sessions.iter().filter_map(Weak::upgrade).collect()
                } else {
                    st.last_active.upgrade().into_iter().collect()
                };
                drop(st);
                for t in targets {
                    t.deliver(msg.clone());
                }
            }
        }
    }

    /// Forgets a session's entries when it ends.
    pub fn leave(&self, session: &Arc<Session>) {
        let mut st = self.lock();
        let me = Arc::as_ptr(session);
        st.outbound.retain(|_, (s, _, _)| s.as_ptr() != me);
        st.inbound.retain(|_, s| s.as_ptr() != me);
        st.sessions
            .retain(|s| s.as_ptr() != me && s.strong_count() > 0);
    }
}

fn result_of(raw: &[u8]) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Resp {
        result: Option<Box<RawValue>>,
    }
    serde_json::from_slice::<Resp>(raw).ok()?.result
}

/// `notifications/cancelled` with `params.requestId` replaced.
fn rewrite_cancel(raw: &[u8], id: &Id) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return Bytes::copy_from_slice(raw);
    };
    if let (Some(params), Ok(new)) = (
        v.get_mut("params").and_then(|p| p.as_object_mut()),
        serde_json::from_str::<serde_json::Value>(id.as_json()),
    ) {
        params.insert("requestId".into(), new);
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}
