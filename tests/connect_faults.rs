//! connect when things go wrong: expired sessions, a restarted or unreachable server, HTTP
//! errors, streams cut mid-answer, and bad input from the agent. Each request still gets exactly
//! one answer and the bridge keeps going.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use common::{eventually, tool};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn expired_session_is_reinitialized_transparently() {
    for sse in [false, true] {
        let mock = Mock::start(Options {
            sse,
            ..Default::default()
        })
        .await;
        let mut b = Connect::start(&[&mock.url("/mcp")]);
        b.initialize("2025-06-18").await;
        eventually("the session is fully open", || {
            mock.state.get_streams() == 1
        })
        .await;
        mock.state.expire_sessions();
        let answer = b
            .call(json!(1), "tools/call", tool("echo", json!({"n": 1})))
            .await;
        assert_eq!(answer["result"]["arguments"]["n"], 1, "sse={sse}: {answer}");
        let inits = mock.state.requests("initialize");
        assert_eq!(inits.len(), 2);
        assert!(
            inits[1].body["id"]
                .as_str()
                .unwrap()
                .starts_with("mcp-bridge-")
        );
        assert_eq!(
            inits[1].body["params"], inits[0].body["params"],
            "the agent's own handshake is replayed"
        );
        let calls = mock.state.requests("tools/call");
        assert_eq!(calls.len(), 2, "the call is sent again once");
        assert_eq!(calls[1].headers["mcp-session-id"], "sess-2");
        assert_eq!(mock.state.requests("notifications/initialized").len(), 2);
        // Nothing but the answer reached the agent: the next message is the next answer.
        let next = b.call(json!(2), "ping", json!({})).await;
        assert_eq!(next["id"], 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_restart_on_the_same_port_is_survived() {
    let mut mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&["--connect-timeout", "5s", &mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    assert!(
        b.call(json!(1), "ping", json!({}))
            .await
            .get("result")
            .is_some()
    );
    mock.stop().await;
    mock.restart().await;
    let answer = b
        .call(
            json!(2),
            "tools/call",
            tool("echo", json!({"after": "restart"})),
        )
        .await;
    assert_eq!(
        answer["result"]["arguments"]["after"], "restart",
        "{answer}"
    );
    assert_eq!(
        mock.state.requests("initialize").len(),
        1,
        "the new server saw the replayed handshake"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_made_while_the_server_is_down_wait_for_it() {
    let mut mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&["--connect-timeout", "10s", &mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    mock.stop().await;
    b.send(json!({"jsonrpc":"2.0","id":"during","method":"tools/call","params": tool("echo", json!({}))})).await;
    b.wait_stderr("unreachable").await;
    mock.restart().await;
    let (answer, _) = b.recv_answer(json!("during")).await;
    assert!(answer.get("result").is_some(), "{answer}");
    b.wait_stderr("reachable again").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_gets_an_error_per_request_and_the_bridge_stays_up() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut b = Connect::start(&["--connect-timeout", "300ms", &url]);
    let start = Instant::now();
    let answer = b.call(json!(0), "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}})).await;
    let waited = start.elapsed();
    assert_eq!(answer["error"]["data"]["reason"], "unreachable", "{answer}");
    assert_eq!(answer["error"]["data"]["mayHaveRun"], false);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    let again = b.call(json!(1), "ping", json!({})).await;
    assert_eq!(again["error"]["data"]["reason"], "unreachable");
    assert!(
        b.child.try_wait().unwrap().is_none(),
        "the bridge is still running"
    );
    let unreachable_lines = b.stderr().matches("is unreachable").count();
    assert_eq!(
        unreachable_lines,
        1,
        "one line per state change:\n{}",
        b.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_errors_become_json_rpc_errors_with_details() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-06-18").await;
    let e500 = b
        .call(json!(1), "tools/call", tool("status", json!({"code": 500})))
        .await;
    assert_eq!(e500["error"]["data"]["httpStatus"], 500, "{e500}");
    assert_eq!(e500["error"]["data"]["mayHaveRun"], true);
    assert_eq!(e500["error"]["data"]["source"], "mcp-bridge");
    let e401 = b
        .call(json!(2), "tools/call", tool("status", json!({"code": 401})))
        .await;
    assert_eq!(e401["error"]["data"]["reason"], "unauthorized");
    assert!(
        e401["error"]["data"]["wwwAuthenticate"]
            .as_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let e403 = b
        .call(json!(3), "tools/call", tool("status", json!({"code": 403})))
        .await;
    assert_eq!(e403["error"]["data"]["httpStatus"], 403);
    let ok = b.call(json!(4), "ping", json!({})).await;
    assert!(ok.get("result").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_closed_after_retry_is_resumed_with_last_event_id() {
    let mock = Mock::start(Options {
        sse: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    b.initialize("2025-11-25").await;
    let start = Instant::now();
    let answer = b
        .call(json!("c"), "tools/call", tool("cut", json!({"v": 7})))
        .await;
    assert_eq!(answer["result"]["arguments"]["v"], 7, "{answer}");
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "waited the server's retry delay"
    );
    let resumed = mock
        .state
        .http("GET")
        .into_iter()
        .find(|g| g.headers.contains_key("last-event-id"));
    let resumed = resumed.expect("a GET with Last-Event-ID");
    assert!(
        resumed.headers["last-event-id"]
            .to_str()
            .unwrap()
            .ends_with("-0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_errors_and_the_bridge_keeps_working() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start(&["--max-message-size", "1KiB", &mock.url("/mcp")]);
    b.initialize("2025-06-18").await;

    b.send_raw(b"this is not json\n").await;
    let e = b.recv().await;
    assert_eq!(e["error"]["code"], -32700);
    assert_eq!(e["id"], serde_json::Value::Null);

    b.send_raw(b"{\"jsonrpc\":\"2.0\",\"result\":1}\n").await;
    assert_eq!(b.recv().await["error"]["code"], -32600);
    b.send_raw(b"[1,2]\n").await;
    assert_eq!(b.recv().await["error"]["code"], -32600);

    b.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}\n")
        .await;
    let e = b.recv().await;
    assert_eq!(e["error"]["code"], -32700);
    assert!(e["error"]["message"].as_str().unwrap().contains("UTF-8"));

    let mut huge = br#"{"jsonrpc":"2.0","id":5,"method":"x","params":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4096));
    huge.extend_from_slice(b"\"}\n");
    b.send_raw(&huge).await;
    let e = b.recv().await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-message-size"),
        "{e}"
    );

    b.send_raw(b"\n   \n").await; // blank lines are ignored
    let ok = b.call(json!(6), "ping", json!({})).await;
    assert_eq!(ok["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sigint_delete_the_session_and_exit_zero() {
    for sig in ["TERM", "INT"] {
        let mock = Mock::start(Options::default()).await;
        let mut b = Connect::start(&[&mock.url("/mcp")]);
        b.initialize("2025-06-18").await;
        let pid = b.child.id().unwrap().to_string();
        let start = Instant::now();
        let kill = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = b.wait_exit(Duration::from_secs(3)).await;
        assert!(status.success(), "SIG{sig}: {status}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "SIG{sig} took {:?}",
            start.elapsed()
        );
        assert_eq!(mock.state.http("DELETE").len(), 1, "SIG{sig}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_is_a_clean_exit() {
    let mock = Mock::start(Options::default()).await;
    let mut cmd = tokio::process::Command::new(common::BIN);
    cmd.args(["connect", &mock.url("/mcp")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the agent stops reading
    let mut stdin = child.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    stdin
        .write_all(format!("{init}\n").as_bytes())
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status}");
    eventually("the session is deleted", || {
        mock.state.http("DELETE").len() == 1
    })
    .await;
}
