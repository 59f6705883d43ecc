//! A running `mcp-bridge connect`: the test plays the agent on its stdin and stdout, and its
//! stderr is kept (and echoed as `[connect] …`). The process is killed when the guard drops.

use super::log::Log;
use super::{BIN, WAIT, eventually};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// `mcp-bridge connect ...` running as a child, with its stdin and stdout in the test's hands and
/// its stderr collected (and echoed with a prefix, for failing tests).
pub struct Connect {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Its stderr (the logs).
    pub log: Log,
}

impl Connect {
    /// `mcp-bridge connect ARGS...`.
    pub fn start(args: &[&str]) -> Connect {
        Self::start_with(args, &[])
    }

    /// `mcp-bridge connect ARGS...` with extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Connect {
        let mut cmd = Command::new(BIN);
        cmd.arg("connect").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Runs `cmd` (an `mcp-bridge` command line) with piped stdio, logging at debug level unless
    /// RUST_LOG says otherwise.
    pub fn spawn(mut cmd: Command) -> Connect {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "mcp_bridge=debug");
        }
        let mut child = cmd.spawn().expect("spawning mcp-bridge");
        let log = Log::default();
        let stderr = child.stderr.take().unwrap().into_owned_fd().unwrap();
        log.follow("connect", std::fs::File::from(stderr));
        Connect {
            stdin: child.stdin.take(),
            stdout: BufReader::with_capacity(1 << 20, child.stdout.take().unwrap()),
            log,
            child,
        }
    }

    /// Writes raw bytes to its stdin.
    pub async fn send_raw(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Writes one message as a line to its stdin.
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

    /// The next stdout line, parsed, waiting up to `limit`; `None` once stdout has ended.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(limit, self.stdout.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("no message from the bridge within {limit:?}"))
            .unwrap();
        if n == 0 {
            return None;
        }
        assert!(line.ends_with('\n'));
        let msg = serde_json::from_str(line.trim_end())
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.200}"));
        Some(msg)
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

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.log.text()
    }

    /// Waits (bounded) until stderr contains `needle`.
    pub async fn wait_stderr(&self, needle: &str) {
        let what = format!("connect's stderr to say {needle:?}");
        eventually(&what, || self.stderr().contains(needle)).await;
    }
}
