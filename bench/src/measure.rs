//! One target's figures: startup, sequential latency, throughput with concurrent callers, big
//! results and arguments (timed, then checked byte for byte), and the memory of the process tree.

use crate::client::{Client, HttpClient, SseClient, StdioClient};
use crate::mcp;
use crate::procs::{self, Rss};
use crate::server::unix_micros;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const INIT_PARAMS: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-bench","version":"0.1.0"}}"#;
/// Even 10 MiB takes well under a second on loopback; a bridge that needs more has failed.
const PAYLOAD_TIMEOUT: Duration = Duration::from_secs(20);
const SMALL_CALL: &str = r#"{"name":"echo","arguments":{"size":64}}"#;

/// How much work each phase does.
#[derive(Clone, Debug)]
pub struct Settings {
    pub warmup: usize,
    pub latency_calls: usize,
    pub callers: usize,
    pub calls_per_caller: usize,
    /// The throughput phase lasts at least this long (each caller keeps calling until then), so
    /// a fast target is measured over a span the scheduler's moods average out in.
    pub throughput_time: Duration,
    pub payload_sizes: Vec<usize>,
    pub payload_reps: usize,
    /// Bound on one target's whole run.
    pub target_limit: Duration,
    /// Idle sessions opened on a gateway.
    pub idle_sessions: usize,
    /// Concurrent sessions opened through one serve for the scale figures.
    pub scale_sessions: usize,
}

/// A command line.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// How the driver reaches the server.
#[derive(Clone, Debug)]
pub enum Via {
    /// Streamable HTTP from the driver itself.
    DirectHttp(String),
    /// Legacy HTTP+SSE from the driver itself.
    DirectSse(String),
    /// An HTTP endpoint that answers every POST with the same small JSON, no MCP processing:
    /// the bare round trip. Small calls only.
    Bare(String),
    /// A stdio process (a bridge, or a stdio server).
    Stdio(Cmd),
    /// A process serving Streamable HTTP at `url` once its port accepts connections; `headers`
    /// go with every request of the measured session.
    Gateway {
        cmd: Cmd,
        url: String,
        port: u16,
        headers: Vec<(String, String)>,
    },
}

/// Something to measure.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub via: Via,
    /// Why it cannot run (not installed, …); it is then reported as n/a.
    pub unavailable: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of `s` (None when empty).
    pub fn from_samples(mut s: Vec<Duration>) -> Option<Latency> {
        if s.is_empty() {
            return None;
        }
        s.sort();
        let at = |q: f64| {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i].as_nanos() as f64 / 1000.0
        };
        Some(Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// One payload measurement: median time, or why it failed.
#[derive(Clone, Debug)]
pub struct Payload {
    pub label: String,
    pub outcome: Result<Duration, String>,
}

/// Everything measured for one target; `None` where a phase did not run.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub startup: Option<Duration>,
    pub first_post: Option<Duration>,
    pub latency: Option<Latency>,
    pub throughput: Option<f64>,
    pub payloads: Vec<Payload>,
    pub rss_latency: Option<u64>,
    pub rss_big: Option<u64>,
    /// Gateways only: resident set added per idle session, (gateway process, whole tree).
    pub per_session: Option<(f64, f64)>,
    pub error: Option<String>,
}

/// Measures `target`, never taking longer than the settings allow. `mark` is the server's
/// `/bench/mark` URL when there is an HTTP server to ask when the first request came.
pub async fn run(target: &Target, mark: Option<&str>, s: &Settings, logs: &Path) -> Figures {
    let mut figs = Figures::default();
    if let Some(why) = &target.unavailable {
        figs.error = Some(why.clone());
        return figs;
    }
    let log = logs.join(format!("{}.stderr", slug(&target.name)));
    let outcome = tokio::time::timeout(s.target_limit, phases(target, mark, s, &log, &mut figs));
    match outcome.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => figs.error = Some(with_stderr(format!("{e:#}"), &log)),
        Err(_) => {
            let e = format!("timed out after {:?}", s.target_limit);
            figs.error = Some(with_stderr(e, &log));
        }
    }
    figs
}

