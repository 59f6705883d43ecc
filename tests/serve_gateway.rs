//! `serve --config FILE`: many servers behind one socket. Real processes and sockets: the pinned
//! server-everything and server-memory over stdio, a remote entry relayed to a second serve that
//! requires a token only the gateway's environment holds, the TS SDK client through `connect`
//! using the printed client config; users' real files served unmodified; startup refusals that
//! name the JSON path; hostile routes.

mod common;

use common::http::{Session, client};
use common::node::{node_dir, node_peers};
use common::peer::run_bounded;
use common::serve::{Opts, Serve, fixture, have_python3};
use common::{BIN, repo};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REMOTE_SECRET: &str = "remote-secret-7d1f";

fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// `serve --config FILE --print-client-config ARGS`, its stdout.
fn print_client_config(file: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--config")
        .arg(file)
        .arg("--print-client-config")
        .args(args)
        .envs(env.iter().copied());
    let done = run_bounded("print-client-config", &mut cmd, Duration::from_secs(10)).unwrap();
    assert!(done.status.success(), "{}", done.stderr);
    done.stdout
}

/// A gateway on 127.0.0.1 serving the file `file` makes of the python fixture's entry; `None`
/// without python3 (outside CI).
fn python_gateway(file: impl FnOnce(Value) -> Value) -> Option<(tempfile::TempDir, Serve)> {
    if !have_python3() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.json");
    write(
        &path,
        &file(json!({"command": "python3", "args": [fixture()]})),
    );
    let gw = Serve::with_config(&path, &["--listen", "127.0.0.1:0"], &[]).unwrap();
    Some((dir, gw))
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_servers_behind_one_socket_through_connect() {
    let Some(peers) = node_peers() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The remote: a second serve that wants a token only the gateway's environment holds.
    let remote = Serve::start_with(Opts {
        child: peers.everything_stdio(),
        env: &[("MCP_BRIDGE_AUTH_TOKEN", REMOTE_SECRET)],
        ..Opts::default()
    });
    let sock = dir.path().join("gw.sock");
    let file = dir.path().join("gw.json");
    write(
        &file,
        &json!({
            "mcpServers": {
                "everything": {"command": peers.node, "args": [peers.everything, "stdio"]},
                "memory": {"command": peers.node, "args": [peers.memory],
                           "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl")}},
                "remote": {"type": "http", "url": remote.mcp(),
                           "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}}
            },
            "mcpBridge": {"listen": [format!("unix:{}", sock.display()), "127.0.0.1:0"]}
        }),
    );
    let env = [("REMOTE_TOKEN", REMOTE_SECRET)];
    // Printing needs no secret: the variable is unset here.
    let printed = print_client_config(&file, &["--socket", sock.to_str().unwrap()], &[]);
    assert!(!printed.contains(REMOTE_SECRET), "{printed}");
    assert!(
        !printed.contains(&remote.url),
        "the remote URL stays on the host: {printed}"
    );
    let client_file = dir.path().join("client.mcp.json");
    std::fs::write(&client_file, &printed).unwrap();

    let gw = Serve::with_config(&file, &[], &env).unwrap();
    // The sandbox side: `mcp-bridge` on PATH, no token anywhere in its environment.
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(&peers.node);
    cmd.arg(node_dir().join("gateway-client.mjs"))
        .arg(&client_file)
        .current_dir(node_dir())
        .env_clear()
        .env("PATH", path)
        .env("RUST_LOG", "mcp_bridge=debug")
        .env("INTEROP_TIMEOUT_MS", "40000");
    let done = run_bounded("gateway-client", &mut cmd, Duration::from_secs(45)).unwrap();
    eprintln!("[gateway-client stderr]\n{}", done.stderr);
    assert!(done.status.success(), "{}", done.stderr);
    let summary: Value = serde_json::from_str(done.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["everything"]["echo"], "Echo: hi everything",
        "{summary}"
    );
    assert_eq!(summary["remote"]["echo"], "Echo: hi remote", "{summary}");
    let graph = summary["memory"]["graph"].as_str().unwrap_or("");
    assert!(graph.contains("many servers, one socket"), "{summary}");
    // connect's own log (debug) never saw the remote's token.
    assert!(!done.stderr.contains(REMOTE_SECRET));
    assert!(!gw.log.text().contains(REMOTE_SECRET));

    let (status, list) = get_json(&format!("{}/servers", gw.url), None).await;
    assert_eq!(status, 200);
    let kinds: Vec<(String, String)> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("everything", "stdio"),
            ("memory", "stdio"),
            ("remote", "remote")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(list["servers"][1]["routes"]["mcp"], "/servers/memory/mcp");
    let metrics = common::http::metrics(&gw.url, None).await;
    assert!(
        metrics.contains("mcp_bridge_sessions_created_total{server=\"memory\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mcp_bridge_sessions_created_total{server=\"remote\"} 1"));
}

