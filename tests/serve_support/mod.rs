//! Helpers for the serve tests: run the real binary in front of the Python stdio fixture on a
//! free port, find the port in its log, speak MCP to it with reqwest, and read SSE streams.
#![allow(dead_code)]

use anyhow::{Context, Result, anyhow, bail};
use mcp_bridge::sse;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Every wait in these tests ends by this deadline.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stdio_server.py")
}

/// Whether python3 can run; in CI its absence fails the test instead of skipping it.
pub fn have_python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("python3 is required for the serve tests (CI=true)");
    }
    if !ok {
        eprintln!("skipping: python3 not found");
    }
    ok
}

/// A running `mcp-bridge serve`.
pub struct Gateway {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the first TCP listener (empty if none).
    pub url: String,
    /// Every line the gateway logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Opts<'a> {
    pub args: &'a [&'a str],
    pub fixture_args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub listen_tcp: bool,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            args: &[],
            fixture_args: &[],
            env: &[],
            listen_tcp: true,
        }
    }
}

impl Gateway {
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::start_with(Opts {
            args,
            ..Opts::default()
        })
    }

    pub fn start_with(o: Opts<'_>) -> Gateway {
        Gateway::try_start(o).expect("gateway starts")
    }

    /// Starts the gateway and waits (bounded) for its `listening on` lines.
    pub fn try_start(o: Opts<'_>) -> Result<Gateway> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        cmd.arg("serve");
        if o.listen_tcp {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(o.args)
            .args(["--", "python3"])
            .arg(fixture())
            .args(o.fixture_args)
            .env("MCP_BRIDGE_LOG_LEVEL", "info")
            .envs(o.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawn mcp-bridge")?;
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[serve] {line}");
                if let Some(i) = line.find("listening on ") {
                    let addr = line[i + "listening on ".len()..].trim();
                    if addr.starts_with("http://") || addr.starts_with("unix:") {
                        let _ = tx.send(addr.to_owned());
                    }
                }
                log2.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut url = String::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(u) if u.starts_with("http://") => {
                    url = u;
                    break;
                }
                Ok(_) if !o.listen_tcp => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait()?;
                    bail!(
                        "the gateway did not report a listener ({status}): {:?}",
                        log.lock().unwrap()
                    );
                }
            }
        }
        Ok(Gateway { child, url, log })
    }

    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

pub fn init_msg(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{"sampling":{}},
        "clientInfo":{"name":"serve-test","version":"0"}}})
}

pub fn call_msg(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

/// A Streamable HTTP session opened by `initialize` + `notifications/initialized`.
pub struct Session {
    pub url: String,
    pub id: String,
    pub http: reqwest::Client,
    pub init_result: Value,
    /// Bearer token sent on every request, if any.
    pub token: Option<String>,
}

impl Session {
    pub async fn open(url: &str) -> Result<Session> {
        Session::open_version(url, "2025-06-18").await
    }

    pub async fn open_version(url: &str, version: &str) -> Result<Session> {
        Session::open_full(url, version, None).await
    }

    pub async fn open_full(url: &str, version: &str, token: Option<&str>) -> Result<Session> {
        let http = client();
        let mut init = init_msg(0);
        init["params"]["protocolVersion"] = json!(version);
        let mut req = http.post(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("initialize: {} {}", resp.status(), resp.text().await?);
        }
        let id = resp
            .headers()
            .get("mcp-session-id")
            .ok_or_else(|| anyhow!("no Mcp-Session-Id"))?
            .to_str()?
            .to_owned();
        let answer = read_answer(resp).await?;
        let s = Session {
            url: url.to_owned(),
            id,
            http,
            init_result: answer["result"].clone(),
            token: token.map(str::to_owned),
        };
        let r = s
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await?;
        assert_eq!(r.status(), 202);
        Ok(s)
    }

    pub fn post_builder(&self, body: &Value) -> reqwest::RequestBuilder {
        self.with_token(self.http.post(&self.url))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-06-18")
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    fn with_token(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn post(&self, body: Value) -> Result<reqwest::Response> {
        Ok(self.post_builder(&body).send().await?)
    }

    /// POSTs a request and returns its answer (JSON or the last message of an SSE reply).
    pub async fn request(&self, body: Value) -> Result<Value> {
        let resp = self.post(body).await?;
        read_answer(resp).await
    }

    /// Opens the GET stream, optionally resuming after `last`.
    pub async fn get_stream(&self, last: Option<&str>) -> Result<SseReader> {
        let mut req = self
            .with_token(self.http.get(&self.url))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id);
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        let resp = req.send().await?;
        if resp.status() != 200 {
            bail!("GET stream: {}", resp.status());
        }
        Ok(SseReader::new(resp))
    }
}

/// The JSON-RPC answer in a response: the body, or the last data event of an SSE body.
pub async fn read_answer(resp: reqwest::Response) -> Result<Value> {
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    if ctype.starts_with("text/event-stream") {
        let mut r = SseReader::new(resp);
        let mut last = None;
        while let Some(ev) = r.next().await? {
            if !ev.data.is_empty() {
                let v: Value = serde_json::from_slice(&ev.data)?;
                let is_response = v.get("id").is_some() && v.get("method").is_none();
                last = Some(v);
                if is_response {
                    break;
                }
            }
        }
        last.ok_or_else(|| anyhow!("the SSE reply ended without a message"))
    } else {
        Ok(serde_json::from_slice(&resp.bytes().await?)?)
    }
}

/// Reads SSE events from a response, with a bounded wait for each.
pub struct SseReader {
    resp: reqwest::Response,
    parser: sse::Parser,
    queue: std::collections::VecDeque<sse::Event>,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> SseReader {
        SseReader {
            resp,
            parser: sse::Parser::new(1 << 24),
            queue: Default::default(),
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<sse::Event>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .map_err(|_| anyhow!("no SSE event within {WAIT:?}"))??;
            let Some(chunk) = chunk else { return Ok(None) };
            let mut out = Vec::new();
            self.parser
                .feed(&chunk, &mut out)
                .map_err(|e| anyhow!("{e}"))?;
            self.queue.extend(out);
        }
    }

    /// The next event that carries a JSON message.
    pub async fn next_message(&mut self) -> Result<(Option<String>, Value)> {
        loop {
            let ev = self.next().await?.ok_or_else(|| anyhow!("stream ended"))?;
            if !ev.data.is_empty() && ev.is_message() {
                return Ok((ev.id, serde_json::from_slice(&ev.data)?));
            }
        }
    }
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The text of a tools/call answer.
pub fn tool_text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
