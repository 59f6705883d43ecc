//! `--shared`: one child serves every session. Client request ids are rewritten to the bridge's
//! own numbers on the way in and restored on the way out; requests the child starts are routed
//! to one session and only that session may answer them; `initialize` runs once and later
//! sessions get its result; list_changed notifications reach every session.

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::serve::child::Child;
use crate::serve::session::Session;
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// The one child and its routing tables.
#[derive(Debug, Default)]
pub struct SharedChild {
    /// The process, set once spawned.
    pub child: OnceLock<Child>,
    state: Mutex<State>,
    gone: std::sync::atomic::AtomicBool,
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
        match msg.kind().clone() {
            Kind::Response { id } => self.answered(&id, &msg.raw),
            Kind::Request { id, .. } => {
                let mut st = self.lock();
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
                let st = self.lock();
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

    /// An answer of the child: back to the session that asked, under the client's own id. The
    /// first `initialize`'s answer also goes to the sessions that waited for it.
    fn answered(&self, id: &Id, raw: &[u8]) {
        let mut st = self.lock();
        let Some((session, orig, first_init)) = st.outbound.remove(id) else {
            tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
            return;
        };
        let Ok(answer) = jsonrpc::with_id(raw, orig.as_json()) else {
            return;
        };
        let waiters = if first_init {
            st.init.finish(result_of(raw))
        } else {
            Vec::new()
        };
        drop(st);
        if let Some(s) = session.upgrade() {
            s.deliver_raw(answer);
        }
        for (s, reply) in waiters {
            if let Some(s) = s.upgrade() {
                s.deliver_raw(reply);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::metrics::Metrics;
    use crate::serve::session::{Plan, Transport};
    use serde_json::{Value, json};

    fn session(id: &str) -> Arc<Session> {
        Session::new(
            format!("{id:0<16}"),
            Transport::Streamable,
            1 << 20,
            Arc::new(Metrics::default()),
        )
    }

    fn msg(v: Value) -> Message {
        jsonrpc::parse(Bytes::from(v.to_string())).expect("valid JSON-RPC")
    }

    fn json_of(raw: &[u8]) -> Value {
        serde_json::from_slice(raw).expect("JSON")
    }

    /// Plans a request in `s` (so its answer has a waiter) and rewrites it for the child.
    fn send(
        shared: &SharedChild,
        s: &Arc<Session>,
        req: Value,
    ) -> (Option<Value>, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
        let m = msg(req);
        let Ok(Plan::Json(_, rx)) = s.plan(&m, false) else {
            panic!("a JSON wait")
        };
        let line = shared.rewrite_in(s, &m).expect("rewritten");
        (line.map(|l| json_of(&l)), rx)
    }

    #[test]
    fn equal_client_ids_get_distinct_bridge_ids_and_their_own_answers() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        shared.join(&a);
        shared.join(&b);
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        let (line_a, mut rx_a) = send(&shared, &a, req.clone());
        let (line_b, mut rx_b) = send(&shared, &b, req);
        let (id_a, id_b) = (line_a.unwrap()["id"].clone(), line_b.unwrap()["id"].clone());
        assert_ne!(id_a, id_b);
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": id_b, "result": {"who": "b"}}),
        ));
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": id_a, "result": {"who": "a"}}),
        ));
        let (ans_a, ans_b) = (
            json_of(&rx_a.try_recv().unwrap()),
            json_of(&rx_b.try_recv().unwrap()),
        );
        assert_eq!(
            (ans_a["id"].clone(), ans_a["result"]["who"].clone()),
            (json!(1), json!("a"))
        );
        assert_eq!(
            (ans_b["id"].clone(), ans_b["result"]["who"].clone()),
            (json!(1), json!("b"))
        );
    }

    #[test]
    fn initialize_reaches_the_child_once_and_later_sessions_get_its_result() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        let init = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "initialize"});
        let (line, mut rx_a) = send(&shared, &a, init(10));
        let bridge_id = line.expect("the first initialize goes to the child")["id"].clone();
        let (none, mut rx_b) = send(&shared, &b, init(20));
        assert!(none.is_none(), "the second waits for the first");
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": bridge_id, "result": {"protocolVersion": "x"}}),
        ));
        assert_eq!(json_of(&rx_a.try_recv().unwrap())["id"], 10);
        let b_answer = json_of(&rx_b.try_recv().unwrap());
        assert_eq!(
            (
                b_answer["id"].clone(),
                b_answer["result"]["protocolVersion"].clone()
            ),
            (json!(20), json!("x"))
        );
        let c = session("c");
        let (none, mut rx_c) = send(&shared, &c, init(30));
        assert!(none.is_none(), "answered from the cached result");
        assert_eq!(json_of(&rx_c.try_recv().unwrap())["id"], 30);
    }

    #[test]
    fn only_the_session_asked_may_answer_a_request_of_the_child() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        shared.join(&a);
        shared.join(&b);
        let (_, _rx) = send(
            &shared,
            &a,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
        );
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage"}),
        ));
        let answer = msg(json!({"jsonrpc": "2.0", "id": "s1", "result": {}}));
        assert_eq!(
            shared.rewrite_in(&b, &answer).unwrap(),
            None,
            "b was not asked"
        );
        assert!(
            shared.rewrite_in(&a, &answer).unwrap().is_some(),
            "a was asked"
        );
    }

    #[test]
    fn a_cancel_names_the_bridge_id_of_that_sessions_request() {
        let shared = SharedChild::default();
        let a = session("a");
        let (line, _rx) = send(
            &shared,
            &a,
            json!({"jsonrpc": "2.0", "id": "x", "method": "slow"}),
        );
        let bridge_id = line.unwrap()["id"].clone();
        let cancel = msg(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": "x"}}),
        );
        let out = json_of(&shared.rewrite_in(&a, &cancel).unwrap().expect("forwarded"));
        assert_eq!(out["params"]["requestId"], bridge_id);
        let other = session("b");
        assert_eq!(
            shared.rewrite_in(&other, &cancel).unwrap(),
            None,
            "not b's request"
        );
    }
}