#[tokio::test]
async fn users_files_are_served_unmodified() {
    for (name, want) in [
        (
            "claude_desktop_config.json",
            vec!["filesystem", "github", "memory", "postgres", "sqlite"],
        ),
        (
            "vscode-mcp.json",
            vec!["fetch", "github", "legacy-sse", "memory", "playwright"],
        ),
    ] {
        let file = repo().join("tests/fixtures").join(name);
        let env = [("GITHUB_TOKEN", "gho_fixture_secret_value")];
        let gw = Serve::with_config(&file, &["--listen", "127.0.0.1:0"], &env).unwrap();
        let (status, list) = get_json(&format!("{}/servers", gw.url), None).await;
        assert_eq!(status, 200);
        let names: Vec<&str> = list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "{name}");
        let printed =
            print_client_config(&file, &["--url", "http://host.docker.internal:9000"], &env);
        for secret in [
            "gho_fixture_secret_value",
            "ghp_fixtureNotARealToken",
            "githubcopilot",
        ] {
            assert!(!printed.contains(secret), "{name}: {secret} in {printed}");
        }
        assert!(printed.contains("http://host.docker.internal:9000/servers/memory/mcp"));
    }
}

#[test]
fn a_bad_file_is_refused_at_startup_naming_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            r#"{"mcpServers": {"db": {"command": "pg", "args": ["a", 3]}}}"#,
            "mcpServers.db.args[1]",
        ),
        (
            r#"{"mcpServers": {"db": {"command": "pg"}}, "mcpBridge": {"sesionTtl": "1m"}}"#,
            "mcpBridge.sesionTtl: unknown setting",
        ),
        (
            r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
            r#"mcpServers["a b"]: server name"#,
        ),
        (
            r#"{"mcpServers": {"db": {"url": "${NOT_SET_H11}"}}}"#,
            "NOT_SET_H11",
        ),
    ] {
        let file = dir.path().join("bad.json");
        std::fs::write(&file, text).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file);
        let done = run_bounded("serve", &mut cmd, Duration::from_secs(10)).unwrap();
        assert!(!done.status.success(), "{text}");
        assert!(done.stderr.contains(want), "{text}: {}", done.stderr);
    }
}

