//! Adversarial: hostile children. stderr with invalid UTF-8 and endless lines is logged cut and
//! drained (the child keeps working); a child that ignores stdin EOF and SIGTERM does not outlive
//! a serve killed with SIGKILL.

mod common;

use common::http::{Session, call_msg};
use common::peer::signal;
use common::serve::{Opts, Serve, have_python3};
use common::{alive, eventually, repo, tool_text};
use serde_json::json;
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
