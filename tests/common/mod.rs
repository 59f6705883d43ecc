//! Support shared by every integration test, one file per concept:
//!
//! - here: the binary under test ([`BIN`]), the bound on every wait ([`WAIT`]), the one polling
//!   wait ([`eventually`]), the skip-or-fail rule for missing tools ([`require`]), the transport
//!   connect chose ([`assert_transport`]) and small JSON helpers;
//! - `blocking.rs`: a child process driven from a plain (blocking) test ([`blocking::Proc`]);
//! - `log.rs`: a child's output echoed with a `[name]` prefix and kept for bounded waits;
//! - `connect.rs`: a running `mcp-bridge connect` driven over its stdio ([`connect::Connect`]);
//! - `serve.rs`: a running `mcp-bridge serve` on a free port ([`serve::Serve`]);
//! - `http.rs`: an HTTP client of serve: Streamable HTTP sessions and SSE streams;
//! - `stateless.rs`: requests of the stateless 2026-07-28 revision and their headers;
//! - `mock/`: a scriptable remote MCP server for connect's tests;
//! - `oauth.rs`: a mock authorization server with a protected MCP resource, and the host's
//!   side of a login ([`oauth::World`]: config, token store, an approving browser);
//! - `peer.rs`: any other process (a peer server, a client run to completion);
//! - `node.rs`, `python.rs`: the pinned interop peers (TS SDK, server-everything, Python SDK).

// Each test binary uses a different subset of this module.
#![allow(dead_code)]

pub mod blocking;
pub mod connect;
pub mod http;
pub mod log;
pub mod mock;
pub mod node;
pub mod oauth;
pub mod peer;
pub mod python;
pub mod serve;
pub mod stateless;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-bridge");

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often the bounded waits look again.
const POLL: Duration = Duration::from_millis(10);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `cond` until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// True when running under CI, where a missing tool is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Either `Some(value)`, or a loud skip message (and `None`) locally, or a panic under CI.
pub fn require<T>(found: Option<T>, what: &str, how_to_fix: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    assert!(!in_ci(), "CI=true and {what} is missing: {how_to_fix}");
    eprintln!("\n!!!! SKIPPING: {what} is missing ({how_to_fix}) !!!!\n");
    None
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The params of a tools/call request.
pub fn tool(name: &str, args: Value) -> Value {
    json!({"name": name, "arguments": args})
}

/// The text of a tools/call answer (empty if it has none).
pub fn tool_text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The transport connect's `auto` chose, lower-cased, from its `transport: …` log line (a
/// parenthesised remark after the name is dropped), or `None` if it logged none.
fn chosen_transport(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("transport: "))?;
    let name = line.split_once("transport: ")?.1;
    let name = name.split('(').next().unwrap_or(name);
    Some(name.trim().to_lowercase())
}

/// Asserts that connect's log names `expected` (`"streamable"` or `"sse"`) as its transport.
pub fn assert_transport(log: &str, expected: &str) {
    let chosen = chosen_transport(log)
        .unwrap_or_else(|| panic!("connect logged no `transport:` line:\n{log}"));
    let is_streamable = chosen.contains("streamable");
    let ok = match expected {
        "streamable" => is_streamable,
        "sse" => !is_streamable && chosen.contains("sse"),
        other => panic!("unknown transport {other:?}"),
    };
    assert!(ok, "connect chose {chosen:?}, not {expected}:\n{log}");
}
