//! OAuth end to end through the gateway, as a user runs it: `mcp-bridge login gh` on the host,
//! `serve --config` relaying `gh` (the mock protected resource) and a stdio server, and the
//! sandbox's `connect` talking to serve through a recording proxy. The sandbox's side never sees
//! a token (not in what connect sends or receives, not in a child's environment, not in serve's
//! log); an expiry mid-session costs one refresh for 20 concurrent calls; without a login the
//! agent is told what to run on the host.

mod common;

use common::connect::Connect;
use common::oauth::{self, Options, World};
use common::serve::Serve;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything that passed through the proxy, both ways.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<u8>>>);

impl Recording {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream` (host:port) that records every byte: what
/// the sandbox's connect sends and what it gets back.
async fn recording_proxy(upstream: String) -> (u16, Recording) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = Recording::default();
    let r = rec.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, r.clone()));
            tokio::spawn(pump(sr, cw, r.clone()));
        }
    });
    (port, rec)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rec: Recording,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        rec.0.lock().unwrap().extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown().await;
}

/// The host: a config with `gh` (the mock) and `local` (the stdio fixture), optionally an
/// `oauth` section for `gh`.
fn world(mock: &oauth::Mock, oauth_section: Option<Value>) -> World {
    let mut doc = json!({
        "mcpServers": {
            "gh": {"type": "http", "url": mock.mcp_url()},
            "local": {"command": "python3", "args": [common::serve::fixture()]},
        },
    });
    if let Some(section) = oauth_section {
        doc["mcpBridge"] = json!({"servers": {"gh": {"oauth": section}}});
    }
    World::with_config(doc)
}

/// `serve --config` for the world, with its token store.
fn gateway(world: &World) -> Serve {
    let env = world.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Serve::with_config(&world.config, &["--listen", "127.0.0.1:0"], &env).expect("serve starts")
}

/// The sandbox's `connect` to server `name` of the gateway, through the proxy on `port`.
fn sandbox(port: u16, name: &str) -> Connect {
    let url = format!("http://127.0.0.1:{port}/servers/{name}/mcp");
    // The sandbox holds no store: a login made here would show up in its environment.
    Connect::start_with(&[&url], &[("MCP_BRIDGE_STATE_DIR", "/nonexistent")])
}

fn echo(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":"echo","arguments":{"text":format!("call {id}")}}})
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} holds the secret {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_on_the_host_serves_the_sandbox_which_never_sees_a_token() {
    if !common::serve::have_python3() {
        return;
    }
    let mock = oauth::start(Options {
        refresh_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let world = world(&mock, None);
    let (ok, out) = world.login().await;
    assert!(ok, "login failed:\n{out}");

    let serve = gateway(&world);
    let (port, recording) = recording_proxy(format!("127.0.0.1:{}", serve.port())).await;
    let mut agent = sandbox(port, "gh");
    let init = agent.initialize("2025-06-18").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "oauth-mock", "{init}");
    agent.send(echo(1)).await;
    assert_eq!(
        common::tool_text(&agent.recv_answer(json!(1)).await.0),
        "call 1"
    );

    // The token expires while 20 calls are on their way: one refresh serves them all.
    mock.expire_access_tokens();
    for id in 100..120 {
        agent.send(echo(id)).await;
    }
    let mut answers = HashMap::new();
    while answers.len() < 20 {
        let a = agent.recv().await;
        answers.insert(a["id"].as_u64().expect("an answer"), a);
    }
    for id in 100..120 {
        let a = &answers[&id];
        assert_eq!(common::tool_text(a), format!("call {id}"), "{a}");
    }
    assert_eq!(mock.seen().refreshes, 1, "one refresh for all the calls");

    // The stdio server's environment holds no token either.
    let mut local = sandbox(port, "local");
    local.initialize("2025-06-18").await;
    let env = local
        .call(json!(7), "tools/call", common::tool("env", json!({})))
        .await;
    let env = common::tool_text(&env);
    assert!(env.contains("PATH"), "{env}");

    let mut secrets = mock.issued();
    let stored: Value =
        serde_json::from_slice(&std::fs::read(world.token_file()).unwrap()).unwrap();
    secrets.push(
        stored["client"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    assert!(secrets.len() >= 5, "{secrets:?}");
    assert_no_secret("a child's environment", &env, &secrets);
    let wire = recording.text();
    assert!(wire.contains("call 119"), "the proxy saw the traffic");
    assert!(
        !wire.to_ascii_lowercase().contains("authorization:"),
        "connect sent or got an Authorization header:\n{wire:.2000}"
    );
    assert_no_secret("the sandbox's traffic", &wire, &secrets);
    assert_no_secret("connect's log", &agent.stderr(), &secrets);
    assert_no_secret("serve's log", &serve.log.text(), &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_login_the_sandbox_is_told_what_to_run_on_the_host() {
    if !common::serve::have_python3() {
        return;
    }
    let mock = oauth::start(Options::default()).await;
    let world = world(&mock, Some(json!({})));
    let serve = gateway(&world);
    let (port, _recording) = recording_proxy(format!("127.0.0.1:{}", serve.port())).await;
    let mut agent = sandbox(port, "gh");
    let answer = agent.initialize("2025-06-18").await;
    let data = &answer["error"]["data"];
    assert_eq!(data["reason"], "login-required", "{answer}");
    assert_eq!(data["mayHaveRun"], false, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    let command = format!("mcp-bridge login gh --config {}", world.config.display());
    assert!(message.contains(&command), "{message}");
    assert_eq!(
        mock.seen().mcp_401,
        0,
        "nothing went to the server without a token"
    );

    // After `login` on the host, the next session works without restarting serve.
    let (ok, out) = world.login().await;
    assert!(ok, "{out}");
    let mut agent = sandbox(port, "gh");
    let init = agent.initialize("2025-06-18").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "oauth-mock", "{init}");
}
