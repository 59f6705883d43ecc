//! Unit tests of the stateless child's rewriting: each request gets a bridge id and progress
//! token on the way in, and the client's own back on the way out.

use super::*;
use crate::serve::metrics::Metrics;

/// A stateless child of the 2026-07-28 era with no process behind it, and what it is sent.
fn child() -> (Arc<StatelessChild>, mpsc::Receiver<Bytes>) {
    let rc = Arc::new(StatelessChild::new(Arc::new(Metrics::default())));
    let (c, stdin) = Child::detached();
    let _ = rc.child.set(c);
    let _ = rc.era.set(Era::Stateless);
    (rc, stdin)
}

fn sent(stdin: &mut mpsc::Receiver<Bytes>) -> Value {
    serde_json::from_slice(&stdin.try_recv().expect("a line for the child")).expect("JSON")
}

fn parse(v: Value) -> Message {
    jsonrpc::parse(Bytes::from(v.to_string())).expect("valid JSON-RPC")
}

fn call(token: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
        "params": {"name": "t", "_meta": {"progressToken": token}}})
}

#[test]
fn ids_and_progress_tokens_are_the_bridges_and_restored_on_the_way_out() {
    let (rc, mut stdin) = child();
    let (mut rx, _guard) = rc.start(call("tok"), Some(Id(r#""c1""#.into())));
    let line = sent(&mut stdin);
    let n = line["id"].as_u64().expect("a bridge number");
    let bridge_token = line["params"]["_meta"]["progressToken"].clone();
    assert_eq!(bridge_token, json!(format!("{TOKEN_PREFIX}{n}")));

    rc.dispatch(parse(
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": bridge_token, "progress": 1}}),
    ));
    let Some(Out::Note(raw)) = rx.try_recv().ok() else {
        panic!("progress first")
    };
    let progress: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(progress["params"]["progressToken"], "tok");

    rc.dispatch(parse(json!({"jsonrpc": "2.0", "id": n, "result": {}})));
    let Some(Out::Answer(raw)) = rx.try_recv().ok() else {
        panic!("then the answer")
    };
    let answer: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(answer["id"], "c1");
}

#[test]
fn equal_client_ids_do_not_collide() {
    let (rc, mut stdin) = child();
    let id = Id(r#""same""#.into());
    let (mut rx1, _g1) = rc.start(call("a"), Some(id.clone()));
    let (mut rx2, _g2) = rc.start(call("a"), Some(id));
    let (n1, n2) = (
        sent(&mut stdin)["id"].clone(),
        sent(&mut stdin)["id"].clone(),
    );
    assert_ne!(n1, n2);
    rc.dispatch(parse(
        json!({"jsonrpc": "2.0", "id": n2, "result": {"k": 2}}),
    ));
    assert!(rx1.try_recv().is_err(), "not the first caller's answer");
    let raw = rx2.try_recv().expect("the second's answer");
    assert_eq!(
        serde_json::from_slice::<Value>(raw.raw()).unwrap()["result"]["k"],
        2
    );
}

#[test]
fn a_request_dropped_before_its_answer_is_cancelled_at_the_child() {
    let (rc, mut stdin) = child();
    let (_rx, guard) = rc.start(call("a"), Some(Id("1".into())));
    let n = sent(&mut stdin)["id"].clone();
    drop(guard);
    let cancel = sent(&mut stdin);
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], n);
    assert!(rc.lock().pending.is_empty());
}

#[test]
fn a_request_answered_is_not_cancelled_when_dropped() {
    let (rc, mut stdin) = child();
    let (mut rx, mut guard) = rc.start(call("a"), Some(Id("1".into())));
    let n = sent(&mut stdin)["id"].clone();
    rc.dispatch(parse(json!({"jsonrpc": "2.0", "id": n, "result": {}})));
    assert!(rx.try_recv().is_ok());
    guard.disarm();
    drop(guard);
    assert!(stdin.try_recv().is_err(), "nothing more for the child");
}

#[test]
fn when_the_child_exits_waiting_requests_get_an_error_and_later_ones_too() {
    let (rc, _stdin) = child();
    let (mut rx, _guard) = rc.start(call("a"), Some(Id("1".into())));
    rc.exited("it crashed");
    let raw = rx.try_recv().expect("an error");
    let err: Value = serde_json::from_slice(raw.raw()).unwrap();
    assert_eq!(err["error"]["data"]["reason"], "child-gone");
    let (mut later, _g) = rc.start(call("b"), Some(Id("2".into())));
    assert!(
        matches!(later.try_recv(), Ok(Out::Answer(_))),
        "an error at once"
    );
}
