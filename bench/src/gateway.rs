//! Gateways (`mcp-bridge serve` and its peers): start one on a free port, wait until it listens,
//! and measure what each idle session costs it in memory.

use crate::client::{Client, HttpClient};
use crate::measure::{Cmd, INIT_PARAMS};
use crate::procs::{self, Rss};
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a gateway may take to start listening.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `cmd` (its output going to `log`) and waits until `port` accepts connections.
pub async fn spawn(cmd: &Cmd, port: u16, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.program.display()))?;
    let deadline = tokio::time::Instant::now() + READY_LIMIT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited ({status}) before listening on port {port}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("not listening on port {port} after {READY_LIMIT:?}");
        }
        // Polling a port has no event to wait on; 2 ms keeps the startup figure honest.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Opens `n` sessions at `url` and leaves them idle; returns the resident bytes each one added
/// to the gateway process alone and to its whole tree (children included).
pub async fn idle_sessions(url: &str, pid: u32, n: usize) -> anyhow::Result<(f64, f64)> {
    let before = (
        procs::rss(pid, Rss::Current).context("gateway RSS")?,
        procs::tree_rss(pid, Rss::Current).context("gateway tree RSS")?,
    );
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let c = Client::Http(HttpClient::new(url)?);
        c.request("initialize", INIT_PARAMS)
            .await
            .with_context(|| format!("idle session {i}"))?;
        c.notify("notifications/initialized").await?;
        sessions.push(c);
    }
    // Let children that start lazily settle; the figure is about idle sessions.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = (
        procs::rss(pid, Rss::Current).context("gateway RSS")?,
        procs::tree_rss(pid, Rss::Current).context("gateway tree RSS")?,
    );
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n.max(1) as f64;
    Ok((per(after.0, before.0), per(after.1, before.1)))
}
