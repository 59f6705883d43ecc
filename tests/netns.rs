//! No network needed (issue 4, item 4): the TS SDK client and `mcp-bridge connect` run inside a
//! fresh network namespace with no interface up (`unshare -n`, as root) and hold a full MCP session
//! with `mcp-bridge serve` on the host through a Unix socket, while a TCP connection to the host's
//! 127.0.0.1 port (where the same serve also listens) fails from inside.
//! Under CI=true a namespace that cannot be made is a failure, not a skip.

mod common;

use common::node::{assert_everything_summary, node_peers, run_ts_client};
use common::peer::run_bounded;
use common::serve::{Opts, Serve};
use common::{BIN, assert_transport, in_ci};
use std::process::Command;
use std::time::Duration;

/// Can this process make a network namespace? `Err` says why not.
fn can_unshare() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-n", "--", "true"])
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`unshare -n true` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn connect_in_network_namespace_reaches_serve_over_unix_socket_only() {
    if let Err(why) = can_unshare() {
        assert!(
            !in_ci(),
            "CI=true but no network namespace can be made: {why}"
        );
        eprintln!("\n!!!! SKIPPING netns test: {why} (needs root and unshare) !!!!\n");
        return;
    }
    let Some(peers) = node_peers() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("mcp.sock");
    let listen_unix = format!("unix:{}", sock.display());
    let serve = Serve::start_with(Opts {
        args: &["--listen", &listen_unix],
        child: peers.everything_stdio(),
        ..Opts::default()
    });
    let port = serve.port();
    serve.wait_log("listening on unix:");
    assert!(sock.exists(), "serve never created {}", sock.display());

    // Inside the namespace: nothing is up, and the host's loopback port is out of reach.
    let probe = format!(
        "ip -o link show up 2>/dev/null; exec 3<>/dev/tcp/127.0.0.1/{port} && echo TCP-CONNECTED"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "--", "bash", "-c", &probe]);
    let inside = run_bounded("netns-probe", &mut cmd, Duration::from_secs(10)).expect("probe runs");
    assert!(
        !inside.status.success() && !inside.stdout.contains("TCP-CONNECTED"),
        "TCP to 127.0.0.1:{port} worked from inside the namespace: {}",
        inside.stdout
    );
    assert!(
        inside.stdout.trim().is_empty(),
        "interfaces are up inside the namespace: {}",
        inside.stdout
    );
    assert!(
        inside.stderr.contains("unreachable") || inside.stderr.contains("refused"),
        "unexpected TCP failure from inside: {}",
        inside.stderr
    );

    // A full session from inside another such namespace: TS SDK client -> connect --unix -> serve.
    let sock_arg = sock.to_str().expect("UTF-8 temp path");
    let run = run_ts_client(
        &peers,
        &["unshare", "-n", "--"],
        &[
            "stdio",
            "--",
            BIN,
            "connect",
            "--unix",
            sock_arg,
            "http://localhost/mcp",
        ],
        Duration::from_secs(60),
    )
    .expect("MCP session from inside the namespace");
    assert_everything_summary(&run.summary, 4);
    assert_transport(&run.stderr, "streamable");
}

/// Issue 12 inside the namespace: a sandbox with a session key is destroyed (SIGKILL) and
/// recreated, both times in a fresh network-less namespace, and finds the counter where it was.
#[tokio::test]
async fn a_keyed_sandbox_in_a_network_namespace_finds_its_state_again() {
    if let Err(why) = can_unshare() {
        assert!(
            !in_ci(),
            "CI=true but no network namespace can be made: {why}"
        );
        eprintln!("\n!!!! SKIPPING netns test: {why} (needs root and unshare) !!!!\n");
        return;
    }
    if !common::serve::have_python3() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("mcp.sock");
    let listen_unix = format!("unix:{}", sock.display());
    let serve = Serve::start_with(Opts {
        args: &["--listen", &listen_unix, "--scope", "per-key"],
        ..Opts::default()
    });
    serve.wait_log("listening on unix:");
    let sock_arg = sock.to_str().expect("UTF-8 temp path");
    let sandbox = || {
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args([
            "-n",
            "--",
            BIN,
            "connect",
            "--unix",
            sock_arg,
            "http://localhost/mcp",
        ])
        .env("MCP_BRIDGE_SESSION_KEY", "netns-sandbox");
        common::connect::Connect::spawn(cmd)
    };
    let mut first = sandbox();
    first.initialize("2025-06-18").await;
    let n = first
        .call(
            serde_json::json!(1),
            "tools/call",
            serde_json::json!({"name": "count", "arguments": {}}),
        )
        .await;
    assert_eq!(common::tool_text(&n), "1");
    first.child.start_kill().unwrap();
    first.wait_exit(common::WAIT).await;
    let mut second = sandbox();
    second.initialize("2025-06-18").await;
    let n = second
        .call(
            serde_json::json!(1),
            "tools/call",
            serde_json::json!({"name": "count", "arguments": {}}),
        )
        .await;
    assert_eq!(
        common::tool_text(&n),
        "2",
        "the same child across recreation"
    );
}