#[tokio::test]
async fn hostile_routes_do_not_escape_and_listing_needs_the_token() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.json");
    let py = json!({"command": "python3", "args": [fixture()]});
    write(&file, &json!({"mcpServers": {"a": py, "b": py}}));
    let token = "gateway-token-1";
    let gw = Serve::with_config(
        &file,
        &["--listen", "127.0.0.1:0"],
        &[("MCP_BRIDGE_AUTH_TOKEN", token)],
    )
    .unwrap();
    let (status, _) = get_json(&format!("{}/servers", gw.url), None).await;
    assert_eq!(status, 401);
    let (status, _) = get_json(&format!("{}/metrics", gw.url), None).await;
    assert_eq!(status, 401);
    let s = Session::open_full(
        &format!("{}/servers/a/mcp", gw.url),
        "2025-06-18",
        Some(token),
    )
    .await
    .unwrap();
    let answer = s
        .request(common::http::call_msg(
            json!(1),
            "echo",
            json!({"text": "x"}),
        ))
        .await;
    assert_eq!(answer.unwrap()["result"]["content"][0]["text"], "x");
    for path in [
        "/servers/..%2Fa/mcp",
        "/servers/a%2Fmcp",
        "/servers/a/..%2F..%2Fmetrics",
        "/servers/nope/mcp",
        "/servers/a",
        "/servers/",
        "/mcp",
    ] {
        let resp = client()
            .post(format!("{}{path}", gw.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(common::http::init_msg(1).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    // (`..` and `%2e%2e` segments are resolved by any HTTP client before sending.)
    // The session of server a is not reachable through server b's route.
    let cross = client()
        .post(format!("{}/servers/b/mcp", gw.url))
        .bearer_auth(token)
        .header("mcp-session-id", &s.id)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(common::http::call_msg(json!(3), "pid", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 404);
}

#[tokio::test]
async fn one_server_is_also_at_mcp_and_its_sse_endpoint_keeps_the_prefix() {
    let Some((_dir, gw)) = python_gateway(|py| json!({"mcpServers": {"only": py}})) else {
        return;
    };
    let s = Session::open(&format!("{}/mcp", gw.url)).await.unwrap();
    let answer = s.request(common::http::call_msg(
        json!(1),
        "echo",
        json!({"text": "alias"}),
    ));
    assert_eq!(
        answer.await.unwrap()["result"]["content"][0]["text"],
        "alias"
    );
    // The session opened on the alias is the server's: its own route finds it too.
    let mut by_name = Session::open(&format!("{}/servers/only/mcp", gw.url))
        .await
        .unwrap();
    by_name.id = s.id.clone();
    let answer = by_name.request(common::http::call_msg(
        json!(2),
        "echo",
        json!({"text": "same"}),
    ));
    assert_eq!(
        answer.await.unwrap()["result"]["content"][0]["text"],
        "same"
    );

    for (stream, want) in [
        ("/servers/only/sse", "/servers/only/messages?sessionId="),
        ("/sse", "/messages?sessionId="),
    ] {
        let resp = client()
            .get(format!("{}{stream}", gw.url))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut events = common::http::SseReader::new(resp);
        let first = events.next().await.unwrap().expect("an endpoint event");
        let endpoint = String::from_utf8_lossy(&first.data).into_owned();
        assert!(endpoint.starts_with(want), "{stream}: {endpoint}");
        let posted = client()
            .post(format!("{}{endpoint}", gw.url))
            .header("content-type", "application/json")
            .body(common::http::init_msg(1).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202, "{stream}");
        let (_, init) = events.next_message().await.unwrap();
        assert_eq!(init["result"]["serverInfo"]["name"], "stdio-fixture");
    }
}

#[tokio::test]
async fn the_listing_shows_keyed_children_and_who_is_attached() {
    let Some((_dir, gw)) = python_gateway(
        |py| json!({"mcpServers": {"k": py}, "mcpBridge": {"servers": {"k": {"scope": "per-key"}}}}),
    ) else {
        return;
    };
    let open = || async {
        let resp = client()
            .post(format!("{}/servers/k/mcp", gw.url))
            .header("mcp-bridge-session-key", "sandbox-1")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(common::http::init_msg(1).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (open().await, open().await);
    assert_ne!(a, b);
    let (status, list) = get_json(&format!("{}/servers", gw.url), None).await;
    assert_eq!(status, 200);
    let named = &list["servers"][0]["state"]["named_children"];
    assert_eq!(
        named,
        &json!([{"child": "anonymous/sandbox-1", "attached_sessions": 2, "stateless_in_flight": 0}]),
        "{list}"
    );
    // Session ids are not listed: only the child's name (identity and key) and the counts.
    assert!(!list.to_string().contains(&a), "{list}");
}

/// Logs name the server they are about: a child started by a session's first request logs under
/// its server's name, and so do its stderr lines, while later requests of the session run
/// without a span of their own.
#[tokio::test]
async fn a_servers_children_log_under_its_name() {
    let Some((_dir, gw)) =
        python_gateway(|py| json!({"mcpServers": {"alpha": py.clone(), "beta": py}}))
    else {
        return;
    };
    let s = Session::open(&format!("{}/servers/beta/mcp", gw.url))
        .await
        .unwrap();
    for id in 1..=3 {
        let answer = s
            .request(common::http::call_msg(
                json!(id),
                "echo",
                json!({"text": "named"}),
            ))
            .await
            .unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "named");
    }
    let started = gw.wait_log("child started");
    assert!(started.contains("name=beta"), "{started}");
    let stderr = gw.wait_log("stdio fixture started");
    assert!(stderr.contains("name=beta"), "{stderr}");
}
