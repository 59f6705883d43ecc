//! A running `mcp-bridge serve` on a free 127.0.0.1 port (the OS picks it; the guard reads the
//! `listening on` line), in front of the Python stdio fixture (tests/fixtures/stdio_server.py)
//! or any other child. Its stderr is kept and echoed as `[serve] …`; the guard stops the process
//! (SIGTERM, then SIGKILL) when it drops.

use super::log::Log;
use super::peer::{signal, stop};
use super::{BIN, WAIT, repo, require};
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The Python stdio fixture that `serve` runs unless told otherwise.
pub fn fixture() -> PathBuf {
    repo().join("tests/fixtures/stdio_server.py")
}

/// Whether `python3` (for the stdio fixture) can run; skips or fails per [`require`].
pub fn have_python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(ok.then_some(()), "python3", "install python3").is_some()
}

/// How to start `serve`.
pub struct Opts<'a> {
    /// Options before `--`.
    pub args: &'a [&'a str],
    /// The child command line after `--`; empty for `python3 tests/fixtures/stdio_server.py`.
    pub child: Vec<OsString>,
    /// Arguments for the stdio fixture (when `child` is empty).
    pub fixture_args: &'a [&'a str],
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// Add `--listen 127.0.0.1:0` and wait for that listener.
    pub listen_tcp: bool,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            args: &[],
            child: Vec::new(),
            fixture_args: &[],
            env: &[],
            listen_tcp: true,
        }
    }
}

/// A running `mcp-bridge serve`.
pub struct Serve {
    pub child: Child,
    /// `http://HOST:PORT` of the first TCP listener (empty if none).
    pub url: String,
    /// Its stderr.
    pub log: Log,
}

impl Serve {
    /// `serve ARGS -- python3 stdio_server.py` on a free port.
    pub fn start(args: &[&str]) -> Serve {
        Serve::start_with(Opts {
            args,
            ..Opts::default()
        })
    }

    /// Starts it; fails the test if it does not report its listener.
    pub fn start_with(o: Opts<'_>) -> Serve {
        Serve::try_start(o).expect("serve starts")
    }

    /// Starts it and waits (bounded) for its `listening on` line. `Err` holds its log when it
    /// exits or stays silent instead.
    pub fn try_start(o: Opts<'_>) -> Result<Serve> {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if o.listen_tcp {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(o.args).arg("--");
        if o.child.is_empty() {
            cmd.arg("python3").arg(fixture()).args(o.fixture_args);
        } else {
            cmd.args(&o.child);
        }
        cmd.envs(o.env.iter().copied());
        Serve::spawn(cmd, o.listen_tcp)
    }

    /// `serve --config FILE ARGS` (no `--` command): waits for its first TCP listener, so the
    /// file's `mcpBridge.listen` (or ARGS) must include one.
    pub fn with_config(
        file: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Serve> {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(file).args(args);
        cmd.envs(env.iter().copied());
        Serve::spawn(cmd, true)
    }

    /// Runs a prepared `mcp-bridge serve` command line and waits (bounded) for its `listening
    /// on` line (a TCP one when `want_tcp`).
    fn spawn(mut cmd: Command, want_tcp: bool) -> Result<Serve> {
        if !cmd.get_envs().any(|(k, _)| k == "MCP_BRIDGE_LOG_LEVEL") {
            cmd.env("MCP_BRIDGE_LOG_LEVEL", "info");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawn mcp-bridge serve")?;
        let log = Log::default();
        log.follow("serve", child.stderr.take().expect("piped"));
        let listener = log.find(WAIT, |line| match listener_of(line) {
            Some(addr) => addr.starts_with("http://") || !want_tcp,
            None => false,
        });
        let url = match listener {
            Ok(line) => listener_of(&line)
                .filter(|a| a.starts_with("http://"))
                .unwrap_or_default()
                .to_owned(),
            Err(why) => {
                let _ = child.kill();
                let status = child.wait()?;
                bail!(
                    "serve did not report a listener ({why}; {status}):\n{}",
                    log.text()
                );
            }
        };
        Ok(Serve { child, url, log })
    }

    /// The Streamable HTTP endpoint, `URL/mcp`.
    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// The TCP port of [`Serve::url`].
    pub fn port(&self) -> u16 {
        let port = self.url.rsplit(':').next().and_then(|p| p.parse().ok());
        port.unwrap_or_else(|| panic!("no port in {:?}", self.url))
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the log has a line containing `needle`, and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        self.log.wait_for(needle)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
    }
}

/// The address in a `listening on ADDR` line (`http://…` or `unix:…`).
fn listener_of(line: &str) -> Option<&str> {
    let (_, addr) = line.split_once("listening on ")?;
    let addr = addr.trim();
    (addr.starts_with("http://") || addr.starts_with("unix:")).then_some(addr)
}
