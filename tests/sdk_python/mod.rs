//! The Python MCP SDK (2.3.0, in the test venv) as a test peer: finding it, and running the
//! scripted client `tests/python/rev2026_client.py`, which prints a summary line.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Python of the test venv (`.venv`, made by .ci/run), or `None` to skip outside CI.
pub fn python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = py.exists()
        && std::process::Command::new(&py)
            .args(["-c", "import mcp"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI: the Python venv with mcp 2.3.0 is missing (.ci/run makes it)"
    );
    eprintln!(
        "\n!!!! SKIPPING: no .venv with the Python mcp SDK; run .ci/run to install it !!!!\n"
    );
    None
}

/// A script in tests/python.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs the SDK client with `args`; returns its summary line and its whole output.
pub async fn run_client(py: &Path, args: &[&str]) -> (Value, String) {
    let out = tokio::process::Command::new(py)
        .arg(script("rev2026_client.py"))
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("summary").is_some())
        .unwrap_or_else(|| panic!("no summary; stdout:\n{stdout}\nstderr:\n{stderr}"));
    (summary, format!("{stdout}\n{stderr}"))
}
