//! serve with the stateless 2026-07-28 revision: the Python MCP SDK 2.3.0 client against the
//! real binary in front of the SDK's stdio server (a child of the 2026 era, and one that speaks
//! only the handshake era), in both client modes; plus raw HTTP checks of the status ladder,
//! header validation, id and progress-token rewriting, and cancellation by closing the stream.

mod common;

use common::http::{SseReader, client, read_answer};
use common::python::{python, run_stateless_client, script};
use common::serve::{Opts, Serve};
use common::stateless::{V, call, post, req, status_code};
use common::{WAIT, tool_text};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// `mcp-bridge serve` in front of `stateless_server.py stdio CHILD_ARGS`.
fn serve(py: &Path, child_args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut child = vec![
        py.into(),
        script("stateless_server.py").into(),
        "stdio".into(),
    ];
    child.extend(child_args.iter().map(Into::into));
    Serve::start_with(Opts {
        child,
        env,
        ..Opts::default()
    })
}

/// Runs the SDK client against `url` in both of its modes, through a child started with
/// `child_args`.
fn sdk_runs(child_args: &[&str]) {
    let Some(py) = python() else { return };
    let gw = serve(&py, child_args, &[]);
    let url = gw.mcp();
    let (summary, log) = run_stateless_client(&py, &[&url]);
    assert_eq!(summary["summary"], "PASS", "{log}");
    assert_eq!(summary["protocol_version"], "2026-07-28", "{log}");
    let (summary, log) = run_stateless_client(&py, &[&url, "--mode", "legacy"]);
    assert_eq!(summary["summary"], "PASS", "{log}");
    assert_eq!(summary["protocol_version"], "2025-11-25", "{log}");
}

#[test]
fn sdk_client_of_either_era_through_a_dual_era_child() {
    sdk_runs(&[]);
}

#[test]
fn sdk_client_reaches_2026_even_when_the_child_speaks_only_the_handshake_era() {
    sdk_runs(&["--legacy-only"]);
}

async fn ladder(url: &str) {
    let http = client();
    for m in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = http
            .request(m, url)
            .header("mcp-protocol-version", V)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
    }
    let list = req(json!(1), "tools/list", json!({}));
    let r = post(url, &list, &[("accept", "text/html")]).await;
    assert_eq!(r.status(), 406);
    let r = post(url, &list, &[("mcp-session-id", "abc")]).await;
    let (s, code, body) = status_code(r).await;
    assert_eq!((s, code), (200, 0), "a session id is ignored: {body}");
    assert_eq!(body["id"], 1);
    assert_eq!(body["result"]["resultType"], "complete");
    assert_eq!(body["result"]["cacheScope"], "private");

    let bare = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let (s, code, body) = status_code(post(url, &bare, &[]).await).await;
    assert_eq!((s, code), (400, -32602), "no envelope");
    assert_eq!(body["id"], 2);
    let mut other = list.clone();
    other["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let (s, code, _) = status_code(post(url, &other, &[]).await).await;
    assert_eq!((s, code), (400, -32020), "header and envelope disagree");
    let (s, code, body) =
        status_code(post(url, &other, &[("mcp-protocol-version", "2099-01-01")]).await).await;
    assert_eq!((s, code), (400, -32022), "unsupported version");
    assert_eq!(body["error"]["data"]["supported"], json!([V]));
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
    let (s, code, _) = status_code(post(url, &list, &[("mcp-method", "")]).await).await;
    assert_eq!((s, code), (400, -32020), "no Mcp-Method");
    let (s, code, _) = status_code(post(url, &list, &[("mcp-method", "tools/call")]).await).await;
    assert_eq!((s, code), (400, -32020), "wrong Mcp-Method");

    for m in ["foo/bar", "ping", "initialize"] {
        let (s, code, body) = status_code(post(url, &req(json!(3), m, json!({})), &[]).await).await;
        assert_eq!((s, code), (404, -32601), "{m}: {body}");
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 9}});
    assert_eq!(post(url, &note, &[]).await.status(), 202);
    let batch = json!([list]);
    let (s, code, _) = status_code(post(url, &batch, &[]).await).await;
    assert_eq!((s, code), (400, -32600));
    let r = client()
        .post(url)
        .header("mcp-protocol-version", V)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Mcp-Name and Mcp-Param-* mirror the body.
    let echo = call(
        4,
        "echo_region",
        json!({"region": "us-west1", "text": "hi"}),
    );
    let (s, code, _) = status_code(post(url, &echo, &[]).await).await;
    assert_eq!((s, code), (400, -32020), "Mcp-Param-Region missing");
    let (s, code, _) = status_code(post(url, &echo, &[("mcp-param-region", "eu")]).await).await;
    assert_eq!((s, code), (400, -32020), "Mcp-Param-Region differs");
    let bad_name = [("mcp-param-region", "us-west1"), ("mcp-name", "add")];
    let (s, code, _) = status_code(post(url, &echo, &bad_name).await).await;
    assert_eq!((s, code), (400, -32020), "Mcp-Name differs");
    let (s, _, body) =
        status_code(post(url, &echo, &[("mcp-param-region", "us-west1")]).await).await;
    assert_eq!(s, 200);
    assert_eq!(tool_text(&body), "region=us-west1 text=hi");
    let wide = call(
        5,
        "echo_region",
        json!({"region": "Hello, 世界", "text": "x"}),
    );
    let b64 = [("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?=")];
    let (s, _, body) = status_code(post(url, &wide, &b64).await).await;
    assert_eq!(
        (s, tool_text(&body).as_str()),
        (200, "region=Hello, 世界 text=x")
    );
    let add = call(6, "add", json!({"a": 40, "b": 2}));
    let (s, _, body) = status_code(post(url, &add, &[("mcp-param-a", "40")]).await).await;
    assert_eq!((s, tool_text(&body).as_str()), (200, "42"));

    let read = req(
        json!(7),
        "resources/read",
        json!({"uri": "demo://greeting"}),
    );
    let (s, _, body) = status_code(post(url, &read, &[]).await).await;
    assert_eq!(s, 200);
    assert_eq!(
        body["result"]["contents"][0]["text"],
        "hello from the stateless server"
    );
    assert_eq!(body["result"]["ttlMs"], 0);
    let discover = req(json!(8), "server/discover", json!({}));
    let (s, _, body) = status_code(post(url, &discover, &[]).await).await;
    assert_eq!(s, 200);
    assert_eq!(body["result"]["supportedVersions"], json!([V]));
    assert_eq!(
        body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stateless-test-server"
    );
}

