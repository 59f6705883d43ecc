//! doctor with no URL: starts `serve --example` on a Unix socket in a fresh private directory
//! and runs every check against it through `connect`. Needs nothing but this executable.

use super::{Check, DoctorArgs, Report};
use rustix::process::{Pid, Signal, kill_process};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long `serve` may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("mcp-bridge-doctor-{hex}"));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the self-test.
pub(super) async fn run(args: &DoctorArgs) -> Report {
    let url = "http://localhost/mcp";
    let dir = match TempDir::new() {
        Ok(d) => d,
        Err(e) => {
            return failed(
                format!("cannot make a temporary directory: {e}"),
                "set TMPDIR to a writable directory",
            );
        }
    };
    let socket = dir.0.join("mcp.sock");
    let mut serve = match start_serve(&socket).await {
        Ok(child) => child,
        Err(why) => {
            return failed(
                why,
                "run `mcp-bridge serve --example --listen unix:/tmp/x.sock -v` to see why",
            );
        }
    };
    let inner = DoctorArgs {
        url: Some(url.to_owned()),
        unix: Some(socket.clone()),
        headers: Vec::new(),
        ca_cert: None,
        json: args.json,
        pings: args.pings,
        timeout: args.timeout,
    };
    let mut report = super::diagnose(&inner, url).await;
    report.checks.insert(
        0,
        Check::pass(
            "serve",
            format!("example server behind serve on unix:{}", socket.display()),
        ),
    );
    report.target = format!("self-test ({url} via unix:{})", socket.display());
    stop(&mut serve).await;
    report
}

fn failed(detail: String, fix: &str) -> Report {
    super::finish("self-test".into(), vec![Check::fail("serve", detail, fix)])
}

/// Starts `serve --example` and waits until it says it listens.
async fn start_serve(socket: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut child = Command::new(exe)
        .arg("--log-level=info")
        .arg("serve")
        .arg("--example")
        .arg(format!("--listen=unix:{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start serve: {e}"))?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut log = Vec::new();
    let wait = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let listening = line.contains("listening on");
            log.push(line);
            if listening {
                return true;
            }
        }
        false
    };
    let started = tokio::time::timeout(START_TIMEOUT, wait)
        .await
        .unwrap_or(false);
    if !started {
        return Err(format!(
            "serve --example did not start listening: {}",
            log.join(" | ")
        ));
    }
    // Keep reading its log so that serve never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

/// Asks serve to stop (it stops its child too), then kills it if it lingers.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| Pid::from_raw(id as i32)) {
        let _ = kill_process(pid, Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