/// `name` with every character other than ASCII letters and digits made a `-` (file names).
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn with_stderr(e: String, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // Skip stack frames and warnings: the line that says what went wrong is the useful one.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("at ")
                && !l.starts_with("(Use")
                && !l.contains("Warning")
        })
        .collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.contains("rror"))
        .or(lines.last());
    match pick {
        Some(line) => format!("{e}; stderr: {line}"),
        None => e,
    }
}

/// A live connection and the process to watch, if any.
pub struct Conn {
    /// The connection's client, shared by concurrent callers.
    pub client: Arc<Client>,
    pid: Option<u32>,
    /// A gateway process, killed when the connection is dropped.
    _gateway: Option<tokio::process::Child>,
}

/// Connects to `via`, starting its process (stderr to `log`) if it has one.
pub async fn open(via: &Via, log: &Path) -> anyhow::Result<Conn> {
    Ok(match via {
        Via::DirectHttp(url) | Via::Bare(url) => Conn {
            client: Arc::new(Client::Http(HttpClient::new(url)?)),
            pid: None,
            _gateway: None,
        },
        Via::DirectSse(url) => Conn {
            client: Arc::new(Client::Sse(SseClient::connect(url).await?)),
            pid: None,
            _gateway: None,
        },
        Via::Stdio(cmd) => {
            let c = StdioClient::spawn(&cmd.program, &cmd.args, &cmd.env, log)?;
            Conn {
                pid: c.pid(),
                client: Arc::new(Client::Stdio(c)),
                _gateway: None,
            }
        }
        Via::Gateway {
            cmd,
            url,
            port,
            headers,
        } => {
            let child = crate::gateway::spawn(cmd, *port, log).await?;
            let http = crate::client::http_client()?;
            Conn {
                pid: child.id(),
                client: Arc::new(Client::Http(HttpClient::on(http, url, headers))),
                _gateway: Some(child),
            }
        }
    })
}

async fn phases(
    target: &Target,
    mark: Option<&str>,
    s: &Settings,
    log: &Path,
    figs: &mut Figures,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    if let Some(mark) = mark {
        http.post(mark).send().await?.error_for_status()?;
    }
    let spawned = unix_micros();
    let t0 = Instant::now();
    let conn = open(&target.via, log).await?;
    let client = conn.client.clone();
    let init = client.request("initialize", INIT_PARAMS).await?;
    figs.startup = Some(t0.elapsed());
    expect_result(&init, "initialize")?;
    if let Some(mark) = mark {
        let first: u64 = http.get(mark).send().await?.text().await?.trim().parse()?;
        if first >= spawned {
            figs.first_post = Some(Duration::from_micros(first - spawned));
        }
    }
    client.notify("notifications/initialized").await?;

    for _ in 0..s.warmup {
        small_call(&client).await?;
    }
    let mut samples = Vec::with_capacity(s.latency_calls);
    for _ in 0..s.latency_calls {
        let t = Instant::now();
        small_call(&client).await?;
        samples.push(t.elapsed());
    }
    figs.latency = Latency::from_samples(samples);
    figs.rss_latency = conn.pid.and_then(|p| procs::tree_rss(p, Rss::Peak));

    figs.throughput = Some(throughput(&client, s).await?);

    let sizes: &[usize] = match target.via {
        // It answers the same bytes whatever it is asked.
        Via::Bare(_) => &[],
        _ => &s.payload_sizes,
    };
    'payloads: for &size in sizes {
        for args in [false, true] {
            let label = format!(
                "{} {}",
                if args { "args" } else { "result" },
                human_size(size)
            );
            let outcome = payload(&client, size, args, s.payload_reps)
                .await
                .map_err(|e| format!("{e:#}"));
            let failure = outcome.as_ref().err().cloned();
            figs.payloads.push(Payload {
                label: label.clone(),
                outcome,
            });
            if let Some(e) = failure {
                // The remaining figures are still worth having: note it and go on.
                figs.error = Some(with_stderr(format!("{label}: {e}"), log));
                break 'payloads;
            }
        }
    }
    figs.rss_big = conn.pid.and_then(|p| procs::tree_rss(p, Rss::Peak));

    if let (Via::Gateway { url, .. }, Some(pid)) = (&target.via, conn.pid) {
        match crate::gateway::idle_sessions(url, pid, s.idle_sessions).await {
            Ok(per) => figs.per_session = Some(per),
            Err(e) => {
                let e = format!("idle sessions: {e:#}");
                figs.error = Some(figs.error.take().map_or(e.clone(), |f| format!("{f}; {e}")));
            }
        }
    }
    drop(client);
    if let Ok(Client::Stdio(c)) = Arc::try_unwrap(conn.client) {
        c.close(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Fails unless `raw` is a JSON-RPC answer with a result.
pub fn expect_result(raw: &[u8], what: &str) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: Option<serde::de::IgnoredAny>,
        error: Option<serde_json::Value>,
    }
    let a: Answer = serde_json::from_slice(raw)
        .with_context(|| format!("{what}: the answer is not JSON-RPC"))?;
    if let Some(e) = a.error {
        bail!("{what}: error {e}");
    }
    if a.result.is_none() {
        bail!("{what}: no result");
    }
    Ok(())
}

