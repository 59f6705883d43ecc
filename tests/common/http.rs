//! serve's HTTP clients as the tests play them: a Streamable HTTP session (initialize, then
//! requests with its `Mcp-Session-Id`), the answer in a JSON or SSE reply, and an SSE reader with
//! a bounded wait for each event.

use super::WAIT;
use anyhow::{Result, anyhow, bail};
use mcp_bridge::sse;
use serde_json::{Value, json};

/// An HTTP client for 127.0.0.1 (no proxy) whose every request ends within [`WAIT`].
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// The `/metrics` text of the serve at `base` (with its bearer `token`, if it has one).
pub async fn metrics(base: &str, token: Option<&str>) -> String {
    let mut req = client().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().text().await.unwrap()
}

/// The value of one series (`name` with its labels, as printed) in a `/metrics` text.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// An `initialize` request (protocol 2025-06-18).
pub fn init_msg(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{"sampling":{}},
        "clientInfo":{"name":"serve-test","version":"0"}}})
}

/// A tools/call request of the handshake era (no `_meta` envelope).
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
    /// Opens a session with protocol 2025-06-18.
    pub async fn open(url: &str) -> Result<Session> {
        Session::open_version(url, "2025-06-18").await
    }

    /// Opens a session with `version`.
    pub async fn open_version(url: &str, version: &str) -> Result<Session> {
        Session::open_full(url, version, None).await
    }

    /// Opens a session with `version`, sending `token` as a bearer token on every request.
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

    /// A POST of `body` with the session's headers.
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

    /// POSTs `body` in the session.
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
    /// Reads the events of `resp`'s body.
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
                .feed(chunk.clone(), &mut out)
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
