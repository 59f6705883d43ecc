//! --shared: one child for every session, with request ids kept apart, initialize answered once,
//! list_changed fanned out, and child requests answered by the session that was asked.

mod common;

use common::http::{Session, call_msg, client, read_answer};
use common::serve::{Serve, have_python3};
use common::tool_text;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn two_sessions_share_one_child() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--shared"]);
    let a = Session::open(&gw.mcp()).await.unwrap();
    let b = Session::open(&gw.mcp()).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        a.init_result, b.init_result,
        "later initialize answered from the first"
    );
    let pid_a = tool_text(
        &a.request(call_msg(json!(1), "pid", json!({})))
            .await
            .unwrap(),
    );
    let pid_b = tool_text(
        &b.request(call_msg(json!(1), "pid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(pid_a, pid_b, "one child");

    // The same ids from both sessions at the same time: each gets its own answer.
    let mut calls = Vec::new();
    for i in 0..20 {
        for (name, s) in [("a", &a), ("b", &b)] {
            let text = format!("{name}-{i}");
            let req = s
                .post_builder(&call_msg(json!(i + 100), "echo", json!({"text": text})))
                .send();
            calls.push(tokio::spawn(async move {
                let ans = read_answer(req.await.unwrap()).await.unwrap();
                (text, ans)
            }));
        }
    }
    for c in calls {
        let (text, ans) = c.await.unwrap();
        assert_eq!(tool_text(&ans), text);
        let id: i64 = text.split('-').nth(1).unwrap().parse().unwrap();
        assert_eq!(ans["id"], id + 100, "the client's own id comes back");
    }

    // list_changed reaches every session.
    let mut get_a = a.get_stream(None).await.unwrap();
    let mut get_b = b.get_stream(None).await.unwrap();
    a.request(call_msg(json!(2), "list_changed", json!({})))
        .await
        .unwrap();
    for get in [&mut get_a, &mut get_b] {
        let (_, msg) = get.next_message().await.unwrap();
        assert_eq!(msg["method"], "notifications/tools/list_changed");
    }

    // A child request goes to the session whose call caused it, and only it may answer.
    let ask = b
        .post_builder(&call_msg(json!(3), "ask", json!({"question":"?"})))
        .send();
    let ask = tokio::spawn(async move { read_answer(ask.await.unwrap()).await.unwrap() });
    let (_, req) = get_b.next_message().await.unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let reply = |text: &str| json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":text},"model":"m"}});
    assert_eq!(a.post(reply("from a")).await.unwrap().status(), 202);
    assert_eq!(b.post(reply("from b")).await.unwrap().status(), 202);
    let result: Value = ask.await.unwrap();
    assert!(tool_text(&result).contains("from b"), "{result}");

    // Ending one session leaves the child serving the other.
    let r = client()
        .delete(gw.mcp())
        .header("mcp-session-id", &a.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ans = b
        .request(call_msg(json!(4), "echo", json!({"text":"b alive"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&ans), "b alive");
}
