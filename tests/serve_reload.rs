//! Hot reload of `serve --config`: servers added, removed and changed while sessions are open on
//! others (and on them), a broken file that keeps the running configuration, SIGHUP re-reading
//! what polling cannot see (an `envFile`), and the drain timeout ending retired sessions.

mod common;

use common::eventually;
use common::http::{Session, call_msg, client, init_msg};
use common::peer::signal;
use common::serve::{Serve, fixture, have_python3};
use serde_json::{Value, json};
use std::path::Path;

/// Replaces the file in one step, as editors do, so the poller never reads half a file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn server(gen_env: Option<&str>) -> Value {
    let mut s = json!({"command": "python3", "args": [fixture()]});
    match gen_env {
        Some(g) => s["env"] = json!({"GEN": g}),
        None => s["envFile"] = json!("a.env"),
    }
    s
}

fn file(servers: Value) -> String {
    json!({"mcpServers": servers, "mcpBridge": {"drainTimeout": "3s"}}).to_string()
}

/// The `GEN` variable the session's child sees.
async fn generation(s: &Session) -> String {
    let answer = s
        .request(call_msg(json!(7), "env", json!({})))
        .await
        .unwrap();
    let env: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    env["GEN"].as_str().unwrap_or("").to_owned()
}

async fn echo_ok(s: &Session) -> bool {
    match s
        .request(call_msg(json!(1), "echo", json!({"text": "still here"})))
        .await
    {
        Ok(a) => a["result"]["content"][0]["text"] == "still here",
        Err(_) => false,
    }
}

async fn names(gw: &Serve) -> Vec<String> {
    let text = client()
        .get(format!("{}/servers", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn add_remove_change_while_sessions_stay_open() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.json");
    std::fs::write(dir.path().join("a.env"), "GEN=a1\n").unwrap();
    let v1 = file(json!({"a": server(None), "b": server(Some("b1")), "c": server(Some("c1"))}));
    replace(&path, &v1);
    let gw = Serve::with_config(&path, &["--listen", "127.0.0.1:0"], &[]).unwrap();
    let route = |name: &str| format!("{}/servers/{name}/mcp", gw.url);
    let sa = Session::open(&route("a")).await.unwrap();
    let sb = Session::open(&route("b")).await.unwrap();
    let sc = Session::open(&route("c")).await.unwrap();
    assert_eq!(generation(&sb).await, "b1");

    // b changes, c goes, d comes.
    let v2 = file(json!({"a": server(None), "b": server(Some("b2")), "d": server(Some("d1"))}));
    replace(&path, &v2);
    gw.wait_log("reload: +d -c ~b");
    assert!(echo_ok(&sa).await, "the session on a is not disturbed");
    assert_eq!(
        generation(&sb).await,
        "b1",
        "an open session keeps its definition"
    );
    let sb2 = Session::open(&route("b")).await.unwrap();
    assert_eq!(
        generation(&sb2).await,
        "b2",
        "a new session gets the new one"
    );
    assert!(echo_ok(&sc).await, "a removed server's open session drains");
    let refused = client()
        .post(route("c"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init_msg(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    assert!(refused.text().await.unwrap().contains("was removed"));
    let sd = Session::open(&route("d")).await.unwrap();
    assert_eq!(generation(&sd).await, "d1");
    assert_eq!(names(&gw).await, ["a", "b", "d"]);

    // A broken file is logged with where it is wrong; the running configuration stays.
    replace(&path, "{\"mcpServers\": {\"a\": {\"command\": 3}}}");
    let line = gw.wait_log("reload refused");
    assert!(line.contains("mcpServers.a.command"), "{line}");
    assert_eq!(names(&gw).await, ["a", "b", "d"]);
    assert!(echo_ok(&sa).await);

    // Back to v2 (no change), then SIGHUP re-reads the envFile, which polling does not watch.
    replace(&path, &v2);
    gw.wait_log("reload: no change");
    std::fs::write(dir.path().join("a.env"), "GEN=a2\n").unwrap();
    signal(gw.child.id(), "HUP");
    gw.wait_log("reload: ~a");
    let sa2 = Session::open(&route("a")).await.unwrap();
    assert_eq!(generation(&sa2).await, "a2");
    assert_eq!(generation(&sa).await, "a1");

    // Past the drain timeout, sessions of retired servers end and their children stop.
    gw.wait_log("retired server stopped");
    let mut gone = false;
    for _ in 0..100 {
        if !echo_ok(&sb).await {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the old b session ended after the drain timeout");
    eventually("the retired children stop", || {
        gw.log.text().matches("retired server stopped").count() >= 3
    })
    .await;
    assert!(echo_ok(&sb2).await && echo_ok(&sd).await);
}
