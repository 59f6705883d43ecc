//! Which child serves a request (issue 12): session keys, `--scope`, reattachment, lifetime and
//! isolation, through the real binaries (`connect --session-key` over a Unix socket, as a
//! sandbox would) with the counter of the Python stdio fixture as the server's state. Also the
//! shared-child races of issue 10 (item 3).

mod common;

use common::connect::Connect;
use common::http::{Session, client, init_msg};
use common::serve::{Opts, Serve, have_python3};
use common::stateless::{self, V};
use common::{WAIT, tool_text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// `serve ARGS` on a Unix socket in a temp dir (and 127.0.0.1:0, for /metrics).
fn serve_unix(args: &[&str], fixture_args: &[&str]) -> (Serve, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mcp.sock");
    let listen = format!("unix:{}", sock.display());
    let mut all = vec!["--listen", &listen];
    all.extend_from_slice(args);
    let serve = Serve::start_with(Opts {
        args: &all,
        fixture_args,
        ..Opts::default()
    });
    serve.wait_log("listening on unix:");
    (serve, sock, dir)
}

/// A sandbox's `connect`, keyed or not, over the Unix socket.
fn sandbox(sock: &Path, key: Option<&str>) -> Connect {
    let sock = sock.to_str().unwrap();
    let mut args = vec!["--unix", sock, "http://localhost/mcp"];
    if let Some(k) = key {
        args.extend(["--session-key", k]);
    }
    Connect::start(&args)
}

/// The handshake agent's `count` call; returns the counter.
async fn count_handshake(c: &mut Connect, id: i64) -> u64 {
    let a = c
        .call(
            json!(id),
            "tools/call",
            json!({"name": "count", "arguments": {}}),
        )
        .await;
    tool_text(&a)
        .parse()
        .unwrap_or_else(|_| panic!("a count: {a}"))
}

/// The 2026-07-28 agent's `count` call (the envelope in `_meta`); returns the counter.
async fn count_stateless(c: &mut Connect, id: i64) -> u64 {
    c.send(stateless::call(id, "count", json!({}))).await;
    let (a, _) = c.recv_answer(json!(id)).await;
    tool_text(&a)
        .parse()
        .unwrap_or_else(|_| panic!("a count: {a}"))
}

/// Kills a sandbox as `docker rm -f` would: SIGKILL, no goodbye.
async fn destroy(mut c: Connect) {
    c.child.start_kill().unwrap();
    c.wait_exit(WAIT).await;
}

#[tokio::test]
async fn a_recreated_handshake_sandbox_finds_its_state_by_key() {
    if !have_python3() {
        return;
    }
    let (_serve, sock, _dir) = serve_unix(&["--scope", "per-key"], &[]);
    let mut a = sandbox(&sock, Some("sandbox-a"));
    a.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut a, 1).await, 1);
    assert_eq!(count_handshake(&mut a, 2).await, 2);
    destroy(a).await;

    let mut again = sandbox(&sock, Some("sandbox-a"));
    let init = again.initialize("2025-06-18").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(count_handshake(&mut again, 1).await, 3, "the same child");

    // Another key, or none, never sees it.
    let mut other = sandbox(&sock, Some("sandbox-b"));
    other.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut other, 1).await, 1);
    let mut keyless = sandbox(&sock, None);
    keyless.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut keyless, 1).await, 1);
    assert_eq!(count_handshake(&mut again, 2).await, 4);
}

#[tokio::test]
async fn a_recreated_stateless_sandbox_finds_its_state_by_key() {
    if !have_python3() {
        return;
    }
    let (_serve, sock, _dir) = serve_unix(&["--scope", "per-key"], &[]);
    let mut a = sandbox(&sock, Some("k1"));
    assert_eq!(count_stateless(&mut a, 1).await, 1);
    assert_eq!(count_stateless(&mut a, 2).await, 2);
    destroy(a).await;
    let mut again = sandbox(&sock, Some("k1"));
    assert_eq!(count_stateless(&mut again, 7).await, 3);
    let mut other = sandbox(&sock, Some("k2"));
    assert_eq!(count_stateless(&mut other, 1).await, 1);
}

