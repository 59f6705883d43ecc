//! A child with more than one session: the one child of `--scope shared` and the child of a
//! session key. Client request ids and progress tokens are replaced by the bridge's own numbers
//! on the way in and restored on the way out (spliced into the raw bytes, matched by value: see
//! `crate::rewrite`). What the child starts goes only where it is known to belong: a request or a
//! notification that names no request reaches the one session with a request in flight, and
//! otherwise is refused (requests) or dropped (notifications); `resources/updated` reaches the
//! sessions subscribed to that URI, list_changed every session. `initialize` runs once and later
//! sessions get its result; their `notifications/initialized` is not forwarded again.

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::rewrite::{self, value_key};
use crate::serve::child::Child;
use crate::serve::session::Session;
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// Prefix of the progress tokens the bridge gives the child (then the request's number).
const TOKEN_PREFIX: &str = "mcp-bridge-p";

/// The one child and its routing tables.
#[derive(Debug, Default)]
pub struct SharedChild {
    /// The process, set once spawned.
    pub child: OnceLock<Child>,
    state: Mutex<State>,
    gone: std::sync::atomic::AtomicBool,
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
    next_id: u64,
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
    /// The one live session with a request in flight, if exactly one has.
    fn only_asking(&self) -> Option<Arc<Session>> {
        let mut found: Option<Arc<Session>> = None;
        for o in self.outbound.values() {
            let Some(s) = o.session.upgrade().filter(|s| s.closed().is_none()) else {
                continue;
            };
            match &found {
                Some(f) if !Arc::ptr_eq(f, &s) => return None,
                _ => found = Some(s),
            }
        }
        found
    }
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
                    st.next_id += 1;
                    let n = st.next_id;
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
        match msg.kind().clone() {
            Kind::Response { id } => self.answered(&id, &msg.raw),
            Kind::Request { id, method } => {
                let mut st = self.lock();
                let Some(target) = st.only_asking() else {
                    drop(st);
                    tracing::warn!(
                        method,
                        "the shared child sent a request while no single session has one in \
                         flight: answering it with an error"
                    );
                    self.refuse(&id, &method);
                    return;
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
                tracing::debug!("dropping progress for a request that is over");
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
            (asked.into_iter().collect(), msg.raw)
        } else {
            match st.only_asking() {
                Some(s) => (vec![s], msg.raw),
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
    fn answered(&self, id: &Id, raw: &[u8]) {
        let mut st = self.lock();
        let Some(o) = rewrite::as_number(id.as_json()).and_then(|n| st.outbound.remove(&n)) else {
            tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
            return;
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
        if let Some(s) = o.session.upgrade() {
            s.deliver_raw(jsonrpc::fold_lines(&answer));
        }
        for (s, reply) in waiters {
            if let Some(s) = s.upgrade() {
                s.deliver_raw(reply);
            }
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

fn result_of(raw: &[u8]) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Resp {
        result: Option<Box<RawValue>>,
    }
    serde_json::from_slice::<Resp>(raw).ok()?.result
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

    #[test]
    fn progress_reaches_only_the_session_whose_request_it_is() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        shared.join(&a);
        shared.join(&b);
        let call = |token: Value| {
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "slow", "_meta": {"progressToken": token}}})
        };
        let (line_a, _rx_a) = send(&shared, &a, call(json!("t")));
        let (line_b, _rx_b) = send(&shared, &b, call(json!("t")));
        let (tok_a, tok_b) = (
            line_a.unwrap()["params"]["_meta"]["progressToken"].clone(),
            line_b.unwrap()["params"]["_meta"]["progressToken"].clone(),
        );
        assert_ne!(
            tok_a, tok_b,
            "equal client tokens get distinct bridge tokens"
        );
        let streams = (a.subscribe(), b.subscribe());
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": tok_b, "progress": 1}}),
        ));
        assert!(
            !streams.0.has_changed().unwrap(),
            "a never sees b's progress"
        );
        assert!(streams.1.has_changed().unwrap(), "b gets its progress");
    }

    #[test]
    fn a_request_of_the_child_with_two_sessions_asking_is_refused() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        shared.join(&a);
        shared.join(&b);
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"});
        let (_l, _ra) = send(&shared, &a, call.clone());
        let (_l, _rb) = send(&shared, &b, call);
        let streams = (a.subscribe(), b.subscribe());
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage"}),
        ));
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}}),
        ));
        assert!(!streams.0.has_changed().unwrap() && !streams.1.has_changed().unwrap());
        assert_eq!(shared.lock().inbound.len(), 0, "nobody may answer it");
    }

    #[test]
    fn a_cancelled_request_leaves_nothing_behind() {
        let shared = SharedChild::default();
        let a = session("a");
        shared.join(&a);
        let (_l, _rx) = send(
            &shared,
            &a,
            json!({"jsonrpc": "2.0", "id": 1.0, "method": "slow"}),
        );
        let cancel = msg(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 1}}),
        );
        assert!(
            shared.rewrite_in(&a, &cancel).unwrap().is_some(),
            "1 is 1.0"
        );
        assert_eq!(shared.entries(), 0);
    }

    #[test]
    fn the_first_initialize_answers_the_waiters_when_its_session_left() {
        let shared = SharedChild::default();
        let (a, b) = (session("a"), session("b"));
        let init = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "initialize"});
        let (line, _rx_a) = send(&shared, &a, init(1));
        let (_none, mut rx_b) = send(&shared, &b, init(2));
        shared.leave(&a);
        let bridge_id = line.unwrap()["id"].clone();
        shared.dispatch(msg(
            json!({"jsonrpc": "2.0", "id": bridge_id, "result": {"v": 1}}),
        ));
        assert_eq!(json_of(&rx_b.try_recv().expect("b is answered"))["id"], 2);
    }

    #[test]
    fn the_answer_keeps_every_byte_but_the_id() {
        let shared = SharedChild::default();
        let a = session("a");
        shared.join(&a);
        let m = jsonrpc::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1180591620717411303424,"method":"m"}"#,
        ))
        .unwrap();
        let Ok(Plan::Json(_, mut rx)) = a.plan(&m, false) else {
            panic!("a JSON wait")
        };
        let line = shared.rewrite_in(&a, &m).unwrap().unwrap();
        let n = json_of(&line)["id"].clone();
        let raw = format!(r#"{{"jsonrpc":"2.0","id":{n},"result":{{"z":1.0,"a":1e400}}}}"#);
        shared.dispatch(jsonrpc::parse(Bytes::from(raw)).unwrap());
        let out = rx.try_recv().unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":1180591620717411303424,"result":{"z":1.0,"a":1e400}}"#
        );
    }
}
