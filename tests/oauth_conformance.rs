//! The official conformance suite's client auth scenarios (`@modelcontextprotocol/conformance`
//! 0.1.16) against `mcp-bridge login`: tests/node/oauth-login-client.py writes a config naming
//! the scenario's server, logs in with a `$BROWSER` that approves, and speaks MCP with the stored
//! token (logging in again on a 403 step-up): discovery, registration, PKCE, scopes and token
//! auth. Then the same scenarios end to end the way a sandbox uses them: `login`, then
//! `serve --config` relaying the scenario's server with the stored tokens, and the MCP session
//! through `connect`, which holds none.

mod common;

use common::node::{node_dir, node_peers};
use common::peer::run_bounded;
use common::require;
use std::process::Command;
use std::time::Duration;

fn python() -> Option<String> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    require(
        ok.then(|| "python3".to_string()),
        "python3",
        "install Python 3",
    )
}

fn run(node: &std::path::Path, conformance: &std::path::Path, py: &str, which: &[&str]) -> String {
    run_via(node, conformance, py, which, false)
}

fn run_via(
    node: &std::path::Path,
    conformance: &std::path::Path,
    py: &str,
    which: &[&str],
    gateway: bool,
) -> String {
    let client = node_dir().join("oauth-login-client.py");
    let mut cmd = Command::new(node);
    cmd.arg(conformance)
        .arg("client")
        .arg("--command")
        .arg(format!("{py} {}", client.display()))
        .args(which)
        .env("MCP_BRIDGE_BIN", env!("CARGO_BIN_EXE_mcp-bridge"))
        .env("NO_PROXY", "*")
        .env("MCP_BRIDGE_VIA_GATEWAY", if gateway { "1" } else { "0" })
        .current_dir(node_dir());
    let done = run_bounded("conformance", &mut cmd, Duration::from_secs(300))
        .expect("conformance suite finishes");
    let text = format!("{}\n{}", done.stdout, done.stderr);
    assert!(
        done.status.success(),
        "conformance {which:?} failed ({}):\n{text}",
        done.status
    );
    text
}

#[test]
fn conformance_auth_scenarios_against_login() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    // Every 2025-11-25 and 2025-06-18 client auth scenario, in parallel.
    let text = run(&peers.node, &peers.conformance, &py, &["--suite", "auth"]);
    let passed = text.lines().filter(|l| l.starts_with("✓ auth/")).count();
    assert!(passed >= 14, "only {passed} auth scenarios passed:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("✗ ")), "{text}");
    // The 2025-03-26 fallbacks, and the draft's resource check (a security property).
    for scenario in [
        "auth/2025-03-26-oauth-metadata-backcompat",
        "auth/2025-03-26-oauth-endpoint-fallback",
        "auth/resource-mismatch",
    ] {
        let text = run(
            &peers.node,
            &peers.conformance,
            &py,
            &["--scenario", scenario],
        );
        assert!(text.contains("OVERALL: PASSED"), "{scenario}:\n{text}");
    }
}

#[test]
fn conformance_auth_scenarios_through_serve_and_connect() {
    let Some(peers) = node_peers() else { return };
    let Some(py) = python() else { return };
    let text = run_via(
        &peers.node,
        &peers.conformance,
        &py,
        &["--suite", "auth"],
        true,
    );
    let passed = text.lines().filter(|l| l.starts_with("✓ auth/")).count();
    assert!(passed >= 14, "only {passed} auth scenarios passed:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("✗ ")), "{text}");
    for scenario in [
        "auth/2025-03-26-oauth-metadata-backcompat",
        "auth/2025-03-26-oauth-endpoint-fallback",
    ] {
        let text = run_via(
            &peers.node,
            &peers.conformance,
            &py,
            &["--scenario", scenario],
            true,
        );
        assert!(text.contains("OVERALL: PASSED"), "{scenario}:\n{text}");
    }
}
