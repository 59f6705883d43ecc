//! serve's HTTP surface: Streamable HTTP status codes, JSON and SSE replies, DELETE, the HTTP+SSE
//! transport, and the health and metrics endpoints, against the real binary.

mod common;

use common::http::{Session, SseReader, call_msg, client, init_msg, read_answer};
use common::serve::{Serve, have_python3};
use common::{WAIT, tool_text};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A POST with exactly these headers and body.
fn raw_post(url: &str, headers: &[(&str, &str)], body: &str) -> reqwest::RequestBuilder {
    let mut req = client().post(url).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req
}

const BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("content-type", "application/json");

/// One request and what serve must answer to it.
struct Case {
    why: &'static str,
    req: reqwest::RequestBuilder,
    status: u16,
    /// The JSON-RPC error code the body must carry.
    code: Option<i64>,
    /// How the Content-Type must start.
    ctype: Option<&'static str>,
    /// Further checks of the headers and the message (the JSON body, or the answer on an SSE
    /// body; null when there is neither).
    then: fn(&HeaderMap, &Value),
}

impl Case {
    fn new(why: &'static str, req: reqwest::RequestBuilder, status: u16) -> Case {
        Case {
            why,
            req,
            status,
            code: None,
            ctype: None,
            then: |_, _| {},
        }
    }

    fn code(self, code: i64) -> Case {
        Case {
            code: Some(code),
            ..self
        }
    }

    fn ctype(self, ctype: &'static str) -> Case {
        Case {
            ctype: Some(ctype),
            ..self
        }
    }

    fn then(self, then: fn(&HeaderMap, &Value)) -> Case {
        Case { then, ..self }
    }
}

