//! connect over Streamable HTTP: the handshake, session and version headers, JSON and SSE
//! answers, concurrency, server-initiated messages, transparency and the session's DELETE.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use common::{assert_transport, eventually, tool};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn connect_to(mock: &Mock) -> Connect {
    Connect::start(&[&mock.url("/mcp")])
}

#[tokio::test(flavor = "multi_thread")]
async fn json_replies_session_and_version_headers() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    let init = b.initialize("2025-06-18").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    let answer = b
        .call(json!(1), "tools/call", tool("echo", json!({"a": 1})))
        .await;
    assert_eq!(answer["result"]["arguments"]["a"], 1);
    b.wait_stderr("transport: ").await;
    assert_transport(&b.stderr(), "streamable");

    let init_post = &mock.state.requests("initialize")[0];
    assert!(
        init_post.headers.get("mcp-session-id").is_none(),
        "initialize carries no session"
    );
    let accept = init_post.headers["accept"].to_str().unwrap();
    assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
    let call = &mock.state.requests("tools/call")[0];
    assert_eq!(call.headers["mcp-session-id"], "sess-1");
    assert_eq!(call.headers["mcp-protocol-version"], "2025-06-18");
    let note = &mock.state.requests("notifications/initialized")[0];
    assert_eq!(note.headers["mcp-session-id"], "sess-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_replies_carry_related_messages_then_the_answer() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-11-25").await;
    b.send(json!({"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok"}}})).await;
    let (answer, before) = b.recv_answer(json!("p")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "progress");
    let progress: Vec<_> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(
        progress.len(),
        3,
        "all progress notifications, in order: {before:?}"
    );
    assert_eq!(progress[0]["params"]["progress"], 1);
    assert_eq!(progress[2]["params"]["progress"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_line_sse_data_becomes_one_stdout_line() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-11-25").await;
    let answer = b
        .call(json!(5), "tools/call", tool("multiline", json!({"k": "v"})))
        .await;
    assert_eq!(answer["result"]["arguments"]["k"], "v");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_call_does_not_hold_up_a_fast_one() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    b.send(json!({"jsonrpc":"2.0","id":"slow","method":"tools/call","params": tool("slow", json!({"ms": 3000}))})).await;
    b.send(json!({"jsonrpc":"2.0","id":"fast","method":"tools/call","params": tool("echo", json!({}))})).await;
    let first = b.recv().await;
    assert_eq!(
        first["id"], "fast",
        "the fast answer must overtake the slow one"
    );
    let second = b.recv().await;
    assert_eq!(second["id"], "slow");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_requests_on_the_get_stream_round_trip() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    eventually("the GET stream is open", || mock.state.get_streams() == 1).await;
    let get = &mock.state.http("GET")[0];
    assert_eq!(get.headers["mcp-session-id"], "sess-1");
    assert_eq!(get.headers["accept"], "text/event-stream");

    mock.state
        .push(json!({"jsonrpc":"2.0","id":"r1","method":"roots/list"}));
    mock.state
        .push(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
    let req = b.recv().await;
    assert_eq!(req["method"], "roots/list");
    let note = b.recv().await;
    assert_eq!(note["method"], "notifications/tools/list_changed");
    b.send(json!({"jsonrpc":"2.0","id":"r1","result":{"roots":[]}}))
        .await;
    eventually("the agent's answer reaches the server", || {
        mock.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.body["id"] == "r1" && s.body.get("result").is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_request_inside_a_post_stream_round_trips() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-11-25").await;
    b.send(json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params": tool("ask", json!({}))}))
        .await;
    let ask = b.recv().await;
    assert_eq!(ask["method"], "sampling/createMessage");
    b.send(json!({"jsonrpc":"2.0","id": ask["id"],"result":{"role":"assistant","content":{"type":"text","text":"hi"}}})).await;
    let (answer, _) = b.recv_answer(json!(9)).await;
    assert_eq!(answer["result"]["clientSaid"]["content"]["text"], "hi");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_methods_and_fields_pass_unchanged() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    let params = json!({"deep": {"list": [1, 2.5, null, "é✓"]}, "_meta": {"x-ext": true}});
    let answer = b
        .call(json!("u-1"), "vendor/experimental", params.clone())
        .await;
    assert_eq!(answer["result"]["method"], "vendor/experimental");
    assert_eq!(answer["result"]["params"], params);
    let seen = &mock.state.requests("vendor/experimental")[0];
    assert_eq!(seen.body["params"], params);
    assert_eq!(seen.body["id"], "u-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_get_no_answer_and_order_is_kept() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    for i in 0..20 {
        b.send(json!({"jsonrpc":"2.0","method":"notifications/message","params":{"seq": i}}))
            .await;
    }
    let answer = b.call(json!("after"), "ping", json!({})).await;
    assert_eq!(answer["result"], json!({}));
    let seqs: Vec<Value> = mock
        .state
        .requests("notifications/message")
        .iter()
        .map(|s| s.body["params"]["seq"].clone())
        .collect();
    assert_eq!(seqs, (0..20).map(|i| json!(i)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_eof_deletes_the_session_and_exits_promptly() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    let start = Instant::now();
    b.close_stdin();
    let status = b.wait_exit(Duration::from_secs(3)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    let deletes = mock.state.http("DELETE");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].headers["mcp-session-id"], "sess-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_405_get_stream_is_tolerated() {
    let mock = Mock::start(Options {
        get_stream: false,
        ..Default::default()
    })
    .await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    eventually("the GET was tried", || !mock.state.http("GET").is_empty()).await;
    let answer = b
        .call(json!(1), "tools/call", tool("echo", json!({})))
        .await;
    assert!(answer.get("result").is_some());
    assert_eq!(
        mock.state.http("GET").len(),
        1,
        "a 405 is final: no retries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_mib_result_passes_intact() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-11-25").await;
    let n = 10 * 1024 * 1024;
    let answer = b
        .call(json!("big"), "tools/call", tool("big", json!({"n": n})))
        .await;
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.len(), n);
    assert!(text.bytes().all(|c| c == b'x'));
    // And the same size the other way, as an argument.
    let arg = "y".repeat(n);
    let answer = b
        .call(
            json!("bigarg"),
            "tools/call",
            tool("echo", json!({"blob": arg})),
        )
        .await;
    assert_eq!(
        answer["result"]["arguments"]["blob"]
            .as_str()
            .unwrap()
            .len(),
        n
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_request_gets_no_answer_from_the_bridge() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    b.send(json!({"jsonrpc":"2.0","id":"long","method":"tools/call","params": tool("slow", json!({"ms": 700}))})).await;
    common::eventually("the call reached the server", || {
        !mock.state.requests("tools/call").is_empty()
    })
    .await;
    b.send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long","reason":"user"}})).await;
    common::eventually("the cancellation reached the server", || {
        !mock.state.requests("notifications/cancelled").is_empty()
    })
    .await;
    // The server answers anyway; the agent must see neither that answer nor an error made up
    // by the bridge: the next line is the answer to a ping sent after the server answered.
    common::eventually("the server answered the cancelled call", || {
        mock.state
            .slow_done
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    b.send(json!({"jsonrpc":"2.0","id":"after","method":"ping"}))
        .await;
    let (answer, before) = b.recv_answer(json!("after")).await;
    assert!(
        before.is_empty(),
        "nothing for the cancelled request: {before:?}"
    );
    assert_eq!(answer["result"], json!({}));
    assert_eq!(
        mock.state.requests("notifications/cancelled")[0].body["params"]["requestId"],
        "long"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_on_its_way_at_stdin_eof_still_reaches_the_agent() {
    let mock = Mock::start(Options::default()).await;
    let mut b = connect_to(&mock).await;
    b.initialize("2025-06-18").await;
    b.send(json!({"jsonrpc":"2.0","id":"last","method":"tools/call","params": tool("slow", json!({"ms": 200}))})).await;
    common::eventually("the call reached the server", || {
        !mock.state.requests("tools/call").is_empty()
    })
    .await;
    b.close_stdin();
    let (answer, _) = b.recv_answer(json!("last")).await;
    assert!(answer.get("result").is_some(), "{answer}");
    assert!(b.wait_exit(Duration::from_secs(3)).await.success());
}
