//! Interop for `connect`: the official TypeScript SDK client (stdio) drives `mcp-bridge connect`
//! against `@modelcontextprotocol/server-everything` in its Streamable HTTP and legacy SSE modes.
//! Needs `npm ci --prefix tests/node`; skips loudly without it, fails under CI=true.

mod interop_support;

use interop_support::{
    BRIDGE, assert_everything_summary, node_peers, run_ts_client, start_everything_http,
};
use std::time::Duration;

const LONG_STEPS: u64 = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn session_through_connect(mode: &str, path: &str, transport: &str) {
    let Some(peers) = node_peers() else { return };
    let (_server, port) = start_everything_http(&peers, mode).expect("server-everything starts");
    let url = format!("http://127.0.0.1:{port}{path}");
    let summary = run_ts_client(
        &peers,
        &[
            "stdio",
            "--",
            BRIDGE,
            "connect",
            "--transport",
            transport,
            &url,
        ],
        CLIENT_TIMEOUT,
    )
    .expect("TS SDK session through connect");
    assert_everything_summary(&summary, LONG_STEPS);
}

#[test]
fn ts_sdk_via_connect_to_everything_streamable_http() {
    session_through_connect("streamableHttp", "/mcp", "streamable");
}

#[test]
fn ts_sdk_via_connect_to_everything_legacy_sse() {
    session_through_connect("sse", "/sse", "sse");
}

#[test]
fn ts_sdk_via_connect_auto_detects_streamable_http() {
    session_through_connect("streamableHttp", "/mcp", "auto");
}

#[test]
fn ts_sdk_via_connect_auto_on_legacy_sse_url() {
    session_through_connect("sse", "/sse", "auto");
}
