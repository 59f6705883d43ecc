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
    sdk_runs(&["--handshake-only"]);
}

/// Waits (bounded by a minute) until the child answers once: the SDK's import can take longer
/// than `WAIT` on a loaded machine, and the ladder's bounds are for serve, not for Python.
async fn child_is_up(url: &str) {
    let list = req(json!(0), "tools/list", json!({}));
    let r = client()
        .post(url)
        .timeout(Duration::from_secs(60))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .header("mcp-method", "tools/list")
        .body(list.to_string())
        .send()
        .await
        .expect("the child answers within a minute");
    assert_eq!(r.status(), 200);
}

/// One request of the ladder and what serve must answer to it.
struct Rung {
    why: &'static str,
    body: Value,
    /// Headers that replace or add to the ones a client derives (an empty value removes one).
    extra: &'static [(&'static str, &'static str)],
    status: u16,
    /// The JSON-RPC error code of the answer (0: a result); `None` leaves the body unread.
    code: Option<i64>,
    /// Further checks of the answer.
    then: fn(&Value),
}

fn rung(why: &'static str, body: Value, extra: &'static [(&str, &str)], status: u16) -> Rung {
    Rung {
        why,
        body,
        extra,
        status,
        code: None,
        then: |_| {},
    }
}

impl Rung {
    fn code(self, code: i64) -> Rung {
        Rung {
            code: Some(code),
            ..self
        }
    }

    fn then(self, then: fn(&Value)) -> Rung {
        Rung { then, ..self }
    }
}

/// The status ladder and the header checks of the stateless path, one request at a time.
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
    let bare = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let mut other = list.clone();
    other["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let cancelled = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 9}});
    let echo = call(
        4,
        "echo_region",
        json!({"region": "us-west1", "text": "hi"}),
    );
    let wide = call(
        5,
        "echo_region",
        json!({"region": "Hello, 世界", "text": "x"}),
    );
    let read = req(
        json!(7),
        "resources/read",
        json!({"uri": "demo://greeting"}),
    );
    let mut rungs = vec![
        rung(
            "Accept has neither JSON nor SSE",
            list.clone(),
            &[("accept", "text/html")],
            406,
        ),
        rung(
            "a session id is ignored",
            list.clone(),
            &[("mcp-session-id", "abc")],
            200,
        )
        .code(0)
        .then(|a| {
            assert_eq!(a["id"], 1);
            assert_eq!(a["result"]["resultType"], "complete");
            assert_eq!(a["result"]["cacheScope"], "private");
        }),
        rung("no envelope", bare, &[], 400)
            .code(-32602)
            .then(|a| assert_eq!(a["id"], 2)),
        rung("header and envelope disagree", other.clone(), &[], 400).code(-32020),
        rung(
            "unsupported version",
            other,
            &[("mcp-protocol-version", "2099-01-01")],
            400,
        )
        .code(-32022)
        .then(|a| {
            assert_eq!(a["error"]["data"]["supported"], json!([V]));
            assert_eq!(a["error"]["data"]["requested"], "2099-01-01");
        }),
        rung("no Mcp-Method", list.clone(), &[("mcp-method", "")], 400).code(-32020),
        rung(
            "wrong Mcp-Method",
            list.clone(),
            &[("mcp-method", "tools/call")],
            400,
        )
        .code(-32020),
    ];
    for m in ["foo/bar", "ping", "initialize"] {
        rungs.push(
            rung(
                "a method the revision lacks",
                req(json!(3), m, json!({})),
                &[],
                404,
            )
            .code(-32601),
        );
    }
    rungs.extend([
        rung("a notification", cancelled, &[], 202),
        rung("a batch", json!([list]), &[], 400).code(-32600),
        // Mcp-Name and Mcp-Param-* mirror the body.
        rung("Mcp-Param-Region missing", echo.clone(), &[], 400).code(-32020),
        rung(
            "Mcp-Param-Region differs",
            echo.clone(),
            &[("mcp-param-region", "eu")],
            400,
        )
        .code(-32020),
        rung(
            "Mcp-Name differs",
            echo.clone(),
            &[("mcp-param-region", "us-west1"), ("mcp-name", "add")],
            400,
        )
        .code(-32020),
        rung(
            "Mcp-Param-Region matches",
            echo,
            &[("mcp-param-region", "us-west1")],
            200,
        )
        .code(0)
        .then(|a| assert_eq!(tool_text(a), "region=us-west1 text=hi")),
        rung(
            "a base64 Mcp-Param value",
            wide,
            &[("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?=")],
            200,
        )
        .code(0)
        .then(|a| assert_eq!(tool_text(a), "region=Hello, 世界 text=x")),
        rung(
            "an integer Mcp-Param value",
            call(6, "add", json!({"a": 40, "b": 2})),
            &[("mcp-param-a", "40")],
            200,
        )
        .code(0)
        .then(|a| assert_eq!(tool_text(a), "42")),
        rung("resources/read", read, &[], 200).code(0).then(|a| {
            let text = &a["result"]["contents"][0]["text"];
            assert_eq!(text, "hello from the stateless server");
            assert_eq!(a["result"]["ttlMs"], 0);
        }),
        rung(
            "server/discover",
            req(json!(8), "server/discover", json!({})),
            &[],
            200,
        )
        .code(0)
        .then(|a| {
            assert_eq!(a["result"]["supportedVersions"], json!([V]));
            assert_eq!(
                a["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
                "stateless-test-server"
            );
        }),
    ]);
    for r in rungs {
        let resp = post(url, &r.body, r.extra).await;
        if let Some(want) = r.code {
            let (status, code, body) = status_code(resp).await;
            assert_eq!((status, code), (r.status, want), "{}: {body}", r.why);
            (r.then)(&body);
        } else {
            assert_eq!(resp.status(), r.status, "{}", r.why);
        }
    }
    let r = client()
        .post(url)
        .header("mcp-protocol-version", V)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a body that is not JSON");
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
    child_is_up(&url).await;
    ladder(&url).await;
    same_ids_do_not_collide(&url).await;
    progress_and_cancel(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_with_a_handshake_era_child() {
    let Some(py) = python() else { return };
    let gw = serve(&py, &["--handshake-only"], &[]);
    let url = gw.mcp();
    child_is_up(&url).await;
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