/// Issue 12, finding 2: 2026-07-28 requests of different keys (and none) went to one child.
#[tokio::test]
async fn stateless_requests_of_different_keys_never_share_a_child() {
    if !have_python3() {
        return;
    }
    let serve = Serve::start(&[]);
    let url = serve.mcp();
    let count = |key: &'static str, id: i64| {
        let url = url.clone();
        async move {
            let extra: Vec<(&str, &str)> = if key.is_empty() {
                vec![]
            } else {
                vec![("mcp-bridge-session-key", key)]
            };
            let resp =
                stateless::post(&url, &stateless::call(id, "count", json!({})), &extra).await;
            let (status, code, body) = stateless::status_code(resp).await;
            assert_eq!((status, code), (200, 0), "{body}");
            tool_text(&body).parse::<u64>().unwrap()
        }
    };
    assert_eq!(count("a", 1).await, 1);
    assert_eq!(count("a", 2).await, 2);
    assert_eq!(count("b", 3).await, 1, "key b has its own child");
    assert_eq!(count("", 4).await, 1, "no key: the identity's own child");
    assert_eq!(count("a", 5).await, 3);
    // A malformed key is refused, not mapped to some child.
    let resp = stateless::post(
        &url,
        &stateless::call(6, "count", json!({})),
        &[("mcp-bridge-session-key", "a b")],
    )
    .await;
    assert_eq!(resp.status(), 400);
}

/// The bearer token's holder and anonymous callers are different identities; with a token,
/// the same key names another child than without (each serve has one token today, so two
/// servers are compared through the metrics' child names).
#[tokio::test]
async fn the_token_holder_is_its_own_identity() {
    if !have_python3() {
        return;
    }
    let serve = Serve::start_with(Opts {
        env: &[("MCP_BRIDGE_AUTH_TOKEN", "s3cret-token")],
        ..Opts::default()
    });
    let resp = client()
        .post(serve.mcp())
        .bearer_auth("s3cret-token")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "count")
        .header("mcp-bridge-session-key", "k")
        .body(stateless::call(1, "count", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = common::http::metrics(&serve.url, Some("s3cret-token")).await;
    assert!(
        metrics.contains(r#"mcp_bridge_named_child_clients{child="token/k",era="stateless"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_sandboxes_with_one_key_at_once_get_only_their_own_answers_and_progress() {
    if !have_python3() {
        return;
    }
    let (_serve, sock, _dir) = serve_unix(&["--scope", "per-key"], &[]);
    let mut a = sandbox(&sock, Some("same"));
    let mut b = sandbox(&sock, Some("same"));
    a.initialize("2025-06-18").await;
    b.initialize("2025-06-18").await;
    let slow = |tag: &str| {
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "slow",
            "arguments": {"steps": 3, "seconds": 0.3}, "_meta": {"progressToken": tag}}})
    };
    // Equal ids and equal progress tokens from both, in flight together.
    a.send(slow("p")).await;
    b.send(slow("p")).await;
    let echo = |t: &str| {
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": t}}})
    };
    a.send(echo("from a")).await;
    b.send(echo("from b")).await;
    for (c, me) in [(&mut a, "from a"), (&mut b, "from b")] {
        let (six, _) = c.recv_answer(json!(6)).await;
        assert_eq!(tool_text(&six), me);
        let (five, before) = c.recv_answer(json!(5)).await;
        assert_eq!(tool_text(&five), "slow done");
        let progress: Vec<&Value> = before
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 3, "exactly its own progress: {before:?}");
        assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p"));
    }
}

#[tokio::test]
async fn after_the_keep_alive_the_same_key_gets_a_fresh_child() {
    if !have_python3() {
        return;
    }
    let (serve, sock, _dir) = serve_unix(
        &[
            "--scope",
            "per-key",
            "--keep-alive",
            "1s",
            "--session-ttl",
            "1s",
        ],
        &[],
    );
    let mut a = sandbox(&sock, Some("brief"));
    a.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut a, 1).await, 1);
    destroy(a).await;
    // The session expires after its TTL, the child after the keep-alive: poll /metrics.
    let metrics = format!("{}/metrics", serve.url);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = client()
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if !text.contains(r#"child="anonymous/brief""#) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keyed child never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut again = sandbox(&sock, Some("brief"));
    again.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut again, 1).await, 1, "fresh state");
}

