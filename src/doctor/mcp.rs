//! doctor's MCP steps, spoken through a `connect` child exactly as an agent would use it:
//! `initialize`, the tool/prompt/resource lists, and the latency of pings.

use super::{Check, Target};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running `connect` and its pipes.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    timeout: Duration,
}

impl Session {
    fn start(t: &Target) -> std::io::Result<Session> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("connect").arg(t.url.as_str());
        if let Some(p) = &t.unix {
            cmd.arg("--unix").arg(p);
        }
        if let Some(p) = &t.ca_cert {
            cmd.arg("--ca-cert").arg(p);
        }
        // Headers may hold tokens: through the environment, never the command line.
        cmd.env_remove("MCP_BRIDGE_HEADERS");
        if !t.header_specs.is_empty() {
            cmd.env("MCP_BRIDGE_HEADERS", t.header_specs.join("\n"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(Session {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 1,
            timeout: t.timeout,
        })
    }

    async fn notify(&mut self, method: &str) -> std::io::Result<()> {
        let line = json!({"jsonrpc": "2.0", "method": method}).to_string() + "\n";
        self.stdin.write_all(line.as_bytes()).await
    }

    /// Sends a request and waits for its answer: `Ok(result)` or `Err(why)`.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.stdin
            .write_all((line + "\n").as_bytes())
            .await
            .map_err(|e| format!("connect's stdin closed: {e}"))?;
        let wait = async {
            loop {
                let Some(line) = self.lines.next_line().await.map_err(|e| e.to_string())? else {
                    return Err("connect ended without an answer".to_owned());
                };
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    return Err(format!(
                        "connect wrote a line that is not JSON: {line:.200}"
                    ));
                };
                if msg.get("id") != Some(&json!(id)) || msg.get("method").is_some() {
                    continue; // a notification or a server request: not ours
                }
                if let Some(err) = msg.get("error") {
                    return Err(format!("error {}", err));
                }
                return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
            }
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer to {method} within {:?}", self.timeout)),
        }
    }

    /// Closes stdin, lets connect end, and returns the end of what it logged.
    async fn finish(mut self) -> String {
        drop(self.stdin);
        let mut log = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let read = err.read_to_string(&mut log);
            let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await;
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// Runs the MCP steps; false when one failed.
pub(super) async fn check(t: &Target, checks: &mut Vec<Check>) -> bool {
    let mut s = match Session::start(t) {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::fail(
                "initialize",
                format!("cannot start connect: {e}"),
                "check that this executable can run itself (permissions, /proc mounted)",
            ));
            return false;
        }
    };
    let ok = steps(t, &mut s, checks).await;
    let log = s.finish().await;
    if !ok
        && !log.is_empty()
        && let Some(last) = checks.last_mut()
    {
        last.detail.push_str(&format!(" (connect said: {log})"));
    }
    ok
}

async fn steps(t: &Target, s: &mut Session, checks: &mut Vec<Check>) -> bool {
    let init = s
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "mcp-bridge-doctor", "version": env!("CARGO_PKG_VERSION")}}),
        )
        .await;
    let init = match init {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail(
                "initialize",
                e,
                "the HTTP steps passed, so the server itself failed: look at its logs (serve -v)",
            ));
            return false;
        }
    };
    let str_at = |p: &str| {
        init.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let caps: Vec<String> = init
        .get("capabilities")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    checks.push(Check::pass(
        "initialize",
        format!(
            "server {} {}, protocol {}, capabilities: {}",
            str_at("/serverInfo/name"),
            str_at("/serverInfo/version"),
            str_at("/protocolVersion"),
            if caps.is_empty() {
                "none".to_owned()
            } else {
                caps.join(", ")
            },
        ),
    ));
    if s.notify("notifications/initialized").await.is_err() {
        checks.push(Check::fail(
            "lists",
            "connect went away",
            "run connect -v to see why",
        ));
        return false;
    }

    let mut counts = Vec::new();
    for (cap, method, key) in [
        ("tools", "tools/list", "tools"),
        ("prompts", "prompts/list", "prompts"),
        ("resources", "resources/list", "resources"),
    ] {
        if !caps.iter().any(|c| c == cap) {
            counts.push(format!("no {key}"));
            continue;
        }
        match list_all(s, method, key).await {
            Ok(1) => counts.push(format!("1 {}", key.trim_end_matches('s'))),
            Ok(n) => counts.push(format!("{n} {key}")),
            Err(e) => {
                checks.push(Check::fail(
                    "lists",
                    format!("{method}: {e}"),
                    "the server failed to list: look at its logs",
                ));
                return false;
            }
        }
    }
    checks.push(Check::pass("lists", counts.join(", ")));

    let mut times = Vec::with_capacity(t.pings as usize);
    for _ in 0..t.pings {
        let start = Instant::now();
        if let Err(e) = s.request("ping", json!({})).await {
            checks.push(Check::fail(
                "latency",
                format!("ping: {e}"),
                "look at the server's logs",
            ));
            return false;
        }
        times.push(start.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    checks.push(Check::pass(
        "latency",
        format!(
            "{} pings: p50 {:.2} ms, p99 {:.2} ms",
            times.len(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        ),
    ));
    true
}

/// Counts the items of a paginated list (at most 100 pages).
async fn list_all(s: &mut Session, method: &str, key: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut cursor: Option<Value> = None;
    for _ in 0..100 {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let page = s.request(method, params).await?;
        n += page.get(key).and_then(Value::as_array).map_or(0, Vec::len);
        cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
    }
    Ok(n)
}
