//! connect over the HTTP+SSE transport (2024-11-05, `--transport sse`): detection, the endpoint event and its origin
//! check, and recovery when the event stream drops.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use common::{assert_transport, eventually, tool};
use serde_json::json;

fn sse_server() -> Options {
    Options {
        sse_only: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_picks_sse_for_an_sse_url() {
    let mock = Mock::start(sse_server()).await;
    let mut b = Connect::start(&[&mock.url("/sse")]);
    let init = b.initialize("2024-11-05").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "sse-mock");
    let answer = b
        .call(json!(1), "tools/call", tool("echo", json!({"q": 2})))
        .await;
    assert_eq!(answer["result"]["arguments"]["q"], 2);
    let posts = mock.state.http("POST");
    assert!(
        posts.iter().all(|p| p.path == "/messages"),
        "a /sse URL tries HTTP+SSE first"
    );
    b.wait_stderr("transport: ").await;
    assert_transport(&b.stderr(), "sse");
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_when_the_streamable_post_gets_405() {
    // The URL does not end in /sse: the bridge POSTs first, gets 405, then GETs the same URL.
    let mock = Mock::start(sse_server()).await;
    let mut b = Connect::start(&[&mock.url("/old")]);
    let init = b.initialize("2024-11-05").await;
    assert!(init.get("result").is_some(), "{init}");
    let posts: Vec<String> = mock
        .state
        .http("POST")
        .iter()
        .map(|p| p.path.clone())
        .collect();
    assert_eq!(
        posts[0], "/old",
        "Streamable HTTP is tried first: {posts:?}"
    );
    b.wait_stderr("transport: ").await;
    assert_transport(&b.stderr(), "sse");

    // A URL that answers 404 to both: neither transport, and the agent is told so.
    let mut b = Connect::start(&[&mock.url("/nothing")]);
    let init = b.initialize("2024-11-05").await;
    assert_eq!(init["error"]["data"]["reason"], "no-mcp-endpoint", "{init}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_sse_transport_works() {
    let mock = Mock::start(sse_server()).await;
    let mut b = Connect::start(&["--transport", "sse", &mock.url("/sse")]);
    b.initialize("2024-11-05").await;
    let answer = b.call(json!("x"), "ping", json!({})).await;
    assert_eq!(answer["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_endpoint_on_another_origin() {
    let mock = Mock::start(Options {
        foreign_endpoint: true,
        ..sse_server()
    })
    .await;
    let mut b = Connect::start(&[
        "--transport",
        "sse",
        "--connect-timeout",
        "2s",
        &mock.url("/sse"),
    ]);
    let answer = b.call(json!(0), "initialize", json!({"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}})).await;
    assert_eq!(
        answer["error"]["data"]["reason"], "endpoint-refused",
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("same origin")
    );
    assert!(
        mock.state.http("POST").is_empty(),
        "nothing may be sent to the foreign endpoint"
    );
    b.wait_stderr("not on the same origin").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_stream_fails_waiting_requests_then_reconnects_and_reinitializes() {
    let mock = Mock::start(sse_server()).await;
    let mut b = Connect::start(&[&mock.url("/sse")]);
    b.initialize("2024-11-05").await;
    eventually("one stream", || mock.state.http("GET").len() == 1).await;

    b.send(json!({"jsonrpc":"2.0","id":"w","method":"tools/call","params": tool("slow", json!({"ms": 60000}))})).await;
    eventually("the slow call reached the server", || {
        !mock.state.requests("tools/call").is_empty()
    })
    .await;
    mock.state.drop_sse_streams();
    let (lost, _) = b.recv_answer(json!("w")).await;
    assert_eq!(lost["error"]["data"]["reason"], "stream-dropped", "{lost}");
    assert_eq!(lost["error"]["data"]["mayHaveRun"], true);
    b.wait_stderr("dropped").await;
    // The agent carries on without re-initializing: the bridge replays the handshake.
    let answer = b
        .call(
            json!(2),
            "tools/call",
            tool("echo", json!({"after": "drop"})),
        )
        .await;
    assert_eq!(answer["result"]["arguments"]["after"], "drop", "{answer}");
    let inits = mock.state.requests("initialize");
    assert_eq!(inits.len(), 2, "the handshake was replayed once");
    assert_ne!(
        inits[1].body["id"], inits[0].body["id"],
        "under the bridge's own id"
    );
    assert_eq!(mock.state.requests("notifications/initialized").len(), 2);
    // The replayed initialize's answer was not shown to the agent: the next line is ours.
    let again = b.call(json!(3), "ping", json!({})).await;
    assert_eq!(again["id"], 3);
}