/// Issue 10, item 3: a DELETE while the shared child is still at its first `initialize` does
/// not leave later sessions waiting for an answer that was thrown away.
#[tokio::test]
async fn a_delete_during_the_first_initialize_does_not_wedge_later_sessions() {
    if !have_python3() {
        return;
    }
    let serve = Serve::start_with(Opts {
        args: &["--shared"],
        fixture_args: &["--init-delay", "1"],
        ..Opts::default()
    });
    let http = client();
    // An event-stream reply names the session before the answer comes.
    let first = http
        .post(serve.mcp())
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(init_msg(1).to_string())
        .send()
        .await
        .unwrap();
    let id = first.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let del = http
        .delete(serve.mcp())
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    drop(first);
    let later = tokio::time::timeout(WAIT, Session::open(&serve.mcp()))
        .await
        .expect("a later initialize is answered")
        .unwrap();
    assert_eq!(later.init_result["serverInfo"]["name"], "stdio-fixture");
}

/// A client that varies its key cannot start processes without bound: past `--max-sessions`
/// stateless children, a new key is refused until one expires.
#[tokio::test]
async fn keys_cannot_start_children_without_bound() {
    if !have_python3() {
        return;
    }
    let serve = Serve::start(&["--max-sessions", "2"]);
    let mut codes = Vec::new();
    for key in ["k1", "k2", "k3"] {
        let resp = stateless::post(
            &serve.mcp(),
            &stateless::call(1, "count", json!({})),
            &[("mcp-bridge-session-key", key)],
        )
        .await;
        codes.push(resp.status().as_u16());
    }
    assert_eq!(&codes[..2], &[200, 200]);
    assert!(codes[2] >= 500, "a third key is refused: {codes:?}");
}

/// `serve --scope per-key` of `@modelcontextprotocol/server-memory` (the pinned Node peer, its
/// graph in a temp dir) on a Unix socket; `None` where Node is missing (a failure under CI).
fn serve_memory() -> Option<(Serve, PathBuf, tempfile::TempDir)> {
    let peers = common::node::node_peers()?;
    let memory = common::node::node_dir()
        .join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mcp.sock");
    let listen = format!("unix:{}", sock.display());
    let store = format!(
        "MEMORY_FILE_PATH={}",
        dir.path().join("memory.jsonl").display()
    );
    let serve = Serve::start_with(Opts {
        args: &["--listen", &listen, "--scope", "per-key", "--env", &store],
        child: vec![peers.node.clone().into(), memory.into()],
        ..Opts::default()
    });
    serve.wait_log("listening on unix:");
    Some((serve, sock, dir))
}

/// The founding scenario with `@modelcontextprotocol/server-memory` (the pinned Node peer): an
/// entity stored through a keyed sandbox is read back by its recreation.
#[tokio::test]
async fn server_memory_keeps_its_graph_for_a_recreated_sandbox() {
    let Some((_serve, sock, _dir)) = serve_memory() else {
        return;
    };
    let mut a = sandbox(&sock, Some("mem"));
    a.initialize("2025-06-18").await;
    let made = a
        .call(
            json!(1),
            "tools/call",
            json!({"name": "create_entities", "arguments": {"entities": [
                {"name": "sandbox-fact", "entityType": "note", "observations": ["kept"]}]}}),
        )
        .await;
    assert!(made.get("result").is_some(), "{made}");
    destroy(a).await;
    let mut again = sandbox(&sock, Some("mem"));
    again.initialize("2025-06-18").await;
    let graph = again
        .call(
            json!(1),
            "tools/call",
            json!({"name": "read_graph", "arguments": {}}),
        )
        .await;
    assert!(graph.to_string().contains("sandbox-fact"), "{graph}");
}

/// A dual-era agent's probe, as Claude Code sends it: the answer names 2026-07-28.
async fn discover(c: &mut Connect, id: i64) {
    c.send(stateless::req(json!(id), "server/discover", json!({})))
        .await;
    let (a, _) = c.recv_answer(json!(id)).await;
    assert_eq!(
        a["result"]["supportedVersions"],
        json!([stateless::V]),
        "{a}"
    );
}

