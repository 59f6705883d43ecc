//! The built-in example server: spoken to directly over stdio, and served by `serve --example`
//! to a real HTTP client.

mod common;

use common::blocking::{BIN, Proc, serve};
use serde_json::{Value, json};
use std::process::Command;

fn example() -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("example-server");
    Proc::spawn(cmd)
}

fn request(p: &mut Proc, id: u64, method: &str, params: Value) -> Value {
    p.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string());
    let reply = p.next_json();
    assert_eq!(reply["id"], id, "{reply}");
    reply
}

#[test]
fn answers_every_method_over_stdio() {
    let mut p = example();
    let init = request(
        &mut p,
        1,
        "initialize",
        json!({"protocolVersion": "2024-11-05",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-bridge-example");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(request(&mut p, 2, "ping", json!({}))["result"], json!({}));
    let tools = request(&mut p, 3, "tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "add", "slow", "counter"]);
    let echo = request(
        &mut p,
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hé"}}),
    );
    assert_eq!(echo["result"]["content"][0]["text"], "hé");
    let add = request(
        &mut p,
        5,
        "tools/call",
        json!({"name": "add", "arguments": {"a": 2, "b": 40}}),
    );
    assert_eq!(add["result"]["structuredContent"]["sum"], 42.0);
    for n in 1..=2 {
        let c = request(&mut p, 5 + n, "tools/call", json!({"name": "counter"}));
        assert_eq!(c["result"]["structuredContent"]["count"], n);
    }
    let res = request(&mut p, 8, "resources/list", json!({}));
    let uri = res["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = request(&mut p, 9, "resources/read", json!({"uri": uri}));
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("example")
    );
    let missing = request(
        &mut p,
        10,
        "resources/read",
        json!({"uri": "example://nope"}),
    );
    assert_eq!(missing["error"]["code"], -32602);
    let prompts = request(&mut p, 11, "prompts/list", json!({}));
    assert_eq!(prompts["result"]["prompts"][0]["name"], "greet");
    let got = request(
        &mut p,
        12,
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Ada"}}),
    );
    assert!(
        got["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("Ada")
    );
    assert_eq!(
        request(&mut p, 13, "no/such", json!({}))["error"]["code"],
        -32601
    );
    assert_eq!(
        request(&mut p, 14, "tools/call", json!({"name": "nope"}))["error"]["code"],
        -32602
    );
    // Hostile input: not JSON, not an object, huge numbers; each gets an answer, none a crash.
    p.send("{not json");
    assert_eq!(p.next_json()["error"]["code"], -32700);
    p.send("[1,2,3]");
    assert_eq!(p.next_json()["error"]["code"], -32600);
    let big = request(
        &mut p,
        15,
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 1e12}}),
    );
    assert_eq!(big["result"]["isError"], true);
    drop(p.stdin.take());
    assert!(p.wait().success());
}

#[test]
fn negotiates_the_newest_version_for_an_unknown_one() {
    let mut p = example();
    for (id, asked, got) in [
        (1, "2025-11-25", "2025-11-25"),
        (2, "2025-03-26", "2025-03-26"),
        (3, "2030-01-01", "2025-11-25"),
    ] {
        let r = request(
            &mut p,
            id,
            "initialize",
            json!({"protocolVersion": asked,
            "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        assert_eq!(r["result"]["protocolVersion"], got);
    }
}

#[test]
fn slow_sends_progress_and_can_be_cancelled() {
    let mut p = example();
    p.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow",
        "arguments": {"steps": 3, "delayMs": 10}, "_meta": {"progressToken": "tok"}}})
        .to_string(),
    );
    for step in 1..=3 {
        let note = p.next_json();
        assert_eq!(note["method"], "notifications/progress", "{note}");
        assert_eq!(note["params"]["progressToken"], "tok");
        assert_eq!(note["params"]["progress"], step);
        assert_eq!(note["params"]["total"], 3);
    }
    assert_eq!(
        p.next_json()["result"]["content"][0]["text"],
        "done after 3 steps"
    );

    // A long call, cancelled: no answer for it, and the server still answers others meanwhile.
    p.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow",
        "arguments": {"steps": 100, "delayMs": 10000}}})
        .to_string(),
    );
    assert_eq!(request(&mut p, 3, "ping", json!({}))["result"], json!({}));
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#);
    assert_eq!(request(&mut p, 4, "ping", json!({}))["id"], 4);
    drop(p.stdin.take());
    // At EOF the server waits for running calls: the cancelled one has ended, so it exits now.
    assert!(p.wait().success());
    assert!(
        p.rest_of_stdout().is_empty(),
        "a cancelled request got an answer"
    );
}

/// Posts one JSON-RPC message; returns the session id (if any) and the JSON answer (the last
/// `data:` of an SSE body, or the JSON body).
async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> (Option<String>, Value) {
    let mut req = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    assert!(resp.status().is_success(), "HTTP {}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text);
    (
        sid,
        serde_json::from_str(json.trim()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn serve_example_end_to_end_over_http() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_serve, addr) = serve(&["--example", "--listen=127.0.0.1:0"]);
    let url = format!("{addr}/mcp");
    let client = reqwest::Client::builder()
        .timeout(common::blocking::WAIT)
        .build()
        .unwrap();
    let (sid, init) = post(
        &client,
        &url,
        None,
        json!({"jsonrpc": "2.0", "id": 1,
        "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-bridge-example",
        "{init}"
    );
    let sid = sid.expect("a session id");
    let s = Some(sid.as_str());
    let (_, _) = post(
        &client,
        &url,
        s,
        json!({"jsonrpc": "2.0",
        "method": "notifications/initialized"}),
    )
    .await;
    let (_, add) = post(
        &client,
        &url,
        s,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 1.5, "b": 2}}}),
    )
    .await;
    assert_eq!(add["result"]["structuredContent"]["sum"], 3.5, "{add}");
    for n in 1..=2 {
        let (_, c) = post(
            &client,
            &url,
            s,
            json!({"jsonrpc": "2.0", "id": 2 + n,
            "method": "tools/call", "params": {"name": "counter"}}),
        )
        .await;
        assert_eq!(c["result"]["structuredContent"]["count"], n, "{c}");
    }
}

#[test]
fn serve_refuses_example_with_a_command() {
    let out = Command::new(BIN)
        .args(["serve", "--example", "--", "cat"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn completions_and_man_page_are_printed() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["man"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("connect") && text.contains("serve"),
            "{args:?}"
        );
    }
}
