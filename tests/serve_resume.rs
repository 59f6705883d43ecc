//! Resumability and session lifetime: streams cut mid-flight resume with Last-Event-ID with
//! nothing lost or repeated, sessions outlive a disconnect, and expire after --session-ttl.

mod common;

use common::http::{Session, SseReader, call_msg, read_answer};
use common::serve::{Serve, have_python3};
use common::{alive, eventually, tool_text};
use serde_json::{Value, json};
use std::time::Duration;

fn n_of(msg: &Value) -> Option<i64> {
    (msg["method"] == "notifications/message").then(|| msg["params"]["data"]["n"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_get_stream_resumes_without_loss_or_repeat() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let mut get = s.get_stream(None).await.unwrap();
    const N: i64 = 300;
    let call = s
        .post_builder(&call_msg(
            json!(1),
            "emit",
            json!({"count": N, "interval": 0.002}),
        ))
        .send();
    let answer = tokio::spawn(async move { read_answer(call.await.unwrap()).await.unwrap() });
    let mut seen = Vec::new();
    let mut last_id = None;
    let mut cuts = 0;
    while seen.len() < N as usize {
        let (id, msg) = get.next_message().await.unwrap();
        assert!(id.is_some(), "every event carries an id");
        if let Some(n) = n_of(&msg) {
            seen.push(n);
            last_id = id;
        }
        // Cut the stream a few times while the child keeps emitting, and resume.
        if seen.len() % 70 == 0 && cuts < 4 {
            cuts += 1;
            drop(get);
            get = s.get_stream(last_id.as_deref()).await.unwrap();
        }
    }
    assert_eq!(
        seen,
        (0..N).collect::<Vec<_>>(),
        "nothing lost, nothing repeated, in order"
    );
    assert_eq!(cuts, 4);
    assert_eq!(tool_text(&answer.await.unwrap()), format!("emitted {N}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_post_stream_resumes_through_get() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    // 2025-11-25: every POST stream starts with a priming event (an id and no data).
    let s = Session::open_version(&gw.mcp(), "2025-11-25")
        .await
        .unwrap();
    let mut call = call_msg(json!(7), "slow", json!({"seconds": 0.6, "steps": 3}));
    call["params"]["_meta"] = json!({"progressToken": "tok"});
    let resp = s.post(call).await.unwrap();
    let mut stream = SseReader::new(resp);
    let priming = stream.next().await.unwrap().unwrap();
    assert!(priming.data.is_empty());
    let last = priming.id.expect("priming event id");
    drop(stream);
    let mut resumed = s.get_stream(Some(&last)).await.unwrap();
    let mut progress = Vec::new();
    loop {
        let (_, msg) = resumed.next_message().await.unwrap();
        if msg["method"] == "notifications/progress" {
            progress.push(msg["params"]["progress"].as_i64().unwrap());
            continue;
        }
        assert_eq!(msg["id"], 7);
        assert_eq!(tool_text(&msg), "slow done");
        break;
    }
    assert_eq!(progress, vec![1, 2, 3]);
    // That stream is finished: it ends after the answer.
    assert!(resumed.next().await.unwrap().is_none());

    // Resuming from the middle of a finished POST stream gives exactly the rest.
    let resp = s
        .post(call_msg(json!(8), "echo", json!({"text":"x"})))
        .await
        .unwrap();
    let mut stream = SseReader::new(resp);
    let priming = stream.next().await.unwrap().unwrap();
    let (_, answer) = stream.next_message().await.unwrap();
    assert_eq!(answer["id"], 8);
    let mut again = s.get_stream(priming.id.as_deref()).await.unwrap();
    let (_, answer) = again.next_message().await.unwrap();
    assert_eq!(answer["id"], 8);
    assert!(again.next().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_messages_wait_for_a_get_stream() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    // With a GET stream opened once, notifications go there even while it is disconnected.
    drop(s.get_stream(None).await.unwrap());
    let a = s
        .request(call_msg(json!(1), "emit", json!({"count": 5})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "emitted 5");
    let mut get = s.get_stream(None).await.unwrap();
    for i in 0..5 {
        let (_, msg) = get.next_message().await.unwrap();
        assert_eq!(n_of(&msg), Some(i));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_outlive_disconnects_then_expire() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--session-ttl", "1s"]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    let pid: i32 = tool_text(
        &s.request(call_msg(json!(1), "pid", json!({})))
            .await
            .unwrap(),
    )
    .parse()
    .unwrap();
    // An open stream keeps the session alive past the TTL.
    let get = s.get_stream(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = s
        .request(call_msg(json!(2), "echo", json!({"text":"still here"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "still here");
    drop(get);
    // A short disconnect is fine.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = s
        .request(call_msg(json!(3), "echo", json!({"text":"back"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "back");
    // Then, idle past the TTL: the child stops and the id answers 404.
    let mut status = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = s
            .post(json!({"jsonrpc":"2.0","method":"notifications/x"}))
            .await
            .unwrap();
        status = r.status().as_u16();
        if status == 404 {
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("session-ttl"),
                "{body}"
            );
            break;
        }
        // Notifications keep it active too; back off to let it go idle.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(status, 404);
    eventually("the child to exit", || !alive(pid)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_goes_on_the_requests_own_stream_ahead_of_its_answer() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let s = Session::open(&gw.mcp()).await.unwrap();
    // With a GET stream open, unrelated server messages go there; progress must not.
    let _get = s.get_stream(None).await.unwrap();
    let mut call = call_msg(json!(5), "slow", json!({"steps": 4, "seconds": 0.2}));
    call["params"]["_meta"] = json!({"progressToken": "p-5"});
    let resp = s.post(call).await.unwrap();
    let mut events = SseReader::new(resp);
    let mut progress = Vec::new();
    loop {
        let (_, msg) = events.next_message().await.unwrap();
        if msg["method"] == "notifications/progress" {
            assert_eq!(msg["params"]["progressToken"], "p-5");
            progress.push(msg["params"]["progress"].as_i64().unwrap());
        } else {
            assert_eq!(msg["id"], 5, "{msg}");
            break;
        }
    }
    assert_eq!(
        progress,
        vec![1, 2, 3, 4],
        "every progress notification, in order, before the answer"
    );
}
