//! connect's relay with a `TokenProvider` (what the gateway runs on the host for a remote server
//! with an OAuth login), in process over a pipe, against the mock protected resource: every
//! request carries the token, an expiry mid-session costs one refresh for 20 concurrent calls,
//! and without a usable token or with too little scope the agent gets `login-required` naming
//! the command to run on the host.

mod common;

use common::oauth::{self, Options};
use mcp_bridge::cli::TransportChoice;
use mcp_bridge::connect::{Config, run};
use mcp_bridge::oauth::store::now_secs;
use mcp_bridge::oauth::{Store, TokenProvider};
use mcp_bridge::stdio::Stdio;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

/// The agent's side of an in-process relay.
struct Agent {
    to: WriteHalf<DuplexStream>,
    from: Lines<BufReader<ReadHalf<DuplexStream>>>,
    shutdown: CancellationToken,
    _store: tempfile::TempDir,
}

impl Agent {
    /// A relay to the mock for server `gh` whose login is in `store` (the temp dir's).
    fn start(mock: &oauth::Mock, store_dir: tempfile::TempDir) -> Agent {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = TokenProvider::new("gh", Store::at(store_dir.path()))
            .unwrap()
            .with_config_hint(std::path::Path::new("/etc/mcp.json"));
        let config = Config {
            url: mock.mcp_url().parse().unwrap(),
            transport: TransportChoice::Streamable,
            headers: Default::default(),
            unix: None,
            connect_timeout: Duration::from_secs(5),
            max_message_size: 1 << 20,
            ca_certs: Vec::new(),
            auth: Some(Arc::new(provider)),
        };
        let (agent, bridge) = tokio::io::duplex(1 << 20);
        let (bridge_in, bridge_out) = tokio::io::split(bridge);
        let shutdown = CancellationToken::new();
        tokio::spawn(run(
            config,
            Stdio::pipe(bridge_in, bridge_out),
            shutdown.clone(),
        ));
        let (from, to) = tokio::io::split(agent);
        Agent {
            to,
            from: BufReader::new(from).lines(),
            shutdown,
            _store: store_dir,
        }
    }

    async fn send(&mut self, msg: Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.to.write_all(line.as_bytes()).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(common::WAIT, self.from.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).unwrap()
    }

    async fn initialize(&mut self) -> Value {
        self.send(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .await;
        let answer = self.recv().await;
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        answer
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn echo(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":"echo","arguments":{"text":format!("call {id}")}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_calls_in_flight_when_the_token_expires_all_succeed_on_one_refresh() {
    let mock = oauth::start(Options {
        refresh_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    mock.seed(
        "gh",
        &Store::at(dir.path()),
        "at-0",
        now_secs() + 3600,
        Some("rt-0"),
    );
    let mut agent = Agent::start(&mock, dir);
    let init = agent.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "oauth-mock", "{init}");
    agent.send(echo(1)).await;
    assert_eq!(common::tool_text(&agent.recv().await), "call 1");
    assert_eq!(
        mock.seen().mcp_401,
        0,
        "the first requests carried the token"
    );

    // The server stops taking the token (it expired early, or was revoked) while 20 calls go.
    mock.expire_access_tokens();
    for id in 100..120 {
        agent.send(echo(id)).await;
    }
    let mut answers = HashMap::new();
    for _ in 0..20 {
        let a = agent.recv().await;
        answers.insert(a["id"].as_u64().unwrap(), a);
    }
    for id in 100..120 {
        assert_eq!(
            common::tool_text(&answers[&id]),
            format!("call {id}"),
            "{}",
            answers[&id]
        );
    }
    let seen = mock.seen();
    assert_eq!(seen.refreshes, 1, "one refresh for every session and call");
    assert_eq!(seen.tool_calls, 21);
    assert!(seen.mcp_401 >= 1, "the expired token was refused");
}

#[tokio::test]
async fn without_a_login_every_request_gets_login_required_naming_the_command() {
    let mock = oauth::start(Options::default()).await;
    let mut agent = Agent::start(&mock, tempfile::tempdir().unwrap());
    let answer = agent.initialize().await;
    let data = &answer["error"]["data"];
    assert_eq!(data["reason"], "login-required", "{answer}");
    assert_eq!(data["source"], "mcp-bridge");
    assert_eq!(data["mayHaveRun"], false);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("run `mcp-bridge login gh --config /etc/mcp.json` on the host"),
        "{message}"
    );
    assert_eq!(mock.seen().mcp_401, 0, "nothing was sent without a token");

    // A stateless (2026-07-28) request is answered the same way.
    agent
        .send(
            json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
        )
        .await;
    let answer = agent.recv().await;
    assert_eq!(answer["id"], 5);
    assert_eq!(
        answer["error"]["data"]["reason"], "login-required",
        "{answer}"
    );
}

#[tokio::test]
async fn an_expired_token_without_a_refresh_token_is_login_required() {
    let mock = oauth::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    mock.seed("gh", &Store::at(dir.path()), "at-0", now_secs() - 10, None);
    let mut agent = Agent::start(&mock, dir);
    let answer = agent.initialize().await;
    assert_eq!(
        answer["error"]["data"]["reason"], "login-required",
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("expired") && message.contains("mcp-bridge login gh"),
        "{message}"
    );
    assert!(!message.contains("at-0"), "{message}");
}

#[tokio::test]
async fn a_refused_refresh_and_a_step_up_are_login_required_without_a_secret() {
    let mock = oauth::start(Options {
        forbidden_tool: Some(("admin".into(), "mcp:admin".into())),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path());
    mock.seed("gh", &store, "at-0", now_secs() + 3600, Some("rt-0"));
    let mut agent = Agent::start(&mock, dir);
    assert!(agent.initialize().await["result"].is_object());

    // 403 insufficient_scope: the scope is noted for the next login and the agent is told.
    agent
        .send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin","arguments":{}}}))
        .await;
    let answer = agent.recv().await;
    assert_eq!(
        answer["error"]["data"]["reason"], "login-required",
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["httpStatus"], 403);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mcp:admin") && message.contains("mcp-bridge login gh"),
        "{message}"
    );
    let rec = store.load("gh").unwrap().unwrap();
    assert_eq!(rec.step_up_scopes, vec!["mcp:admin".to_string()]);

    // The token stops working and the refresh token is refused too.
    mock.expire_access_tokens();
    mock.seen().refresh.clear();
    agent.send(echo(3)).await;
    let answer = agent.recv().await;
    assert_eq!(
        answer["error"]["data"]["reason"], "login-required",
        "{answer}"
    );
    let text = answer.to_string();
    for secret in mock
        .issued()
        .iter()
        .map(String::as_str)
        .chain(["at-0", "rt-0", "s1"])
    {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
