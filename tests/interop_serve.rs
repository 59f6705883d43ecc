//! Interop for `serve`: official SDK clients (TypeScript over Streamable HTTP and HTTP+SSE, Python
//! over both) against `mcp-bridge serve` wrapping server-everything on stdio, and the end-to-end
//! chain TS SDK (stdio) -> `connect` -> `serve` -> server-everything (stdio).
//! Needs `npm ci --prefix tests/node` and `.venv` (see docs/testing.md); skips loudly without them,
//! fails under CI=true.

mod common;

use common::node::{NodePeers, assert_everything_summary, node_peers, run_ts_client};
use common::python::{python, run_py_client};
use common::serve::{Opts, Serve};
use common::{BIN, assert_transport};
use std::time::Duration;

const LONG_STEPS: u64 = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `serve` wrapping `node server-everything stdio`.
fn serve_everything(peers: &NodePeers) -> Serve {
    Serve::start_with(Opts {
        child: peers.everything_stdio(),
        ..Opts::default()
    })
}

#[test]
fn ts_sdk_streamable_http_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let serve = serve_everything(&peers);
    let url = serve.mcp();
    let run =
        run_ts_client(&peers, &[], &["streamable", &url], CLIENT_TIMEOUT).expect("TS SDK session");
    assert_everything_summary(&run.summary, LONG_STEPS);
}

#[test]
fn ts_sdk_sse_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let serve = serve_everything(&peers);
    let url = format!("{}/sse", serve.url);
    let run = run_ts_client(&peers, &[], &["sse", &url], CLIENT_TIMEOUT).expect("TS SDK session");
    assert_everything_summary(&run.summary, LONG_STEPS);
}

#[test]
fn python_sdk_streamable_http_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    let serve = serve_everything(&peers);
    let url = serve.mcp();
    let s = run_py_client(&py, &["streamable", &url], CLIENT_TIMEOUT).expect("Python SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn python_sdk_sse_to_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    let serve = serve_everything(&peers);
    let url = format!("{}/sse", serve.url);
    let s = run_py_client(&py, &["sse", &url], CLIENT_TIMEOUT).expect("Python SDK session");
    assert_everything_summary(&s, LONG_STEPS);
}

#[test]
fn end_to_end_ts_stdio_connect_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let serve = serve_everything(&peers);
    let url = serve.mcp();
    let args = ["stdio", "--", BIN, "connect", &url];
    let run = run_ts_client(&peers, &[], &args, CLIENT_TIMEOUT)
        .expect("TS SDK session through connect and serve");
    assert_everything_summary(&run.summary, LONG_STEPS);
    assert_transport(&run.stderr, "streamable");
}

#[test]
fn end_to_end_ts_stdio_connect_sse_serve_everything() {
    let Some(peers) = node_peers() else { return };
    let serve = serve_everything(&peers);
    let url = format!("{}/sse", serve.url);
    let args = ["stdio", "--", BIN, "connect", "--transport", "sse", &url];
    let run = run_ts_client(&peers, &[], &args, CLIENT_TIMEOUT)
        .expect("TS SDK session through connect (SSE) and serve");
    assert_everything_summary(&run.summary, LONG_STEPS);
}
