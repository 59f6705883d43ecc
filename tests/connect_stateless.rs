//! connect with the stateless 2026-07-28 revision, against the Python MCP SDK 2.3.0 (client and
//! server of that revision and of the handshake revisions): era detection, derived headers,
//! base64 header values, the -32020 relist-and-retry, progress, cancellation by closing the POST,
//! and a clear answer when agent and server disagree on the era.

mod common;

use common::BIN;
use common::connect::Connect;
use common::mock::{Mock, Options};
use common::python::{python, run_stateless_client, stateless_server};
use serde_json::{Value, json};
use std::path::Path;

/// Runs the SDK's client through `mcp-bridge connect URL`; returns its summary line.
fn py_client(py: &Path, url: &str, args: &[&str]) -> (Value, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--stdio", "--", BIN, "connect", url]);
    run_stateless_client(py, &all)
}

#[test]
fn a_2026_agent_reaches_a_2026_server_with_every_feature() {
    let Some(py) = python() else { return };
    let (_server, url) = stateless_server(&py, &[]);
    let (summary, log) = py_client(&py, &url, &[]);
    assert_eq!(summary["summary"], "PASS", "{log}");
    assert_eq!(summary["protocol_version"], "2026-07-28", "{log}");
}

#[test]
fn header_arguments_are_learned_after_a_mismatch() {
    // The agent calls a header-mapped tool without listing tools first: the server answers
    // -32020, the bridge lists the tools itself and sends the call again with Mcp-Param-Region.
    let Some(py) = python() else { return };
    let (_server, url) = stateless_server(&py, &[]);
    let (summary, log) = py_client(
        &py,
        &url,
        &["--mode", "2026-07-28", "--only", "header,header_b64,add"],
    );
    assert_eq!(summary["summary"], "PASS", "{log}");
}

#[test]
fn a_handshake_agent_still_works_against_a_dual_era_server() {
    let Some(py) = python() else { return };
    let (_server, url) = stateless_server(&py, &[]);
    let (summary, log) = py_client(&py, &url, &["--mode", "legacy"]);
    assert_eq!(summary["summary"], "PASS", "{log}");
    assert_eq!(summary["protocol_version"], "2025-11-25");
}

#[test]
fn a_dual_era_agent_falls_back_against_an_older_server() {
    let Some(py) = python() else { return };
    let (_server, url) = stateless_server(&py, &["--handshake-only"]);
    let (summary, log) = py_client(&py, &url, &[]);
    assert_eq!(summary["summary"], "PASS", "{log}");
    assert_eq!(summary["protocol_version"], "2025-11-25");
}

#[test]
fn a_2026_only_agent_is_told_the_server_is_older() {
    let Some(py) = python() else { return };
    let (_server, url) = stateless_server(&py, &["--handshake-only"]);
    let (summary, log) = py_client(&py, &url, &["--mode", "2026-07-28", "--only", "list"]);
    assert_eq!(summary["summary"], "FAIL");
    assert!(
        log.contains("does not speak the 2026-07-28 revision"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_initialize_to_a_2026_only_server_says_so_and_does_not_try_sse() {
    let mock = Mock::start(Options {
        stateless_only: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    let init = b
        .call(json!(0), "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}))
        .await;
    assert_eq!(init["error"]["data"]["reason"], "era-mismatch", "{init}");
    assert_eq!(init["error"]["data"]["remoteError"]["code"], -32022);
    assert!(
        init["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-07-28")
    );
    assert!(mock.state.http("GET").is_empty(), "no fallback to HTTP+SSE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_for_a_2026_request_is_passed_back_and_never_reinitializes() {
    let mock = Mock::start(Options {
        stateless_only: true,
        ..Default::default()
    })
    .await;
    let mut b = Connect::start(&[&mock.url("/mcp")]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    let answer = b.call(json!(7), "no/such", json!({"_meta": meta})).await;
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    assert_eq!(
        answer["id"], 7,
        "the server's null id is replaced by the request's"
    );
    let seen = &mock.state.requests("no/such")[0];
    assert_eq!(seen.headers["mcp-method"], "no/such");
    assert_eq!(seen.headers["mcp-protocol-version"], "2026-07-28");
    assert!(seen.headers.get("mcp-session-id").is_none());
    assert!(mock.state.requests("initialize").is_empty());
}
