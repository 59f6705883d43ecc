//! connect's configuration: headers with `${VAR}`, settings from `MCP_BRIDGE_*` variables,
//! proxies, Unix sockets, redirects, and the help and version output.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use common::{BIN, tool};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn headers_expand_environment_variables_and_are_not_logged() {
    let mock = Mock::start(Options::default()).await;
    let mut b = Connect::start_with(
        &[
            "-H",
            "Authorization: Bearer ${TEST_TOKEN}",
            "--header",
            "X-Team: blue",
            "-vv",
            &mock.url("/mcp"),
        ],
        &[("TEST_TOKEN", "tok-53cr3t"), ("RUST_LOG", "trace")],
    );
    b.initialize("2025-06-18").await;
    b.call(json!(1), "ping", json!({})).await;
    for seen in mock.state.seen.lock().unwrap().iter() {
        assert_eq!(seen.headers["authorization"], "Bearer tok-53cr3t");
        assert_eq!(seen.headers["x-team"], "blue");
    }
    b.close_stdin();
    b.wait_exit(Duration::from_secs(3)).await;
    assert!(
        !b.stderr().contains("tok-53cr3t"),
        "a token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unset_variable_is_a_startup_error_naming_it() {
    let out = tokio::process::Command::new(BIN)
        .args([
            "connect",
            "-H",
            "X-Key: ${MCP_BRIDGE_TEST_NOT_SET}",
            "http://127.0.0.1:9/mcp",
        ])
        .env_remove("MCP_BRIDGE_TEST_NOT_SET")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MCP_BRIDGE_TEST_NOT_SET"), "{err}");
    assert!(out.stdout.is_empty(), "stdout is for JSON-RPC only");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_come_from_mcp_bridge_variables() {
    let mock = Mock::start(Options {
        sse_only: true,
        ..Default::default()
    })
    .await;
    let url = mock.url("/old");
    let mut b = Connect::start_with(
        &[],
        &[
            ("MCP_BRIDGE_URL", &url),
            ("MCP_BRIDGE_TRANSPORT", "sse"),
            ("MCP_BRIDGE_HEADERS", "X-A: 1\nX-B: 2"),
        ],
    );
    b.initialize("2024-11-05").await;
    assert!(
        mock.state
            .http("POST")
            .iter()
            .all(|p| p.path == "/messages"),
        "forced SSE: no POST probe"
    );
    let post = &mock.state.http("POST")[0];
    assert_eq!(post.headers["x-a"], "1");
    assert_eq!(post.headers["x-b"], "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_proxy_is_honoured_and_no_proxy_bypasses_it() {
    // The mock plays the proxy: a proxied request names the target in its request line, and the
    // mock serves it by path. The target host does not exist, so only the proxy can answer.
    let proxy = Mock::start(Options::default()).await;
    let proxy_url = format!("http://{}", proxy.addr);
    let mut b = Connect::start_with(
        &["--connect-timeout", "1s", "http://mcp-upstream.invalid/mcp"],
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    );
    let init = b.initialize("2025-06-18").await;
    assert!(init.get("result").is_some(), "{init}");
    assert_eq!(proxy.state.requests("initialize").len(), 1);

    let mut b = Connect::start_with(
        &["--connect-timeout", "1s", "http://mcp-upstream.invalid/mcp"],
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("NO_PROXY", "mcp-upstream.invalid"),
            ("no_proxy", "mcp-upstream.invalid"),
        ],
    );
    let init = b.call(json!(0), "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}})).await;
    assert!(
        init.get("error").is_some(),
        "NO_PROXY sends it direct, where nothing answers: {init}"
    );
    assert_eq!(proxy.state.requests("initialize").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_socket_carries_streamable_http_and_sse() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mcp.sock");
    let mock = Mock::start_unix(
        &sock,
        Options {
            sse: true,
            ..Default::default()
        },
    )
    .await;
    let mut b = Connect::start(&["--unix", sock.to_str().unwrap(), "http://localhost/mcp"]);
    b.initialize("2025-11-25").await;
    let answer = b
        .call(json!(1), "tools/call", tool("echo", json!({"via": "unix"})))
        .await;
    assert_eq!(answer["result"]["arguments"]["via"], "unix");
    assert_eq!(
        mock.state.requests("tools/call")[0].headers["host"],
        "localhost"
    );

    let mut b = Connect::start(&["--unix", sock.to_str().unwrap(), "http://localhost/sse"]);
    b.initialize("2024-11-05").await;
    let answer = b.call(json!(2), "ping", json!({})).await;
    assert_eq!(answer["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_is_retried_like_an_unreachable_host() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("later.sock");
    let mut b = Connect::start(&[
        "--unix",
        sock.to_str().unwrap(),
        "--connect-timeout",
        "10s",
        "http://localhost/mcp",
    ]);
    b.send(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})).await;
    b.wait_stderr("unreachable").await;
    let _mock = Mock::start_unix(&sock, Options::default()).await;
    let (answer, _) = b.recv_answer(json!(0)).await;
    assert!(answer.get("result").is_some(), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_version() {
    let help = std::process::Command::new(BIN)
        .args(["connect", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--transport",
        "--header",
        "--unix",
        "--connect-timeout",
        "--max-message-size",
        "--ca-cert",
        "MCP_BRIDGE_",
    ] {
        assert!(text.contains(flag), "help lacks {flag}:\n{text}");
    }
    let version = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("mcp-bridge "));
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_only_within_the_origin() {
    let mock = Mock::start(Options {
        sessions: false,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&["--transport", "streamable", &mock.url("/moved-here")]);
    let init = b.initialize("2025-06-18").await;
    assert!(init.get("result").is_some(), "{init}");

    let mut b = Connect::start(&["--transport", "streamable", &mock.url("/moved-away")]);
    let init = b.call(json!(0), "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}})).await;
    assert_eq!(
        init["error"]["data"]["reason"], "redirect-refused",
        "{init}"
    );
    assert!(
        init["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another origin")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_and_stdout_may_be_plain_files() {
    // Pipes and sockets are served on the runtime's thread; anything else by helper threads.
    let mock = Mock::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    std::fs::write(&input, format!("{init}\n{ping}\n")).unwrap();
    let status = tokio::process::Command::new(BIN)
        .args(["connect", &mock.url("/mcp")])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::process::Stdio::null())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(10), status)
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success());
    let out = std::fs::read_to_string(&output).unwrap();
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{out}");
    assert_eq!(answers[1]["result"], json!({}));
}
