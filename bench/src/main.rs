//! mcp-bench: the benchmark of mcp-bridge against the direct connection and the peer bridges.
//! `mcp-bench drive` starts the benchmark server (this program, `server`), measures every target
//! in turn, and prints a markdown report; `stdio-server` is the server `serve` is measured with.

#![forbid(unsafe_code)]

mod client;
mod configs;
mod gateway;
mod mcp;
mod measure;
mod paired;
mod procs;
mod report;
mod scale;
mod server;
mod targets;

use anyhow::{Context, bail};
use measure::Settings;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const USAGE: &str = "usage:
  mcp-bench drive [--quick] [--bridge PATH] [--peers DIR] [--out FILE] [--only TEXT] [--no-serve]
                  [--no-payloads]
  mcp-bench server [--port N]
  mcp-bench stdio-server";

struct DriveArgs {
    quick: bool,
    bridge: PathBuf,
    peers: PathBuf,
    out: Option<PathBuf>,
    only: Option<String>,
    serve: bool,
    /// Small calls only (for profiling the hot path).
    payloads: bool,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stdio-server") => server::run_stdio(),
        Some("server") => {
            let port = match args.get(1).map(String::as_str) {
                Some("--port") => args.get(2).context("--port needs a value")?.parse()?,
                Some(other) => bail!("unknown argument `{other}`\n{USAGE}"),
                None => 0,
            };
            tokio::runtime::Runtime::new()?.block_on(server::run(port))
        }
        Some("drive") => {
            let args = parse_drive(&args[1..])?;
            // One thread, like the bridge: the figures then carry no cross-thread wake-ups of
            // the driver's own making.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(drive(args))
        }
        _ => bail!("{USAGE}"),
    }
}

fn parse_drive(args: &[String]) -> anyhow::Result<DriveArgs> {
    let mut d = DriveArgs {
        quick: false,
        bridge: "../target/release/mcp-bridge".into(),
        peers: ".peers".into(),
        out: None,
        only: None,
        serve: true,
        payloads: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => d.quick = true,
            "--no-serve" => d.serve = false,
            "--no-payloads" => d.payloads = false,
            "--bridge" => d.bridge = value()?.into(),
            "--peers" => d.peers = value()?.into(),
            "--out" => d.out = Some(value()?.into()),
            "--only" => d.only = Some(value()?.clone()),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(d)
}

fn settings(quick: bool) -> Settings {
    if quick {
        Settings {
            warmup: 20,
            latency_calls: 200,
            callers: 32,
            calls_per_caller: 10,
            throughput_time: Duration::ZERO,
            payload_sizes: vec![1 << 20, 10 << 20],
            payload_reps: 1,
            target_limit: Duration::from_secs(60),
            idle_sessions: 10,
            scale_sessions: 20,
        }
    } else {
        Settings {
            warmup: 200,
            latency_calls: 2000,
            callers: 32,
            calls_per_caller: 100,
            throughput_time: Duration::from_secs(1),
            payload_sizes: vec![1 << 20, 10 << 20],
            payload_reps: 3,
            target_limit: Duration::from_secs(240),
            idle_sessions: 100,
            scale_sessions: 1000,
        }
    }
}

/// Starts the benchmark server as a child process; it exits when its stdin (held here) closes.
async fn start_server() -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the benchmark server did not start within 10 s")??
        .context("the benchmark server exited")?;
    let addr = line
        .strip_prefix("listening ")
        .with_context(|| format!("unexpected server output `{line}`"))?;
    Ok((child, format!("http://{addr}")))
}

