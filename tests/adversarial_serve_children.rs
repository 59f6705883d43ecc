//! Adversarial: hostile children. stderr with invalid UTF-8 and endless lines is logged cut and
//! drained (the child keeps working); an answer too long or not JSON becomes an error for the
//! request it answered, for every kind of child; a child that ignores stdin EOF and SIGTERM does
//! not outlive a serve killed with SIGKILL, and while it is stopping it counts against
//! `--max-sessions`.

mod common;

use common::http::{Session, call_msg, client, read_answer};
use common::peer::signal;
use common::serve::{Opts, Serve, have_python3};
use common::stateless;
use common::{WAIT, alive, eventually, repo, tool_text};
use serde_json::{Value, json};
use std::ffi::OsString;

#[tokio::test(flavor = "multi_thread")]
async fn stderr_garbage_is_logged_cut_and_drained() {
    if !have_python3() {
        return;
    }
    let script = repo().join("tests/fixtures/hostile_stderr.sh");
    let gw = Serve::start_with(Opts {
        child: vec![OsString::from(script)],
        ..Opts::default()
    });
    let s = Session::open(&gw.mcp()).await.unwrap();
    let a = s
        .request(call_msg(json!(2), "echo", json!({"text": "still here"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "still here");
    let cut = gw.wait_log("more bytes cut");
    assert!(cut.len() < 8192, "a long line is logged cut");
    let bad = gw.wait_log("stderr: bad");
    assert!(bad.contains('\u{fffd}'), "invalid UTF-8 is replaced: {bad}");
    gw.wait_log("stdio fixture started");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_serve_leaves_no_orphan() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start_with(Opts {
        fixture_args: &["--stubborn"],
        ..Opts::default()
    });
    let _s = Session::open(&gw.mcp()).await.unwrap();
    let line = gw.wait_log("child started");
    let pid: i32 = line
        .split("pid=")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"));
    assert!(alive(pid));
    signal(gw.child.id(), "KILL");
    eventually("the child dies with serve", || !alive(pid)).await;
}

/// The line limit of the dropped-answer tests: the fixture's `huge` answer is over it.
const LIMIT: &str = "65536";

/// Asserts that `a` is serve's error for `id`, naming `reason` and `words`.
fn assert_dropped(a: &Value, id: Value, reason: &str, words: &str) {
    assert_eq!(a["id"], id, "{a}");
    let e = &a["error"];
    assert_eq!(e["data"]["source"], "mcp-bridge", "{a}");
    assert_eq!(e["data"]["reason"], reason, "{a}");
    assert_eq!(e["data"]["mayHaveRun"], true, "{a}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(msg.contains(words), "{msg}");
}

/// A session (its own child, or one of `--scope shared`) gets an error for an answer the child
/// wrote too long, and for one that is not JSON, and keeps working.
async fn dropped_answers_are_errors_in_a_session(scope: &str) {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--max-message-size", LIMIT, "--scope", scope]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let big = s
        .request(call_msg(json!(5), "huge", json!({"bytes": 200_000})))
        .await
        .expect("an answer, not a hang");
    assert_dropped(
        &big,
        json!(5),
        "too-large",
        &format!("> --max-message-size {LIMIT}"),
    );
    gw.wait_log("its request gets an error instead");
    let bad = s
        .request(call_msg(json!("g"), "garbled", json!({})))
        .await
        .expect("an answer, not a hang");
    assert_dropped(&bad, json!("g"), "bad-response", "not JSON-RPC");
    let a = s
        .request(call_msg(json!(6), "echo", json!({"text": "still here"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_answer_of_a_session_child_is_an_error() {
    dropped_answers_are_errors_in_a_session("per-session").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_answer_of_a_shared_child_is_an_error() {
    dropped_answers_are_errors_in_a_session("shared").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_answer_of_a_stateless_child_is_an_error() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--max-message-size", LIMIT]);
    let ask = |id: i64, tool: &str| stateless::call(id, tool, json!({"bytes": 200_000}));
    let answer =
        |r: reqwest::Response| async move { read_answer(r).await.expect("an answer, not a hang") };
    let big = answer(stateless::post(&gw.mcp(), &ask(5, "huge"), &[]).await).await;
    assert_dropped(&big, json!(5), "too-large", "too large");
    let bad = answer(stateless::post(&gw.mcp(), &ask(6, "garbled"), &[]).await).await;
    assert_dropped(&bad, json!(6), "bad-response", "not JSON-RPC");
    let ok = answer(stateless::post(&gw.mcp(), &ask(7, "pid"), &[]).await).await;
    assert!(!tool_text(&ok).is_empty(), "{ok}");
}

/// Fixture processes of `dir` (its `--pid-dir`) still alive.
fn live_children(dir: &std::path::Path) -> usize {
    let pids = std::fs::read_dir(dir).unwrap();
    pids.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| alive(*pid))
        .count()
}

/// A hostile client opens and deletes sessions in a loop while their children take seconds to
/// stop: the stopping children keep their places, so live children never exceed the cap, the
/// next session is refused with 503, and it succeeds once the old children are gone.
#[tokio::test(flavor = "multi_thread")]
async fn children_still_stopping_count_against_max_sessions() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_dir = dir.path().to_str().unwrap();
    // Stubborn: ignores stdin EOF and SIGTERM, so it lives 2 × --stop-timeout after a DELETE.
    let gw = Serve::start_with(Opts {
        args: &["--max-sessions", "2", "--stop-timeout", "2s"],
        fixture_args: &["--pid-dir", pid_dir, "--stubborn"],
        ..Opts::default()
    });
    let cap = 2;
    let mut refusal = None;
    for _ in 0..6 {
        match Session::open(&gw.mcp()).await {
            Ok(s) => {
                let r = client()
                    .delete(gw.mcp())
                    .header("mcp-session-id", &s.id)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
        assert!(
            live_children(dir.path()) <= cap,
            "more children than --max-sessions"
        );
    }
    let refusal = refusal.expect("a session past the cap of live children is refused");
    assert!(
        refusal.contains("503") && refusal.contains("max-sessions"),
        "{refusal}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            live_children(dir.path()) <= cap,
            "more children than --max-sessions"
        );
        match Session::open(&gw.mcp()).await {
            Ok(_) => break,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "still refused after the old children should be gone: {e}"
            ),
        }
        // Polling (bounded above): the old children die on serve's own clock.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(live_children(dir.path()) <= cap);
}