/// One small `echo` call, checked to have a result.
pub async fn small_call(client: &Client) -> anyhow::Result<()> {
    let raw = client.request("tools/call", SMALL_CALL).await?;
    if !raw.starts_with(b"{") || memfind(&raw, b"\"result\"").is_none() {
        expect_result(&raw, "tools/call")?;
    }
    Ok(())
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Calls/s of the settings' concurrent callers: each makes at least its share of small calls,
/// and goes on calling until the phase has lasted the settings' `throughput_time`.
pub async fn throughput(client: &Arc<Client>, s: &Settings) -> anyhow::Result<f64> {
    let t = Instant::now();
    let until = t + s.throughput_time;
    let mut tasks = Vec::with_capacity(s.callers);
    for _ in 0..s.callers {
        let c = client.clone();
        let n = s.calls_per_caller;
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while done < n || Instant::now() < until {
                small_call(&c).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Times `reps` calls moving `size` bytes (in the result, or in the arguments) and checks each
/// answer byte for byte. Returns the median time.
async fn payload(
    client: &Client,
    size: usize,
    args: bool,
    reps: usize,
) -> anyhow::Result<Duration> {
    let data = std::str::from_utf8(mcp::pattern(size))?;
    let params = if args {
        format!(r#"{{"name":"echo","arguments":{{"data":"{data}"}}}}"#)
    } else {
        format!(r#"{{"name":"echo","arguments":{{"size":{size}}}}}"#)
    };
    let want = if args {
        format!("len={size} fnv={:016x}", mcp::fnv1a(data.as_bytes()))
    } else {
        data.to_owned()
    };
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let raw = tokio::time::timeout(PAYLOAD_TIMEOUT, client.request("tools/call", &params))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {PAYLOAD_TIMEOUT:?}"))??;
        times.push(t.elapsed());
        let got = result_text(&raw)?;
        if got != want {
            bail!(
                "{} bytes came back instead of the {} expected, or different bytes",
                got.len(),
                want.len()
            );
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn result_text(raw: &[u8]) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: Option<CallResult>,
        error: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct CallResult {
        content: Vec<Content>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        text: Option<String>,
    }
    let a: Answer = serde_json::from_slice(raw).context("the answer is not JSON")?;
    if let Some(e) = a.error {
        let mut e = e.to_string();
        e.truncate(300);
        bail!("error answer: {e}");
    }
    a.result
        .and_then(|r| r.content.into_iter().next())
        .and_then(|c| c.text)
        .context("no text content in the result")
}

/// `1 MiB`, `10 MiB`, `512 KiB`.
pub fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}