async fn drive(args: DriveArgs) -> anyhow::Result<()> {
    let mut s = settings(args.quick);
    if !args.payloads {
        s.payload_sizes.clear();
    }
    let tools = targets::Tools {
        bridge: std::fs::canonicalize(&args.bridge).unwrap_or(args.bridge.clone()),
        peers: std::fs::canonicalize(&args.peers).unwrap_or(args.peers.clone()),
        me: std::env::current_exe()?,
    };
    let logs = std::env::temp_dir().join(format!("mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    // The paired run's gateway files, audit logs and stderr, apart from the rows' own.
    let paired_dir = logs.join("paired");
    std::fs::create_dir_all(&paired_dir)?;
    let (server, base) = start_server().await?;
    let mark = format!("{base}/bench/mark");
    let wanted = |name: &str| {
        args.only.as_deref().is_none_or(|o| {
            name.starts_with("direct") || o.split(',').any(|w| name.contains(w.trim()))
        })
    };

    // A throw-away pass first: the server's first connections and allocations are not what the
    // first target in the table should be measured with.
    let warm = targets::connect_targets(&tools, &base).remove(0);
    let _ = measure::run(&warm, None, &s, &logs).await;

    let mut rows = Vec::new();
    for mut target in targets::connect_targets(&tools, &base) {
        if !wanted(&target.name) {
            continue;
        }
        skip_peer_if_quick(&args, &mut target);
        eprintln!("measuring {}", target.name);
        let figs = measure::run(&target, Some(&mark), &s, &logs).await;
        if let Some(e) = &figs.error {
            eprintln!("  {}: {e}", target.name);
        }
        rows.push(report::Row { target, figs });
    }
    let mut serve_rows = Vec::new();
    if args.serve {
        for mut target in targets::serve_targets(&tools, &base, &logs) {
            if !(wanted(&target.name) || targets::is_baseline(&target.name)) {
                continue;
            }
            skip_peer_if_quick(&args, &mut target);
            eprintln!("measuring {}", target.name);
            let figs = measure::run(&target, None, &s, &logs).await;
            if let Some(e) = &figs.error {
                eprintln!("  {}: {e}", target.name);
            }
            serve_rows.push(report::Row { target, figs });
        }
    }
    // serve's layers again, all at once and sampled in turns: their differences above noise.
    // Each call gives fresh ports, so a start never meets the previous start's processes.
    let layers = || -> Vec<measure::Target> {
        targets::serve_targets(&tools, &base, &paired_dir)
            .into_iter()
            .filter(|t| {
                paired::is_layer(&t.name) && (wanted(&t.name) || targets::is_baseline(&t.name))
            })
            .collect()
    };
    let paired = if args.serve && layers().len() >= 2 {
        eprintln!("measuring serve's layers, paired");
        let outcome = paired::run(layers, &s, &paired_dir).await;
        if let Err(e) = &outcome {
            eprintln!("  paired: {e}");
        }
        Some(outcome)
    } else {
        None
    };
    let scale_name = scale::name(s.scale_sessions);
    let scale = if args.serve && wanted(&scale_name) {
        eprintln!("measuring {scale_name}");
        let outcome = scale::run(&tools, &s, &logs)
            .await
            .map_err(|e| format!("{e:#}"));
        if let Err(e) = &outcome {
            eprintln!("  {scale_name}: {e}");
        }
        Some(outcome)
    } else {
        None
    };
    drop(server);

    let labels: Vec<String> = s
        .payload_sizes
        .iter()
        .flat_map(|&n| {
            let h = measure::human_size(n);
            [format!("result {h}"), format!("args {h}")]
        })
        .collect();
    let big = s.payload_sizes.iter().copied().max().unwrap_or(0);
    let mut out = String::new();
    out.push_str(&header(&args, &s, &tools));
    out.push_str("\n### connect: stdio bridges and the direct connection\n\n");
    report::connect(&rows, &labels, &mut out);
    out.push_str("\n### Peers compared with mcp-bridge (peer ÷ mcp-bridge; above 1× mcp-bridge is better; calls/s is mcp-bridge ÷ peer)\n\n");
    let beats = report::ratios(&rows, &labels, &mut out);
    out.push_str("\n### Issue 5 targets\n\n");
    report::targets(&rows, beats, big, &mut out);
    if !serve_rows.is_empty() {
        out.push_str(&format!(
            "\n### serve: gateways in front of a stdio server ({} idle sessions for the per-session figure)\n\n",
            s.idle_sessions
        ));
        let big_label = format!("result {}", measure::human_size(big));
        report::serve(&serve_rows, &big_label, &mut out);
        out.push_str("\n### serve: what each layer costs (differences between the rows above)\n\n");
        let ok = paired.as_ref().and_then(|p| p.as_ref().ok());
        configs::costs(&serve_rows, ok, &logs, &mut out);
    }
    if let Some(outcome) = &paired {
        out.push_str("\n### serve's layers, paired: all running at once, sampled in turns\n\n");
        paired::report(outcome, &s, &paired_dir, &mut out);
    }
    if let Some(outcome) = &scale {
        out.push_str(&format!(
            "\n### serve at scale: {} concurrent sessions, a child each, calls spread over all of them\n\n",
            s.scale_sessions
        ));
        scale::report(&scale_name, outcome, &mut out);
    }
    println!("{out}");
    if let Some(path) = &args.out {
        std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failed = rows
        .iter()
        .chain(&serve_rows)
        .any(|r| r.figs.error.as_ref().is_some_and(|e| !e.starts_with("n/a")));
    let paired_failed = paired
        .as_ref()
        .is_some_and(|p| p.as_ref().map_or(true, |p| !p.skipped.is_empty()));
    if failed || paired_failed || scale.as_ref().is_some_and(|o| o.is_err()) {
        eprintln!("stderr of each target: {}", logs.display());
    } else {
        let _ = std::fs::remove_dir_all(&logs);
    }
    Ok(())
}

/// Quick mode (CI) keeps the benchmark from rotting; the peers add minutes and say nothing new.
fn skip_peer_if_quick(args: &DriveArgs, target: &mut measure::Target) {
    let ours = ["direct", "mcp-bridge", "stdio server", "bare HTTP"];
    if args.quick
        && target.unavailable.is_none()
        && !ours.iter().any(|o| target.name.starts_with(o))
    {
        target.unavailable = Some("n/a: peers are skipped in quick mode".into());
    }
}

fn header(args: &DriveArgs, s: &Settings, tools: &targets::Tools) -> String {
    let version = |cmd: &str, a: &[&str]| {
        std::process::Command::new(cmd)
            .args(a)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "n/a".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "## mcp-bridge benchmark{}\n\n- date: {}\n- machine: {cpu}, {cores} cores, {}\n- mcp-bridge: {}; node {}; {}\n- latency: {} sequential small tools/call after {} warm-up; throughput: {} callers × at least {} calls, for at least {:.1} s; payloads: median of {}\n",
        if args.quick {
            " (quick mode: figures are indicative only)"
        } else {
            ""
        },
        version("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        version("uname", &["-sr"]),
        version(&tools.bridge.display().to_string(), &["--version"]),
        version("node", &["--version"]),
        peer_versions(&tools.peers),
        s.latency_calls,
        s.warmup,
        s.callers,
        s.calls_per_caller,
        s.throughput_time.as_secs_f64(),
        s.payload_reps,
    )
}

fn peer_versions(peers: &std::path::Path) -> String {
    let npm = |name: &str| {
        let p = peers
            .join(name)
            .join("node_modules")
            .join(name)
            .join("package.json");
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .map_or(format!("{name} n/a"), |v| format!("{name} {v}"))
    };
    let proxy = std::process::Command::new(peers.join("mcp-proxy/bin/pip"))
        .args(["show", "mcp-proxy"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
        })
        .map_or("mcp-proxy n/a".into(), |v| format!("mcp-proxy {v}"));
    format!("{}, {}, {proxy}", npm("mcp-remote"), npm("supergateway"))
}