/// Sends each case in turn and checks its answer.
async fn check(cases: Vec<Case>) {
    for c in cases {
        let r = c.req.send().await.unwrap();
        assert_eq!(r.status(), c.status, "{}", c.why);
        let headers = r.headers().clone();
        let ctype = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(want) = c.ctype {
            assert!(ctype.starts_with(want), "{}: Content-Type {ctype}", c.why);
        }
        let body = if ctype.starts_with("text/event-stream") {
            read_answer(r).await.unwrap()
        } else {
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null)
        };
        if let Some(code) = c.code {
            assert_eq!(body["error"]["code"], code, "{}: {body}", c.why);
        }
        (c.then)(&headers, &body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_codes_follow_the_spec() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let url = gw.mcp();
    let init = init_msg(1).to_string();
    let ping = |id: i64| json!({"jsonrpc":"2.0","id":id,"method":"ping"}).to_string();
    check(vec![
        Case::new(
            "Accept has neither JSON nor SSE",
            raw_post(&url, &[("accept", "text/html"), JSON], &init),
            406,
        ),
        Case::new(
            "the body is not declared JSON",
            raw_post(&url, &[BOTH, ("content-type", "text/plain")], &init),
            415,
        ),
        Case::new(
            "the body is not JSON",
            raw_post(&url, &[BOTH, JSON], "{not json"),
            400,
        )
        .code(-32700),
        Case::new(
            "a request without a session",
            raw_post(&url, &[BOTH, JSON], &ping(2)),
            400,
        ),
        Case::new(
            "a session nobody opened",
            raw_post(&url, &[BOTH, JSON, ("mcp-session-id", "00ff")], &ping(2)),
            404,
        )
        .code(-32001),
    ])
    .await;

    let s = Session::open(&url).await.unwrap();
    assert_eq!(s.id.len(), 32, "128-bit hex session id");
    assert_eq!(s.init_result["protocolVersion"], "2025-06-18");
    let sid = ("mcp-session-id", s.id.as_str());
    let only_json = ("accept", "application/json");
    let five = call_msg(json!("five"), "echo", json!({"text":"héllo\nworld"})).to_string();
    let pretty =
        serde_json::to_string_pretty(&call_msg(json!(6), "echo", json!({"text":"p"}))).unwrap();
    let batch =
        json!([{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":8,"method":"ping"}]);
    check(vec![
        Case::new(
            "an unsupported MCP-Protocol-Version",
            raw_post(
                &url,
                &[BOTH, JSON, sid, ("mcp-protocol-version", "1999-01-01")],
                &ping(3),
            ),
            400,
        ),
        Case::new("PUT", client().put(&url), 405).then(|h, _| {
            let allow = h["allow"].to_str().unwrap();
            for m in ["GET", "POST", "DELETE"] {
                assert!(allow.contains(m), "Allow: {allow}");
            }
        }),
        Case::new(
            "GET without text/event-stream",
            client()
                .get(&url)
                .header(sid.0, sid.1)
                .header("accept", "application/json"),
            406,
        ),
        Case::new(
            "a request from a client that accepts SSE is answered on SSE",
            s.post_builder(&json!({"jsonrpc":"2.0","id":4,"method":"tools/list"})),
            200,
        )
        .ctype("text/event-stream")
        .then(|_, a| {
            assert_eq!(a["id"], 4);
            assert!(a["result"]["tools"].as_array().unwrap().len() >= 5, "{a}");
        }),
        Case::new(
            "a request from a client that accepts only JSON is answered in JSON",
            raw_post(&url, &[only_json, JSON, sid], &five),
            200,
        )
        .ctype("application/json")
        .then(|_, a| {
            assert_eq!(a["id"], "five");
            assert_eq!(tool_text(a), "héllo\nworld");
        }),
        Case::new(
            "a pretty-printed (multi-line) body reaches the child as one line",
            raw_post(&url, &[BOTH, JSON, sid], &pretty),
            200,
        )
        .then(|_, a| assert_eq!(tool_text(a), "p")),
        Case::new(
            "a notification",
            s.post_builder(&json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"})),
            202,
        ),
        Case::new(
            "a batch (2025-03-26) goes to the child and is answered as an array",
            raw_post(&url, &[only_json, JSON, sid], &batch.to_string()),
            200,
        )
        .then(|_, a| assert_eq!(a.as_array().unwrap().len(), 2, "{a}")),
        Case::new(
            "DELETE ends the session",
            client().delete(&url).header(sid.0, sid.1),
            200,
        ),
        Case::new(
            "the ended session's id",
            s.post_builder(&json!({"jsonrpc":"2.0","id":9,"method":"ping"})),
            404,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_limit_gives_413() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--max-body", "1K"]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let big = "x".repeat(4096);
    let r = s
        .post(call_msg(json!(1), "echo", json!({"text": big})))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Chunked, with no Content-Length: still refused.
    let body = call_msg(json!(2), "echo", json!({"text": big})).to_string();
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(body.into_bytes())]);
    let r = client()
        .post(gw.mcp())
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("mcp-session-id", &s.id)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let a = s
        .request(call_msg(json!(3), "echo", json!({"text":"small"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "small");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_and_metrics() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let s = Session::open(&gw.mcp()).await.unwrap();
    s.request(call_msg(json!(1), "echo", json!({"text":"m"})))
        .await
        .unwrap();
    let text = common::http::metrics(&gw.url, None).await;
    assert!(text.contains("mcp_bridge_sessions 1\n"), "{text}");
    assert!(text.contains("mcp_bridge_children 1\n"), "{text}");
    assert!(
        text.contains("mcp_bridge_messages_total{direction=\"to_child\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("mcp_bridge_messages_total{direction=\"from_child\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("mcp_bridge_request_duration_seconds_count 2\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE mcp_bridge_request_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_round_trip() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let c = client();
    let resp = c
        .get(format!("{}/sse", gw.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = SseReader::new(resp);
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, "endpoint");
    let endpoint = String::from_utf8(first.data.to_vec()).unwrap();
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    let post = |body: Value| {
        c.post(format!("{}{}", gw.url, endpoint))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(post(init_msg(1)).await.unwrap().status(), 202);
    let (id, init) = events.next_message().await.unwrap();
    assert!(id.is_some(), "every event has an id");
    assert_eq!(init["id"], 1);
    assert_eq!(
        post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        post(call_msg(json!(2), "echo", json!({"text":"legacy"})))
            .await
            .unwrap()
            .status(),
        202
    );
    let (_, a) = events.next_message().await.unwrap();
    assert_eq!(tool_text(&a), "legacy");
    let r = c
        .post(format!("{}/messages?sessionId=nope", gw.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Closing the stream ends the session and its child.
    drop(events);
    let r = post(json!({"jsonrpc":"2.0","id":3,"method":"ping"}));
    let mut status = r.await.unwrap().status();
    let deadline = std::time::Instant::now() + WAIT;
    while status != 404 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = post(json!({"jsonrpc":"2.0","method":"notifications/x"}))
            .await
            .unwrap()
            .status();
    }
    assert_eq!(status, 404);
    gw.wait_log("child stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_are_bounded_and_one_worker_serves() {
    if !have_python3() {
        return;
    }
    for bad in ["0", "1025", "-1", "many"] {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["serve", &format!("--workers={bad}"), "--", "python3"])
            .arg(common::serve::fixture());
        let done = common::peer::run_bounded("serve --workers", &mut cmd, WAIT).unwrap();
        assert!(!done.status.success(), "--workers {bad} was accepted");
        assert!(done.stderr.contains("--workers"), "{}", done.stderr);
    }
    let gw = Serve::start(&["--workers", "1"]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let answer = s
        .request(call_msg(json!(2), "echo", json!({"text": "one worker"})))
        .await
        .unwrap();
    assert!(answer.to_string().contains("one worker"), "{answer}");
}
