//! The static build (`cargo static`, here its quick `static-test` profile): the executable has
//! no interpreter and no shared-library dependencies, and runs alone in an otherwise empty root
//! directory (no /lib, no /etc, no NSS modules): `--version`, and `connect` through a Unix socket
//! and over TCP to `localhost` and `127.0.0.1`, each doing `initialize` and `tools/list` against a
//! `serve --example` outside the root.

mod common;

use common::blocking::{BIN, Proc, WAIT, serve};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-gnu";
/// A cold build of every dependency on a busy two-core machine takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Fails under CI, skips (saying so) elsewhere, when the machine cannot run this test.
fn unavailable(why: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must run this test: {why}"
    );
    eprintln!("skipping: {why}");
    true
}

/// The absolute path of `tool` (the chrooted command runs with an empty environment, no PATH).
fn which(tool: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && path.starts_with('/')).then_some(path)
}

/// Builds the static executable with the `static-test` alias and returns its path.
fn build_static() -> PathBuf {
    // BIN is <target dir>/debug/mcp-bridge.
    let target_dir = Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("static-test")
        .arg("--target-dir")
        .arg(&target_dir)
        // RUSTFLAGS would replace the alias's crt-static flag.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(cmd);
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the static build took over {BUILD_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let log: Vec<String> = std::iter::from_fn(|| p.stderr.recv_timeout(WAIT).ok()).collect();
    assert!(
        status.success(),
        "cargo static-test failed:\n{}",
        log.join("\n")
    );
    target_dir
        .join(TARGET)
        .join("static-test")
        .join("mcp-bridge")
}

/// Runs `mcp-bridge ARGS…` chrooted into `root` (where the binary is `/mcp-bridge`).
fn in_root(root: &Path, args: &[&str]) -> Proc {
    let chroot = which("chroot").expect("chroot");
    let mut cmd = match is_root() {
        true => Command::new(chroot),
        false => {
            let mut c = Command::new(which("unshare").expect("unshare"));
            c.args(["--user", "--map-root-user"]).arg(chroot);
            c
        }
    };
    cmd.arg(root).arg("/mcp-bridge").args(args).env_clear();
    Proc::spawn(cmd)
}

fn is_root() -> bool {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&f.as_file().metadata().unwrap()) == 0
}

/// initialize + tools/list through a chrooted `connect`.
fn lists_tools_through(root: &Path, connect_args: &[&str]) {
    let mut args = vec!["connect"];
    args.extend_from_slice(connect_args);
    let mut p = in_root(root, &args);
    p.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
        .to_string(),
    );
    let init: Value = p.next_json();
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-bridge-example",
        "{connect_args:?}: {init}"
    );
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let tools = p.next_json();
    assert_eq!(
        tools["result"]["tools"].as_array().map(Vec::len),
        Some(4),
        "{connect_args:?}: {tools}"
    );
    drop(p.stdin.take());
    assert!(p.wait().success(), "{connect_args:?}");
}

#[test]
fn static_binary_runs_alone_in_an_empty_root() {
    for tool in ["readelf", "chroot"] {
        if which(tool).is_none() && unavailable(&format!("{tool} is not installed")) {
            return;
        }
    }
    let exe = build_static();

    let program = Command::new("readelf")
        .args(["-l", "-d"])
        .arg(&exe)
        .output()
        .unwrap();
    let program = String::from_utf8_lossy(&program.stdout);
    assert!(
        !program.contains("INTERP"),
        "the static binary asks for an interpreter:\n{program}"
    );
    assert!(
        !program.contains("(NEEDED)"),
        "the static binary needs shared libraries:\n{program}"
    );

    // The root: the binary and a directory for the socket; nothing else.
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&exe, root.path().join("mcp-bridge")).unwrap();
    std::fs::create_dir(root.path().join("run")).unwrap();

    let mut v = in_root(root.path(), &["--version"]);
    assert!(v.wait().success(), "--version in the empty root");
    let version = v.stdout.recv_timeout(WAIT).unwrap();
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    let sock = root.path().join("run/mcp.sock");
    let _unix = common::blocking::serve_example_unix(&sock);
    let (_tcp, addr) = serve(&["--example", "--listen=127.0.0.1:0"]);
    let port = addr.rsplit(':').next().unwrap().to_owned();

    lists_tools_through(
        root.path(),
        &["--unix", "/run/mcp.sock", "http://localhost/mcp"],
    );
    lists_tools_through(root.path(), &[&format!("http://localhost:{port}/mcp")]);
    lists_tools_through(root.path(), &[&format!("http://127.0.0.1:{port}/mcp")]);
}
