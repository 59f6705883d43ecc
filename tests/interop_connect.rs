//! Interop for `connect`: the official TypeScript SDK client (stdio) drives `mcp-bridge connect`
//! against `@modelcontextprotocol/server-everything` in its Streamable HTTP and HTTP+SSE modes,
//! with the transport forced and chosen by `auto` (whose choice the log must name).
//! Needs `npm ci --prefix tests/node`; skips loudly without it, fails under CI=true.

mod common;

use common::node::{assert_everything_summary, node_peers, run_ts_client, start_everything_http};
use common::{BIN, assert_transport};
use std::time::Duration;

const LONG_STEPS: u64 = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One TS SDK session through `connect --transport TRANSPORT` to server-everything in `mode`;
/// with `auto`, connect must have chosen `expected`.
fn session_through_connect(mode: &str, path: &str, transport: &str, expected: &str) {
    let Some(peers) = node_peers() else { return };
    let (_server, port) = start_everything_http(&peers, mode).expect("server-everything starts");
    let url = format!("http://127.0.0.1:{port}{path}");
    let args = [
        "stdio",
        "--",
        BIN,
        "connect",
        "--transport",
        transport,
        &url,
    ];
    let run =
        run_ts_client(&peers, &[], &args, CLIENT_TIMEOUT).expect("TS SDK session through connect");
    assert_everything_summary(&run.summary, LONG_STEPS);
    if transport == "auto" {
        assert_transport(&run.stderr, expected);
    }
}

#[test]
fn ts_sdk_via_connect_to_everything_streamable_http() {
    session_through_connect("streamableHttp", "/mcp", "streamable", "streamable");
}

#[test]
fn ts_sdk_via_connect_to_everything_sse() {
    session_through_connect("sse", "/sse", "sse", "sse");
}

#[test]
fn ts_sdk_via_connect_auto_detects_streamable_http() {
    session_through_connect("streamableHttp", "/mcp", "auto", "streamable");
}

#[test]
fn ts_sdk_via_connect_auto_on_an_sse_url() {
    session_through_connect("sse", "/sse", "auto", "sse");
}
