//! `connect` run in process over a duplex pipe, with the clock paused: timing behaviour (the
//! connect timeout and the backoff before it) is checked in virtual time, not waited through.

use super::{Config, run};
use crate::cli::TransportChoice;
use crate::stdio::Stdio;
use reqwest::header::HeaderMap;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn config(port: u16, connect_timeout: Duration) -> Config {
    Config {
        url: format!("http://127.0.0.1:{port}/mcp").parse().expect("URL"),
        transport: TransportChoice::Streamable,
        headers: HeaderMap::new(),
        unix: None,
        connect_timeout,
        max_message_size: 1 << 20,
        ca_certs: Vec::new(),
        auth: None,
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_remote_fails_a_request_after_the_connect_timeout() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeout = Duration::from_secs(10);
    let (agent, bridge) = tokio::io::duplex(64 * 1024);
    let (bridge_in, bridge_out) = tokio::io::split(bridge);
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(run(
        config(closed_port(), timeout),
        Stdio::pipe(bridge_in, bridge_out),
        shutdown.clone(),
    ));
    let (agent_in, mut agent_out) = tokio::io::split(agent);
    let mut lines = BufReader::new(agent_in).lines();

    let real = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    agent_out
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n")
        .await
        .expect("write");
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("an answer before the test's own timeout")
        .expect("read")
        .expect("a line");
    let waited = start.elapsed();

    let answer: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "unreachable", "{answer}");
    assert_eq!(answer["error"]["data"]["mayHaveRun"], false, "{answer}");
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(2),
        "retried for {waited:?}, not the connect timeout of {timeout:?}"
    );
    assert!(
        real.elapsed() < timeout,
        "the clock is paused: no real waiting"
    );

    agent_out.shutdown().await.expect("close the agent's side");
    tokio::time::timeout(Duration::from_secs(5), bridge)
        .await
        .expect("connect ends at EOF")
        .expect("no panic")
        .expect("no error");
}
