//! Routing and rewriting of a child several sessions share, without a process.
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
