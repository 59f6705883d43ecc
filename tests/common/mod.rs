//! Shared test fixtures: the real `mcp-bridge` binary driven over its stdio, and a scriptable
//! mock MCP server (see `mock`).

#![allow(dead_code)]

pub mod mock;

use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// `mcp-bridge connect ...` running as a child, with its stdin and stdout in the test's hands and
/// its stderr collected (and echoed with a prefix, for failing tests).
pub struct Bridge {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub stderr: Arc<Mutex<String>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-bridge")
}

impl Bridge {
    pub fn connect(args: &[&str]) -> Bridge {
        Self::spawn_with(args, &[])
    }

    pub fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let mut cmd = Command::new(bin());
        cmd.arg("connect").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Bridge {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "mcp_bridge=debug");
        }
        let mut child = cmd.spawn().expect("spawning mcp-bridge");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                eprintln!("[bridge] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Bridge {
            stdin: child.stdin.take(),
            stdout: BufReader::with_capacity(1 << 20, child.stdout.take().unwrap()),
            stderr,
            child,
        }
    }

    pub async fn send_raw(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line).await.unwrap();
        stdin.flush().await.unwrap();
    }

    pub async fn send(&mut self, msg: Value) {
        let mut line = serde_json::to_vec(&msg).unwrap();
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    /// Closes the bridge's stdin (the agent going away).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The next stdout line, parsed; fails the test after `WAIT`.
    pub async fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.stdout.read_line(&mut line))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no message from the bridge within {WAIT:?}; stderr:\n{}",
                    self.stderr()
                )
            })
            .unwrap();
        assert!(n > 0, "bridge stdout closed; stderr:\n{}", self.stderr());
        assert!(line.ends_with('\n'));
        serde_json::from_str(line.trim_end())
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.200}"))
    }

    /// Reads messages until one answers `id`; returns it and the ones before it.
    pub async fn recv_answer(&mut self, id: Value) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let msg = self.recv().await;
            if msg.get("method").is_none() && msg["id"] == id {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    /// Sends a request and returns its answer.
    pub async fn call(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc":"2.0","id": id,"method": method,"params": params}))
            .await;
        self.recv_answer(id).await.0
    }

    /// Performs the MCP handshake as an agent would.
    pub async fn initialize(&mut self, version: &str) -> Value {
        let answer = self
            .call(
                json!(0),
                "initialize",
                json!({"protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"name": "test", "version": "1"}}),
            )
            .await;
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        answer
    }

    /// Waits for the process to exit; fails the test after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "bridge did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                )
            })
            .unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    pub async fn wait_stderr(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.stderr().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stderr never said {needle:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `cond` every 10 ms until it holds; fails the test after `WAIT`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A tools/call request body.
pub fn tool(name: &str, args: Value) -> Value {
    json!({"name": name, "arguments": args})
}
