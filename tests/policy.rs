//! Least privilege end to end (`serve --config` with `mcpBridge.clients`, per-server `policy`,
//! `rateLimit` and `audit`), on the real binary, over a Streamable HTTP session, sse and the
//! stateless 2026-07-28 path: lists filtered, refused calls answered by the gateway and never
//! seen by the child, clients kept to their servers, the audit log, the rate limit, hot reload.

mod common;

use common::http::{Session, SseReader, call_msg, client, init_msg};
use common::node::node_peers;
use common::serve::{Serve, fixture, have_python3};
use common::{WAIT, eventually, stateless, tool_text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A gateway file and the running `serve --config` that reads it.
struct Gateway {
    serve: Serve,
    /// Holds the file while serve runs.
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Gateway {
    /// `serve --config FILE` for `config` (written to a temp dir); `env`: the gateway's
    /// environment (token variables).
    fn start(config: &Value, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.json");
        std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let serve = Serve::start_config(&file, &[], env);
        Gateway {
            serve,
            _dir: dir,
            file,
        }
    }

    /// `URL/servers/NAME/mcp`.
    fn mcp(&self, server: &str) -> String {
        format!("{}/servers/{server}/mcp", self.serve.url)
    }

    /// Rewrites the file and waits (bounded) until serve says it reloaded.
    fn rewrite(&self, config: &Value) {
        let before = self.serve.log.text().matches("reload:").count();
        std::fs::write(&self.file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while self.serve.log.text().matches("reload:").count() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no reload logged:\n{}",
                self.serve.log.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The Python fixture as a server entry, recording what it receives in `record`.
fn fixture_server(record: &Path, extra: &[&str]) -> Value {
    let mut args = vec![json!(fixture()), json!("--record"), json!(record)];
    args.extend(extra.iter().map(|a| json!(a)));
    json!({"command": "python3", "args": args})
}

async fn open(url: &str, token: Option<&str>) -> Session {
    Session::open_full(url, "2025-06-18", token)
        .await
        .expect("a session")
}

async fn tool_names(s: &Session) -> Vec<String> {
    let list = s
        .request(json!({"jsonrpc":"2.0","id":"l","method":"tools/list"}))
        .await
        .unwrap();
    let mut names: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a tool list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn assert_denied(answer: &Value, rule: &str) {
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert_eq!(answer["error"]["data"]["source"], "mcp-bridge", "{answer}");
    assert_eq!(
        answer["error"]["data"]["reason"], "policy-denied",
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["rule"], rule, "{answer}");
}

/// Tool names the child was asked to call, from its record file.
fn calls_seen(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "tools/call")
        .map(|m| m["params"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_and_deny_lists_and_read_only_change_what_server_everything_offers() {
    let Some(node) = node_peers() else { return };
    let everything = json!({"command": node.node, "args": [node.everything, "stdio"]});
    let config = json!({
        "mcpServers": {"open": everything, "allowed": everything, "denied": everything,
                       "readonly": everything},
        "mcpBridge": {"servers": {
            "allowed": {"policy": {"tools": {"allow": ["get-*", "echo"], "deny": ["get-env"]}}},
            "denied": {"policy": {"tools": {"deny": ["echo", "get-*"]}}},
            "readonly": {"policy": {"readOnly": true}}
        }}
    });
    let gw = Gateway::start(&config, &[]);
    let all = tool_names(&open(&gw.mcp("open"), None).await).await;
    assert!(all.contains(&"echo".to_owned()) && all.contains(&"get-env".to_owned()));

    let allowed = tool_names(&open(&gw.mcp("allowed"), None).await).await;
    let expect: Vec<String> = all
        .iter()
        .filter(|n| (n.starts_with("get-") || *n == "echo") && *n != "get-env")
        .cloned()
        .collect();
    assert_eq!(allowed, expect);

    let s = open(&gw.mcp("denied"), None).await;
    let denied = tool_names(&s).await;
    let expect: Vec<String> = all
        .iter()
        .filter(|n| !n.starts_with("get-") && *n != "echo")
        .cloned()
        .collect();
    assert_eq!(denied, expect);
    let refused = s
        .request(call_msg(json!(5), "echo", json!({"message": "x"})))
        .await
        .unwrap();
    assert_denied(&refused, "deny");

    // readOnly: only tools annotated readOnlyHint: true, and a call of another is refused.
    let s = open(&gw.mcp("readonly"), None).await;
    let list = s
        .request(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap();
    let tools = list["result"]["tools"].as_array().unwrap();
    assert!(!tools.is_empty() && tools.len() < all.len(), "{list}");
    for t in tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
    }
    let ok = s
        .request(call_msg(json!(2), "echo", json!({"message": "ro"})))
        .await
        .unwrap();
    assert!(tool_text(&ok).contains("ro"), "{ok}");
    let refused = s
        .request(call_msg(json!(3), "toggle-simulated-logging", json!({})))
        .await
        .unwrap();
    assert_denied(&refused, "read-only");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_call_never_reaches_the_child_on_any_path() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("seen.jsonl");
    let config = json!({
        "mcpServers": {"fx": fixture_server(&record, &["--grow"])},
        "mcpBridge": {"servers": {"fx": {"policy": {
            "tools": {"allow": ["echo", "list_changed", "grown", "crash"], "deny": ["crash"]}
        }}}}
    });
    let gw = Gateway::start(&config, &[]);

    // Streamable HTTP session.
    let s = open(&gw.mcp("fx"), None).await;
    assert_eq!(tool_names(&s).await, ["echo", "list_changed"]);
    let refused = s
        .request(call_msg(json!(2), "crash", json!({})))
        .await
        .unwrap();
    assert_denied(&refused, "deny");
    let refused = s
        .request(call_msg(json!(3), "env", json!({})))
        .await
        .unwrap();
    assert_denied(&refused, "not-allowed");
    let ok = s
        .request(call_msg(json!(4), "echo", json!({"text": "still here"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&ok), "still here");
    // After list_changed the child lists one more tool: the new list is filtered too.
    s.request(call_msg(json!(5), "list_changed", json!({})))
        .await
        .unwrap();
    assert_eq!(tool_names(&s).await, ["echo", "grown", "list_changed"]);

    // sse: the refusal comes on the session's stream.
    let c = client();
    let resp = c
        .get(format!("{}/servers/fx/sse", gw.serve.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = SseReader::new(resp);
    let endpoint = String::from_utf8(events.next().await.unwrap().unwrap().data.to_vec()).unwrap();
    let post = |body: Value| {
        c.post(format!("{}{}", gw.serve.url, endpoint))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(post(init_msg(1)).await.unwrap().status(), 202);
    events.next_message().await.unwrap();
    assert_eq!(
        post(call_msg(json!(9), "crash", json!({})))
            .await
            .unwrap()
            .status(),
        202
    );
    let (_, refused) = events.next_message().await.unwrap();
    assert_eq!(refused["id"], 9);
    assert_denied(&refused, "deny");

    // The stateless revision.
    let url = gw.mcp("fx");
    let resp = stateless::post(&url, &stateless::call(21, "crash", json!({})), &[]).await;
    let (_, code, body) = stateless::status_code(resp).await;
    assert_eq!(code, -32602, "{body}");
    assert_denied(&body, "deny");
    let list = stateless::req(json!(22), "tools/list", json!({}));
    let (_, _, body) = stateless::status_code(stateless::post(&url, &list, &[]).await).await;
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"crash") && names.contains(&"echo"),
        "{body}"
    );

    let seen = calls_seen(&record);
    assert!(seen.contains(&"echo".to_owned()), "{seen:?}");
    assert!(
        !seen.iter().any(|n| n == "crash" || n == "env"),
        "the child saw a refused call: {seen:?}"
    );
}

fn two_clients_config(dir: &Path, record: &Path) -> Value {
    let token_file = dir.join("b.token");
    std::fs::write(&token_file, "token-of-b\n").unwrap();
    json!({
        "mcpServers": {"one": fixture_server(record, &[]), "two": fixture_server(record, &[])},
        "mcpBridge": {
            "clients": {
                "a": {"tokenEnv": "A_TOKEN", "servers": ["one"]},
                "b": {"tokenFile": token_file, "servers": "*"}
            },
            "servers": {"one": {"policy": {
                "tools": {"allow": ["echo"]},
                "clients": {"b": {"tools": {"allow": ["echo", "pid"]}}}
            }}}
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_see_their_own_servers_and_tools() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = two_clients_config(dir.path(), &dir.path().join("seen.jsonl"));
    let gw = Gateway::start(&config, &[("A_TOKEN", "token-of-a")]);

    let a = open(&gw.mcp("one"), Some("token-of-a")).await;
    assert_eq!(tool_names(&a).await, ["echo"]);
    let b = open(&gw.mcp("one"), Some("token-of-b")).await;
    assert_eq!(tool_names(&b).await, ["echo", "pid"]);
    let b2 = open(&gw.mcp("two"), Some("token-of-b")).await;
    assert!(tool_names(&b2).await.len() > 2);

    // a may not reach `two`: 404, as for a server that does not exist.
    let err = Session::open_full(&gw.mcp("two"), "2025-06-18", Some("token-of-a"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("404"), "{err}");
    let err = Session::open_full(&gw.mcp("nope"), "2025-06-18", Some("token-of-a"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("404"), "{err}");
    // No token, a wrong one: 401.
    for token in [None, Some("token-of-c")] {
        let err = Session::open_full(&gw.mcp("one"), "2025-06-18", token)
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("401"), "{err}");
    }
    // b cannot use a's session.
    let stolen = b
        .http
        .post(&a.url)
        .bearer_auth("token-of-b")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &a.id)
        .body(call_msg(json!(1), "echo", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    // The stateless path is kept to the grant too.
    let resp = client()
        .post(gw.mcp("two"))
        .bearer_auth("token-of-a")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", stateless::V)
        .header("mcp-method", "tools/list")
        .body(stateless::req(json!(1), "tools/list", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_has_a_line_per_request_and_redacts_when_asked() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut config = json!({
        "mcpServers": {"fx": fixture_server(&dir.path().join("seen.jsonl"), &[])},
        "mcpBridge": {
            "servers": {"fx": {"policy": {"tools": {"deny": ["crash"]}}}},
            "audit": {"file": audit}
        }
    });
    let gw = Gateway::start(&config, &[]);
    let s = open(&gw.mcp("fx"), None).await;
    s.request(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap();
    s.request(call_msg(
        json!(2),
        "echo",
        json!({"text": "hi", "apiKey": "k-123"}),
    ))
    .await
    .unwrap();
    s.request(call_msg(json!(3), "crash", json!({})))
        .await
        .unwrap();
    s.request(json!({"jsonrpc":"2.0","id":4,"method":"nothing/here"}))
        .await
        .unwrap();
    // initialize + 4 requests; notifications are not requests.
    let lines = audit_lines(&audit, 5).await;
    let fields = [
        "time",
        "client",
        "peerUid",
        "peerPid",
        "session",
        "key",
        "server",
        "method",
        "name",
        "durationMs",
        "outcome",
        "code",
        "reason",
        "bytesIn",
        "bytesOut",
    ];
    for l in &lines {
        for f in fields {
            assert!(l.get(f).is_some(), "{f} missing: {l}");
        }
        assert!(l.get("arguments").is_none(), "{l}");
        assert_eq!(l["server"], "fx");
        assert_eq!(l["session"], s.id.as_str());
    }
    let methods: Vec<&str> = lines
        .iter()
        .map(|l| l["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "tools/list",
            "tools/call",
            "tools/call",
            "nothing/here"
        ]
    );
    assert_eq!(lines[2]["name"], "echo");
    assert_eq!(lines[2]["outcome"], "ok");
    assert_eq!(
        (lines[3]["outcome"].as_str(), lines[3]["reason"].as_str()),
        (Some("denied"), Some("policy-denied"))
    );
    assert_eq!(
        (lines[4]["outcome"].as_str(), lines[4]["code"].as_i64()),
        (Some("error"), Some(-32601))
    );
    assert!(lines[2]["bytesIn"].as_u64().unwrap() > 0);
    assert!(lines[2]["bytesOut"].as_u64().unwrap() > 0);

    // Arguments on (by reload): logged, with apiKey redacted.
    config["mcpBridge"]["audit"] = json!({"file": audit, "arguments": true, "redact": ["apiKey"]});
    gw.rewrite(&config);
    s.request(call_msg(
        json!(5),
        "echo",
        json!({"text": "hi", "apiKey": "k-123"}),
    ))
    .await
    .unwrap();
    let lines = audit_lines(&audit, 6).await;
    assert_eq!(
        lines[5]["arguments"],
        json!({"text": "hi", "apiKey": "[redacted]"}),
        "{}",
        lines[5]
    );
    assert!(!std::fs::read_to_string(&audit).unwrap().contains("k-123"));

    // logrotate: the file is moved away, SIGHUP, and the next line starts a new file.
    std::fs::rename(&audit, dir.path().join("audit.jsonl.1")).unwrap();
    common::peer::signal(gw.serve.child.id(), "HUP");
    gw.serve.wait_log("SIGHUP");
    s.request(json!({"jsonrpc":"2.0","id":6,"method":"ping"}))
        .await
        .unwrap();
    let lines = audit_lines(&audit, 1).await;
    assert_eq!(lines[0]["method"], "ping");
}

/// The audit file's lines once it has `n` (bounded wait).
async fn audit_lines(path: &Path, n: usize) -> Vec<Value> {
    let count = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    eventually(&format!("{n} audit lines"), || count() >= n).await;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_call_past_the_rate_limit_waits_and_a_later_one_passes() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "mcpServers": {"fx": fixture_server(&dir.path().join("seen.jsonl"), &[])},
        "mcpBridge": {"rateLimit": {"calls": 3, "per": "3s"}}
    });
    let gw = Gateway::start(&config, &[]);
    let s = open(&gw.mcp("fx"), None).await; // the first call: initialize
    let mut limited = None;
    for id in 1..=5 {
        let a = s
            .request(call_msg(json!(id), "echo", json!({"text": "x"})))
            .await
            .unwrap();
        if a["error"]["data"]["reason"] == "rate-limited" {
            limited = Some(a);
            break;
        }
    }
    let limited = limited.expect("the fourth call in the interval is refused");
    assert_eq!(limited["error"]["code"], -32000);
    let wait = limited["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 1000, "{limited}");
    assert!(
        limited["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry in"),
        "{limited}"
    );
    // Waiting is the behaviour under test: the bucket refills with time.
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let ok = s
        .request(call_msg(json!(9), "echo", json!({"text": "later"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&ok), "later");
    let metrics = common::http::metrics(&gw.serve.url, None).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mcp_bridge_rate_limited_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_change_by_reload_applies_to_the_next_list_and_call() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("seen.jsonl");
    let mut config = json!({
        "mcpServers": {"fx": fixture_server(&record, &[])},
        "mcpBridge": {"servers": {"fx": {"policy": {"tools": {"deny": ["echo"]}}}}}
    });
    let gw = Gateway::start(&config, &[]);
    let s = open(&gw.mcp("fx"), None).await;
    assert!(!tool_names(&s).await.contains(&"echo".to_owned()));
    let refused = s
        .request(call_msg(json!(1), "echo", json!({})))
        .await
        .unwrap();
    assert_denied(&refused, "deny");

    config["mcpBridge"]["servers"]["fx"]["policy"]["tools"]["deny"] = json!(["pid"]);
    gw.rewrite(&config);
    // The same session: its next list and call follow the new rules.
    let names = tool_names(&s).await;
    assert!(names.contains(&"echo".to_owned()) && !names.contains(&"pid".to_owned()));
    let ok = s
        .request(call_msg(json!(2), "echo", json!({"text": "now"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&ok), "now");
    let refused = s
        .request(call_msg(json!(3), "pid", json!({})))
        .await
        .unwrap();
    assert_denied(&refused, "deny");
    // The stateless path too.
    let resp = stateless::post(&gw.mcp("fx"), &stateless::call(4, "pid", json!({})), &[]).await;
    let (_, code, body) = stateless::status_code(resp).await;
    assert_eq!(code, -32602, "{body}");
}

/// One HTTP/1.1 request over a Unix socket; the whole response as text.
async fn unix_request(path: &Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unix_socket_peer_is_known_by_its_uid() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mcp.sock");
    let audit = dir.path().join("audit.jsonl");
    let uid = rustix::process::getuid().as_raw();
    let config = json!({
        "mcpServers": {"fx": fixture_server(&dir.path().join("seen.jsonl"), &[])},
        "mcpBridge": {
            "clients": {"local": {"uid": uid, "servers": ["fx"]}},
            "audit": {"file": audit}
        }
    });
    let file = dir.path().join("gateway.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let listen = format!("unix:{}", sock.display());
    let serve = Serve::start_config(&file, &["--listen", &listen], &[]);
    serve.wait_log(&format!("listening on {listen}"));
    let body = init_msg(1).to_string();
    let req = format!(
        "POST /servers/fx/mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
         Mcp-Bridge-Session-Key: box-1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = unix_request(&sock, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let lines = audit_lines(&audit, 1).await;
    assert_eq!(lines[0]["client"], "local");
    assert_eq!(lines[0]["peerUid"], uid);
    assert_eq!(lines[0]["key"], "box-1");
    assert!(lines[0]["peerPid"].as_u64().is_some(), "{}", lines[0]);
    // Over TCP there is no uid: no credential, 401.
    let err = Session::open_full(&format!("{}/servers/fx/mcp", serve.url), "2025-06-18", None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_with_one_session_key_get_children_of_their_own() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = two_clients_config(dir.path(), &dir.path().join("seen.jsonl"));
    config["mcpBridge"]["servers"] = json!({});
    let gw = Gateway::start(&config, &[("A_TOKEN", "token-of-a")]);
    let url = gw.mcp("one");
    let pid = |token: &'static str| {
        let url = url.clone();
        async move {
            let auth = format!("Bearer {token}");
            let extra = [
                ("authorization", auth.as_str()),
                ("mcp-bridge-session-key", "shared-key"),
            ];
            let resp = stateless::post(&url, &stateless::call(1, "pid", json!({})), &extra).await;
            let (_, _, body) = stateless::status_code(resp).await;
            tool_text(&body)
        }
    };
    let a = pid("token-of-a").await;
    assert!(a.parse::<u32>().is_ok(), "{a}");
    assert_eq!(pid("token-of-a").await, a, "one client, one key: one child");
    let b = pid("token-of-b").await;
    assert!(b.parse::<u32>().is_ok(), "{b}");
    assert_ne!(a, b, "the key is scoped to the client's name");
    // The listing shows a client its own keyed children only, never another client's keys.
    let list: Value = client()
        .get(format!("{}/servers", gw.serve.url))
        .bearer_auth("token-of-a")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    let named = list["servers"][0]["state"]["named_children"].to_string();
    assert!(named.contains("client:a/shared-key"), "{list}");
    assert!(!named.contains("client:b"), "{list}");
    // And so does /metrics, which names the children too.
    let metrics = common::http::metrics(&gw.serve.url, Some("token-of-a")).await;
    assert!(metrics.contains("client:a/shared-key"), "{metrics}");
    assert!(!metrics.contains("client:b"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_audit_queue_drops_records_and_never_stalls_calls() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo (coreutils) makes the FIFO"
    );
    // Linux opens a FIFO read-write without waiting for the other end: this is a reader that
    // never reads, so serve's own open (write-only, at start) does not block, and its writes do
    // once the pipe (64 KiB) is full.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    // With arguments logged, each line carries the 16 KiB argument and result: the pipe is
    // full after a few lines, and a queue of one record fills right after.
    let config = json!({
        "mcpServers": {"fx": fixture_server(&dir.path().join("seen.jsonl"), &[])},
        "mcpBridge": {"audit": {"file": fifo, "arguments": true, "queue": 1}}
    });
    let mut gw = Gateway::start(&config, &[]);
    let s = open(&gw.mcp("fx"), None).await;
    let big = "x".repeat(16 << 10);
    let calls = async {
        for i in 0..40 {
            let answer = s
                .request(call_msg(json!(i), "echo", json!({"text": big})))
                .await
                .unwrap();
            assert_eq!(tool_text(&answer).len(), big.len(), "call {i}");
        }
    };
    tokio::time::timeout(WAIT, calls)
        .await
        .expect("40 calls answered while the audit writer is stuck");

    let metrics = common::http::metrics(&gw.serve.url, None).await;
    let dropped = common::http::series(&metrics, "mcp_bridge_audit_dropped_total")
        .unwrap_or_else(|| panic!("no audit drop counter in /metrics:\n{metrics}"));
    assert!(dropped > 0.0, "no audit record was dropped:\n{metrics}");

    // A writer still stuck does not keep serve from stopping (bounded within WAIT).
    assert!(gw.serve.terminate().success(), "{}", gw.serve.log.text());
    gw.serve.wait_log("did not take its last records");
    drop(reader);
}
