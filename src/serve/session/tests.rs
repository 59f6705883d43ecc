//! Unit tests of a session's state machine: where `plan` sends each answer, what `deliver` does
//! with what the child says, and what `close` tells every request still waiting.

use super::*;
use serde_json::{Value, json};

fn session(transport: Transport) -> Arc<Session> {
    Session::new(
        "0123456789abcdef".into(),
        transport,
        1 << 20,
        Arc::new(Metrics::default()),
    )
}

fn msg(v: Value) -> Message {
    jsonrpc::parse(Bytes::from(v.to_string())).expect("valid JSON-RPC")
}

fn request(id: u64, method: &str) -> Message {
    msg(json!({"jsonrpc": "2.0", "id": id, "method": method}))
}

fn result(id: u64) -> Message {
    msg(json!({"jsonrpc": "2.0", "id": id, "result": {"n": id}}))
}

/// Everything stream `n` holds, as text, and whether it is over. The GET stream is read by a
/// new reader from its start.
fn read_all(s: &Session, n: u64) -> (String, bool) {
    let generation = if n == GET_STREAM {
        s.open_get(Some(0)).0
    } else {
        0
    };
    let mut out = Vec::new();
    let (_, over) = s.read(n, generation, 0, &mut out);
    (String::from_utf8(out).expect("frames are UTF-8"), over)
}

#[test]
fn a_json_post_gets_its_answer_on_its_channel() {
    let s = session(Transport::Streamable);
    let Ok(Plan::Json(1, mut rx)) = s.plan(&request(7, "tools/list"), false) else {
        panic!("a request without SSE waits for one JSON answer");
    };
    s.deliver(result(7));
    let answer: Value = serde_json::from_slice(&rx.try_recv().expect("answered")).unwrap();
    assert_eq!(answer["result"]["n"], 7);
}

#[test]
fn an_sse_post_reads_its_answer_from_its_own_stream_which_then_ends() {
    let s = session(Transport::Streamable);
    let Ok(Plan::Stream(n)) = s.plan(&request(1, "tools/call"), true) else {
        panic!("a request accepting SSE gets a stream");
    };
    assert_ne!(n, GET_STREAM);
    assert!(!read_all(&s, n).1, "open until answered");
    s.deliver(result(1));
    let (text, over) = read_all(&s, n);
    assert!(text.contains(r#""n":1"#), "{text}");
    assert!(over);
}

#[test]
fn notifications_and_responses_are_accepted_without_waiting() {
    let s = session(Transport::Streamable);
    let note = msg(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert!(matches!(s.plan(&note, true), Ok(Plan::Accepted)));
    assert!(matches!(s.plan(&result(3), true), Ok(Plan::Accepted)));
}

#[test]
fn an_id_already_in_flight_is_refused() {
    let s = session(Transport::Streamable);
    assert!(s.plan(&request(1, "a"), true).is_ok());
    let err = s.plan(&request(1, "b"), false).err().expect("duplicate");
    let err: Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(err["error"]["code"], jsonrpc::INVALID_REQUEST);
    assert_eq!(err["id"], 1);
}

#[test]
fn a_batch_waits_for_every_answer() {
    let s = session(Transport::Streamable);
    let batch = msg(json!([
        {"jsonrpc": "2.0", "id": 1, "method": "a"},
        {"jsonrpc": "2.0", "id": 2, "method": "b"},
    ]));
    let Ok(Plan::Json(2, mut rx)) = s.plan(&batch, false) else {
        panic!("two answers to wait for");
    };
    s.deliver(result(2));
    s.deliver(result(1));
    assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
}

#[test]
fn progress_goes_on_the_stream_of_the_request_that_asked_for_it() {
    let s = session(Transport::Streamable);
    let call = msg(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"_meta": {"progressToken": "p1"}}}));
    let Ok(Plan::Stream(first)) = s.plan(&call, true) else {
        panic!("stream")
    };
    let Ok(Plan::Stream(second)) = s.plan(&request(2, "tools/list"), true) else {
        panic!("stream")
    };
    s.open_get(None);
    s.deliver(msg(
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": "p1", "progress": 1}}),
    ));
    assert!(read_all(&s, first).0.contains("notifications/progress"));
    assert!(!read_all(&s, second).0.contains("notifications/progress"));
    assert!(
        !read_all(&s, GET_STREAM)
            .0
            .contains("notifications/progress")
    );
    // Anything else the child says goes to the GET stream once one is open.
    s.deliver(msg(
        json!({"jsonrpc": "2.0", "method": "notifications/message"}),
    ));
    assert!(read_all(&s, GET_STREAM).0.contains("notifications/message"));
}

#[test]
fn the_protocol_version_is_read_from_the_answer_to_initialize() {
    let s = session(Transport::Streamable);
    let Ok(Plan::Json(1, _rx)) = s.plan(&request(0, "initialize"), false) else {
        panic!("json")
    };
    s.deliver(msg(json!({"jsonrpc": "2.0", "id": 0,
        "result": {"protocolVersion": "2025-06-18"}})));
    assert_eq!(s.protocol().as_deref(), Some("2025-06-18"));
}

#[test]
fn close_answers_every_waiting_request_and_refuses_new_ones() {
    let s = session(Transport::Streamable);
    let Ok(Plan::Json(1, mut rx)) = s.plan(&request(1, "slow"), false) else {
        panic!("json")
    };
    let Ok(Plan::Stream(n)) = s.plan(&request(2, "slow"), true) else {
        panic!("stream")
    };
    s.close("the child crashed");
    let err: Value = serde_json::from_slice(&rx.try_recv().expect("answered")).unwrap();
    assert_eq!(err["error"]["data"]["reason"], "session-closed");
    assert_eq!(err["error"]["data"]["mayHaveRun"], true);
    let (text, over) = read_all(&s, n);
    assert!(text.contains("the child crashed") && over, "{text}");
    assert_eq!(s.closed().as_deref(), Some("the child crashed"));
    let refused: Value = serde_json::from_slice(&s.plan(&request(3, "x"), true).err().unwrap())
        .expect("an error body");
    assert_eq!(refused["error"]["data"]["mayHaveRun"], false);
}

#[test]
fn a_cancelled_request_ends_its_stream_without_an_answer() {
    let s = session(Transport::Streamable);
    let Ok(Plan::Stream(n)) = s.plan(&request(5, "slow"), true) else {
        panic!("stream")
    };
    s.cancel(&Id("5".into()));
    assert!(read_all(&s, n).1);
    s.deliver(result(5));
    assert!(
        !read_all(&s, n).0.contains(r#""n":5"#),
        "a late answer is dropped"
    );
}

#[test]
fn an_sse_session_answers_everything_on_its_one_stream() {
    let s = session(Transport::Sse);
    assert!(matches!(
        s.plan(&request(1, "tools/list"), false),
        Ok(Plan::Stream(GET_STREAM))
    ));
    s.deliver(result(1));
    assert!(read_all(&s, GET_STREAM).0.contains(r#""n":1"#));
}

#[test]
fn a_session_is_idle_only_while_nobody_is_attached() {
    let s = session(Transport::Streamable);
    assert!(s.idle_for().is_some());
    s.attach();
    assert!(s.idle_for().is_none());
    s.detach();
    assert!(s.idle_for().is_some());
}