/// The crossing-era founding scenario: one key is one child whichever era the agent speaks,
/// and what another key (or none) reaches in either era is a child of its own.
#[tokio::test]
async fn one_key_is_one_child_for_agents_of_either_era() {
    if !have_python3() {
        return;
    }
    let (serve, sock, _dir) = serve_unix(&["--scope", "per-key"], &[]);
    let mut modern = sandbox(&sock, Some("k"));
    discover(&mut modern, 1).await;
    assert_eq!(count_stateless(&mut modern, 2).await, 1);
    assert_eq!(count_stateless(&mut modern, 3).await, 2);
    destroy(modern).await;

    let mut old = sandbox(&sock, Some("k"));
    old.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut old, 1).await, 3, "the same child");
    let metrics = common::http::metrics(&serve.url, None).await;
    for line in [
        r#"mcp_bridge_named_child_clients{child="anonymous/k",era="handshake"} 1"#,
        r#"mcp_bridge_named_child_clients{child="anonymous/k",era="stateless"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    destroy(old).await;

    let mut modern = sandbox(&sock, Some("k"));
    discover(&mut modern, 1).await;
    assert_eq!(count_stateless(&mut modern, 2).await, 4, "and back");

    // Other keys and no key: their own children, in both eras.
    let mut other_old = sandbox(&sock, Some("k2"));
    other_old.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut other_old, 1).await, 1);
    let mut other_modern = sandbox(&sock, Some("k3"));
    assert_eq!(count_stateless(&mut other_modern, 1).await, 1);
    let mut keyless = sandbox(&sock, None);
    assert_eq!(count_stateless(&mut keyless, 1).await, 1);
    let mut keyless_old = sandbox(&sock, None);
    keyless_old.initialize("2025-06-18").await;
    assert_eq!(count_handshake(&mut keyless_old, 1).await, 1);
    assert_eq!(count_stateless(&mut modern, 3).await, 5);
}

/// A handshake session and a 2026-07-28 agent on one key at once: equal ids and progress
/// tokens in flight together at one child, each gets only its own answers and progress.
#[tokio::test]
async fn both_eras_on_one_key_at_once_get_only_their_own_answers_and_progress() {
    if !have_python3() {
        return;
    }
    let (_serve, sock, _dir) = serve_unix(&["--scope", "per-key"], &[]);
    let mut old = sandbox(&sock, Some("same"));
    let mut modern = sandbox(&sock, Some("same"));
    old.initialize("2025-06-18").await;
    discover(&mut modern, 1).await;
    let slow = json!({"name": "slow", "arguments": {"steps": 3, "seconds": 0.3},
        "_meta": {"progressToken": "p"}});
    old.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": slow}))
        .await;
    let mut modern_slow = stateless::req(json!(5), "tools/call", slow.clone());
    modern_slow["params"]["_meta"]["progressToken"] = json!("p");
    modern.send(modern_slow).await;
    old.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "old"}}}))
        .await;
    modern
        .send(stateless::call(6, "echo", json!({"text": "modern"})))
        .await;
    for (c, me) in [(&mut old, "old"), (&mut modern, "modern")] {
        let (six, _) = c.recv_answer(json!(6)).await;
        assert_eq!(tool_text(&six), me);
        let (five, before) = c.recv_answer(json!(5)).await;
        assert_eq!(tool_text(&five), "slow done", "{five}");
        let progress: Vec<&Value> = before
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(
            progress.len(),
            3,
            "{me}: exactly its own progress: {before:?}"
        );
        assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p"));
    }
}

/// The crossing-era scenario with `@modelcontextprotocol/server-memory`: a dual-era agent
/// stores an entity, a handshake-only agent of the same key reads it back, and the other way.
#[tokio::test]
async fn server_memory_keeps_one_graph_for_agents_of_either_era() {
    let Some((_serve, sock, _dir)) = serve_memory() else {
        return;
    };
    let entity = |name: &str| json!({"entities": [{"name": name, "entityType": "note", "observations": ["kept"]}]});
    let mut modern = sandbox(&sock, Some("mem"));
    discover(&mut modern, 1).await;
    modern
        .send(stateless::call(2, "create_entities", entity("from-modern")))
        .await;
    let (made, _) = modern.recv_answer(json!(2)).await;
    assert!(made.get("result").is_some(), "{made}");
    destroy(modern).await;

    let mut old = sandbox(&sock, Some("mem"));
    old.initialize("2025-06-18").await;
    let graph = old
        .call(
            json!(1),
            "tools/call",
            json!({"name": "read_graph", "arguments": {}}),
        )
        .await;
    assert!(graph.to_string().contains("from-modern"), "{graph}");
    let made = old
        .call(
            json!(2),
            "tools/call",
            json!({"name": "create_entities", "arguments": entity("from-old")}),
        )
        .await;
    assert!(made.get("result").is_some(), "{made}");
    destroy(old).await;

    let mut modern = sandbox(&sock, Some("mem"));
    modern
        .send(stateless::call(1, "read_graph", json!({})))
        .await;
    let (graph, _) = modern.recv_answer(json!(1)).await;
    let text = graph.to_string();
    assert!(
        text.contains("from-old") && text.contains("from-modern"),
        "{graph}"
    );
}
