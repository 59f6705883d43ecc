//! Interop for `serve`: official SDK clients (TypeScript over Streamable HTTP and legacy SSE, Python
//! over both) against `mcp-bridge serve` wrapping server-everything on stdio, and the end-to-end
//! chain TS SDK (stdio) -> `connect` -> `serve` -> server-everything (stdio).
//! Needs `npm ci --prefix tests/node` and `.venv` (see docs/testing.md); skips loudly without them,
//! fails under CI=true.

mod interop_support;

use interop_support::{
    BRIDGE, NodePeers, Proc, assert_everything_summary, node_peers, python, run_py_client,
    run_ts_client, start_serve,
};
use std::time::Duration;

const LONG_STEPS: u64 = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `serve` wrapping `node server-everything stdio`.
fn serve_everything(peers: &NodePeers) -> (Proc, u16) {
    start_serve(
        &[],
        &[
            peers.node.as_os_str(),
            peers.everything.as_os_str(),
            "stdio".as_ref(),
        ],
    )
    .expect("mcp-bridge serve starts and answers /healthz")
}

#[test]
fn ts_sdk_streamable_http_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = run_ts_client(&peers, &["streamable", &url], CLIENT_TIMEOUT).expect("TS SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn ts_sdk_legacy_sse_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/sse");
    let s = run_ts_client(&peers, &["sse", &url], CLIENT_TIMEOUT).expect("TS SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn python_sdk_streamable_http_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = run_py_client(&py, &["streamable", &url], CLIENT_TIMEOUT).expect("Python SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn python_sdk_legacy_sse_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/sse");
    let s = run_py_client(&py, &["sse", &url], CLIENT_TIMEOUT).expect("Python SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn end_to_end_ts_stdio_connect_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = run_ts_client(
        &peers,
        &["stdio", "--", BRIDGE, "connect", &url],
        CLIENT_TIMEOUT,
    )
    .expect("TS SDK session through connect and serve");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn end_to_end_ts_stdio_connect_legacy_sse_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let (_serve, port) = serve_everything(&peers);
    let url = format!("http://127.0.0.1:{port}/sse");
    let s = run_ts_client(
        &peers,
        &["stdio", "--", BRIDGE, "connect", "--transport", "sse", &url],
        CLIENT_TIMEOUT,
    )
    .expect("TS SDK session through connect (SSE) and serve");
    assert_everything_summary(&s, LONG_STEPS);
}
