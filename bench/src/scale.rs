//! Scale: many concurrent sessions through one `mcp-bridge serve`, each with its own child (the
//! stdio server), opened over a few shared connections; then small calls spread evenly over all
//! of them by concurrent callers. Measured: the resident memory each session adds to the gateway
//! alone and to its tree (RSS, which counts the children's shared pages once per child, and
//! PSS, which shares them out), and the latency and rate of the calls under that load.

use crate::client::{Client, HttpClient, http_client};
use crate::gateway::{free_port, spawn};
use crate::measure::{INIT_PARAMS, Latency, Settings};
use crate::procs::{self, Rss};
use crate::targets::Tools;
use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt};
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sessions opened at once (each spawns a child).
const OPENING: usize = 16;
/// File descriptors serve may hold per session (the child's three pipes, and a spare), and
/// for everything else.
const FDS_PER_SESSION: u64 = 4;
const FDS_BASE: u64 = 256;

/// The scale run's figures.
pub struct Figures {
    pub sessions: usize,
    pub open_all: Duration,
    /// Bytes each session added: (gateway alone, tree RSS, tree PSS).
    pub per_session: (f64, f64, Option<f64>),
    pub latency: Option<Latency>,
    pub throughput: f64,
    /// Why fewer sessions than asked were opened.
    pub note: Option<String>,
}

/// The row's name.
pub fn name(sessions: usize) -> String {
    format!("mcp-bridge serve (scale: {sessions} sessions)")
}

/// Opens `s.scale_sessions` sessions through one serve (fewer if the open-file limit would not
/// hold them) and measures them; bounded by the settings' per-target limit.
pub async fn run(tools: &Tools, s: &Settings, logs: &Path) -> anyhow::Result<Figures> {
    let mut n = s.scale_sessions;
    let mut note = None;
    if let Some(soft) = open_file_limit() {
        let fits = soft.saturating_sub(FDS_BASE) / FDS_PER_SESSION;
        if (n as u64) > fits {
            note = Some(format!(
                "{n} sessions asked; the open-file limit ({soft}) holds {fits}: raise `ulimit -n`"
            ));
            n = fits as usize;
        }
    }
    if n == 0 {
        bail!("the open-file limit leaves no room for sessions");
    }
    let mut figs = tokio::time::timeout(s.target_limit, measure(tools, n, s, logs))
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", s.target_limit))??;
    figs.note = note;
    Ok(figs)
}

async fn measure(tools: &Tools, n: usize, s: &Settings, logs: &Path) -> anyhow::Result<Figures> {
    let bridge = tools.bridge().map_err(anyhow::Error::msg)?;
    let server = tools.stdio_server();
    let port = free_port()?;
    let mut cmd = bridge;
    cmd.args.extend([
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--max-sessions".into(),
        (n + 10).to_string(),
        "--".into(),
        server.program.display().to_string(),
    ]);
    cmd.args.extend(server.args);
    let child = spawn(&cmd, port, &logs.join("serve-scale.stderr")).await?;
    let pid = child.id().context("serve exited")?;
    let before = (
        procs::rss(pid, Rss::Current).context("gateway RSS")?,
        procs::tree_rss(pid, Rss::Current).context("gateway tree RSS")?,
        procs::tree_rss(pid, Rss::Pss),
    );

    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = http_client()?;
    let t = Instant::now();
    let sessions: Vec<Arc<Client>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let c = Client::Http(HttpClient::on(http.clone(), &url, &[]));
            async move {
                c.request("initialize", INIT_PARAMS)
                    .await
                    .with_context(|| format!("session {i}"))?;
                c.notify("notifications/initialized").await?;
                anyhow::Ok(Arc::new(c))
            }
        })
        .buffer_unordered(OPENING)
        .try_collect()
        .await?;
    let open_all = t.elapsed();

    // Every caller walks its own stride of sessions, so the calls cover all of them.
    let callers = s.callers.min(n).max(1);
    let per_caller = (2 * n).max(s.latency_calls) / callers;
    let sessions = Arc::new(sessions);
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for c in 0..callers {
        let sessions = sessions.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_caller);
            for j in 0..per_caller {
                let session = &sessions[(c + j * callers) % sessions.len()];
                let t = Instant::now();
                crate::measure::small_call(session).await?;
                samples.push(t.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::with_capacity(callers * per_caller);
    for task in tasks {
        samples.extend(task.await??);
    }
    let throughput = samples.len() as f64 / t.elapsed().as_secs_f64();

    let after = (
        procs::rss(pid, Rss::Current).context("gateway RSS")?,
        procs::tree_rss(pid, Rss::Current).context("gateway tree RSS")?,
        procs::tree_rss(pid, Rss::Pss),
    );
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
    drop(sessions);
    // Killing serve closes every child's stdin: they exit on their own.
    drop(child);
    Ok(Figures {
        sessions: n,
        open_all,
        per_session: (
            per(after.0, before.0),
            per(after.1, before.1),
            after.2.zip(before.2).map(|(a, b)| per(a, b)),
        ),
        latency: Latency::from_samples(samples),
        throughput,
        note: None,
    })
}

/// The soft limit on open files, from /proc (serve inherits it from the driver).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The scale table: one row, or why it failed.
pub fn report(name: &str, outcome: &Result<Figures, String>, out: &mut String) {
    let _ = writeln!(
        out,
        "| target | sessions | open all ms | per session: gateway KiB | per session: with children KiB (RSS) | per session: with children KiB (PSS) | p50 µs | p99 µs | calls/s (32 callers) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let kib = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.0}", v / 1024.0));
    let us = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
    match outcome {
        Ok(f) => {
            let _ = writeln!(
                out,
                "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} |",
                f.sessions,
                f.open_all.as_secs_f64() * 1000.0,
                kib(Some(f.per_session.0)),
                kib(Some(f.per_session.1)),
                kib(f.per_session.2),
                us(f.latency.map(|l| l.p50)),
                us(f.latency.map(|l| l.p99)),
                f.throughput,
            );
            if let Some(note) = &f.note {
                let _ = writeln!(out, "\n- {note}");
            }
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "| {name} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"
            );
            let _ = writeln!(out, "\n- {name}: {}", e.replace('\n', " "));
        }
    }
}
