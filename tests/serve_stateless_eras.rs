//! serve's stateless 2026-07-28 path in front of a child of the handshake era (the plain
//! Python stdio fixture, no SDK needed): the synthesized `server/discover`, list changes on a
//! `subscriptions/listen` stream the bridge serves itself, log messages for the request that
//! opted in, a child's request answered with an error that says why, a crash answered and the
//! child restarted, and stateful sessions on the same endpoint with their own children.

mod common;

use common::http::{Session, SseReader, call_msg, client, read_answer};
use common::serve::{Serve, have_python3};
use common::stateless::{V, call, post, req, status_code};
use common::tool_text;
use serde_json::{Value, json};

fn start() -> Option<Serve> {
    have_python3().then(|| Serve::start(&[]))
}

fn with_meta(mut body: Value, key: &str, value: Value) -> Value {
    body["params"]["_meta"][key] = value;
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_and_listen_are_served_for_a_handshake_child() {
    let Some(gw) = start() else { return };
    let url = gw.mcp();
    let (s, _, d) =
        status_code(post(&url, &req(json!(1), "server/discover", json!({})), &[]).await).await;
    assert_eq!(s, 200);
    assert_eq!(d["result"]["supportedVersions"], json!([V]));
    assert_eq!(d["result"]["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(
        d["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stdio-fixture"
    );
    assert_eq!(d["result"]["resultType"], "complete");

    let listen = req(
        json!("sub"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["a://b"]}}),
    );
    let mut stream = SseReader::new(post(&url, &listen, &[]).await);
    let (_, ack) = stream.next_message().await.unwrap();
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "{ack}"
    );
    let ans = read_answer(post(&url, &call(2, "list_changed", json!({})), &[]).await)
        .await
        .unwrap();
    assert_eq!(tool_text(&ans), "sent");
    let (_, changed) = stream.next_message().await.unwrap();
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_reach_only_a_request_that_opted_in() {
    let Some(gw) = start() else { return };
    let url = gw.mcp();
    let quiet = call(1, "emit", json!({"count": 3}));
    let r = post(&url, &quiet, &[]).await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(tool_text(&read_answer(r).await.unwrap()), "emitted 3");

    let loud = with_meta(
        call(2, "emit", json!({"count": 3})),
        "io.modelcontextprotocol/logLevel",
        json!("info"),
    );
    let mut stream = SseReader::new(post(&url, &loud, &[]).await);
    let mut logs = 0;
    loop {
        let (_, m) = stream.next_message().await.unwrap();
        if m["method"] == "notifications/message" {
            logs += 1;
        } else {
            assert_eq!(tool_text(&m), "emitted 3");
            break;
        }
    }
    assert_eq!(logs, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_request_gets_an_error_that_names_the_gap() {
    let Some(gw) = start() else { return };
    let ans = read_answer(post(&gw.mcp(), &call(1, "ask", json!({"question": "?"})), &[]).await)
        .await
        .unwrap();
    let t = tool_text(&ans);
    assert!(
        t.contains("-32601") && t.contains("not available through mcp-bridge serve"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_answered_and_the_next_request_starts_a_new_child() {
    let Some(gw) = start() else { return };
    let url = gw.mcp();
    let pid = |a: &Value| tool_text(a);
    let first = read_answer(post(&url, &call(1, "pid", json!({})), &[]).await)
        .await
        .unwrap();
    let (s, code, body) = status_code(post(&url, &call(2, "crash", json!({})), &[]).await).await;
    assert_eq!((s, code), (200, -32000), "{body}");
    assert_eq!(body["id"], 2);
    assert_eq!(body["error"]["data"]["source"], "mcp-bridge");
    let again = read_answer(post(&url, &call(3, "pid", json!({})), &[]).await)
        .await
        .unwrap();
    assert_ne!(pid(&first), pid(&again), "a new child");
    assert!(!pid(&again).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_of_the_handshake_era_share_the_endpoint_but_not_the_child() {
    let Some(gw) = start() else { return };
    let url = gw.mcp();
    let session = Session::open(&url).await.unwrap();
    let stateful = tool_text(
        &session
            .request(call_msg(json!(1), "pid", json!({})))
            .await
            .unwrap(),
    );
    let stateless = tool_text(
        &read_answer(post(&url, &call(1, "pid", json!({})), &[]).await)
            .await
            .unwrap(),
    );
    assert_ne!(stateful, stateless);
    // A handshake-era request without a session is still refused as before.
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
    let r = client()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(ping.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