/// Many clients using the same id at once each get their own answer.
async fn same_ids_do_not_collide(url: &str) {
    let mut calls = Vec::new();
    for a in 0..12 {
        let url = url.to_owned();
        calls.push(tokio::spawn(async move {
            let body = call(1, "add", json!({"a": a, "b": 1000}));
            let r = post(&url, &body, &[("mcp-param-a", &a.to_string())]).await;
            (a, read_answer(r).await.unwrap())
        }));
    }
    for c in calls {
        let (a, ans) = c.await.unwrap();
        assert_eq!(ans["id"], 1);
        assert_eq!(tool_text(&ans), (a + 1000).to_string());
    }
}

/// Progress comes on the POST's stream under the client's token; closing it cancels.
async fn progress_and_cancel(url: &str) {
    let mut slow = call(10, "slow", json!({"steps": 3, "delay": 0.05}));
    slow["params"]["_meta"]["progressToken"] = json!("tok-1");
    let r = post(url, &slow, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut sse = SseReader::new(r);
    let mut progress = 0;
    loop {
        let (_, msg) = sse.next_message().await.unwrap();
        if msg["method"] == "notifications/progress" {
            assert_eq!(msg["params"]["progressToken"], "tok-1");
            progress += 1;
        } else {
            assert_eq!(msg["id"], 10);
            assert_eq!(tool_text(&msg), "done 3");
            break;
        }
    }
    assert_eq!(progress, 3);

    let stats = || async {
        let body = call(11, "stats", json!({}));
        let ans = read_answer(post(url, &body, &[]).await).await.unwrap();
        serde_json::from_str::<Value>(&tool_text(&ans)).unwrap()["cancelled"]
            .as_i64()
            .unwrap()
    };
    let before = stats().await;
    let mut long = call(12, "slow", json!({"steps": 200, "delay": 0.05}));
    long["params"]["_meta"]["progressToken"] = json!(7);
    let mut sse = SseReader::new(post(url, &long, &[]).await);
    let (_, first) = sse.next_message().await.unwrap();
    assert_eq!(first["params"]["progressToken"], 7);
    drop(sse);
    let deadline = Instant::now() + WAIT;
    while stats().await <= before {
        assert!(
            Instant::now() < deadline,
            "the child never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without a progress token nothing is sent before the answer: a client that gives up while
    // the bridge still waits (to answer with plain JSON) cancels just the same.
    let before = stats().await;
    let quiet = call(13, "slow", json!({"steps": 200, "delay": 0.05}));
    let gave_up = client()
        .post(url)
        .timeout(Duration::from_millis(700))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "slow")
        .body(quiet.to_string())
        .send()
        .await;
    assert!(gave_up.is_err(), "no answer within 0.7 s");
    let deadline = Instant::now() + WAIT;
    while stats().await <= before {
        assert!(
            Instant::now() < deadline,
            "the child never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_ladder_headers_ids_progress_and_cancel_with_a_2026_child() {
    let Some(py) = python() else { return };
    let gw = serve(&py, &[], &[]);
    let url = gw.mcp();
    ladder(&url).await;
    same_ids_do_not_collide(&url).await;
    progress_and_cancel(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_with_a_handshake_era_child() {
    let Some(py) = python() else { return };
    let gw = serve(&py, &["--legacy-only"], &[]);
    let url = gw.mcp();
    ladder(&url).await;
    same_ids_do_not_collide(&url).await;
    progress_and_cancel(&url).await;
    let listen = req(
        json!(20),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    // The child has no subscriptions/listen: the bridge serves it from its list_changed
    // capabilities, and acknowledges only what it can deliver (serve_stateless_eras.rs has one
    // that delivers).
    let r = post(&url, &listen, &[]).await;
    assert_eq!(r.status(), 200);
    let (_, ack) = SseReader::new(r).next_message().await.unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    // The SDK's handshake-only loop does not announce list changes: nothing is acknowledged.
    assert_eq!(ack["params"]["notifications"], json!({}));
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_host_and_origin_are_checked_first() {
    let Some(py) = python() else { return };
    let gw = serve(&py, &[], &[("MCP_BRIDGE_AUTH_TOKEN", "s3cret")]);
    let url = gw.mcp();
    let list = req(json!(1), "tools/list", json!({}));
    assert_eq!(post(&url, &list, &[]).await.status(), 401);
    let evil = [
        ("authorization", "Bearer s3cret"),
        ("origin", "http://evil.example"),
    ];
    assert_eq!(post(&url, &list, &evil).await.status(), 403);
    let r = client()
        .get(&url)
        .header("mcp-protocol-version", V)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "before the 405");
    let ok = [("authorization", "Bearer s3cret")];
    let (s, _, body) = status_code(post(&url, &list, &ok).await).await;
    assert_eq!(s, 200, "{body}");
}
