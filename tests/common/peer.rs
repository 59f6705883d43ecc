//! Processes other than the bridge: a peer that runs beside the test ([`Peer`], stopped when its
//! guard drops) and a client run to completion within a deadline ([`run_bounded`]).

use super::log::Log;
use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago, for a peer that cannot be told to pick one.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A peer process; its piped stdout and stderr are echoed as `[name] …` and kept in `log`.
pub struct Peer {
    pub name: String,
    pub child: Child,
    pub log: Log,
}

impl Peer {
    /// Spawns `cmd` as configured by the caller (pipe stdout and/or stderr to see them).
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Peer> {
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            log.follow(name, out);
        }
        if let Some(err) = child.stderr.take() {
            log.follow(name, err);
        }
        Ok(Peer {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// Waits until an output line contains `needle`; fails on timeout or if the output ends.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.log
            .find(timeout, |l| l.contains(needle))
            .map_err(|why| anyhow!("{}: no line containing {needle:?}: {why}", self.name))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}

/// Sends SIGTERM, waits up to `grace` for the exit, then SIGKILL.
pub fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Sends a signal with kill(1): the crate forbids unsafe code, and tests need no libc binding.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Output of a finished process.
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
    let read_all = |mut stream: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = stream.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            bail!("{name} did not finish within {timeout:?}; its stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The last line of `stdout` that parses as a JSON object: a client script's summary.
pub fn summary_line(name: &str, done: &Finished) -> Result<serde_json::Value> {
    let line = done
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("{name} printed no JSON summary; stdout: {:?}", done.stdout))?;
    serde_json::from_str(line).with_context(|| format!("parsing the summary of {name}"))
}
