//! connect against a faulty or hostile server, and a careless agent (issue 10, items 7 and 8):
//! every body becomes one stdout line, a lost session is re-established before its id is used,
//! a failing handshake replay does not wedge the HTTP+SSE transport, `retry:` is clamped and
//! shutdown ends every wait, refused requests keep their id where it can be read, and secrets in
//! the URL or headers never reach an error text or a log.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use common::{WAIT, eventually, tool};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sends a request; returns its answer and the messages before it (each read as one line).
async fn call(
    b: &mut Connect,
    id: serde_json::Value,
    method: &str,
    params: serde_json::Value,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    b.send(json!({"jsonrpc":"2.0","id": id,"method": method,"params": params}))
        .await;
    b.recv_answer(id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_forwarded_body_is_one_stdout_line() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    for (id, code) in [(1, 400), (2, 500), (3, 422)] {
        // `recv` reads exactly one line and fails unless it is the whole JSON message.
        let (answer, before) = call(
            &mut b,
            json!(id),
            "tools/call",
            tool("pretty_error", json!({"code": code})),
        )
        .await;
        assert!(before.is_empty(), "{before:?}");
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert_eq!(
            answer["error"]["message"], "bad\nargs",
            "strings keep their escapes"
        );
        assert_eq!(answer["error"]["data"]["why"], json!(["a", "b"]));
    }
    let (answer, before) = call(
        &mut b,
        json!(4),
        "tools/call",
        tool("pretty", json!({"k": [1, 2]})),
    )
    .await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        answer["result"]["arguments"]["k"],
        json!([1, 2]),
        "{answer}"
    );
    // Nothing was left over: the next line is the next answer.
    let (next, before) = call(&mut b, json!(5), "ping", json!({})).await;
    assert!(before.is_empty() && next["id"] == 5, "{next} {before:?}");

    // The same over SSE: a pretty-printed event is one line too.
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    let (answer, before) = call(
        &mut b,
        json!(6),
        "tools/call",
        tool("multiline", json!({"m": 1})),
    )
    .await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(answer["result"]["arguments"]["m"], 1, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_session_is_used_only_after_its_handshake() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    mock.state.expire_sessions();
    for id in 1..=6 {
        b.send(json!({"jsonrpc":"2.0","id": id,"method":"tools/call","params": tool("echo", json!({"n": id}))}))
            .await;
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < 6 {
        let msg = b.recv().await;
        let id = msg["id"].as_i64().expect("an answer");
        assert_eq!(msg["result"]["arguments"]["n"], id, "{msg}");
        assert!(answered.insert(id), "answered twice: {msg}");
    }
    let seen = mock.state.seen.lock().unwrap().clone();
    let notes: Vec<usize> = (0..seen.len())
        .filter(|&i| seen[i].body["method"] == "notifications/initialized")
        .collect();
    assert_eq!(notes.len(), 2, "the handshake was replayed once");
    let new_session = mock.state.requests("initialize").len();
    assert_eq!(new_session, 2);
    for (i, s) in seen.iter().enumerate() {
        let sess = s.headers.get("mcp-session-id").map(|v| v.to_str().unwrap());
        if sess == Some("sess-2") && s.body["method"] != "notifications/initialized" {
            assert!(
                i > notes[1],
                "a request used the new session before notifications/initialized: {:?}",
                s.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_handshake_replay_over_sse_reconnects() {
    let mock = Mock::start(Options {
        sse_only: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&["--connect-timeout", "3s", &mock.url("/sse")]);
    b.initialize("2024-11-05").await;
    eventually("one stream", || mock.state.http("GET").len() == 1).await;
    // The next replayed initialize is refused: the bridge must try again on a new stream.
    mock.state.refuse_initialize.store(1, Ordering::Relaxed);
    mock.state.drop_sse_streams();
    b.wait_stderr("refused a replayed handshake").await;
    let start = Instant::now();
    let mut id = 10;
    loop {
        id += 1;
        let (answer, _) = call(
            &mut b,
            json!(id),
            "tools/call",
            tool("echo", json!({"id": id})),
        )
        .await;
        if answer["result"]["arguments"]["id"] == id {
            break;
        }
        // A request during the reconnection gets an error, never silence.
        assert!(answer["error"].is_object(), "{answer}");
        assert!(
            start.elapsed() < WAIT,
            "the bridge did not recover: {answer}"
        );
    }
    assert!(mock.state.requests("initialize").len() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_is_clamped_and_shutdown_ends_the_wait() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    // `retry: 0` is taken as 100 ms: the answer still comes by resuming.
    let (answer, _) = call(
        &mut b,
        json!(1),
        "tools/call",
        tool("cut", json!({"retry": 0})),
    )
    .await;
    assert_eq!(answer["result"]["content"][0]["text"], "cut", "{answer}");
    // An absurd `retry:` parks the resume for at most 60 s, and the agent leaving ends it.
    b.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params": tool("cut", json!({"retry": u64::MAX / 2}))}))
        .await;
    b.wait_stderr("resuming a response stream").await;
    let start = Instant::now();
    b.close_stdin();
    b.wait_exit(Duration::from_secs(5)).await;
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_are_answered_under_their_id_when_it_can_be_read() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&["--max-message-size", "2KiB", &mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"x":"{}"}}}}"#,
        "x".repeat(5000)
    );
    b.send_raw(format!("{big}\n").as_bytes()).await;
    let answer = b.recv().await;
    assert_eq!(answer["id"], 42, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "too-large", "{answer}");
    b.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":\"u\",\"method\":\"ping\",\"params\":{\"x\":\"\xff\"}}\n",
    )
    .await;
    let answer = b.recv().await;
    assert_eq!(answer["id"], "u", "{answer}");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    // Where no id can be read (a response, or bytes that are no object), `id` is null.
    b.send_raw(b"\xff\xfe{\"id\":3,\"method\":\"x\"}\n").await;
    assert_eq!(b.recv().await["id"], json!(null));
    let (ok, _) = call(&mut b, json!(43), "ping", json!({})).await;
    assert_eq!(ok["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn url_secrets_never_reach_errors_or_logs() {
    // Port 1 on loopback: nothing listens, so the request fails and the error names the URL.
    let url = "http://alice:hunter2@127.0.0.1:1/mcp?token=sekrit";
    let mut b = Connect::start(&["--connect-timeout", "500ms", url]);
    let (answer, _) = call(&mut b, json!(0), "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
        .await;
    let text = answer.to_string();
    assert!(answer["error"].is_object(), "{text}");
    b.wait_stderr("127.0.0.1:1/mcp").await;
    b.close_stdin();
    b.wait_exit(WAIT).await;
    let log = b.stderr();
    for secret in ["hunter2", "alice", "sekrit"] {
        assert!(!text.contains(secret), "{secret} in the answer: {text}");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(
        text.contains("127.0.0.1:1/mcp"),
        "the error still names the server: {text}"
    );
}

/// Runs `connect ARGS` expecting a refusal at startup: a clear message, no panic, no secret.
async fn refused(args: &[&str], says: &str, secret: Option<&str>) {
    let mut b = Connect::start(args);
    let status = b.wait_exit(WAIT).await;
    // The log is read on its own thread: wait for the line rather than race it.
    b.wait_stderr(says).await;
    let log = b.stderr();
    assert!(!status.success(), "{args:?} was accepted");
    assert!(!log.contains("panicked"), "{args:?}:\n{log}");
    assert!(log.contains(says), "{args:?} should say {says:?}:\n{log}");
    if let Some(s) = secret {
        assert!(!log.contains(s), "{s} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_values_and_secrets_in_flags_are_refused_cleanly() {
    let url = "http://127.0.0.1:1/mcp";
    refused(
        &["--connect-timeout", "99999999999999999999999999h", url],
        "too long",
        None,
    )
    .await;
    refused(
        &["--connect-timeout", "48h", url],
        "--connect-timeout",
        None,
    )
    .await;
    refused(
        &["--max-message-size", "0", url],
        "--max-message-size",
        None,
    )
    .await;
    refused(
        &["--max-message-size", "99999999999999G", url],
        "too large",
        None,
    )
    .await;
    refused(
        &["--max-message-size", "8GiB", url],
        "--max-message-size",
        None,
    )
    .await;
    refused(
        &["--header", "X-Key: s3cr3t\u{7f}", url],
        "x-key",
        Some("s3cr3t"),
    )
    .await;
    refused(&["ftp://bob:pw123@h/x?k=tok456"], "scheme", Some("pw123")).await;
    refused(&["http://bob:pw123@[::1/x?k=tok456"], "URL", Some("tok456")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancellation_never_overtakes_its_request() {
    for sse in [false, true] {
        let mock = Mock::start(Options {
            sse,
            ..Default::default()
        })
        .await;
        let mut b = Connect::start(&[&mock.url("/mcp")]);
        b.initialize("2025-06-18").await;
        for id in 1..=10 {
            b.send(json!({"jsonrpc":"2.0","id": id,"method":"tools/call","params": tool("slow", json!({"ms": 100}))}))
                .await;
            b.send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": id}}))
                .await;
        }
        eventually("every cancellation arrived", || {
            mock.state.requests("notifications/cancelled").len() == 10
        })
        .await;
        let seen = mock.state.seen.lock().unwrap().clone();
        for id in 1..=10 {
            let at = |method: &str| {
                seen.iter().position(|s| {
                    s.body["method"] == method
                        && (s.body["id"] == id || s.body["params"]["requestId"] == id)
                })
            };
            let (call, cancel) = (at("tools/call"), at("notifications/cancelled"));
            assert!(
                call.is_some_and(|c| cancel.is_some_and(|n| c < n)),
                "sse={sse}: request {id} at {call:?}, its cancellation at {cancel:?}"
            );
        }
    }
}
