//! serve's HTTP surface: Streamable HTTP status codes, JSON and SSE replies, DELETE, legacy
//! HTTP+SSE, and the health and metrics endpoints, against the real binary.

mod common;

use serde_json::{Value, json};
use common::http::{Session, SseReader, call_msg, client, init_msg, read_answer};
use common::serve::{Serve, have_python3};
use common::{WAIT, tool_text};

async fn raw_post(url: &str, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
    let mut req = client().post(url).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn error_code(resp: reqwest::Response) -> i64 {
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    v["error"]["code"].as_i64().unwrap()
}

const BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread")]
async fn status_codes_follow_the_spec() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let url = gw.mcp();
    let init = init_msg(1).to_string();

    let r = raw_post(&url, &[("accept", "text/html"), JSON], &init).await;
    assert_eq!(r.status(), 406);
    let r = raw_post(&url, &[BOTH, ("content-type", "text/plain")], &init).await;
    assert_eq!(r.status(), 415);
    let r = raw_post(&url, &[BOTH, JSON], "{not json").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, -32700);
    let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"}).to_string();
    let r = raw_post(&url, &[BOTH, JSON], &ping).await;
    assert_eq!(r.status(), 400, "missing session");
    let r = raw_post(&url, &[BOTH, JSON, ("mcp-session-id", "00ff")], &ping).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, -32001);

    let s = Session::open(&url).await.unwrap();
    assert_eq!(s.id.len(), 32, "128-bit hex session id");
    assert_eq!(s.init_result["protocolVersion"], "2025-06-18");
    let ping3 = json!({"jsonrpc":"2.0","id":3,"method":"ping"}).to_string();
    let headers = [
        BOTH,
        JSON,
        ("mcp-session-id", s.id.as_str()),
        ("mcp-protocol-version", "1999-01-01"),
    ];
    let r = raw_post(&url, &headers, &ping3).await;
    assert_eq!(r.status(), 400, "bad MCP-Protocol-Version");

    let r = client().put(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    for m in ["GET", "POST", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    let r = client()
        .get(&url)
        .header("mcp-session-id", &s.id)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406, "GET without text/event-stream");

    // A request: SSE when the client accepts it, JSON when it accepts only JSON.
    let r = s
        .post(json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let a = read_answer(r).await.unwrap();
    assert_eq!(a["id"], 4);
    assert!(a["result"]["tools"].as_array().unwrap().len() >= 5);
    let five = call_msg(json!("five"), "echo", json!({"text":"héllo\nworld"})).to_string();
    let r = raw_post(
        &url,
        &[
            ("accept", "application/json"),
            JSON,
            ("mcp-session-id", &s.id),
        ],
        &five,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let a: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(a["id"], "five");
    assert_eq!(tool_text(&a), "héllo\nworld");

    // A pretty-printed (multi-line) body still reaches the child as one line.
    let pretty =
        serde_json::to_string_pretty(&call_msg(json!(6), "echo", json!({"text":"p"}))).unwrap();
    let r = raw_post(&url, &[BOTH, JSON, ("mcp-session-id", &s.id)], &pretty).await;
    assert_eq!(tool_text(&read_answer(r).await.unwrap()), "p");

    // Notifications and responses get 202.
    let r = s
        .post(json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // A batch (2025-03-26) is passed to the child and answered as an array.
    let batch =
        json!([{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":8,"method":"ping"}]);
    let r = raw_post(
        &url,
        &[
            ("accept", "application/json"),
            JSON,
            ("mcp-session-id", &s.id),
        ],
        &batch.to_string(),
    )
    .await;
    let a: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(a.as_array().unwrap().len(), 2);

    // DELETE ends the session; afterwards its id answers 404.
    let r = client()
        .delete(&url)
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .post(json!({"jsonrpc":"2.0","id":9,"method":"ping"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
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
    let text = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
async fn legacy_sse_round_trip() {
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
