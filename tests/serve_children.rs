//! Child processes: explicit environment, crash handling, server-to-client requests,
//! --max-sessions, and an orderly shutdown that leaves no process behind.

mod common;

use common::http::{Session, call_msg, read_answer};
use common::serve::{Opts, Serve, have_python3};
use common::{alive, tool_text};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn child_environment_is_explicit() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start_with(Opts {
        args: &["--env", "GREETING=hi there", "--pass-env", "FIXTURE_EXTRA"],
        env: &[
            ("FIXTURE_EXTRA", "passed"),
            ("FIXTURE_SECRET", "nope"),
            ("MCP_BRIDGE_AUTH_TOKEN", "tok-123"),
        ],
        ..Opts::default()
    });
    let s = Session::open_full(&gw.mcp(), "2025-06-18", Some("tok-123"))
        .await
        .unwrap();
    let a = s
        .request(call_msg(json!(1), "env", json!({})))
        .await
        .unwrap();
    let env: Value = serde_json::from_str(&tool_text(&a)).unwrap();
    assert_eq!(env["GREETING"], "hi there");
    assert_eq!(env["FIXTURE_EXTRA"], "passed");
    assert!(
        env.get("FIXTURE_SECRET").is_none(),
        "host variables are not passed by default"
    );
    assert!(env.get("PATH").is_some());
    assert!(
        !a.to_string().contains("tok-123"),
        "the token never reaches the child"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_answers_waiting_requests_and_then_404() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let slow = s
        .post_builder(&call_msg(
            json!("slow"),
            "slow",
            json!({"seconds": 5, "steps": 1}),
        ))
        .send();
    let slow = tokio::spawn(async move { read_answer(slow.await.unwrap()).await.unwrap() });
    // Make sure the slow call reached the child before crashing it.
    assert_eq!(
        tool_text(
            &s.request(call_msg(json!(0), "echo", json!({"text":"x"})))
                .await
                .unwrap()
        ),
        "x"
    );
    let crash = s
        .request(call_msg(json!("crash"), "crash", json!({})))
        .await
        .unwrap();
    assert_eq!(crash["id"], "crash");
    assert_eq!(crash["error"]["data"]["source"], "mcp-bridge");
    assert!(
        crash["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 3"),
        "{crash}"
    );
    let slow = slow.await.unwrap();
    assert_eq!(slow["id"], "slow");
    assert!(
        slow["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 3"),
        "{slow}"
    );
    let r = s
        .post(json!({"jsonrpc":"2.0","id":9,"method":"ping"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 3"),
        "{body}"
    );
    // A client that re-initializes gets a fresh child.
    let s2 = Session::open(&gw.mcp()).await.unwrap();
    assert_eq!(
        tool_text(
            &s2.request(call_msg(json!(1), "echo", json!({"text":"new"})))
                .await
                .unwrap()
        ),
        "new"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn child_requests_reach_the_client_and_its_answer_returns() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let mut get = s.get_stream(None).await.unwrap();
    let ask = s
        .post_builder(&call_msg(json!(1), "ask", json!({"question":"2+2?"})))
        .send();
    let ask = tokio::spawn(async move { read_answer(ask.await.unwrap()).await.unwrap() });
    let (_, req) = get.next_message().await.unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"4"},"model":"m"}});
    assert_eq!(s.post(answer).await.unwrap().status(), 202);
    let result = ask.await.unwrap();
    assert!(tool_text(&result).contains("\"text\":\"4\""), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_sessions_gives_503() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--max-sessions", "1"]);
    let _s = Session::open(&gw.mcp()).await.unwrap();
    let err = Session::open(&gw.mcp()).await.err().unwrap().to_string();
    assert!(err.contains("503") && err.contains("max-sessions"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_every_child() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_dir = dir.path().to_str().unwrap();
    // A stubborn child ignores stdin EOF and SIGTERM: only SIGKILL ends it.
    let mut gw = Serve::start_with(Opts {
        args: &["--stop-timeout", "300ms"],
        fixture_args: &["--pid-dir", pid_dir, "--stubborn"],
        ..Opts::default()
    });
    let a = Session::open(&gw.mcp()).await.unwrap();
    let b = Session::open(&gw.mcp()).await.unwrap();
    let _get = a.get_stream(None).await.unwrap();
    let pids: Vec<i32> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    let _ = b;
    let status = gw.terminate();
    assert!(status.success(), "exit 0 on SIGTERM, got {status}");
    for p in pids {
        assert!(!alive(p), "child {p} outlived the gateway");
    }
}
