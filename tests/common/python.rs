//! The Python MCP SDK (`mcp` 2.3.0 in `.venv`, made by .ci/run) as a test peer: the scripted
//! client against server-everything (tests/python/client.py), and the stateless revision's
//! server and client (tests/python/stateless_server.py, stateless_client.py).

use super::peer::{Peer, run_bounded, summary_line};
use super::{repo, require};
use anyhow::{Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Python of the test venv with the `mcp` SDK, or skips/fails per [`require`].
pub fn python() -> Option<PathBuf> {
    let py = repo().join(".venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import mcp"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    require(
        ok.then_some(py),
        ".venv with the Python `mcp` SDK",
        "python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt",
    )
}

/// A script in tests/python.
pub fn script(name: &str) -> PathBuf {
    repo().join("tests/python").join(name)
}

/// Runs tests/python/client.py with `args` and returns its JSON summary.
pub fn run_py_client(py: &Path, args: &[&str], timeout: Duration) -> Result<Value> {
    let mut cmd = Command::new(py);
    cmd.arg(script("client.py")).args(args).env(
        "INTEROP_TIMEOUT_MS",
        (timeout.as_millis() - 2000).to_string(),
    );
    let done = run_bounded("py-client", &mut cmd, timeout)?;
    eprintln!("[py-client stderr]\n{}", done.stderr);
    if !done.status.success() {
        bail!(
            "Python SDK client failed ({}):\n{}",
            done.status,
            done.stderr
        );
    }
    summary_line("the Python client", &done)
}

/// Runs tests/python/stateless_client.py with `args` (it exits non-zero when a check fails);
/// returns its summary line and its whole output.
pub fn run_stateless_client(py: &Path, args: &[&str]) -> (Value, String) {
    let mut cmd = Command::new(py);
    cmd.arg(script("stateless_client.py")).args(args);
    let done = run_bounded("stateless-client", &mut cmd, Duration::from_secs(90))
        .expect("the client finishes");
    let output = format!("{}\n{}", done.stdout, done.stderr);
    let summary = done
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("summary").is_some())
        .unwrap_or_else(|| panic!("no summary line; the client's output:\n{output}"));
    (summary, output)
}

/// tests/python/stateless_server.py over Streamable HTTP on 127.0.0.1, started with `extra`
/// (e.g. `--handshake-only`); returns the guard and its URL.
pub fn stateless_server(py: &Path, extra: &[&str]) -> (Peer, String) {
    let mut cmd = Command::new(py);
    cmd.arg(script("stateless_server.py"))
        .arg("http")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let peer = Peer::spawn("stateless-server", &mut cmd).expect("spawn the Python server");
    let line = peer
        .wait_for_line("LISTENING ", Duration::from_secs(30))
        .expect("the Python server starts");
    let url = line.split_once("LISTENING ").unwrap().1.trim().to_owned();
    (peer, url)
}
